package sqsserver

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/feedpipe/feedpipe/shared/clock"
)

// Server is an in-process SQS. It is an http.Handler for the AWS JSON 1.0
// protocol and is safe for concurrent use.
type Server struct {
	clock     *clock.Clock
	region    string
	accountID string
	log       *slog.Logger

	// mu serializes creating and deleting queues; lookups read queues
	// without it.
	mu     sync.Mutex
	queues sync.Map // queueKey -> *queue

	nextQueueID atomic.Uint64
	closed      atomic.Bool
	done        chan struct{}
	closeOnce   sync.Once

	bufs   writerPool // response buffers
	bodies sync.Pool  // request buffers (*bytes.Buffer)
}

type queueKey struct{ account, name string }

// Option configures a Server.
type Option func(*Server)

// WithClock makes the server take all time from c. The default is a new
// clock that follows the wall clock.
func WithClock(c *clock.Clock) Option { return func(s *Server) { s.clock = c } }

// WithRegion sets the region used in queue ARNs. The default is "us-east-1".
func WithRegion(region string) Option { return func(s *Server) { s.region = region } }

// WithAccountID sets the account that owns the queues the server creates.
// The default is "000000000000".
func WithAccountID(id string) Option { return func(s *Server) { s.accountID = id } }

// WithLogger sets the logger. The default discards everything.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// New returns a server with no queues.
func New(opts ...Option) *Server {
	s := &Server{
		region:    "us-east-1",
		accountID: "000000000000",
		done:      make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if s.clock == nil {
		s.clock = clock.New()
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return s
}

// Close ends every long poll; every later request fails with
// ServiceUnavailable and SendToARN with ErrClosed. Close is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
	})
}

// HasQueueARN reports whether a queue with the ARN
// arn:aws:sqs:<region>:<account>:<name> exists.
func (s *Server) HasQueueARN(queueARN string) bool {
	return s.queueByARN(queueARN) != nil
}

// SendToARN sends body to the standard queue with the given ARN, the way S3
// delivers bucket notifications. It fails with ErrQueueDoesNotExist when
// there is no such queue, with ErrFIFOQueue when it is a FIFO queue (SQS does
// not accept S3 notifications on FIFO queues), and with the SQS error for a
// body SQS would reject.
func (s *Server) SendToARN(ctx context.Context, queueARN, body string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	q := s.queueByARN(queueARN)
	if q == nil {
		return ErrQueueDoesNotExist
	}
	if q.fifo {
		return ErrFIFOQueue
	}
	in := sendInput{body: body}
	if err := in.validate(); err != nil {
		return err
	}
	now := s.clock.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return ErrQueueDoesNotExist
	}
	q.advance(now)
	if _, err := q.send(&in, s.accountID, now); err != nil {
		return err
	}
	return nil
}

// lookup returns the live queue account/name, or nil.
func (s *Server) lookup(account, name string) *queue {
	v, ok := s.queues.Load(queueKey{account, name})
	if !ok {
		return nil
	}
	return v.(*queue)
}

// queueByARN returns the live queue with the ARN, or nil. The region must be
// the server's.
func (s *Server) queueByARN(arn string) *queue {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[3] != s.region {
		return nil
	}
	return s.lookup(parts[4], parts[5])
}

// queueByURL resolves a QueueUrl by its last two path segments, account and
// name, whatever scheme and host it names: clients may reach the server as
// 127.0.0.1 or localhost. A bare queue name resolves in the server's account.
func (s *Server) queueByURL(url string) *queue {
	url = strings.TrimRight(url, "/")
	if i := strings.IndexAny(url, "?#"); i >= 0 {
		url = url[:i]
	}
	i := strings.LastIndexByte(url, '/')
	if i < 0 {
		return s.lookup(s.accountID, url)
	}
	name := url[i+1:]
	rest := url[:i]
	account := rest[strings.LastIndexByte(rest, '/')+1:]
	return s.lookup(account, name)
}

// queueTypes is the queueTypeInfo used to validate redrive policies.
func (s *Server) queueTypes(arn string) (bool, bool) {
	q := s.queueByARN(arn)
	if q == nil {
		return false, false
	}
	return true, q.fifo
}

// sortedQueues returns the live queues of account whose names start with
// prefix, sorted by name.
func (s *Server) sortedQueues(account, prefix string) []*queue {
	var out []*queue
	s.queues.Range(func(k, v any) bool {
		key := k.(queueKey)
		if key.account == account && strings.HasPrefix(key.name, prefix) {
			out = append(out, v.(*queue))
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// moveToDLQ stores messages taken from src in the dead-letter queue dlq.
// They keep their MessageId, body, attributes, receive count and (FIFO)
// message group, and gain DeadLetterQueueSourceArn. As SQS documents, a
// standard dead-letter queue keeps the original enqueue time for retention
// while a FIFO one restarts it.
func (s *Server) moveToDLQ(src, dlq *queue, moved []*message, now time.Time) {
	dlq.mu.Lock()
	defer dlq.mu.Unlock()
	if dlq.deleted {
		s.log.Warn("sqs: dead-letter queue deleted, dropping messages", "source", src.arn, "dlq", dlq.arn, "count", len(moved))
		return
	}
	dlq.advance(now)
	for _, old := range moved {
		m := &message{
			id:           old.id,
			body:         old.body,
			md5Body:      old.md5Body,
			attrs:        old.attrs,
			md5Attrs:     old.md5Attrs,
			traceHeader:  old.traceHeader,
			hasTrace:     old.hasTrace,
			senderID:     old.senderID,
			sentAt:       old.sentAt,
			groupID:      old.groupID,
			dedupID:      old.dedupID,
			dlqSource:    src.arn,
			receiveCount: old.receiveCount,
			firstReceive: old.firstReceive,
			enqueuedAt:   old.enqueuedAt,
		}
		if dlq.fifo {
			m.enqueuedAt = now
			m.seqNumber = dlq.nextSequenceNumber()
		}
		dlq.store(m, now, 0)
	}
	s.log.Debug("sqs: moved messages to dead-letter queue", "source", src.arn, "dlq", dlq.arn, "count", len(moved))
}
