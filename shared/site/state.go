package site

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// State is a site's pipeline state, sites/{site}/state.json. Only the import
// function writes it.
type State struct {
	Halted bool `json:"halted"`
	// Reason says why the site halted and what to do about it.
	Reason string `json:"reason,omitempty"`
	// Sequence is the sequence that could not be applied.
	Sequence uint64    `json:"sequence,omitempty"`
	Since    time.Time `json:"since,omitzero"`
}

// LoadState reads a site's state; a site that never halted has none.
func LoadState(ctx context.Context, client objectAPI, bucket, name string) (State, error) {
	key := layout.SiteStateKey(name)
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchKey" || apiErr.ErrorCode() == "NotFound") {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read %s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	var s State
	if err := json.NewDecoder(out.Body).Decode(&s); err != nil {
		return State{}, fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return s, nil
}

// SaveState writes a site's state.
func SaveState(ctx context.Context, client objectAPI, bucket, name string, s State) error {
	b, _ := json.Marshal(s)
	key := layout.SiteStateKey(name)
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b), ContentType: aws.String("application/json")}); err != nil {
		return fmt.Errorf("write %s/%s: %w", bucket, key, err)
	}
	return nil
}
