// Package sqsserver is an in-process Amazon SQS emulator that speaks the AWS
// JSON 1.0 protocol used by aws-sdk-go-v2's service/sqs, current botocore and
// the AWS CLI: every request is a POST with an
// "X-Amz-Target: AmazonSQS.<Action>" header and a JSON body, and every error
// is a JSON document {"__type": ..., "message": ...} with the HTTP status
// SQS uses and, as SQS sends it for query-compatible clients, an
// "x-amzn-query-error: <legacy code>;Sender" header.
//
// The emulator is faithful to SQS where feedpipe's correctness depends on it:
//
//   - Standard queues deliver at least once and roughly in send order; a
//     message is hidden for the visibility timeout after each receive and
//     becomes visible again when it ends.
//   - FIFO queues deliver strictly in order within a message group, never
//     hand out a message of a group while another message of that group is in
//     flight, deduplicate sends for five minutes by MessageDeduplicationId or
//     by the SHA-256 of the body (ContentBasedDeduplication), and number
//     messages with increasing SequenceNumbers.
//   - A redrive policy moves a message to its dead-letter queue when a
//     receive would take its receive count past maxReceiveCount.
//   - Long polling (WaitTimeSeconds) returns as soon as a message is
//     available and never spins: waiters sleep on a per-queue notification
//     channel and a clock timer for the next visibility change.
//
// All time comes from an injected clock (github.com/feedpipe/feedpipe/shared/clock),
// so tests can skip visibility timeouts, delays and retention with
// clock.Advance. Authentication (SigV4) is not checked here; the local cloud's
// router does that before a request reaches this package.
//
// Each queue has its own lock. The registry of queues is read without
// locking, so the hot path (send, receive, delete) only ever contends on the
// queue it touches.
package sqsserver
