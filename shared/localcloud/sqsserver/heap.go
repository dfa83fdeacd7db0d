package sqsserver

// indexedHeap is a container/heap of elements that record their own position,
// so an element can be fixed or removed in O(log n) when its deadline changes
// or it is deleted. It is used through container/heap under the queue lock.
type indexedHeap[T any] struct {
	items []T
	less  func(a, b T) bool
	// index points at the element's position field (-1 when absent).
	index func(T) *int
}

func (h *indexedHeap[T]) Len() int           { return len(h.items) }
func (h *indexedHeap[T]) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *indexedHeap[T]) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	*h.index(h.items[i]) = i
	*h.index(h.items[j]) = j
}

func (h *indexedHeap[T]) Push(x any) {
	t := x.(T)
	*h.index(t) = len(h.items)
	h.items = append(h.items, t)
}

func (h *indexedHeap[T]) Pop() any {
	n := len(h.items)
	t := h.items[n-1]
	var zero T
	h.items[n-1] = zero
	*h.index(t) = -1
	h.items = h.items[:n-1]
	return t
}

// top is the least element; the heap must not be empty.
func (h *indexedHeap[T]) top() T { return h.items[0] }

// newTimerHeap orders delayed and in-flight messages by the time they become
// visible.
func newTimerHeap() indexedHeap[*message] {
	return indexedHeap[*message]{
		less: func(a, b *message) bool {
			if a.deadline.Equal(b.deadline) {
				return a.seq < b.seq
			}
			return a.deadline.Before(b.deadline)
		},
		index: func(m *message) *int { return &m.timerIdx },
	}
}

// newRetentionHeap orders all stored messages by the start of their
// retention period, so expired ones are found at the top.
func newRetentionHeap() indexedHeap[*message] {
	return indexedHeap[*message]{
		less: func(a, b *message) bool {
			if a.enqueuedAt.Equal(b.enqueuedAt) {
				return a.seq < b.seq
			}
			return a.enqueuedAt.Before(b.enqueuedAt)
		},
		index: func(m *message) *int { return &m.retainIdx },
	}
}

// newReadyHeap orders the visible messages of a standard queue by arrival,
// so a message whose visibility timeout ended goes back to about where it
// was.
func newReadyHeap() indexedHeap[*message] {
	return indexedHeap[*message]{
		less:  func(a, b *message) bool { return a.seq < b.seq },
		index: func(m *message) *int { return &m.readyIdx },
	}
}

// newGroupHeap orders the deliverable message groups of a FIFO queue by the
// arrival of their first message, so the oldest waiting message goes first.
func newGroupHeap() indexedHeap[*group] {
	return indexedHeap[*group]{
		less:  func(a, b *group) bool { return a.key < b.key },
		index: func(g *group) *int { return &g.idx },
	}
}
