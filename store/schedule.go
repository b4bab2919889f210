package store

import (
	"context"
	"time"
)

// repeat calls fn at first and then every interval after the previous
// planned time (a run that overran skips the times it missed), until ctx
// ends or fn returns false. The store's background work (compression,
// retention, scheduled backups) runs on it.
func repeat(ctx context.Context, first time.Time, every time.Duration, fn func(now time.Time) bool) {
	next := first
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if !fn(time.Now()) || ctx.Err() != nil {
			return
		}
		next = next.Add(every)
		if now := time.Now(); !next.After(now) {
			next = now.Add(every)
		}
		timer.Reset(time.Until(next))
	}
}
