package sqsserver

// Index-tracking heaps used by a queue. Each element records its position so
// it can be fixed or removed in O(log n) when its deadline changes or it is
// deleted. All of them are used through container/heap under the queue lock.

// timerHeap orders delayed and in-flight messages by the time they become
// visible.
type timerHeap []*message

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].deadline.Equal(h[j].deadline) {
		return h[i].seq < h[j].seq
	}
	return h[i].deadline.Before(h[j].deadline)
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timerIdx = i
	h[j].timerIdx = j
}
func (h *timerHeap) Push(x any) {
	m := x.(*message)
	m.timerIdx = len(*h)
	*h = append(*h, m)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	m := old[n-1]
	old[n-1] = nil
	m.timerIdx = -1
	*h = old[:n-1]
	return m
}

// retentionHeap orders all stored messages by the start of their retention
// period, so expired ones are found at the top.
type retentionHeap []*message

func (h retentionHeap) Len() int { return len(h) }
func (h retentionHeap) Less(i, j int) bool {
	if h[i].enqueuedAt.Equal(h[j].enqueuedAt) {
		return h[i].seq < h[j].seq
	}
	return h[i].enqueuedAt.Before(h[j].enqueuedAt)
}
func (h retentionHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].retainIdx = i
	h[j].retainIdx = j
}
func (h *retentionHeap) Push(x any) {
	m := x.(*message)
	m.retainIdx = len(*h)
	*h = append(*h, m)
}
func (h *retentionHeap) Pop() any {
	old := *h
	n := len(old)
	m := old[n-1]
	old[n-1] = nil
	m.retainIdx = -1
	*h = old[:n-1]
	return m
}

// readyHeap orders the visible messages of a standard queue by arrival, so a
// message whose visibility timeout ended goes back to about where it was.
type readyHeap []*message

func (h readyHeap) Len() int           { return len(h) }
func (h readyHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h readyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].readyIdx = i
	h[j].readyIdx = j
}
func (h *readyHeap) Push(x any) {
	m := x.(*message)
	m.readyIdx = len(*h)
	*h = append(*h, m)
}
func (h *readyHeap) Pop() any {
	old := *h
	n := len(old)
	m := old[n-1]
	old[n-1] = nil
	m.readyIdx = -1
	*h = old[:n-1]
	return m
}

// groupHeap orders the deliverable message groups of a FIFO queue by the
// arrival of their first message, so the oldest waiting message goes first.
type groupHeap []*group

func (h groupHeap) Len() int { return len(h) }
func (h groupHeap) Less(i, j int) bool {
	return h[i].key < h[j].key
}
func (h groupHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *groupHeap) Push(x any) {
	g := x.(*group)
	g.idx = len(*h)
	*h = append(*h, g)
}
func (h *groupHeap) Pop() any {
	old := *h
	n := len(old)
	g := old[n-1]
	old[n-1] = nil
	g.idx = -1
	*h = old[:n-1]
	return g
}
