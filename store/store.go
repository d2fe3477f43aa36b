package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/singleflight"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
)

// Errors returned by the store. Callers test them with errors.Is; the
// messages are wrapped with the file name and the detail.
var (
	ErrExists          = errors.New("store: file exists with different content")
	ErrNotFound        = errors.New("store: no such file")
	ErrClusterMismatch = errors.New("store: segment belongs to another cluster")
	ErrInvalidWAL      = errors.New("store: invalid WAL file")
	ErrInvalidName     = errors.New("store: invalid name")
	ErrCorrupt         = errors.New("store: stored data is corrupt")
	ErrClosed          = errors.New("store: closed")
	ErrLocked          = errors.New("store: data directory is in use by another process")
	ErrNotEmpty        = errors.New("store: directory not empty")
	ErrTooLarge        = errors.New("store: file too large")
	ErrIsDir           = errors.New("store: is a directory")
	ErrRetry           = errors.New("store: conflicting concurrent change; retry")
	ErrNoStore         = errors.New("store: no walrus store")
	ErrIndexMissing    = errors.New("store: index missing")
	ErrIndexDamaged    = errors.New("store: index damaged")
	ErrNoSpace         = errors.New("store: not enough free space")
)

// Store is an open segment store. It is safe for concurrent use.
type Store struct {
	cfg   Config
	log   *slog.Logger
	idx   *index.DB
	packs *packFiles
	pw    *packWriter
	space *spaceGuard
	enc   *zstd.Encoder
	dec   *zstd.Decoder
	cache *blockCache
	sem   chan struct{} // bounds blocks being compressed or decompressed at once
	loads singleflight.Group
	zero  []byte // BlockSize zero bytes, read-only
	bufs  sync.Pool

	// ingestCodec marks the zstd records uploads write (settle.go); st is
	// the settler's state.
	ingestCodec index.Codec
	st          *settler

	pendingMu     sync.Mutex
	pending       map[index.Hash]index.Block // appended to a pack, not yet committed
	prefetchAsked atomic.Uint64              // Prefetch calls for segments (PrefetchRequests)
	changes       atomic.Uint64              // index transactions committed (Changes)

	pf        *prefetcher
	gcMu      sync.Mutex // one GC at a time; Close waits for a running GC
	gcGuard   bool       // under gcMu: this GC keeps packs not in the bucket (remotegc.go)
	ckptMu    sync.Mutex // one checkpoint at a time (checkpoint.go)
	seq       uint64     // the next journal batch number; committer only
	legacy    bool       // the index holds records no pack journals yet: Open checkpoints
	commits   chan *commitReq
	closing   chan struct{}
	committer sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	land *landing  // landed files (landing.go)
	up   *uploader // copies sealed packs to Config.Remote (remote.go); nil without one

	claims *claims   // the claims prefix (claims.go); nil without Config.Claims
	fl     *follower // follows the other front-ends (peers.go); nil without Claims and Remote
	lease  *lease    // the maintenance lease (lease.go); nil without Claims

	rc *packCache // reads evicted packs from Config.Remote, bounds DATA/packs (packcache.go); nil without one

	// journalFrom: 1 + the lowest pack the committing batch may append
	// journal records to; 0 between batches (snapshot.go: ScanFrom).
	journalFrom atomic.Uint64
	// sealedCommits counts batches that committed the length of a pack
	// already sealed (commit.go; the uploader's idle shortcut, remote.go).
	sealedCommits atomic.Uint64

	snapMu   sync.Mutex   // one WriteSnapshot at a time (snapshot.go)
	snapLast SnapshotInfo // the last snapshot this process wrote; snapMu
}

// Open opens the store in cfg.Dir and repairs torn pack tails left by a
// crash. When cfg.Dir holds no store (no index, no pack files) Open creates
// an empty one, or fails with ErrNoStore if cfg.MustExist is set. It never
// opens a directory whose index is gone while pack files remain
// (ErrIndexMissing), or is there but unusable (ErrIndexDamaged): a new,
// empty index would account for none of them. walrus repair rebuilds the
// index from the packs (Repair).
func Open(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkStoreDir(cfg.Dir, cfg.MustExist); err != nil {
		return nil, err
	}
	packDir := filepath.Join(cfg.Dir, "packs")
	if err := os.MkdirAll(packDir, 0o750); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", packDir, err)
	}
	space := newSpaceGuard(cfg)
	if err := space.forIndex(0); err != nil {
		return nil, err // opening badger on a full disk can fault (see "Full disk" in doc.go)
	}
	idx, err := index.Open(filepath.Join(cfg.Dir, "index"), index.Options{Logger: cfg.Logger})
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("%w: %s (is walrus serve running? use its control socket or stop it)", ErrLocked, cfg.Dir)
		}
		return nil, indexOpenError(cfg.Dir, err)
	}
	s := &Store{
		cfg:     cfg,
		log:     cfg.Logger,
		idx:     idx,
		space:   space,
		packs:   &packFiles{dir: packDir, m: map[uint32]*packFile{}},
		cache:   newBlockCache(cfg.CacheBytes, cfg.BlockSize),
		sem:     make(chan struct{}, cfg.Concurrency),
		zero:    make([]byte, cfg.BlockSize),
		pending: map[index.Hash]index.Block{},
		commits: make(chan *commitReq, 256),
		closing: make(chan struct{}),
	}
	if err := s.init(); err != nil {
		s.packs.closeAll()
		idx.Close()
		return nil, err
	}
	if err := s.initSettle(); err != nil {
		s.packs.closeAll()
		idx.Close()
		return nil, err
	}
	s.pf = newPrefetcher(s)
	s.land = newLanding(s)
	if err := s.land.recover(); err != nil {
		s.packs.closeAll()
		idx.Close()
		return nil, err
	}
	if cfg.Claims != nil {
		if s.claims, err = openClaims(cfg); err != nil {
			s.packs.closeAll()
			idx.Close()
			return nil, err
		}
	}
	if cfg.Remote != nil {
		s.up = newUploader(s) // before the committer, which kicks it
		s.rc = newPackCache(s)
	}
	if s.claims != nil && cfg.Remote != nil {
		if s.fl, err = newFollower(s); err != nil {
			s.packs.closeAll()
			idx.Close()
			return nil, err
		}
	}
	s.committer.Add(1)
	go s.runCommitter()
	if s.up != nil {
		go s.up.run() // queues every sealed pack not marked uploaded
	}
	if s.fl != nil {
		go s.fl.run()
	}
	if s.claims != nil {
		s.lease = newLease(s)
		go s.lease.run()
	}
	s.checkpointLegacy()
	s.land.start()
	s.startSettle()
	return s, nil
}

// checkStoreDir decides, before anything is created, whether dir holds a
// store: it does when its index directory is not empty.
func checkStoreDir(dir string, mustExist bool) error {
	hasIndex, err := nonEmptyDir(filepath.Join(dir, "index"))
	if err != nil {
		return err
	}
	packs, err := countPackFiles(filepath.Join(dir, "packs"))
	if err != nil {
		return err
	}
	if hasIndex {
		return checkManifest(dir, packs)
	}
	switch {
	case packs > 0:
		return fmt.Errorf("%w: %s holds %d pack files but no index; not opening it (a new, empty index would delete them)", ErrIndexMissing, dir, packs)
	case mustExist:
		return fmt.Errorf("%w in %s (no index/, no packs/)", ErrNoStore, dir)
	}
	return nil
}

// nonEmptyDir reports whether path is a directory with at least one entry;
// a path that does not exist, or under a non-directory, is not.
func nonEmptyDir(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("store: read %s: %w", path, err)
	}
	return len(names) > 0, nil
}

func countPackFiles(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	n := 0
	for _, e := range entries {
		if _, ok := parsePackName(e.Name()); ok {
			n++
		}
	}
	return n, nil
}

func (s *Store) init() error {
	level, _ := parseLevel(s.cfg.Level)
	var err error
	s.enc, err = zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(s.cfg.Concurrency),
		// The frame's content checksum (XXH64 of the block) lets reads
		// skip SHA-256 of every decoded block: see decodedChecked.
		zstd.WithEncoderCRC(true),
		zstd.WithWindowSize(windowFor(s.cfg.BlockSize)),
		// Blocks written below the settle level are re-encoded by the
		// settler (CodecZstdIngest): their literals are left without
		// Huffman coding, which takes a seventh of the time of ingest
		// compression, on the critical path of every upload, for 14%
		// more bytes until the block settles (pgbench WAL; make bench).
		// The frames are ordinary zstd frames either way.
		zstd.WithNoEntropyCompression(ingestUnsettled(s.cfg)))
	if err != nil {
		return fmt.Errorf("store: zstd encoder: %w", err)
	}
	s.dec, err = zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(s.cfg.Concurrency),
		zstd.WithDecoderMaxMemory(uint64(maxBlockSize)*2))
	if err != nil {
		return fmt.Errorf("store: zstd decoder: %w", err)
	}
	next, err := s.repairPacks()
	if err != nil {
		return err
	}
	s.pw = &packWriter{dir: s.packs.dir, maxSize: s.cfg.PackSize, space: s.space, files: s.packs, nextID: next,
		dirty: map[uint32]int64{}, poisoned: map[uint32]bool{}}
	s.pw.created = s.announcePack
	if err := s.initJournal(); err != nil {
		return err
	}
	s.resumePack()
	if free, ok := s.space.free(); ok {
		s.space.growReserve(free)
	}
	return nil
}

func windowFor(blockSize int) int {
	w := zstd.MinWindowSize
	for w < blockSize && w < zstd.MaxWindowSize {
		w <<= 1
	}
	return w
}

// repairPacks brings the pack directory back in line with the index after
// a crash (see "Garbage collection" and "The journal" in doc.go):
//   - a pack whose record is retired is deleted: GC committed the move of its
//     last live block and died before (or while) unlinking the file;
//   - every other pack the index knows is truncated to the length the index
//     committed for it (a pack only created so far, to its header). Bytes
//     past that point were appended by uploads that never committed (the
//     process died first), so no index record refers to them;
//   - a pack the index does not know is never deleted: every pack is
//     recorded in the index (packWriter.announce) before a record goes into
//     it, so such a pack means the index lost something, and the pack may
//     hold the only copy. It is kept and logged, walrus verify reports it
//     and walrus repair accounts for it. One holding no record (a crash
//     between creating it and recording it) is adopted as an empty pack.
//
// An index that knows no pack at all while packs hold records is damaged
// (ErrIndexDamaged). It returns the id for the next new pack: above every
// pack file and every pack record, tombstones included, so an id is never
// reused.
func (s *Store) repairPacks() (uint32, error) {
	known, err := s.knownPacks()
	if err != nil {
		return 0, err
	}
	next := known.next
	entries, err := os.ReadDir(s.packs.dir)
	if err != nil {
		return 0, fmt.Errorf("store: read %s: %w", s.packs.dir, err)
	}
	var removed bool
	var adopt []uint32
	var unknown []string
	for _, e := range entries {
		id, ok := parsePackName(e.Name())
		if !ok {
			continue
		}
		next = max(next, id+1)
		rec := known.records[id]
		switch {
		case rec != nil && rec.Retired:
			s.log.Info("deleting pack retired by gc", "pack", e.Name())
			if err := os.Remove(filepath.Join(s.packs.dir, e.Name())); err != nil {
				return 0, fmt.Errorf("store: delete pack: %w", err)
			}
			removed = true
		case rec != nil && rec.Evicted:
			// The index committed the eviction; the unlink did not
			// happen or was not durable (packcache.go).
			s.log.Info("deleting evicted pack (it lives in the bucket)", "pack", e.Name())
			if err := os.Remove(filepath.Join(s.packs.dir, e.Name())); err != nil {
				return 0, fmt.Errorf("store: delete pack: %w", err)
			}
			removed = true
		case rec != nil:
			if err = s.checkTail(id, rec.Committed, known.lastSeq); err == nil {
				err = s.repairPack(id, rec.Committed)
			}
		case known.created[id]:
			err = s.repairPack(id, packHeaderLen)
			adopt = append(adopt, id)
		default:
			var empty bool
			if empty, err = s.adoptEmptyPack(id); empty {
				adopt = append(adopt, id)
			} else if err == nil {
				unknown = append(unknown, e.Name())
			}
		}
		if err != nil {
			return 0, err
		}
	}
	if len(unknown) > 0 && len(known.records) == 0 && len(known.created) == 0 {
		return 0, fmt.Errorf("%w: %s knows no pack, but %d pack files hold records; not opening it", ErrIndexDamaged,
			filepath.Join(s.cfg.Dir, "index"), len(unknown))
	}
	for _, name := range unknown {
		s.log.Error("pack file unknown to the index: kept; walrus verify reports it, walrus repair rebuilds the index from every pack", "pack", name)
	}
	if removed {
		if err := syncDir(s.packs.dir); err != nil {
			return 0, err
		}
	}
	return next, s.recordAdopted(adopt, known.created)
}

// knownPacks is what the index says about pack files.
type knownPacks struct {
	records map[uint32]*index.Pack
	created map[uint32]bool // creation markers (index.Txn.PutNewPack)
	next    uint32          // above every id named
	lastSeq uint64          // the last journal batch committed
}

func (s *Store) knownPacks() (knownPacks, error) {
	k := knownPacks{records: map[uint32]*index.Pack{}, created: map[uint32]bool{}, next: 1}
	err := s.idx.View(func(x *index.Txn) error {
		j, _, err := x.Journal()
		if err != nil {
			return err
		}
		k.lastSeq = j.LastSeq
		err = x.Packs(func(p *index.Pack) error {
			k.records[p.ID] = p
			k.next = max(k.next, p.ID+1)
			return nil
		})
		if err != nil {
			return err
		}
		return x.NewPacks(func(id uint32) error {
			k.created[id] = true
			k.next = max(k.next, id+1)
			return nil
		})
	})
	return k, err
}

// adoptEmptyPack reports whether unknown pack id holds no record, and then
// makes its header whole: a crash between creating a pack and recording it
// leaves at most a header.
func (s *Store) adoptEmptyPack(id uint32) (bool, error) {
	name := packFileName(s.packs.dir, id)
	st, err := os.Stat(name)
	if err != nil {
		return false, fmt.Errorf("store: stat pack: %w", err)
	}
	if st.Size() > packHeaderLen {
		return false, nil
	}
	if st.Size() == packHeaderLen {
		return true, nil
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_TRUNC, 0)
	if err != nil {
		return false, fmt.Errorf("store: repair pack header: %w", err)
	}
	defer f.Close()
	return true, writePackHeader(f, s.packs.dir, id)
}

// recordAdopted gives each adopted pack its record (empty, committed up to
// its header; GC retires it) and drops creation markers no longer needed.
func (s *Store) recordAdopted(adopt []uint32, created map[uint32]bool) error {
	if len(adopt) == 0 && len(created) == 0 {
		return nil
	}
	return s.idx.Update(func(x *index.Txn) error {
		for _, id := range adopt {
			p, err := packRecord(x, id)
			if err != nil {
				return err
			}
			if err := x.PutPack(p); err != nil {
				return err
			}
		}
		for id := range created {
			if err := x.DeleteNewPack(id); err != nil {
				return err
			}
		}
		return nil
	})
}

func parsePackName(name string) (uint32, bool) {
	base, ok := strings.CutSuffix(name, ".pack")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 10, 32)
	return uint32(n), err == nil
}

func (s *Store) repairPack(id uint32, committed int64) error {
	name := packFileName(s.packs.dir, id)
	st, err := os.Stat(name)
	if err != nil {
		return fmt.Errorf("store: stat pack: %w", err)
	}
	if committed == 0 {
		committed = packHeaderLen
	}
	switch {
	case st.Size() == committed:
		return nil
	case st.Size() < committed:
		// Never truncate forward: verify reports the missing records.
		s.log.Error("pack is shorter than the index says; run walrus verify", "pack", name, "size", st.Size(), "committed", committed)
		return nil
	}
	s.log.Warn("truncating uncommitted pack tail left by a crash", "pack", name, "from", st.Size(), "to", committed)
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("store: repair pack: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(committed); err != nil {
		return fmt.Errorf("store: truncate pack %s: %w", name, err)
	}
	return f.Sync()
}

// Close waits for in-flight commits, then closes the index and packs.
// Uploads not yet committed are lost (they were never acknowledged).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopSettle() // before closing: its last commit goes through
		// Before closing: a commit submitted after the committer drained
		// would wait forever. What is landed stays landed: the next Open
		// ingests it.
		s.land.shutdown()
		if s.fl != nil {
			s.fl.stop() // before closing: it commits adopted files
		}
		if s.lease != nil {
			s.lease.close(min(s.cfg.AckTimeout, s.cfg.LeaseTTL/3)) // released: another front-end takes it at once
		}
		if s.up != nil {
			// Before closing: it submits ops. An upload in flight is
			// cancelled; its pack stays unmarked and Open queues it again.
			s.up.stop()
		}
		close(s.closing)
		s.pf.shutdown()
		s.gcMu.Lock() // a running GC sees closing and returns
		s.committer.Wait()
		s.gcMu.Unlock()
		s.enc.Close()
		s.dec.Close()
		s.packs.closeAll()
		if err := s.space.forIndex(0); err != nil {
			// Closing flushes the memtable into a new table, which can
			// fault on a full disk; the synced write-ahead log holds every
			// commit and is replayed by the next Open.
			s.log.Error("filesystem full: leaving the index to be recovered at the next open", "err", err)
			s.closeErr = err
			return
		}
		s.closeErr = s.idx.Close()
	})
	return s.closeErr
}

// Config returns the effective configuration.
func (s *Store) Config() Config { return s.cfg }

// SplitPath cleans an archive path into namespace and base name. Paths have
// at most one directory level: "NAME" (root) or "DIR/NAME". Leading and
// trailing slashes are ignored.
func SplitPath(p string) (dir, name string, err error) {
	p = strings.Trim(p, "/")
	parts := strings.Split(p, "/")
	if p == "" || len(parts) > 2 {
		return "", "", fmt.Errorf("%w: %q (use NAME or DIR/NAME)", ErrInvalidName, p)
	}
	for _, c := range parts {
		if err := checkComponent(c); err != nil {
			return "", "", err
		}
	}
	if len(parts) == 1 {
		return "", parts[0], nil
	}
	return parts[0], parts[1], nil
}

func checkComponent(c string) error {
	switch {
	case c == "" || c == "." || c == "..":
		return fmt.Errorf("%w: %q", ErrInvalidName, c)
	case len(c) > 255:
		return fmt.Errorf("%w: %.20q... longer than 255 bytes", ErrInvalidName, c)
	case strings.ContainsAny(c, "\x00/"):
		return fmt.Errorf("%w: %q contains NUL or slash", ErrInvalidName, c)
	case strings.ContainsFunc(c, isControl):
		// A newline or escape in a name makes every listing (walrus ls,
		// ls, rsync's) ambiguous or hostile to the terminal that shows it.
		return fmt.Errorf("%w: %q contains a control character; use printable names", ErrInvalidName, c)
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// FileInfo describes an archived file.
type FileInfo struct {
	Path     string
	Dir      string
	Name     string
	Size     int64
	Mode     fs.FileMode
	MTime    time.Time
	Archived time.Time
	Hash     index.Hash
	Kind     wal.Kind
	Stored   int64 // pack bytes of its distinct blocks at commit (shared blocks count in full)
}

func infoOf(f *index.File) FileInfo {
	return FileInfo{
		Path: f.Path(), Dir: f.Dir, Name: f.Name, Size: f.Size,
		Mode:     fs.FileMode(f.Mode).Perm(),
		MTime:    time.Unix(0, f.MTime),
		Archived: time.Unix(0, f.Archived),
		Hash:     f.Hash,
		Kind:     wal.ParseName(f.Name).Kind,
		Stored:   f.Stored,
	}
}

// Stat returns the file at path.
func (s *Store) Stat(path string) (FileInfo, error) {
	f, err := s.lookup(path)
	if errors.Is(err, ErrNotFound) {
		fi, err := s.statLanded(path)
		if errors.Is(err, ErrNotFound) {
			if f, perr := s.elsewhere(path); f != nil || perr != nil {
				if perr != nil {
					return FileInfo{}, perr
				}
				return infoOf(f), nil
			}
		}
		return fi, err
	}
	if err != nil {
		return FileInfo{}, err
	}
	return infoOf(f), nil
}

// StatHere is Stat without asking the other front-ends (peers.go): a
// name neither committed nor landed here is ErrNotFound even if another
// front-end holds it. The push paths use it (an identical re-push of a
// name another front-end holds must go through, not wait for it).
func (s *Store) StatHere(path string) (FileInfo, error) {
	f, err := s.lookup(path)
	if errors.Is(err, ErrNotFound) {
		return s.statLanded(path)
	}
	if err != nil {
		return FileInfo{}, err
	}
	return infoOf(f), nil
}

func (s *Store) lookup(path string) (*index.File, error) {
	dir, name, err := SplitPath(path)
	if err != nil {
		return nil, err
	}
	var f *index.File
	err = s.idx.View(func(x *index.Txn) error {
		f, err = x.File(dir, name)
		return err
	})
	if errors.Is(err, index.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	return f, err
}

// IsDir reports whether dir is an existing namespace ("" always is).
func (s *Store) IsDir(dir string) (bool, error) {
	dir = strings.Trim(dir, "/")
	if dir == "" {
		return true, nil
	}
	err := s.idx.View(func(x *index.Txn) error {
		_, err := x.Dir(dir)
		return err
	})
	if errors.Is(err, index.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Dirs returns the namespaces in name order.
func (s *Store) Dirs() ([]index.Dir, error) {
	var out []index.Dir
	err := s.idx.View(func(x *index.Txn) error {
		return x.Dirs(func(d *index.Dir) error {
			if d.Name != "" {
				out = append(out, *d)
			}
			return nil
		})
	})
	return out, err
}

// Namespaces returns the names of the directories below the root, in name
// order, empty ones included, without scanning files.
func (s *Store) Namespaces() ([]string, error) {
	dirs, err := s.Dirs()
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		out = append(out, d.Name)
	}
	return out, err
}

// DirMeta returns a namespace's WAL metadata.
func (s *Store) DirMeta(dir string) (index.Dir, error) {
	var out index.Dir
	err := s.idx.View(func(x *index.Txn) error {
		d, err := x.Dir(strings.Trim(dir, "/"))
		if err == nil {
			out = *d
		}
		return err
	})
	if errors.Is(err, index.ErrNotFound) {
		return out, fmt.Errorf("%w: directory %s", ErrNotFound, dir)
	}
	return out, err
}

// Names calls fn with every file name in dir in byte order, reading keys
// only (cheap enough to list 100 000 entries quickly).
func (s *Store) Names(dir string, fn func(name string) error) error {
	dir = strings.Trim(dir, "/")
	return mergeNames(s.landedNames(dir), func(fn func(string) error) error {
		return s.idx.View(func(x *index.Txn) error { return x.FileNames(dir, fn) })
	}, fn)
}

// List returns the files in dir ("" is the root) in name order.
func (s *Store) List(dir string) ([]FileInfo, error) {
	var out []FileInfo
	err := s.Walk(context.Background(), dir, func(fi FileInfo) error {
		out = append(out, fi)
		return nil
	})
	return out, err
}

// Walk calls fn for every file in dir; dir "*" walks every directory.
func (s *Store) Walk(ctx context.Context, dir string, fn func(FileInfo) error) error {
	if dir != "*" {
		dir = strings.Trim(dir, "/")
	}
	landed := s.landedInfos(dir) // merged in path order, as the index yields
	err := s.idx.View(func(x *index.Txn) error {
		return x.Files(ctx, dir, func(f *index.File) error {
			fi := infoOf(f)
			for len(landed) > 0 && cmpFile(landed[0], fi) <= 0 {
				if cmpFile(landed[0], fi) < 0 {
					if err := fn(landed[0]); err != nil {
						return err
					}
				}
				landed = landed[1:]
			}
			return fn(fi)
		})
	})
	for ; err == nil && len(landed) > 0; landed = landed[1:] {
		err = fn(landed[0])
	}
	return err
}

// Status summarises the archive.
type Status struct {
	Files        int64 `json:"files"`
	LogicalBytes int64 `json:"logical_bytes"`
	StoredBytes  int64 `json:"stored_bytes"` // live bytes in packs
	DiskBytes    int64 `json:"disk_bytes"`   // pack files on disk, dead bytes included
	Packs        int   `json:"packs"`
	Dirs         int   `json:"dirs"`
	// UnsettledBytes and ColdBytes are the parts of StoredBytes waiting for
	// the settler and in the cold tier (settle.go).
	UnsettledBytes int64 `json:"unsettled_bytes"`
	ColdBytes      int64 `json:"cold_bytes"`
	// Landed files (counted in Files and LogicalBytes) are acknowledged
	// and wait in DATA/landing to be ingested into the packs
	// (landing.go); LandedFailing of them failed their last ingest.
	LandedFiles   int64 `json:"landed_files"`
	LandedBytes   int64 `json:"landed_bytes"`
	LandedFailing int64 `json:"landed_failing"`
	// Bucket is the upload backlog with Config.Remote (remote.go); nil
	// (and absent from JSON) without one.
	Bucket *BucketStatus `json:"bucket,omitempty"`
	// Claims: the name claims shared with other front-ends (claims.go).
	Claims *ClaimsStatus `json:"claims,omitempty"`
	// Peers: the other front-ends this one follows (peers.go).
	Peers []PeerStatus `json:"peers,omitempty"`
	// Lease: the maintenance lease of the group (lease.go).
	Lease *LeaseStatus `json:"lease,omitempty"`
}

// Status returns the running totals without scanning files.
func (s *Store) Status() (Status, error) {
	var st Status
	err := s.idx.View(func(x *index.Txn) error {
		t, err := x.Stats()
		if err != nil {
			return err
		}
		st.Files, st.LogicalBytes = t.Files, t.LogicalBytes
		st.LandedFiles, st.LandedBytes, st.LandedFailing = s.landedTotals()
		st.Files, st.LogicalBytes = st.Files+st.LandedFiles, st.LogicalBytes+st.LandedBytes
		if err := x.Dirs(func(d *index.Dir) error {
			if d.Name != "" {
				st.Dirs++
			}
			return nil
		}); err != nil {
			return err
		}
		return x.Packs(func(p *index.Pack) error {
			if p.Retired {
				return nil
			}
			st.Packs++
			st.StoredBytes += p.Live
			st.DiskBytes += p.Committed
			st.UnsettledBytes += p.Unsettled
			st.ColdBytes += p.Cold
			return nil
		})
	})
	if err == nil {
		st.Bucket, err = s.bucketStatus()
		if s.claims != nil {
			st.Claims = s.claims.status()
		}
		if s.fl != nil {
			st.Peers = s.fl.status()
		}
		if s.lease != nil {
			st.Lease = s.lease.status()
		}
	}
	return st, err
}

// Mkdir creates namespace dir. Creating an existing one succeeds.
func (s *Store) Mkdir(dir string) error {
	dir = strings.Trim(dir, "/")
	if err := checkComponent(dir); err != nil {
		return err
	}
	return s.submit(&mkdirOp{dir: dir})
}

// Rmdir removes an empty namespace.
func (s *Store) Rmdir(dir string) error {
	dir = strings.Trim(dir, "/")
	if err := checkComponent(dir); err != nil {
		return err
	}
	if s.hasLanded(dir) {
		return fmt.Errorf("%w: namespace %s has landed files", ErrNotEmpty, dir)
	}
	return s.submit(&rmdirOp{dir: dir})
}

// Remove deletes the file at path. Its blocks are released; the space is
// reclaimed by GC.
func (s *Store) Remove(path string) error { return s.remove(path, false) }

// remove is Remove; copied: a removal followed from another front-end
// (journaled jeCopied, peers.go).
func (s *Store) remove(path string, copied bool) error {
	dir, name, err := SplitPath(path)
	if err != nil {
		return err
	}
	unlock := s.land.lock(joinPath(dir, name))
	defer unlock()
	landed, err := s.removeLanded(joinPath(dir, name)) // cancels its ingest
	if err != nil {
		return err
	}
	err = s.submit(&removeOp{dir: dir, name: name, copied: copied})
	if landed && errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// sortedKeys is a small helper for deterministic iteration in tests and logs.
func sortedKeys[M ~map[K]V, K ~uint32, V any](m M) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
