// Package store keeps readings and alerts durably, in one bbolt file (see
// Open) or in PostgreSQL (see OpenPostgres), and moves raw readings past
// their retention into monthly archives (gzip CSV).
//
// Readings reach the disk through a single writer goroutine, in groups: on
// bbolt, one write-ahead log fdatasync per group, the readings kept in
// memory and checkpointed into the file later (bolt_head.go); on
// PostgreSQL, one transaction per group. A reading's done callback runs
// only once it is durable, which is what lets the broker acknowledge a
// publish once it is on disk. The store knows nothing of MQTT or HTTP.
//
// The writer, its batches and acknowledgements, the meters' cache and the
// rules that turn readings into rollups are the Store's, whatever the
// database; what differs between bbolt and PostgreSQL is the engine
// (engine.go), in bolt*.go and pg*.go.
package store

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vatio-energy/vatio/internal/crypt"
)

// ErrClosed is returned when the store is used after Close.
var ErrClosed = errors.New("store: closed")

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

	// crashAt, set by tests alone, is called at the named instants of the
	// bbolt writer (see crashAt in bolt_log.go): a test holds or kills
	// its own store there, and no other.
	crashAt func(at string)
	// segmentBytes, set by tests alone, is the size of the log's segments
	// (default walSegmentSize): small, a few thousand readings fill
	// several.
	segmentBytes int64
}

// Store is the database. All methods are safe for concurrent use.
type Store struct {
	// eng is the database: bbolt (Open) or PostgreSQL (OpenPostgres).
	eng  engine
	path string
	log  *slog.Logger

	maxBatch int
	maxGap   time.Duration
	queue    chan entry
	acks     chan committed
	wg       sync.WaitGroup
	// stopBackups ends the scheduled backups (see startBackups).
	stopBackups func()
	// stopBackground ends the background loops (see start); background
	// waits for them.
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

	// closeMu orders Append against Close: Append holds it shared while it
	// queues, Close exclusively while it closes the queue.
	closeMu   sync.RWMutex
	closed    bool
	closeOnce sync.Once
	closeErr  error

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

	commitSeconds prometheus.Histogram
	batchSize     prometheus.Histogram
	stored        prometheus.Counter
	resent        prometheus.Counter
	commitErrors  prometheus.Counter
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

// newStore returns a store of either engine, without its engine, not yet
// started.
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
		stopBackups: func() {},
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vatio_store_commit_seconds",
			Help:    "Time to write and sync one transaction: on bbolt an import, a job, a late reading (older than its meter's newest) or a checkpoint a backup or edit runs first; on PostgreSQL a group of readings.",
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
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vatio_readings_resent_total",
			Help: "Readings stamped on receipt of messages sent again (flagged DUP) after they were stored: recognised, acknowledged, not stored twice.",
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vatio_store_commit_errors_total",
			Help: "Transactions that failed to commit; their readings were not acknowledged.",
		}),
	}
}

// start starts the writer and the background loops, each until Close:
// loops, then the retention loop unless several instances share the
// database (see RunRetention).
func (s *Store) start(loops ...func(ctx context.Context)) {
	s.wg.Add(2)
	go s.writeLoop()
	go s.ackLoop()
	ctx, cancel := context.WithCancel(context.Background())
	s.stopBackground = cancel
	if s.retains() && !s.eng.shared() {
		loops = append(loops, func(ctx context.Context) { s.retentionLoop(ctx, time.Minute, time.Hour) })
	}
	for _, loop := range loops {
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			loop(ctx)
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
	if !s.eng.shared() || !s.retains() {
		return
	}
	s.retentionLoop(ctx, time.Minute, time.Hour)
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
		s.closeErr = s.eng.close()
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

// MaxGap returns the longest interval between two readings across which
// energy is integrated (Options.MaxGap): an import of interval energy
// stores readings no further apart than it.
func (s *Store) MaxGap() time.Duration { return s.maxGap }

// Health returns why readings are being refused (the disk is full, the
// database cannot take a checkpoint), nil when they are taken.
func (s *Store) Health() error { return s.eng.health() }

// Size returns the database file's size in bytes.
func (s *Store) Size() int64 { return s.eng.size() }

// Describe implements prometheus.Collector.
func (s *Store) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(s, ch)
}

var dbSizeDesc = prometheus.NewDesc("vatio_db_size_bytes", "Size of the database in use: on bbolt its pages up to the last one written (the file is grown ahead of it).", nil, nil)

// Collect implements prometheus.Collector.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	s.commitSeconds.Collect(ch)
	s.batchSize.Collect(ch)
	s.stored.Collect(ch)
	s.resent.Collect(ch)
	s.commitErrors.Collect(ch)
	s.eng.collect(ch)
	ch <- prometheus.MustNewConstMetric(dbSizeDesc, prometheus.GaugeValue, float64(s.Size()))
}
