// Package store keeps readings and alerts durably in one bbolt file, and
// moves raw readings past their retention into monthly archive files
// (gzip CSV) beside it.
//
// Readings reach the disk through a single writer goroutine that commits
// them in groups: many readings per transaction, one fsync per group. A
// reading's done callback runs only after its transaction has committed, which
// is what lets the broker acknowledge a publish once it is on disk. The store
// knows nothing of MQTT or HTTP.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/vatio-energy/vatio/crypt"
)

// SchemaVersion is the layout of the database this Vatio writes. A database
// with an older version is migrated on Open; a newer one is refused.
const SchemaVersion = 2

// FileName is the database file's name inside the data directory.
const FileName = "vatio.db"

// ErrClosed is returned when the store is used after Close.
var ErrClosed = errors.New("store: closed")

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
//	meters  <meter> -> encoded meterState (see writer.go), with the meter's
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

// Options tune a Store. The zero value of a field takes its default.
type Options struct {
	// QueueSize is how many readings may wait for the writer; Append blocks
	// while it is full. Default 16384.
	QueueSize int
	// MaxBatch is the most readings in one transaction. Larger batches
	// amortise the fsync further but hold their callers longer. Default 10000.
	MaxBatch int
	// CompressAfter is the age past which raw readings are moved into
	// compressed blocks, a closed hour at a time (see Compress). Zero leaves
	// compression to explicit Compress calls (the configuration's default
	// is 1 hour).
	CompressAfter time.Duration
	// CompressEvery is how often the compressor looks for such readings.
	// Default 10 minutes.
	CompressEvery time.Duration
	// MaxGap is the longest interval between two readings across which
	// power is integrated into energy; a longer silence counts as no data.
	// Default 10 minutes.
	MaxGap time.Duration
	// Logger receives the store's logs. Default: discard.
	Logger *slog.Logger
	// BackupInterval is the time between scheduled backups (see BackupTo);
	// 0 turns them off. Each holds a read transaction while it copies the
	// database. Default 0.
	BackupInterval time.Duration
	// BackupDir receives the scheduled backups. Default <dir>/backups.
	BackupDir string
	// StagingDir holds a large import while it is validated, before any of
	// it is stored (see ImportFrom). Default <dir>.
	StagingDir string
	// BackupKeep is how many scheduled backups are kept; older ones are
	// deleted. Default 7.
	BackupKeep int
	// MaxSizeBytes caps the database file: past it, commits fail and their
	// readings are not acknowledged until retention frees room. Zero means
	// MaxSize32 on 32-bit systems, where bbolt cannot map a larger file
	// reliably, and no cap elsewhere.
	MaxSizeBytes int
	// Retention is how long each tier of data is kept (see ApplyRetention);
	// a zero field keeps that tier forever. When any field, or ArchiveKeep,
	// is set, the store applies it once a minute after Open and then every
	// hour. Default: everything kept forever.
	Retention Retention
	// ArchiveDir receives the archive files of raw readings past
	// Retention.Raw, <ArchiveDir>/<meter>/<meter>-YYYY-MM.csv.gz. Default
	// <dir>/archive.
	ArchiveDir string
	// ArchiveKeep is how long archive files are kept, counted from the end
	// of their month; 0 keeps them forever. Default 0.
	ArchiveKeep time.Duration
	// MaxPowerW is the most power, in watts, a meter without an expected
	// maximum of its own can draw: an energy counter rising faster is
	// rejected (see checkCounter). Default 10 MW.
	MaxPowerW float64
	// FlushInterval is the longest a reading waits in the log before its
	// fdatasync when nothing asks for one sooner (QoS 0 readings, see
	// AppendVolatile): what a crash of the machine may lose. Default 5 s.
	FlushInterval time.Duration
	// SyncDelay is how long the first reading of a group that waits for
	// the log's fdatasync (QoS 1) waits for others to share it: one page
	// written per group rather than per reading. Negative syncs every
	// group at once. Default (0) 15 ms.
	SyncDelay time.Duration
	// CheckpointInterval is the time between checkpoints of the head into
	// bbolt (see bolt_head.go); HeadMaxBytes makes a busy site checkpoint
	// sooner. Default 30 minutes.
	CheckpointInterval time.Duration
	// HeadMaxBytes bounds the head's memory: reaching it checkpoints at
	// once. Default 16 MiB.
	HeadMaxBytes int
	// Encryption, when set, encrypts the backups (scheduled, and those of
	// Snapshot) and the archive files this store writes (see package
	// crypt); archives are read whether encrypted or not.
	Encryption *crypt.Key
}

// Store is the database. All methods are safe for concurrent use.
type Store struct {
	db *bolt.DB
	// pg is the PostgreSQL engine, when the store is one (see OpenPostgres);
	// db is nil then.
	pg   *pgEngine
	path string
	log  *slog.Logger

	maxBatch int
	maxGap   time.Duration
	queue    chan entry
	acks     chan committed
	wg       sync.WaitGroup
	// stopBackups ends the scheduled backups (see startBackups).
	stopBackups func()
	// stopBackground ends the compressor and the retention loop;
	// background waits for them.
	stopBackground context.CancelFunc
	background     sync.WaitGroup

	// retention, archiveDir and archiveKeep are Options' (see ApplyRetention);
	// retentionMu makes one retention run at a time.
	retention  Retention
	archiveDir string
	// backupDir holds the scheduled backups; stagingDir imports being
	// validated.
	backupDir   string
	stagingDir  string
	archiveKeep time.Duration
	// key encrypts backups and archives; nil leaves them plain.
	key         *crypt.Key
	retentionMu sync.Mutex
	// retireLimit is maxRetire; tests lower it.
	retireLimit int

	// closeMu orders Append against Close: Append holds it shared while it
	// queues, Close exclusively while it closes the queue.
	closeMu   sync.RWMutex
	closed    bool
	closeOnce sync.Once
	closeErr  error

	// seq is the last reading id; only the writer goroutine touches it.
	seq uint64
	// meters holds each meter's committed state. Only the writer goroutine
	// changes it, holding metersMu; others read it holding metersMu shared.
	metersMu sync.RWMutex
	meters   map[string]meterState
	// info is the meter registry; like meters, only the writer changes it.
	info map[string]MeterInfo
	// gaps holds each meter's latest intervals; only the writer uses it.
	gaps map[string]*gapRing
	// avail is what devices announced of themselves.
	avail availability
	// maxPower is Options.MaxPowerW.
	maxPower float64
	// watchers receive committed readings (see Watch).
	watchers watchers

	// The bbolt engine's log and head (see bolt_head.go). epoch and nextLSN
	// are the writer's; lw is nil on PostgreSQL.
	head *head
	lw   *logWriter
	// headMu guards head (the pointer and its readings) and frozen, the
	// head of a checkpoint whose commit is landing, with frozenTx, that
	// commit's transaction id (see view).
	headMu             sync.RWMutex
	frozen             *head
	frozenTx           int
	epoch, nextLSN     uint64
	segSize            int64
	headMax            int
	flushInterval      time.Duration
	syncDelay          time.Duration
	checkpointInterval time.Duration

	commitSeconds prometheus.Histogram
	batchSize     prometheus.Histogram
	stored        prometheus.Counter
	commitErrors  prometheus.Counter

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
	s.db = db
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.openLog(dir); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.startBackups(dir, opts); err != nil {
		db.Close()
		return nil, err
	}
	s.start(opts)
	return s, nil
}

// withDefaults returns opts with its zero fields set to their defaults, the
// directories under dir.
func (opts Options) withDefaults(dir string) Options {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 16384
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 10000
	}
	if opts.MaxGap <= 0 {
		opts.MaxGap = 10 * time.Minute
	}
	if opts.CompressEvery <= 0 {
		opts.CompressEvery = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxPowerW <= 0 {
		opts.MaxPowerW = 10e6
	}
	if opts.MaxSizeBytes <= 0 {
		opts.MaxSizeBytes = defaultMaxSize()
	}
	if opts.BackupDir == "" {
		opts.BackupDir = filepath.Join(dir, "backups")
	}
	if opts.ArchiveDir == "" {
		opts.ArchiveDir = filepath.Join(dir, "archive")
	}
	if opts.StagingDir == "" {
		opts.StagingDir = dir
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 5 * time.Second
	}
	if opts.SyncDelay < 0 {
		opts.SyncDelay = 0
	} else if opts.SyncDelay == 0 {
		opts.SyncDelay = 15 * time.Millisecond
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 30 * time.Minute
	}
	if opts.HeadMaxBytes <= 0 {
		opts.HeadMaxBytes = 16 << 20
	}
	return opts
}

// newStore returns a store of either engine, not yet started.
func newStore(path string, opts Options) *Store {
	return &Store{
		path:        path,
		log:         opts.Logger,
		maxBatch:    opts.MaxBatch,
		maxGap:      opts.MaxGap,
		queue:       make(chan entry, opts.QueueSize),
		acks:        make(chan committed, 4),
		meters:      map[string]meterState{},
		info:        map[string]MeterInfo{},
		gaps:        map[string]*gapRing{},
		avail:       availability{device: map[string]Availability{}},
		maxPower:    opts.MaxPowerW,
		retention:   opts.Retention,
		archiveDir:  opts.ArchiveDir,
		backupDir:   opts.BackupDir,
		stagingDir:  opts.StagingDir,
		archiveKeep: opts.ArchiveKeep,
		key:         opts.Encryption,
		retireLimit: maxRetire,
		stopBackups: func() {},
		head:        newHead(),
		segSize:     walSegmentSize,
		headMax:     opts.HeadMaxBytes,
		syncDelay:   opts.SyncDelay,

		flushInterval:      opts.FlushInterval,
		checkpointInterval: opts.CheckpointInterval,
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
			Help: "Bytes of the write-ahead log's segments in use.",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vatio_store_commit_seconds",
			Help:    "Time to write and fsync one group of readings.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vatio_store_commit_readings",
			Help:    "Readings per committed transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vatio_readings_stored_total",
			Help: "Readings committed to disk.",
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vatio_store_commit_errors_total",
			Help: "Transactions that failed to commit; their readings were not acknowledged.",
		}),
	}
}

// start starts the writer and the background loops.
func (s *Store) start(opts Options) {
	s.wg.Add(2)
	if s.lw != nil {
		go s.logLoop()
	} else {
		go s.writeLoop()
	}
	go s.ackLoop()
	ctx, cancel := context.WithCancel(context.Background())
	s.stopBackground = cancel
	if opts.CompressAfter > 0 && s.pg == nil {
		s.background.Add(1)
		go s.compressLoop(ctx, opts.CompressEvery, opts.CompressAfter)
	}
	// On PostgreSQL the instances sharing the database choose one to run
	// retention: see RunRetention.
	if s.retains() && s.pg == nil {
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			s.retentionLoop(ctx, time.Minute, time.Hour)
		}()
	}
}

// retains reports whether there is retention to apply.
func (s *Store) retains() bool {
	return s.retention != (Retention{}) || s.archiveKeep > 0
}

// RunRetention applies retention a minute from now and then every hour,
// until ctx ends, on a PostgreSQL store. Several instances share that
// store, so it does not run retention by itself: the leader calls this
// (package leader), and ends ctx before Close. A bbolt store runs
// retention by itself, and this returns at once.
func (s *Store) RunRetention(ctx context.Context) {
	if s.pg == nil || !s.retains() {
		return
	}
	s.retentionLoop(ctx, time.Minute, time.Hour)
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
func (s *Store) migrate() error {
	var version uint32
	err := s.db.View(func(tx *bolt.Tx) error {
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
	err = s.db.Update(func(tx *bolt.Tx) error {
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
func (s *Store) load() error {
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySeq); len(v) == 8 {
			s.seq = binary.BigEndian.Uint64(v)
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

// Close stops the compressor and the retention loop and the scheduled
// backups (abandoning a run or a backup under way; what a retention run
// committed stays, the rest is done at the next run), commits every queued
// reading, runs its callback, and closes the database. Appends after Close
// return ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopBackground()
		s.background.Wait()
		s.closeMu.Lock()
		s.closed = true
		close(s.queue)
		s.closeMu.Unlock()
		s.stopBackups()
		s.wg.Wait()
		if s.pg != nil {
			s.pg.close()
			return
		}
		if s.lw != nil && s.head.empty() {
			// The last checkpoint holds everything: the log goes, and
			// the data directory holds the database alone.
			if err := os.RemoveAll(s.lw.wal.dir); err != nil {
				s.log.Warn("log not removed", slog.Any("error", err))
			}
		}
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return s.closeErr
}

// BackupDir returns the directory of the scheduled backups.
func (s *Store) BackupDir() string { return s.backupDir }

// ArchiveDir returns the directory of the archive files,
// <ArchiveDir>/<meter>/<meter>-YYYY-MM.csv.gz.
func (s *Store) ArchiveDir() string { return s.archiveDir }

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Size returns the database file's size in bytes.
func (s *Store) Size() int64 {
	if s.pg != nil {
		return s.pg.size()
	}
	var size int64
	_ = s.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	return size
}

// Describe implements prometheus.Collector.
func (s *Store) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(s, ch)
}

var dbSizeDesc = prometheus.NewDesc("vatio_db_size_bytes", "Size of the database file.", nil, nil)

// Collect implements prometheus.Collector.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	s.commitSeconds.Collect(ch)
	s.batchSize.Collect(ch)
	s.stored.Collect(ch)
	s.commitErrors.Collect(ch)
	if s.lw != nil {
		s.syncSeconds.Collect(ch)
		s.checkpointSeconds.Collect(ch)
		s.headReadings.Collect(ch)
		s.logBytes.Collect(ch)
		s.headBytes.Collect(ch)
	}
	ch <- prometheus.MustNewConstMetric(dbSizeDesc, prometheus.GaugeValue, float64(s.Size()))
}
