package store

import (
	"sync"
	"sync/atomic"
)

// watchers are the receivers of committed readings (see Watch).
type watchers struct {
	count atomic.Int32
	mu    sync.Mutex
	next  int
	chans map[int]chan []Record
}

// send hands recs to every watcher that has room; a watcher that is behind
// misses them (it reads what it missed from the store).
func (w *watchers) send(recs []Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.chans {
		select {
		case ch <- recs:
		default:
		}
	}
}

// Watch returns a channel that receives, after each commit, the live
// readings it stored as their meters' newest (not imports, nor readings
// arriving late for an older time), oldest first; and a function that stops
// the watch and closes the channel. The channel holds up to buffer commits:
// a watcher that falls further behind misses commits, and can read what it
// missed with Latest or Range. The slices received must not be changed.
func (s *Store) Watch(buffer int) (<-chan []Record, func()) {
	ch := make(chan []Record, max(buffer, 1))
	w := &s.watchers
	w.mu.Lock()
	if w.chans == nil {
		w.chans = map[int]chan []Record{}
	}
	id := w.next
	w.next++
	w.chans[id] = ch
	w.count.Add(1)
	w.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.chans, id)
			w.count.Add(-1)
			close(ch)
			w.mu.Unlock()
		})
	}
}
