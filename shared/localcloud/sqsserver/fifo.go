package sqsserver

import (
	"container/heap"
	"time"
)

// group is a FIFO message group: its messages in send order, from send until
// delete, including the ones in flight.
type group struct {
	id         string
	head, tail *message
	inflight   int    // messages of the group in flight
	idx        int    // index in queue.readyGroups, -1 when absent
	key        uint64 // seq of head when filed in readyGroups
}

// groupAppend adds m at the end of its group, creating the group.
func (q *queue) groupAppend(m *message) {
	g := q.groups[m.groupID]
	if g == nil {
		g = &group{id: m.groupID, idx: -1}
		q.groups[m.groupID] = g
	}
	m.group = g
	m.next = nil
	m.prev = g.tail
	if g.tail != nil {
		g.tail.next = m
	} else {
		g.head = m
	}
	g.tail = m
}

// groupUnlink takes m out of its group's list.
func (q *queue) groupUnlink(m *message) {
	g := m.group
	if m.prev != nil {
		m.prev.next = m.next
	} else {
		g.head = m.next
	}
	if m.next != nil {
		m.next.prev = m.prev
	} else {
		g.tail = m.prev
	}
	m.prev, m.next = nil, nil
}

// updateGroup files g in the ready-group heap exactly when it can deliver:
// nothing of it is in flight and its first message is visible. This is how
// SQS keeps a group blocked while any of its messages is in flight. An empty
// group with nothing in flight is forgotten.
func (q *queue) updateGroup(g *group) {
	deliverable := g.inflight == 0 && g.head != nil && g.head.state == stateReady
	switch {
	case deliverable && g.idx < 0:
		g.key = g.head.seq
		heap.Push(&q.readyGroups, g)
		q.signal()
	case deliverable && g.key != g.head.seq:
		g.key = g.head.seq
		heap.Fix(&q.readyGroups, g.idx)
	case !deliverable && g.idx >= 0:
		heap.Remove(&q.readyGroups, g.idx)
	}
	if g.head == nil && g.inflight == 0 && q.groups[g.id] == g {
		delete(q.groups, g.id)
	}
}

// takeFIFO receives up to n messages from the deliverable groups, oldest
// group first. As SQS does, it returns as many messages of one group as it
// can, in order, before moving to the next group; once a message of a group
// is in flight the group delivers nothing more until that message is deleted
// or visible again.
func (q *queue) takeFIFO(n, vt, maxReceive int, now time.Time, out []delivery) ([]delivery, []*message) {
	var moved []*message
	var touched []*group
	for len(out) < n && q.readyGroups.Len() > 0 {
		g := heap.Pop(&q.readyGroups).(*group)
		touched = append(touched, g)
		for m := g.head; m != nil && len(out) < n; {
			next := m.next
			if m.state != stateReady {
				break // a delayed message holds back the rest of its group
			}
			if maxReceive > 0 && m.receiveCount >= maxReceive {
				q.detach(m)
				moved = append(moved, m)
			} else {
				out = append(out, q.deliver(m, vt, now))
			}
			m = next
		}
	}
	for _, g := range touched {
		q.updateGroup(g)
	}
	return out, moved
}

// dedupCache remembers the sends of a FIFO queue for the five-minute
// deduplication interval. Entries expire in the order they were made, so a
// log in that order lets expire drop them in O(1) each.
type dedupCache struct {
	entries map[string]dedupEntry
	log     []dedupLogEntry
	head    int
}

type dedupEntry struct {
	messageID string
	seqNumber string
	expires   time.Time
}

type dedupLogEntry struct {
	key     string
	expires time.Time
}

func (d *dedupCache) init() { d.entries = make(map[string]dedupEntry) }

// lookup returns the live entry for key.
func (d *dedupCache) lookup(key string, now time.Time) (dedupEntry, bool) {
	e, ok := d.entries[key]
	if !ok || !now.Before(e.expires) {
		return dedupEntry{}, false
	}
	return e, true
}

func (d *dedupCache) add(key, messageID, seqNumber string, now time.Time) {
	exp := now.Add(dedupInterval * time.Second)
	d.entries[key] = dedupEntry{messageID: messageID, seqNumber: seqNumber, expires: exp}
	d.log = append(d.log, dedupLogEntry{key: key, expires: exp})
}

func (d *dedupCache) expire(now time.Time) {
	for d.head < len(d.log) && !now.Before(d.log[d.head].expires) {
		le := d.log[d.head]
		if e, ok := d.entries[le.key]; ok && e.expires.Equal(le.expires) {
			delete(d.entries, le.key)
		}
		d.log[d.head] = dedupLogEntry{}
		d.head++
	}
	// Compact once the expired prefix dominates the log.
	if d.head > 1024 && d.head*2 > len(d.log) {
		n := copy(d.log, d.log[d.head:])
		clear(d.log[n:])
		d.log = d.log[:n]
		d.head = 0
	}
}

// dedupKey scopes a deduplication id to the queue or, with
// DeduplicationScope=messageGroup, to its message group.
func (q *queue) dedupKey(groupID, dedupID string) string {
	if q.cfg.dedupScope == "messageGroup" {
		return groupID + "\x00" + dedupID
	}
	return dedupID
}
