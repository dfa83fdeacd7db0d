// Package messages defines the bodies of feedpipe's queue messages, their
// group ids and deduplication ids. Every producer and consumer goes through
// Encode and Decode here.
package messages

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/feedpipe/feedpipe/shared/layout"
)

// Kinds of import queue messages.
const (
	// KindDelta: a copied upload is queued for import.
	KindDelta = "delta"
	// KindWake: something unblocked the site without delivering a delta
	// (an expiry, a cancel, a redrive, a group commit cut short).
	KindWake = "wake"
)

// Import is a message of the import FIFO queue (group = site).
type Import struct {
	Kind     string `json:"kind"`
	Site     string `json:"site"`
	Sequence uint64 `json:"sequence,omitempty"`
	UploadID string `json:"uploadId,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// ErrUndecodable wraps every Decode error.
var ErrUndecodable = errors.New("undecodable message")

// Encode returns the body.
func (m Import) Encode() string {
	b, _ := json.Marshal(m) // strings and numbers: cannot fail
	return string(b)
}

// GroupID is the message group: the site.
func (m Import) GroupID() string { return m.Site }

// DeduplicationID identifies a delta by site + sequence, so the copy stage
// can send it again after a crash without a second message; a wake gets a
// unique id, since a reused id would be swallowed for five minutes.
func (m Import) DeduplicationID() string {
	if m.Kind == KindDelta {
		return layout.DeltaDeduplicationID(m.Site, m.Sequence)
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return m.Site + "-wake-" + hex.EncodeToString(b[:])
}

// DecodeImport parses and checks an import message.
func DecodeImport(body string) (Import, error) {
	var m Import
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return Import{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	if err := layout.ValidateSite(m.Site); err != nil {
		return Import{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	switch m.Kind {
	case KindDelta:
		seq, err := layout.ParseUploadID(m.UploadID)
		if err != nil || seq != m.Sequence {
			return Import{}, fmt.Errorf("%w: delta message with upload id %q and sequence %d", ErrUndecodable, m.UploadID, m.Sequence)
		}
	case KindWake:
	default:
		return Import{}, fmt.Errorf("%w: unknown kind %q", ErrUndecodable, m.Kind)
	}
	return m, nil
}

// sender is what Send needs of SQS.
type sender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Send puts m on the import queue with its group and deduplication ids.
func Send(ctx context.Context, client sender, queueURL string, m Import) error {
	_, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(m.Encode()),
		MessageGroupId: aws.String(m.GroupID()), MessageDeduplicationId: aws.String(m.DeduplicationID())})
	if err != nil {
		return fmt.Errorf("send %s message for %s to the import queue: %w", m.Kind, m.Site, err)
	}
	return nil
}
