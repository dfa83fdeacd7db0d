// Package apiauth handles site tokens: a token is shown once when it is made,
// only its SHA-256 is stored, and up to two are active at once so a site can
// rotate without downtime. Comparison is constant-time.
package apiauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
)

// MaxActive is how many tokens a site may have at once.
const MaxActive = 2

const hashPrefix = "sha256:"

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewToken returns a new random token (256 bits) and its stored hash.
func NewToken() (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	token = "fp_" + tokenEncoding.EncodeToString(b[:])
	return token, Hash(token)
}

// Hash is the stored form of a token.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hashPrefix + hex.EncodeToString(sum[:])
}

// ValidHash reports whether h is a stored token hash.
func ValidHash(h string) bool {
	rest, ok := strings.CutPrefix(h, hashPrefix)
	if !ok || len(rest) != 64 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil
}

// Verify reports whether token matches one of the stored hashes. Every hash
// is compared, in constant time, whether or not an earlier one matched.
func Verify(token string, hashes []string) bool {
	if token == "" {
		return false
	}
	got := []byte(Hash(token))
	ok := 0
	for _, h := range hashes {
		if len(h) == len(got) {
			ok |= subtle.ConstantTimeCompare(got, []byte(h))
		}
	}
	return ok == 1
}

// BearerToken extracts the token of an "Authorization: Bearer <token>"
// header value.
func BearerToken(header string) (string, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", fmt.Errorf("want Authorization: Bearer <site token>")
	}
	return strings.TrimSpace(token), nil
}
