package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout of the database this Vatio writes. A database
// with an older version is migrated on Open; a newer one is refused.
const SchemaVersion = 2

// FileName is the database file's name inside the data directory.
const FileName = "vatio.db"

// ErrNewerSchema is returned by Open for a database written by a newer Vatio.
var ErrNewerSchema = errors.New("store: database written by a newer Vatio")

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("store: database is in use by another process")

// Bucket names. The layout:
//
//	meta    "schema" -> uint32 version; "seq" -> uint64 last reading id
//	series  <meter> -> bucket: 8-byte big-endian Unix ns -> value (see encodeValue)
//	blocks  <meter> -> bucket: 8-byte big-endian Unix ns of an hour -> that
//	        hour's readings as a compressed block (see bolt_block.go); an hour's
//	        readings are in series or in blocks, never in both
//	meters  <meter> -> encoded meterState (see bolt_encoding.go), with the meter's
//	        archive boundary once retention has deleted readings
//	meter_info <meter> -> JSON MeterInfo: the registry (schema 2)
//	alerts  8-byte big-endian id -> JSON Alert
//	rollup_1m, rollup_1h, rollup_1d
//	        <meter> -> bucket: 8-byte big-endian Unix ns of the bucket start -> agg
var (
	bucketMeta   = []byte("meta")
	bucketSeries = []byte("series")
	bucketMeters = []byte("meters")
	bucketAlerts = []byte("alerts")
	bucketBlocks = []byte("blocks")
	keySchema    = []byte("schema")
	keySeq       = []byte("seq")
)

// boltEngine keeps a Store in one bbolt file in the data directory. Live
// readings go to a write-ahead log and an in-memory head first, and into
// the file at checkpoints (see bolt_head.go); old readings are moved into
// compressed blocks (bolt_block.go); raw readings past their retention go
// to archive files beside it (bolt_archive.go).
type boltEngine struct {
	// crashAt is Options.crashAt: tests' instants of the writer (see crash).
	crashAt func(at string)
	s       *Store
	db      *bolt.DB
	// seq is the last reading id; only the writer goroutine touches it.
	seq uint64

	// The log and the head (see bolt_head.go). epoch and nextLSN are the
	// writer's.
	head *head
	lw   *logWriter
	// headMu guards head (the pointer and its readings) and frozen, the
	// head of a checkpoint whose commit is landing, with frozenTx, that
	// commit's transaction id (see view).
	headMu   sync.RWMutex
	frozen   *head
	frozenTx int
	// refusing, when set, is why readings are being refused: neither the
	// log nor the database can take them, or the head is full and cannot
	// be checkpointed (see health).
	refusing atomic.Pointer[error]
	// undoMeters is the writer's map of headUndo, reused batch after batch.
	undoMeters map[string]undoMeter
	// ledger is the writer's ledger of messages stored (see ledger), and
	// undoLedger headUndo's slice of it, reused.
	ledger     *ledger
	undoLedger []ledgerUndo
	// replayed counts the readings the start-up's replay put in the head.
	replayed int
	// cp is the checkpoint running beside the writer, if any (see
	// bolt_checkpoint.go); the writer's.
	cp                 *cpRun
	epoch, nextLSN     uint64
	segSize            int64
	headMax            int
	flushInterval      time.Duration
	syncDelay          time.Duration
	checkpointInterval time.Duration
	// retireLimit is maxRetire; tests lower it.
	retireLimit int

	syncSeconds       prometheus.Histogram
	checkpointSeconds prometheus.Histogram
	headReadings      prometheus.Gauge
	logBytes          prometheus.Gauge
	headBytes         prometheus.Gauge
}

// Open opens (creating if needed) the database in dir, migrates an older
// schema, and starts the writer.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults(dir)
	if Is32Bit {
		opts.Logger.Warn("32-bit system: the database is capped; use a 64-bit OS for more",
			slog.Int("max_bytes", opts.MaxSizeBytes))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second,
		// The freelist is rebuilt from the pages on open instead of being
		// written on every commit: commits of appends stay small.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		MaxSize:        opts.MaxSizeBytes,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (is another vatio running on this data dir?)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := newStore(path, opts)
	eng := newBoltEngine(s, db, opts)
	s.eng = eng
	if err := eng.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	if err := eng.load(); err != nil {
		db.Close()
		return nil, err
	}
	if err := eng.openLog(dir); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.startBackups(dir, opts); err != nil {
		db.Close()
		return nil, err
	}
	var loops []func(context.Context)
	if opts.CompressAfter > 0 {
		loops = append(loops, func(ctx context.Context) { s.compressLoop(ctx, opts.CompressEvery, opts.CompressAfter) })
	}
	s.start(loops...)
	return s, nil
}

// newBoltEngine returns the engine of store s in db.
func newBoltEngine(s *Store, db *bolt.DB, opts Options) *boltEngine {
	return &boltEngine{
		s:                  s,
		db:                 db,
		head:               newHead(),
		undoMeters:         map[string]undoMeter{},
		ledger:             newLedger(),
		segSize:            cmp.Or(opts.segmentBytes, walSegmentSize),
		headMax:            opts.HeadMaxBytes,
		syncDelay:          opts.SyncDelay,
		flushInterval:      opts.FlushInterval,
		checkpointInterval: opts.CheckpointInterval,
		retireLimit:        maxRetire,
		crashAt:            opts.crashAt,
		syncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vatio_store_log_sync_seconds",
			Help:    "Time to fdatasync one group of the write-ahead log.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		checkpointSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vatio_store_checkpoint_seconds",
			Help:    "Time to write the head into the database in one checkpoint.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		headReadings: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vatio_store_head_readings",
			Help: "Readings in the head: in the log and in memory, not yet checkpointed into the database.",
		}),
		headBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vatio_store_head_bytes",
			Help: "Estimated memory of the head, bounded by store.head_max_mb.",
		}),
		logBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vatio_store_log_bytes",
			Help: "Bytes of the write-ahead log not yet covered by a checkpoint: its full segments and what the current one holds.",
		}),
	}
}

// migrations[v] upgrades a database from schema version v to v+1. A new
// database is version 0.
var migrations = []func(tx *bolt.Tx) error{
	// 0 -> 1: the first layout.
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketSeries, bucketBlocks, bucketMeters, bucketAlerts,
			TierMinute.bucket(), TierHour.bucket(), TierDay.bucket()} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	},
	// 1 -> 2: the meter registry.
	migrateRegistry,
}

// migrate checks the schema version before writing anything, so that a
// database from a newer Vatio is left untouched.
func (eng *boltEngine) migrate() error {
	s := eng.s
	var version uint32
	err := eng.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			if v := b.Get(keySchema); len(v) == 4 {
				version = binary.BigEndian.Uint32(v)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if version > SchemaVersion {
		return fmt.Errorf("%w: %s has schema version %d, this Vatio reads up to %d; upgrade Vatio or restore a backup (the file was not changed)",
			ErrNewerSchema, s.path, version, SchemaVersion)
	}
	if version == SchemaVersion {
		return nil
	}
	err = eng.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		for v := version; v < SchemaVersion; v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("to version %d: %w", v+1, err)
			}
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion))
	})
	if err != nil {
		return fmt.Errorf("store: migrate %s from schema %d: %w", s.path, version, err)
	}
	if version > 0 {
		s.log.Info("database migrated", slog.Int("from", int(version)), slog.Int("to", SchemaVersion))
	}
	return nil
}

// load reads the writer's state: the last reading id and every meter's state.
func (eng *boltEngine) load() error {
	s := eng.s
	err := eng.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySeq); len(v) == 8 {
			eng.seq = binary.BigEndian.Uint64(v)
		}
		err := tx.Bucket(bucketMeters).ForEach(func(k, v []byte) error {
			st, err := decodeMeterState(v)
			if err != nil {
				return fmt.Errorf("meter %q: %w", k, err)
			}
			s.meters[string(k)] = st
			return nil
		})
		if err != nil {
			return err
		}
		return loadInfo(tx, s.info)
	})
	if err != nil {
		return fmt.Errorf("store: load %s: %w", s.path, err)
	}
	return nil
}

// close removes the log when the last checkpoint holds everything (the
// data directory then holds the database alone), and closes the file.
func (eng *boltEngine) close() error {
	var kept error
	if eng.lw != nil && eng.head.empty() {
		if err := os.RemoveAll(eng.lw.wal.dir); err != nil {
			eng.s.log.Warn("log not removed", slog.Any("error", err))
		}
	} else if eng.lw != nil {
		kept = fmt.Errorf("store: the last checkpoint failed (%v): %d readings stay in the log, %s, which the next start replays",
			eng.lw.cpErr, eng.head.n, eng.lw.wal.dir)
	}
	if err := eng.db.Close(); err != nil {
		return errors.Join(kept, fmt.Errorf("store: close: %w", err))
	}
	return kept
}

// size is the file's size as a read transaction sees it.
func (eng *boltEngine) size() int64 {
	var size int64
	_ = eng.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	return size
}

// collect adds the metrics of the log and the head.
func (eng *boltEngine) collect(ch chan<- prometheus.Metric) {
	eng.syncSeconds.Collect(ch)
	eng.checkpointSeconds.Collect(ch)
	eng.headReadings.Collect(ch)
	eng.logBytes.Collect(ch)
	eng.headBytes.Collect(ch)
}

// shared is false: bbolt's lock keeps the file to one process.
func (eng *boltEngine) shared() bool { return false }

// refresh does nothing: only this store's writer changes the file, and it
// keeps the meters' cache as it commits.
func (eng *boltEngine) refresh() {}
