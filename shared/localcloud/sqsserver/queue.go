package sqsserver

import (
	"container/heap"
	"strconv"
	"sync"
	"time"
)

// queue is one SQS queue. The identity fields are immutable; everything else
// is guarded by mu.
//
// Every stored message is in msgs and in the retention heap. A delayed or
// in-flight message is also in the timer heap, keyed by the time it becomes
// visible; visibility changes are applied lazily by advance, which every
// operation calls first. A visible message of a standard queue is in the
// ready heap. A FIFO message is in its group's list from send until delete,
// and a group whose first message is visible and that has nothing in flight
// is in the ready-group heap.
type queue struct {
	id      uint64 // unique per Server, encoded in receipt handles
	name    string
	account string
	arn     string
	fifo    bool
	created time.Time

	mu           sync.Mutex
	cfg          queueConfig
	lastModified time.Time
	tags         map[string]string
	deleted      bool

	msgs      map[uint64]*message
	nextKey   uint64
	nextSeq   uint64
	nextNonce uint64
	fifoSeq   uint64 // last SequenceNumber handed out

	timers    indexedHeap[*message]
	retention indexedHeap[*message]
	ready     indexedHeap[*message] // standard queues

	groups      map[string]*group // FIFO queues
	readyGroups indexedHeap[*group]
	dedup       dedupCache

	nReady, nInflight, nDelayed int

	// waitCh is closed, and cleared, when a message may have become
	// receivable; long polls wait on it. It is only made when someone waits.
	waitCh chan struct{}
	waits  int // times a long poll went to sleep, for tests
}

func newQueue(srv *Server, id uint64, account, name string, fifo bool, cfg queueConfig, tags map[string]string, now time.Time) *queue {
	q := &queue{
		id:           id,
		name:         name,
		account:      account,
		arn:          "arn:aws:sqs:" + srv.region + ":" + account + ":" + name,
		fifo:         fifo,
		created:      now,
		cfg:          cfg,
		lastModified: now,
		tags:         tags,
		msgs:         make(map[uint64]*message),
		timers:       newTimerHeap(),
		retention:    newRetentionHeap(),
		ready:        newReadyHeap(),
		readyGroups:  newGroupHeap(),
	}
	if fifo {
		q.groups = make(map[string]*group)
		q.dedup.init()
		// SequenceNumbers are 20-digit decimals that grow over the life of
		// the queue.
		q.fifoSeq = 10000000000000000000 + uint64(now.UnixMilli())*1000
	}
	return q
}

// signal wakes every long poll on the queue.
func (q *queue) signal() {
	if q.waitCh != nil {
		close(q.waitCh)
		q.waitCh = nil
	}
}

// waiter returns the channel the next signal closes.
func (q *queue) waiter() <-chan struct{} {
	if q.waitCh == nil {
		q.waitCh = make(chan struct{})
	}
	return q.waitCh
}

// nextSequenceNumber returns the next FIFO SequenceNumber.
func (q *queue) nextSequenceNumber() string {
	q.fifoSeq++
	return strconv.FormatUint(q.fifoSeq, 10)
}

// store adds m, whose enqueuedAt is set, to the queue. It is hidden for delay
// seconds first.
func (q *queue) store(m *message, now time.Time, delay int) {
	q.nextKey++
	m.key = q.nextKey
	q.nextSeq++
	m.seq = q.nextSeq
	m.timerIdx, m.readyIdx, m.retainIdx = -1, -1, -1
	q.msgs[m.key] = m
	heap.Push(&q.retention, m)
	if q.fifo {
		q.groupAppend(m)
	}
	if delay > 0 {
		m.state = stateDelayed
		m.deadline = now.Add(time.Duration(delay) * time.Second)
		heap.Push(&q.timers, m)
		q.nDelayed++
		return
	}
	m.state = stateReady
	q.nReady++
	q.becameReady(m)
}

// becameReady files a message that just became visible.
func (q *queue) becameReady(m *message) {
	if q.fifo {
		q.updateGroup(m.group)
		return
	}
	heap.Push(&q.ready, m)
	q.signal()
}

// advance applies everything that happened by now: ended delays and
// visibility timeouts, expired retention and deduplication entries.
func (q *queue) advance(now time.Time) {
	for q.timers.Len() > 0 && !q.timers.top().deadline.After(now) {
		m := heap.Pop(&q.timers).(*message)
		switch m.state {
		case stateDelayed:
			q.nDelayed--
		case stateInflight:
			q.nInflight--
			if q.fifo {
				m.group.inflight--
			}
		}
		m.state = stateReady
		q.nReady++
		q.becameReady(m)
	}
	cutoff := now.Add(-time.Duration(q.cfg.retention) * time.Second)
	for q.retention.Len() > 0 && !q.retention.top().enqueuedAt.After(cutoff) {
		q.remove(q.retention.top())
	}
	if q.fifo {
		q.dedup.expire(now)
	}
}

// nextDeadline returns the earliest time a hidden message becomes visible.
func (q *queue) nextDeadline() (time.Time, bool) {
	if q.timers.Len() == 0 {
		return time.Time{}, false
	}
	return q.timers.top().deadline, true
}

// detach takes m out of every structure of the queue without re-evaluating
// its FIFO group.
func (q *queue) detach(m *message) {
	delete(q.msgs, m.key)
	if m.retainIdx >= 0 {
		heap.Remove(&q.retention, m.retainIdx)
	}
	if m.timerIdx >= 0 {
		heap.Remove(&q.timers, m.timerIdx)
	}
	if m.readyIdx >= 0 {
		heap.Remove(&q.ready, m.readyIdx)
	}
	switch m.state {
	case stateReady:
		q.nReady--
	case stateDelayed:
		q.nDelayed--
	case stateInflight:
		q.nInflight--
		if q.fifo {
			m.group.inflight--
		}
	}
	m.state = 0
	if q.fifo {
		q.groupUnlink(m)
	}
}

// remove deletes m from the queue.
func (q *queue) remove(m *message) {
	q.detach(m)
	if q.fifo {
		q.updateGroup(m.group)
	}
}

// purge deletes every message. As on SQS, deduplication entries of a FIFO
// queue survive.
func (q *queue) purge() {
	q.msgs = make(map[uint64]*message)
	q.timers = newTimerHeap()
	q.retention = newRetentionHeap()
	q.ready = newReadyHeap()
	if q.fifo {
		q.groups = make(map[string]*group)
		q.readyGroups = newGroupHeap()
	}
	q.nReady, q.nInflight, q.nDelayed = 0, 0, 0
}

// delivery is what one receive of a message reports: the immutable message
// and the values of its mutable fields at the receive.
type delivery struct {
	m            *message
	handle       string
	receiveCount int
	firstReceive int64
}

// deliver records a receive of the ready message m and hides it for vt
// seconds. A zero vt leaves it visible; the caller files it again.
func (q *queue) deliver(m *message, vt int, now time.Time) delivery {
	m.receiveCount++
	if m.firstReceive == 0 {
		m.firstReceive = now.UnixMilli()
	}
	m.receivedAt = now
	q.nextNonce++
	m.nonce = q.nextNonce
	if vt > 0 {
		m.state = stateInflight
		m.deadline = now.Add(time.Duration(vt) * time.Second)
		heap.Push(&q.timers, m)
		q.nReady--
		q.nInflight++
		if q.fifo {
			m.group.inflight++
		}
	}
	return delivery{
		m:            m,
		handle:       encodeReceiptHandle(q.id, m.key, m.nonce),
		receiveCount: m.receiveCount,
		firstReceive: m.firstReceive,
	}
}

// take receives up to n visible messages, hiding them for vt seconds. When
// maxReceive is positive, a message that has already been received
// maxReceive times is removed instead and returned in moved, for the caller
// to hand to the dead-letter queue, as SQS does when such a message is next
// about to be received.
func (q *queue) take(n, vt, maxReceive int, now time.Time, out []delivery) ([]delivery, []*message) {
	if q.fifo {
		return q.takeFIFO(n, vt, maxReceive, now, out)
	}
	var moved, again []*message
	for len(out) < n && q.ready.Len() > 0 {
		m := heap.Pop(&q.ready).(*message)
		if maxReceive > 0 && m.receiveCount >= maxReceive {
			q.detach(m)
			moved = append(moved, m)
			continue
		}
		out = append(out, q.deliver(m, vt, now))
		if vt == 0 {
			again = append(again, m)
		}
	}
	for _, m := range again {
		heap.Push(&q.ready, m)
	}
	return out, moved
}

// changeVisibility implements ChangeMessageVisibility for the message m
// named by a receipt handle with the given nonce.
//
// As on SQS, the new timeout counts from now, 0 makes the message visible at
// once, and the total time a message stays hidden after a receive is at most
// 12 hours. A standard queue accepts the change even after the visibility
// timeout ended, as long as nobody received the message since (it is hidden
// again); a FIFO queue answers MessageNotInflight once the message is no
// longer in flight, and rejects a handle of an earlier receive.
func (q *queue) changeVisibility(m *message, nonce uint64, handle string, vt int, now time.Time) *apiError {
	if q.fifo || m.state != stateReady {
		if m.state != stateInflight {
			return newError(codeMessageNotInflight, "The message referred to by receipt handle %s isn't in flight.", handle)
		}
		if q.fifo && m.nonce != nonce {
			return errHandleExpired(handle)
		}
	}
	if now.Sub(m.receivedAt)+time.Duration(vt)*time.Second > maxVisibilityTimeout*time.Second {
		return errInvalidValue(vt, "VisibilityTimeout", "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]")
	}
	switch m.state {
	case stateInflight:
		if vt == 0 {
			heap.Remove(&q.timers, m.timerIdx)
			q.nInflight--
			q.nReady++
			m.state = stateReady
			if q.fifo {
				m.group.inflight--
			}
			q.becameReady(m)
			return nil
		}
		m.deadline = now.Add(time.Duration(vt) * time.Second)
		heap.Fix(&q.timers, m.timerIdx)
	case stateReady: // standard queue, visibility ended, not received since
		if vt == 0 {
			return nil
		}
		heap.Remove(&q.ready, m.readyIdx)
		q.nReady--
		q.nInflight++
		m.state = stateInflight
		m.deadline = now.Add(time.Duration(vt) * time.Second)
		heap.Push(&q.timers, m)
	}
	return nil
}

// deleteMessage implements DeleteMessage for the message m named by a
// receipt handle with the given nonce. A standard queue deletes the message
// with any of its receipt handles, as SQS does; a FIFO queue only accepts the
// handle of the current receive while the message is in flight and otherwise
// reports that the handle has expired.
func (q *queue) deleteMessage(m *message, nonce uint64, handle string) *apiError {
	if q.fifo && (m.state != stateInflight || m.nonce != nonce) {
		return errHandleExpired(handle)
	}
	q.remove(m)
	return nil
}

// setDelay applies a new DelaySeconds. As SQS documents, the change is
// retroactive for FIFO queues (messages still delayed get the new delay) and
// only affects new messages on standard queues.
func (q *queue) setDelay(delay int) {
	q.cfg.delay = delay
	if !q.fifo {
		return
	}
	changed := false
	for _, m := range q.timers.items {
		if m.state == stateDelayed {
			m.deadline = m.enqueuedAt.Add(time.Duration(delay) * time.Second)
			changed = true
		}
	}
	if changed {
		heap.Init(&q.timers)
	}
}

// lockLive takes the queue's lock unless the queue was deleted, as SQS
// answers QueueDoesNotExist for a deleted queue. On success the caller
// holds q.mu.
func (q *queue) lockLive() *apiError {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return errQueueDoesNotExist()
	}
	return nil
}

// lockAt is lockLive plus bringing the queue's timers up to now.
func (q *queue) lockAt(now time.Time) *apiError {
	if err := q.lockLive(); err != nil {
		return err
	}
	q.advance(now)
	return nil
}
