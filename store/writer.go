package store

import (
	"cmp"
	"fmt"
	"iter"
	"log/slog"
	"slices"

	"github.com/vatio-energy/vatio/internal/meter"
)

// entry is one item of the writer's queue: a reading to store, an import
// (many readings, all or none), a job of the compressor or of retention, or
// (with barrier set) only a callback that runs in order after what came
// before.
type entry struct {
	r        meter.Reading
	imp      *importJob
	compress *compressJob
	retire   *retireJob
	prune    *pruneJob
	edit     *editJob
	erase    *eraseJob
	done     func(error)
	barrier  bool
	// checkpoint asks for the head to be checkpointed (see Checkpoint).
	checkpoint bool
	// reload asks a PostgreSQL store's writer to reload its copy of the
	// meters (see pgEngine.refresh).
	reload bool
	// volatile marks a reading whose callback need not wait for the log's
	// fdatasync (see AppendVolatile).
	volatile bool
	// rejected is set by the writer when it refused r (an implausible
	// counter) or edit; done receives it.
	rejected error
}

// alone reports whether e is committed in a transaction of its own.
func (e *entry) alone() bool {
	return e.imp != nil || e.compress != nil || e.retire != nil || e.prune != nil || e.edit != nil || e.erase != nil ||
		e.checkpoint || e.reload
}

// readings yields the readings of batch: live ones, and imports'.
func readings(batch []entry) iter.Seq[meter.Reading] {
	return func(yield func(meter.Reading) bool) {
		for i := range batch {
			switch e := &batch[i]; {
			case e.imp != nil:
				for _, r := range e.imp.readings {
					if !yield(r) {
						return
					}
				}
			case e.barrier, e.checkpoint, e.reload, e.edit != nil, e.erase != nil, e.compress != nil, e.retire != nil, e.prune != nil:
			default:
				if !yield(e.r) {
					return
				}
			}
		}
	}
}

// importJob is a history import: its readings are stored in the same
// transaction, so all of them or none.
type importJob struct {
	readings []meter.Reading
	progress func(stored int)
	added    int // set by the writer: readings that were new
}

// Append queues r to be stored. done, if not nil, runs on the store's
// acknowledgement goroutine once r is durable (err nil: on a bbolt store,
// in the log once its group is synced, see bolt_head.go; on PostgreSQL,
// committed) or could not be stored; callbacks run in the order readings
// were appended, and must not block for long. Append blocks while the queue
// is full. r must already be valid (see meter.Decoder).
func (s *Store) Append(r meter.Reading, done func(error)) error {
	return s.enqueue(entry{r: r, done: done})
}

// AppendVolatile is Append for a reading nobody was promised durability
// of (an MQTT QoS 0 publish): on a bbolt store, done runs once r is written
// to the log, safe from the process's crash, before the log's fdatasync,
// which comes within store.flush_interval. A crash of the machine may lose
// what that interval received.
func (s *Store) AppendVolatile(r meter.Reading, done func(error)) error {
	return s.enqueue(entry{r: r, done: done, volatile: true})
}

// Import stores readings (already valid, see meter.Decoder) in one
// transaction: all of them or, on error, none. It goes through the same
// path as live readings, rollups included, and returns how many were new
// (the others replaced readings at the same instants). progress, if not nil,
// is called on the store's writer every 100,000 readings: keep it quick.
// Live readings wait while an import is written.
//
// Import sorts readings by time (keeping the file's order for equal times,
// so the last of them wins): bbolt inserts each key into an in-memory page
// until the commit, and keys arriving in order keep that cheap.
func (s *Store) Import(readings []meter.Reading, progress func(stored int)) (int, error) {
	slices.SortStableFunc(readings, func(a, b meter.Reading) int { return a.Time.Compare(b.Time) })
	job := &importJob{readings: readings, progress: progress}
	ch := make(chan error, 1)
	if err := s.enqueue(entry{imp: job, done: func(err error) { ch <- err }}); err != nil {
		return 0, err
	}
	if err := <-ch; err != nil {
		return 0, fmt.Errorf("store: import: %w", err)
	}
	return job.added, nil
}

// Sync queues done to run after everything appended before it has been
// committed (err nil) or has failed.
func (s *Store) Sync(done func(error)) error {
	return s.enqueue(entry{done: done, barrier: true})
}

// Flush waits until everything appended before it is committed.
func (s *Store) Flush() error {
	ch := make(chan error, 1)
	if err := s.Sync(func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}

// Checkpoint returns once everything appended before it is in the database
// proper: on a bbolt store it writes the head into the file now (for a
// backup, a check of the rollups, a test); on PostgreSQL, whose commits go
// there, it is Flush.
func (s *Store) Checkpoint() error { return s.eng.checkpoint() }

func (s *Store) enqueue(e entry) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.queue <- e
	return nil
}

// writeLoop is the single writer: it takes what is queued in batches (see
// drain), up to maxBatch, and has the engine make each durable; the engine
// hands each batch to ackLoop, so that the next can start while callbacks
// run. Both engines group their commits by the same batches.
func (s *Store) writeLoop() {
	defer s.wg.Done()
	defer close(s.acks)
	// held is an entry that must start a batch of its own (an import or a
	// job: see alone), taken from the queue while draining a batch of
	// readings: its failure must not fail the readings before it.
	var held *entry
	for {
		var e entry
		if held != nil {
			e, held = *held, nil
		} else {
			var ok bool
			if e, ok = s.eng.next(); !ok {
				return
			}
		}
		var batch []entry
		batch, held = s.drain(e)
		s.eng.write(batch)
	}
}

// drain returns a batch starting with e: what else is queued, up to
// maxBatch, unless e must be alone; and an entry that must be alone taken
// from the queue meanwhile (held), to start the next batch: its failure
// must not fail the readings before it.
func (s *Store) drain(e entry) (batch []entry, held *entry) {
	batch = make([]entry, 1, min(s.maxBatch, 1+len(s.queue)))
	batch[0] = e
	for len(batch) < s.maxBatch && !e.alone() {
		select {
		case next, ok := <-s.queue:
			if !ok {
				return batch, nil
			}
			if next.alone() {
				return batch, &next
			}
			batch = append(batch, next)
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// committed is a batch whose transaction has ended, with its error.
type committed struct {
	batch []entry
	err   error
}

// finished hands batch, whose transaction ended with err, to ackLoop; a
// failure is counted and logged first.
func (s *Store) finished(batch []entry, err error) {
	if err != nil {
		s.commitErrors.Inc()
		s.log.Error("commit failed; its readings are not acknowledged", slog.Int("readings", len(batch)), slog.Any("error", err))
	}
	for i := range batch {
		if batch[i].done != nil {
			s.acks <- committed{batch, err}
			return
		}
	}
}

// ackLoop runs the callbacks of ended batches, in order.
func (s *Store) ackLoop() {
	defer s.wg.Done()
	for c := range s.acks {
		for _, e := range c.batch {
			if e.done != nil {
				e.done(cmp.Or(c.err, e.rejected))
			}
		}
	}
}

// run queues a writer job and waits for its transaction.
func (s *Store) run(e entry) error {
	ch := make(chan error, 1)
	e.done = func(err error) { ch <- err }
	if err := s.enqueue(e); err != nil {
		return err
	}
	return <-ch
}
