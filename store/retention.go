package store

import (
	"context"
	"log/slog"
	"time"
)

// Retention is how long each tier of data is kept; a zero field keeps that
// tier forever.
type Retention struct {
	// Raw is the age past which raw readings are archived and deleted, a
	// calendar month (UTC) at a time: a month goes once its end is Raw old,
	// so readings stay between Raw and Raw plus a month.
	Raw time.Duration
	// Minute, Hourly and Daily are the ages past which the rollups of each
	// tier are deleted. Rollups are history: only those older than the
	// meter's archived raw data go (a meter never archived keeps them all),
	// a whole UTC day at a time.
	Minute, Hourly, Daily time.Duration
}

// of returns the retention of tier t.
func (r Retention) of(t Tier) time.Duration {
	return [...]time.Duration{r.Raw, r.Minute, r.Hourly, r.Daily}[t]
}

// Stats says what one ApplyRetention run did.
type Stats struct {
	// Files counts the archive files written (new or rewritten), and
	// Archived the readings of the database written into them.
	Files, Archived int
	// Deleted counts the raw readings deleted once archived.
	Deleted int
	// Deferred counts the parts of months left in the database because
	// readings of theirs changed while they were archived: the next run
	// archives them again, with the change.
	Deferred int
	// RollupsDeleted counts the rollup buckets deleted past their tier's
	// retention.
	RollupsDeleted int
	// ArchivesRemoved counts the archive files deleted past ArchiveKeep.
	ArchivesRemoved int
}

// maxRetire bounds the readings one retention transaction deletes (past
// it, the transaction ends with the hour), and maxPrune the rollup buckets,
// so that live readings never wait long behind them.
const (
	maxRetire = 200000
	maxPrune  = 200000
)

// ApplyRetention applies the store's retention (Options.Retention and
// ArchiveKeep) as of now. For every meter and every calendar month (UTC)
// that ended at least Retention.Raw before now and still has raw readings,
// it writes the month's readings to the month's archive file (see
// ArchiveName), merged with what that file already holds, then deletes them
// from the database in transactions of whole hours and about 200,000
// readings, each deleting only readings that are still exactly as archived. Rollups past
// their tier's retention are deleted, and archive files past ArchiveKeep.
//
// A crash at any point loses nothing and duplicates nothing: readings leave
// the database only once the file holding them is durable, and a month
// archived again merges the file with the database by time. The background
// loop runs it every hour; runs are serialised.
func (s *Store) ApplyRetention(ctx context.Context, now time.Time) (Stats, error) {
	s.retentionMu.Lock()
	defer s.retentionMu.Unlock()
	return s.eng.applyRetention(ctx, now)
}

// retentionLoop applies retention first after first, then every interval,
// until ctx ends.
func (s *Store) retentionLoop(ctx context.Context, first, every time.Duration) {
	repeat(ctx, time.Now().Add(first), every, func(start time.Time) bool {
		st, err := s.ApplyRetention(ctx, start)
		switch {
		case ctx.Err() != nil:
			return false
		case err != nil:
			s.log.Error("retention failed; it is tried again at the next run", slog.Any("error", err))
		}
		if st != (Stats{}) {
			s.log.Info("retention applied", slog.Int("files", st.Files), slog.Int("archived", st.Archived),
				slog.Int("deleted", st.Deleted), slog.Int("deferred", st.Deferred),
				slog.Int("rollups_deleted", st.RollupsDeleted), slog.Int("archives_removed", st.ArchivesRemoved),
				slog.Duration("took", time.Since(start)))
		}
		return true
	})
}
