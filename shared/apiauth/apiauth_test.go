package apiauth

import "testing"

func TestTokens(t *testing.T) {
	tok, hash := NewToken()
	old, oldHash := NewToken()
	if !ValidHash(hash) || Hash(tok) != hash {
		t.Fatal("hash of a new token is not its stored form")
	}
	if !Verify(tok, []string{oldHash, hash}) || !Verify(old, []string{oldHash, hash}) {
		t.Fatal("both active tokens must verify during rotation")
	}
	if Verify(tok, []string{oldHash}) || Verify("", []string{hash}) || Verify(tok+"x", []string{hash}) || Verify(tok, nil) {
		t.Fatal("a wrong or empty token verified")
	}
	for header, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc"} {
		if got, err := BearerToken(header); err != nil || got != want {
			t.Errorf("BearerToken(%q) = %q, %v", header, got, err)
		}
	}
	for _, header := range []string{"", "Basic abc", "Bearer", "Bearer  "} {
		if _, err := BearerToken(header); err == nil {
			t.Errorf("BearerToken(%q) accepted", header)
		}
	}
}
