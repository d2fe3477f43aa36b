package store

import (
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/walrus-archive/walrus/store/backend"
)

const (
	minBlockSize = 64 << 10
	maxBlockSize = 4 << 20
	maxStoredLen = maxBlockSize // stored payloads are never larger than raw (raw is kept instead)

	// DefaultBlockSize was chosen by measurement on pgbench WAL (make bench):
	// see README "Block size and compression level".
	DefaultBlockSize = 1 << 20
	DefaultPackSize  = 256 << 20
	DefaultCache     = 256 << 20
	DefaultMaxFile   = 4 << 30
	DefaultRollAge   = 60 * time.Second
	// DefaultAckTimeout bounds a remote-ack push's wait for the bucket
	// (Config.AckTimeout; why this value: remoteack.go).
	DefaultAckTimeout = 30 * time.Second
)

// Config configures a Store. The zero value of every field but Dir means
// "the default".
type Config struct {
	Dir         string // data directory: index/ and packs/ live here
	BlockSize   int    // bytes per block, a multiple of 8 KiB from 64 KiB to 4 MiB
	Level       string // zstd level blocks are written at on upload (the ingest level): fastest (default), default, better, best
	PackSize    int64  // roll packs at this size
	CacheBytes  int64  // bound of the decompressed-block cache
	Concurrency int    // blocks compressed at once (default GOMAXPROCS)
	MaxFileSize int64  // larger uploads are refused
	// SettleLevel is the zstd level the settler re-encodes blocks written
	// below it at (settle.go): fastest, default, better, best (default) or
	// off (blocks are settled at the ingest level).
	SettleLevel string
	// Settle runs the background settler (walrus serve sets it): blocks
	// written at the ingest level are re-encoded at SettleLevel, and with
	// ColdTier the WAL behind each directory's newest restorable backup is
	// moved to the cold tier. Without it, Store.Settle does the same on
	// demand.
	Settle bool
	// ColdTier is "lzma2" (default) or "off". The cold tier is written only
	// by builds with cgo (liblzma); every build reads it.
	ColdTier string
	// MinFree is the free space, beyond what the index needs, below which
	// uploads are refused (ErrNoSpace), so that removals and GC still work
	// on a full disk (see "Full disk" in doc.go). Default DefaultMinFree.
	MinFree int64
	// AllowUnknownMagic accepts WAL page magics of the 0xD0xx/0xD1xx family
	// that no released PostgreSQL uses (development builds).
	AllowUnknownMagic bool
	// MustExist makes Open fail with ErrNoStore instead of creating an
	// empty store when Dir holds none. Admin commands set it: a mistyped
	// data directory must not look like an empty, healthy archive.
	MustExist bool
	// LandingBytes bounds the bytes of landed files not yet ingested
	// (see "Landed files" in doc.go); default DefaultLandingBytes.
	LandingBytes int64
	// Remote, if set, is the bucket sealed packs are copied to in the
	// background (remote.go); nil: no bucket, packs live only in Dir.
	// Acknowledgements do not wait for it (local-ack).
	Remote backend.Backend
	// RollAge, with Remote, seals the active pack once its first record
	// is this old, so that the bucket lags the local store by about
	// RollAge plus an upload; default DefaultRollAge. Ignored without
	// Remote.
	RollAge time.Duration
	// AckRemote, with Remote, acknowledges a push (Upload.Commit,
	// LandingFile.Commit) only once every pack holding a committed record
	// is in the bucket (remote-ack, remoteack.go); AckTimeout bounds that
	// wait (default DefaultAckTimeout), after which the push fails with
	// ErrBucket and stays committed locally. AckTimeout also bounds a
	// claim (Claims), after which the push fails with ErrClaims.
	AckRemote  bool
	AckTimeout time.Duration
	// Claims, if set, is the claim namespace shared by a group of
	// front-ends serving one archive (a bucket prefix all of them use;
	// each keeps its own packs prefix in Remote): every commit first
	// claims its name there for its content, so that no two front-ends
	// commit different content under one name (claims.go). nil: no
	// claims. It does not need Remote.
	Claims backend.Backend
	// OpenPrefix, with Claims and Remote, opens a backend on the same
	// bucket (credentials, encryption) under another key prefix: the
	// packs prefixes of the other front-ends, which the follower reads
	// (peers.go). nil: this front-end registers itself but follows none.
	// RemotePrefix is this store's own packs prefix, as OpenPrefix takes
	// it, published in the registry.
	OpenPrefix   func(prefix string) (backend.Backend, error)
	RemotePrefix string
	// PeerHeartbeat, PeerInterval, PeerWait (peers.go): how often the
	// registry record is rewritten (default DefaultPeerHeartbeat), how
	// often the other front-ends' packs are listed (DefaultPeerInterval),
	// and how long a lookup of a name another front-end holds waits for
	// it to arrive (DefaultPeerWait) before failing with ErrElsewhere.
	PeerHeartbeat time.Duration
	PeerInterval  time.Duration
	PeerWait      time.Duration
	// LeaseTTL, with Claims: the maintenance lease's time to live
	// (lease.go; default DefaultLeaseTTL). Retention runs only on the
	// front-end holding it; another takes it over at most about LeaseTTL
	// after its holder stopped renewing.
	LeaseTTL time.Duration
	// PeerExpiry (peers.go, remotegc.go): a front-end whose registry
	// record is older than this no longer holds the deletion of our
	// retired packs' objects it has not followed (default
	// DefaultPeerExpiry).
	PeerExpiry time.Duration

	ingestPaused bool // tests: Open starts with the ingester paused (landing.paused = 1)
	Logger       *slog.Logger

	// PackCacheBytes, with Remote, bounds the committed bytes of the
	// packs kept in Dir/packs: packs in the bucket beyond it lose their
	// local file, least recently read first, and are read from the bucket
	// by range (packcache.go). 0: unbounded. Ignored without Remote.
	PackCacheBytes int64

	// SnapshotBytes and SnapshotInterval, with Remote: an index snapshot
	// is written to the bucket once the packs uploaded since the last one
	// hold max(SnapshotBytes, its size) bytes, at most once per
	// SnapshotInterval (snapshot.go); defaults DefaultSnapshotBytes and
	// DefaultSnapshotInterval. SnapshotBytes < 0: never by itself.
	SnapshotBytes    int64
	SnapshotInterval time.Duration

	// Observer receives an event for every commit and every read (metrics);
	// nil: none. Its methods are called on the committing or reading
	// goroutine and must not block.
	Observer Observer
}

func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, fmt.Errorf("store: no data directory given")
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.BlockSize < minBlockSize || c.BlockSize > maxBlockSize || c.BlockSize%8192 != 0 {
		return c, fmt.Errorf("store: block size %d invalid: use a multiple of 8 KiB from 64 KiB to 4 MiB", c.BlockSize)
	}
	if c.Level == "" {
		c.Level = "fastest"
	}
	if _, err := parseLevel(c.Level); err != nil {
		return c, err
	}
	if c.SettleLevel == "" {
		c.SettleLevel = "best"
	}
	if c.SettleLevel != "off" {
		if _, err := parseLevel(c.SettleLevel); err != nil {
			return c, fmt.Errorf("%w (settle level: or off)", err)
		}
	}
	switch c.ColdTier {
	case "":
		c.ColdTier = "lzma2"
	case "lzma2", "off":
	default:
		return c, fmt.Errorf("store: cold tier %q invalid: use lzma2 or off", c.ColdTier)
	}
	if c.PackSize == 0 {
		c.PackSize = DefaultPackSize
	}
	if c.PackSize < int64(c.BlockSize)*2 {
		return c, fmt.Errorf("store: pack size %d invalid: use at least twice the block size", c.PackSize)
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = DefaultCache
	}
	if c.Concurrency <= 0 {
		c.Concurrency = runtime.GOMAXPROCS(0)
	}
	if c.MaxFileSize == 0 {
		c.MaxFileSize = DefaultMaxFile
	}
	if c.MinFree <= 0 {
		c.MinFree = DefaultMinFree
	}
	if c.LandingBytes <= 0 {
		c.LandingBytes = DefaultLandingBytes
	}
	if c.Remote != nil && c.RollAge <= 0 {
		c.RollAge = DefaultRollAge
	}
	if c.AckRemote && c.Remote == nil {
		return c, fmt.Errorf("store: remote ack needs a bucket: configure one, or acknowledge locally")
	}
	if c.SnapshotBytes == 0 {
		c.SnapshotBytes = DefaultSnapshotBytes
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.PeerHeartbeat <= 0 {
		c.PeerHeartbeat = DefaultPeerHeartbeat
	}
	if c.PeerInterval <= 0 {
		c.PeerInterval = DefaultPeerInterval
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.PeerWait <= 0 {
		c.PeerWait = DefaultPeerWait
	}
	if c.PeerExpiry <= 0 {
		c.PeerExpiry = DefaultPeerExpiry
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

func parseLevel(s string) (zstd.EncoderLevel, error) {
	switch strings.ToLower(s) {
	case "fastest", "1":
		return zstd.SpeedFastest, nil
	case "default", "2":
		return zstd.SpeedDefault, nil
	case "better", "3":
		return zstd.SpeedBetterCompression, nil
	case "best", "4":
		return zstd.SpeedBestCompression, nil
	}
	return 0, fmt.Errorf("store: compression level %q invalid: use fastest, default, better or best", s)
}
