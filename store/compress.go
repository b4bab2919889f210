package store

import (
	"context"
	"log/slog"
	"time"
)

// Compress moves every raw reading older than the hour holding before into
// compressed blocks, one per meter and hour, in transactions of at most
// 200,000 readings that the writer runs between live commits. It returns how
// many readings it moved. Queries see no difference; blocks take a few bytes
// a reading instead of the raw key's 40 or so. A PostgreSQL store moves
// nothing and returns 0: PostgreSQL compresses its own pages (TOAST,
// TimescaleDB).
func (s *Store) Compress(ctx context.Context, before time.Time) (int, error) {
	return s.eng.compress(ctx, before)
}

// compressLoop compresses readings older than after, every interval, until
// ctx ends. A bbolt store runs it (see Open).
func (s *Store) compressLoop(ctx context.Context, every, after time.Duration) {
	repeat(ctx, time.Now().Add(every), every, func(start time.Time) bool {
		n, err := s.Compress(ctx, start.Add(-after))
		switch {
		case ctx.Err() != nil:
			return false
		case err != nil:
			s.log.Error("compression failed", slog.Any("error", err))
		case n > 0:
			s.log.Info("readings compressed", slog.Int("readings", n), slog.Duration("took", time.Since(start)))
		}
		return true
	})
}
