package sqsserver

import "time"

// QueueStats is a queue as CloudWatch's AWS/SQS metrics and an operator's
// console see it, at one instant of the server's clock.
type QueueStats struct {
	Visible  int // ApproximateNumberOfMessagesVisible
	InFlight int // ApproximateNumberOfMessagesNotVisible
	Delayed  int // ApproximateNumberOfMessagesDelayed
	// OldestAge is ApproximateAgeOfOldestMessage: how long the oldest
	// stored message has been in the queue (0 when it is empty).
	OldestAge time.Duration
	// InFlightByGroup counts the in-flight messages of each message group
	// of a FIFO queue that has any; nil for standard queues.
	InFlightByGroup map[string]int
}

// Stats returns the stats of the queue with this URL (or bare name, in the
// server's account), and false when there is no such queue.
func (s *Server) Stats(queueURL string) (QueueStats, bool) {
	q := s.queueByURL(queueURL)
	if q == nil {
		return QueueStats{}, false
	}
	now := s.clock.Now()
	if q.lockAt(now) != nil {
		return QueueStats{}, false
	}
	defer q.mu.Unlock()
	st := QueueStats{Visible: q.nReady, InFlight: q.nInflight, Delayed: q.nDelayed}
	if q.retention.Len() > 0 {
		st.OldestAge = max(0, now.Sub(q.retention.top().enqueuedAt))
	}
	if q.fifo {
		for id, g := range q.groups {
			if g.inflight > 0 {
				if st.InFlightByGroup == nil {
					st.InFlightByGroup = map[string]int{}
				}
				st.InFlightByGroup[id] = g.inflight
			}
		}
	}
	return st, true
}
