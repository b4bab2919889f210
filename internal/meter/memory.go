package meter

import (
	"sync"
	"time"
)

// maxRemembered is the most meters a stateful Source remembers.
const maxRemembered = 10000

// memory remembers one value a meter, for the Sources that join separate
// publishes of a meter: a Shelly's power and its counter, the successive
// counters of a counter-only input. It is safe for concurrent use and holds
// at most max meters. A new meter that finds it full makes it forget the
// meters not updated for maxAge; if none is that old, the new meter is not
// remembered, and each of its publishes is decoded as if it were its first.
// Refusing new meters rather than evicting known ones keeps the first max
// meters working when there are more, instead of none.
type memory[T any] struct {
	max    int
	maxAge time.Duration

	mu        sync.Mutex
	entries   map[string]memoryEntry[T]
	nextSweep time.Time // before then, no entry is older than maxAge
}

type memoryEntry[T any] struct {
	v       T
	updated time.Time
}

func newMemory[T any](max int, maxAge time.Duration) *memory[T] {
	return &memory[T]{max: max, maxAge: maxAge, entries: make(map[string]memoryEntry[T])}
}

// update remembers for meter, as of now, what f returns given the value
// remembered so far (ok is false when there is none). f runs under the
// memory's lock: it must not call the memory.
func (m *memory[T]) update(meter string, now time.Time, f func(old T, ok bool) T) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[meter]
	v := f(e.v, ok)
	if !ok && len(m.entries) >= m.max && !m.sweep(now) {
		return // full of live meters: meter is not remembered
	}
	m.entries[meter] = memoryEntry[T]{v: v, updated: now}
}

// sweep forgets the meters not updated for maxAge at now, and reports
// whether that left room for one more. It scans the entries at most once
// each time the oldest of them can have aged past maxAge.
func (m *memory[T]) sweep(now time.Time) bool {
	if now.Before(m.nextSweep) {
		return false
	}
	oldest := now
	for meter, e := range m.entries {
		if now.Sub(e.updated) > m.maxAge {
			delete(m.entries, meter)
		} else if e.updated.Before(oldest) {
			oldest = e.updated
		}
	}
	m.nextSweep = oldest.Add(m.maxAge)
	return len(m.entries) < m.max
}
