package store

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
)

// Landed files (see "Landed files" in doc.go): a WAL segment written
// through the mount lands as a plain file in DIR/landing/ and is ingested
// into the packs in the background.
//
//	landing/tmp/N        being written (a crash leaves nothing acknowledged here)
//	landing/files/NAME   landed in the root
//	landing/dirs/NS/NAME landed in namespace NS

const (
	landingDirName = "landing"
	// DefaultLandingBytes bounds the landed bytes not yet ingested; past it
	// a landing close ingests its file itself (back-pressure).
	DefaultLandingBytes = 256 << 20
	nameLocks           = 64
)

// landing is the store's set of landed files. The map is the truth while
// the store is open; Open rebuilds it from landing/ (recoverLanding).
type landing struct {
	s    *Store
	root string

	// locks serialise, per name, what decides whether a name is free
	// (a landing commit, an upload's commit of a new name, an ingest, a
	// removal). Taken before mu; never held by the committer.
	locks [nameLocks]sync.Mutex

	mu     sync.Mutex // guards files, bytes, seq, busy
	idle   *sync.Cond // signalled when files shrinks or an ingest ends
	files  map[string]*landedFile
	bytes  int64
	seq    uint64
	busy   int // ingests running
	paused int // PauseIngest holds
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	failed map[string]time.Time // ingest failed: retried after landRetry
}

const landRetry = 10 * time.Second

type landedFile struct {
	path     string // "NAME" or "NS/NAME"
	file     string // its path on disk
	size     int64
	mode     fs.FileMode
	mtime    time.Time
	archived time.Time
}

func newLanding(s *Store) *landing {
	l := &landing{s: s, root: filepath.Join(s.cfg.Dir, landingDirName), files: map[string]*landedFile{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), failed: map[string]time.Time{}}
	l.idle = sync.NewCond(&l.mu)
	if s.cfg.ingestPaused {
		l.paused = 1
	}
	return l
}

func (l *landing) lock(path string) func() {
	h := fnv.New32a()
	h.Write([]byte(path))
	m := &l.locks[h.Sum32()%nameLocks]
	m.Lock()
	return m.Unlock
}

func (l *landing) pathOf(dir, name string) string {
	if dir == "" {
		return filepath.Join(l.root, "files", name)
	}
	return filepath.Join(l.root, "dirs", dir, name)
}

func (l *landing) get(path string) *landedFile {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.files[path]
}

// recoverLanding runs at Open: unfinished files in tmp/ were never
// acknowledged and are deleted; every landed file is taken up again and
// queued for ingest (identical content already ingested before a crash is
// recognised as such, see ingest).
func (l *landing) recover() error {
	tmp := filepath.Join(l.root, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: read %s: %w", tmp, err)
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("store: remove unfinished landing file: %w", err)
		}
	}
	add := func(dir, d string) error {
		ents, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: read %s: %w", d, err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			lf, err := statLanded(joinPath(dir, e.Name()), filepath.Join(d, e.Name()))
			if err != nil {
				return err
			}
			l.files[lf.path] = lf
			l.bytes += lf.size
		}
		return nil
	}
	if err := add("", filepath.Join(l.root, "files")); err != nil {
		return err
	}
	dirs, err := os.ReadDir(filepath.Join(l.root, "dirs"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: read landing dirs: %w", err)
	}
	for _, d := range dirs {
		if d.IsDir() {
			if err := add(d.Name(), filepath.Join(l.root, "dirs", d.Name())); err != nil {
				return err
			}
		}
	}
	if len(l.files) > 0 {
		l.s.log.Info("landed files to ingest", "files", len(l.files), "bytes", l.bytes)
	}
	return nil
}

func statLanded(path, file string) (*landedFile, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("store: landed file %s: %w", path, err)
	}
	lf := &landedFile{path: path, file: file, size: fi.Size(), mode: fi.Mode().Perm(), mtime: fi.ModTime(), archived: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		lf.archived = time.Unix(st.Ctim.Unix()) // the rename into place
	}
	return lf, nil
}

func (lf *landedFile) info() FileInfo {
	dir, name, _ := SplitPath(lf.path)
	return FileInfo{Path: lf.path, Dir: dir, Name: name, Size: lf.size, Mode: lf.mode, MTime: lf.mtime,
		Archived: lf.archived, Kind: wal.ParseName(name).Kind, Stored: lf.size}
}

// start runs the background ingester.
func (l *landing) start() {
	go l.run()
	l.wake()
}

func (l *landing) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// shutdown stops the ingester and waits for the ingest it is running.
// What is still landed stays landed: the next Open ingests it.
func (l *landing) shutdown() {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	l.idle.Broadcast()
	l.mu.Unlock()
}

// PauseIngest holds the background ingester (after the ingest it is
// running) until the returned resume is called: landed files stay landed.
// Inline ingests (back-pressure, uploads and renames of a landed name) go
// on. For tests and maintenance.
func (s *Store) PauseIngest() (resume func()) {
	l := s.land
	l.mu.Lock()
	l.paused++
	for l.busy > 0 {
		l.idle.Wait()
	}
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.paused--
			l.mu.Unlock()
			l.wake()
		})
	}
}

// ingestNice is the nice value of the ingester's thread.
const ingestNice = 10

func (l *landing) run() {
	defer close(l.done)
	// The thread stays locked to this goroutine until it exits, and then
	// ends with it: its priority reaches no other goroutine.
	runtime.LockOSThread()
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), ingestNice); err != nil {
		l.s.log.Debug("store: ingester runs at normal priority", "err", err)
	}
	t := time.NewTicker(landRetry)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		case <-t.C:
		}
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			path := l.next()
			if path == "" {
				break
			}
			if err := l.ingestBackground(path); err != nil && !errors.Is(err, ErrClosed) {
				l.mu.Lock()
				l.failed[path] = time.Now()
				l.mu.Unlock()
				l.s.log.Error("store: ingest of a landed file failed; it stays landed and readable, retried later",
					"path", path, "err", err)
			}
		}
	}
}

// next picks the oldest landed file not waiting for a retry.
func (l *landing) next() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.paused > 0 {
		return ""
	}
	var best *landedFile
	for p, lf := range l.files {
		if t, ok := l.failed[p]; ok && time.Since(t) < landRetry {
			continue
		}
		if best == nil || lf.archived.Before(best.archived) || (lf.archived.Equal(best.archived) && lf.path < best.path) {
			best = lf
		}
	}
	if best == nil {
		return ""
	}
	return best.path
}

// ingest turns the landed file at path into a store file. Order, under the
// name's lock:
//
//  1. upload its bytes and commit (the durability contract of every
//     upload); when the index holds the name already (a crash after this
//     step, before 2, last time) the upload only compares, and identical
//     content succeeds;
//  2. unlink the landed file and fsync its directory, so that a later
//     removal of the file cannot be undone by a crash that loses the
//     unlink (the file would land again).
//
// A crash before 1 committed leaves the landed file, ingested at the next
// Open; after 1, the index has it and the landed file is recognised as
// identical then; after 2, it is a store file like any other.
func (l *landing) ingest(path string) error {
	unlock := l.lock(path)
	defer unlock()
	return l.ingestLocked(path)
}

// ingestBackground is ingest on the ingester's thread: blocks are hashed
// and compressed there, one at a time, at the thread's low priority
// (run), so writers landing files keep the CPUs they need.
func (l *landing) ingestBackground(path string) error {
	unlock := l.lock(path)
	defer unlock()
	return l.ingestFile(path, true)
}

func (l *landing) ingestLocked(path string) error { return l.ingestFile(path, false) }

func (l *landing) ingestFile(path string, serial bool) error {
	lf := l.get(path)
	if lf == nil {
		return nil // removed or ingested meanwhile
	}
	l.mu.Lock()
	l.busy++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.busy--
		l.idle.Broadcast()
		l.mu.Unlock()
	}()
	f, err := os.Open(lf.file)
	if err != nil {
		return fmt.Errorf("store: open landed file %s: %w", path, err)
	}
	defer f.Close()
	up, err := l.s.create(path, FileMeta{Mode: lf.mode, MTime: lf.mtime})
	if err != nil {
		return err
	}
	up.landing = true // this name's lock is held here
	up.serial = serial
	if _, err := io.CopyBuffer(up, f, make([]byte, l.s.cfg.BlockSize)); err != nil {
		up.Abort()
		return fmt.Errorf("store: ingest %s: %w", path, err)
	}
	if _, err := up.Commit(); err != nil {
		return err
	}
	return l.drop(lf)
}

// drop unlinks a landed file and forgets it (under its name's lock).
func (l *landing) drop(lf *landedFile) error {
	if err := os.Remove(lf.file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: remove landed file %s: %w", lf.path, err)
	}
	l.mu.Lock()
	if l.files[lf.path] == lf {
		delete(l.files, lf.path)
		delete(l.failed, lf.path)
		l.bytes -= lf.size
	}
	l.idle.Broadcast()
	l.mu.Unlock()
	return syncDir(filepath.Dir(lf.file))
}

// WaitIngested blocks until no landed file is waiting for ingest (or one
// failed and waits for its retry), or the store closes. Benchmarks and
// tests use it; ingest runs in the background otherwise.
func (s *Store) WaitIngested() {
	l := s.land
	l.mu.Lock()
	defer l.mu.Unlock()
	for (len(l.files) > len(l.failed) || l.busy > 0) && l.paused == 0 && !l.closed() {
		l.idle.Wait()
	}
}

func (l *landing) closed() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// Landed returns how many files are landed and not yet ingested.
func (s *Store) Landed() int {
	s.land.mu.Lock()
	defer s.land.mu.Unlock()
	return len(s.land.files)
}

// LandingFile is a WAL file being written into the landing area under its
// archive name (the FUSE mount's fast path: the kernel writes its bytes
// straight into File, see package fs). Commit makes it durable and
// archived; Abort discards it.
type LandingFile struct {
	l       *landing
	path    string
	dir     string
	name    string
	tmp     string
	f       *os.File
	unclaim func() // gives back its claim on free space
	done    bool

	size              int64 // at commit
	existed, uploaded bool  // for the observer
}

// CreateLanding starts a landing file for path, a WAL segment name. The
// space guard counts it as an upload of one segment.
func (s *Store) CreateLanding(path string, perm fs.FileMode) (*LandingFile, error) {
	dir, name, err := SplitPath(path)
	if err != nil {
		return nil, err
	}
	if wal.ParseName(name).Kind != wal.KindSegment {
		return nil, fmt.Errorf("%w: %s: only WAL segments land", ErrInvalidName, path)
	}
	select {
	case <-s.closing:
		return nil, ErrClosed
	default:
	}
	meta, err := s.DirMeta(dir)
	if err != nil && dir != "" {
		return nil, err
	}
	expect := int64(meta.SegSize)
	if expect == 0 {
		expect = 16 << 20
	}
	l := s.land
	tmpDir := filepath.Join(l.root, "tmp")
	if err := s.ensureWorkDir(tmpDir); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.seq++
	tmp := filepath.Join(tmpDir, strconv.FormatUint(l.seq, 10))
	l.mu.Unlock()
	// The kernel writes the bytes without asking: the room for a whole
	// segment must be there before the first one, and stays claimed
	// until the file is closed (spaceGuard.claimLanding).
	f, release, err := s.space.claimLanding(expect, func() (*os.File, error) {
		return os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	})
	if errors.Is(err, ErrNoSpace) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("store: create landing file for %s: %w", path, err)
	}
	return &LandingFile{l: l, path: joinPath(dir, name), dir: dir, name: name, tmp: tmp, f: f, unclaim: release}, nil
}

// File is the open landing file (read-write). Its owner writes the bytes
// at any offset; it must not close it.
func (lf *LandingFile) File() *os.File { return lf.f }

// Path is the name the file lands under.
func (lf *LandingFile) Path() string { return lf.path }

// Size is the file's current size.
func (lf *LandingFile) Size() (int64, error) {
	fi, err := lf.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("store: landing file %s: %w", lf.path, err)
	}
	return fi.Size(), nil
}

// Abort discards the landing file.
func (lf *LandingFile) Abort() {
	if lf.done {
		return
	}
	lf.done = true
	lf.unclaim()
	lf.f.Close()
	os.Remove(lf.tmp)
}

// Commit archives the landing file under its name. It returns what
// Upload.Commit returns for the same bytes: ErrInvalidWAL,
// ErrClusterMismatch, ErrExists (different content is archived or landed
// under the name), I/O errors; nil means durable (see "Landed files" in
// doc.go for the order). The landing file is gone afterwards either way.
// Config.Observer hears of it as of an upload's commit (an ingest later
// is not reported again).
func (lf *LandingFile) Commit(meta FileMeta) (info FileInfo, err error) {
	if lf.done {
		return FileInfo{}, ErrClosed
	}
	defer lf.Abort()
	start := time.Now()
	if o := lf.l.s.cfg.Observer; o != nil {
		defer func() {
			if !lf.uploaded { // an upload reports itself
				o.Committed(CommitEvent{Origin: meta.Origin, Dir: lf.dir, Name: lf.name, Size: lf.size, Stored: info.Stored,
					Existed: err == nil && lf.existed, Err: err, Duration: time.Since(start)})
			}
		}()
	}
	return lf.commit(meta)
}

func (lf *LandingFile) commit(meta FileMeta) (FileInfo, error) {
	l, s := lf.l, lf.l.s
	size, err := lf.Size()
	if err != nil {
		return FileInfo{}, err
	}
	lf.size = size
	if size > s.cfg.MaxFileSize {
		return FileInfo{}, fmt.Errorf("%w: %s exceeds %d bytes", ErrTooLarge, lf.path, s.cfg.MaxFileSize)
	}
	hdr, err := lf.validate(size)
	if err != nil {
		return FileInfo{}, err
	}
	if s.uploadsAtClose() {
		// Remote-ack or claims: a landed file would be acknowledged before
		// its ingest; upload it now, and the upload waits for the bucket
		// (remoteack.go) and claims its name (claims.go).
		return lf.upload(meta)
	}
	if hdr != nil {
		dm, err := s.DirMeta(lf.dir)
		if err == nil && dm.SysID == 0 || errors.Is(err, ErrNotFound) && lf.dir == "" {
			// The first segment of a directory sets its cluster identity
			// in the index; a landed one would not, and a second segment
			// of another cluster would land before the first is ingested.
			return lf.upload(meta)
		}
	}
	if err := lf.f.Chmod(meta.Mode.Perm()); err != nil {
		return FileInfo{}, fmt.Errorf("store: landing file %s: %w", lf.path, err)
	}
	if err := os.Chtimes(lf.tmp, meta.MTime, meta.MTime); err != nil {
		return FileInfo{}, fmt.Errorf("store: landing file %s: %w", lf.path, err)
	}
	if err := lf.f.Sync(); err != nil {
		return FileInfo{}, fmt.Errorf("store: fsync landing file %s: %w", lf.path, err)
	}
	unlock := l.lock(lf.path)
	if _, err := s.lookup(lf.path); err == nil {
		unlock()
		return lf.upload(meta) // archived already: the upload compares
	} else if !errors.Is(err, ErrNotFound) {
		unlock()
		return FileInfo{}, err
	}
	if cur := l.get(lf.path); cur != nil {
		defer unlock()
		same, err := sameContent(lf.f, size, cur)
		if err != nil {
			return FileInfo{}, err
		}
		if !same {
			return FileInfo{}, fmt.Errorf("%w: %s (landed %s, %d bytes; the new copy of %d bytes differs)",
				ErrExists, lf.path, cur.archived.UTC().Format(time.RFC3339), cur.size, size)
		}
		lf.existed = true
		return cur.info(), nil
	}
	final := l.pathOf(lf.dir, lf.name)
	err = s.ensureWorkDir(filepath.Dir(final))
	if err == nil {
		err = os.Rename(lf.tmp, final)
	}
	if err == nil {
		err = syncDir(filepath.Dir(final))
	}
	if err != nil {
		unlock()
		os.Remove(final)
		return FileInfo{}, fmt.Errorf("store: land %s: %w", lf.path, err)
	}
	lfile, err := statLanded(lf.path, final)
	if err != nil {
		unlock()
		return FileInfo{}, err
	}
	s.changes.Add(1) // a new file is visible
	l.mu.Lock()
	l.files[lf.path] = lfile
	l.bytes += size
	behind := l.bytes > s.cfg.LandingBytes
	l.mu.Unlock()
	if behind {
		// Back-pressure: the ingester is behind by more than the bound,
		// so this close waits for its own file's ingest. The file is
		// landed (durable) either way; a failure is retried in the
		// background.
		if err := l.ingestLocked(lf.path); err != nil {
			s.log.Warn("store: inline ingest of a landed file failed; it stays landed", "path", lf.path, "err", err)
		}
		if cur := l.get(lf.path); cur == nil {
			unlock()
			return s.Stat(lf.path)
		}
	}
	unlock()
	l.wake()
	return lfile.info(), nil
}

// upload archives the landing file through an ordinary upload.
func (lf *LandingFile) upload(meta FileMeta) (FileInfo, error) {
	lf.uploaded = true
	up, err := lf.l.s.Create(lf.path, meta)
	if err != nil {
		return FileInfo{}, err
	}
	if _, err := io.CopyBuffer(up, io.NewSectionReader(lf.f, 0, 1<<62), make([]byte, lf.l.s.cfg.BlockSize)); err != nil {
		up.Abort()
		return FileInfo{}, fmt.Errorf("store: %s: %w", lf.path, err)
	}
	return up.Commit()
}

// validate checks the file as Upload.Commit would, and returns the
// segment's header.
func (lf *LandingFile) validate(size int64) (*wal.LongPageHeader, error) {
	s := lf.l.s
	first := make([]byte, wal.DefaultBlockSize)
	n, err := lf.f.ReadAt(first, 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("store: read landing file %s: %w", lf.path, err)
	}
	if n < len(first) {
		return nil, fmt.Errorf("%w: %s is %d bytes, shorter than one WAL page", ErrInvalidWAL, lf.path, size)
	}
	h, err := wal.CheckSegment(wal.ParseName(lf.name), first, size, s.cfg.AllowUnknownMagic)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWAL, err)
	}
	if dir, err := s.DirMeta(lf.dir); err == nil {
		if err := checkCluster(&dir, &h, lf.path); err != nil {
			return nil, err
		}
	}
	return &h, nil
}

// sameContent compares f (size bytes) with a landed file.
func sameContent(f *os.File, size int64, cur *landedFile) (bool, error) {
	if size != cur.size {
		return false, nil
	}
	g, err := os.Open(cur.file)
	if err != nil {
		return false, fmt.Errorf("store: open landed file %s: %w", cur.path, err)
	}
	defer g.Close()
	a, b := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(a)) {
		n, err := f.ReadAt(a, off)
		if err != nil && err != io.EOF {
			return false, err
		}
		m, err := g.ReadAt(b[:n], off)
		if err != nil && err != io.EOF {
			return false, err
		}
		if m != n || !bytes.Equal(a[:n], b[:m]) {
			return false, nil
		}
	}
	return true, nil
}

// Create starts an upload of path ("NAME" or "DIR/NAME"). A name that is
// landed is ingested first, so the upload compares against it as against
// any archived file.
func (s *Store) Create(path string, meta FileMeta) (*Upload, error) {
	if err := s.settle(path); err != nil {
		return nil, err
	}
	return s.create(path, meta)
}

// settle ingests the landed files among paths now (for operations that
// work on store files only: rename, metadata changes, uploads).
func (s *Store) settle(paths ...string) error {
	for _, p := range paths {
		if s.land.get(strings.Trim(p, "/")) != nil {
			if err := s.land.ingest(strings.Trim(p, "/")); err != nil {
				return err
			}
		}
	}
	return nil
}

// gateNew is called by Upload.Commit of a name the index did not hold at
// Create: it takes the name's lock (so no landing commit decides about the
// name meanwhile) and ingests a file landed under it since, so the commit
// compares against it. The caller calls the returned unlock after its
// commit.
func (s *Store) gateNew(path string) (func(), error) {
	unlock := s.land.lock(path)
	if s.land.get(path) != nil {
		if err := s.land.ingestLocked(path); err != nil {
			unlock()
			return nil, err
		}
	}
	return unlock, nil
}

// statLanded returns the landed file at path as FileInfo, or ErrNotFound.
func (s *Store) statLanded(path string) (FileInfo, error) {
	if lf := s.land.get(strings.Trim(path, "/")); lf != nil {
		return lf.info(), nil
	}
	return FileInfo{}, fmt.Errorf("%w: %s", ErrNotFound, path)
}

// openLanded returns a reader of the landed file at path, or ErrNotFound.
// The reader holds the file open: an ingest that unlinks it meanwhile does
// not disturb it.
func (s *Store) openLanded(path string) (*Reader, error) {
	lf := s.land.get(strings.Trim(path, "/"))
	if lf == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	f, err := os.Open(lf.file)
	if errors.Is(err, fs.ErrNotExist) {
		// Ingested between the lookup and the open: it is a store file now.
		if f, err := s.lookup(path); err == nil {
			return &Reader{s: s, f: f}, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open landed file %s: %w", path, err)
	}
	dir, name, _ := SplitPath(lf.path)
	return &Reader{s: s, landed: f, f: &index.File{Dir: dir, Name: name, Size: lf.size, Mode: uint32(lf.mode),
		MTime: lf.mtime.UnixNano(), Archived: lf.archived.UnixNano(), BlockSize: uint32(s.cfg.BlockSize), Stored: lf.size}}, nil
}

// landedNames returns the names landed in dir, sorted.
func (s *Store) landedNames(dir string) []string {
	l := s.land
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, lf := range l.files {
		if d, name, _ := SplitPath(lf.path); d == dir || dir == "*" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// landedInfos returns the landed files of dir ("*": all), sorted by path.
func (s *Store) landedInfos(dir string) []FileInfo {
	l := s.land
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []FileInfo
	for _, lf := range l.files {
		if d, _, _ := SplitPath(lf.path); d == dir || dir == "*" {
			out = append(out, lf.info())
		}
	}
	slices.SortFunc(out, cmpFile)
	return out
}

// cmpFile orders files as the index lists them: by directory, then name.
func cmpFile(a, b FileInfo) int {
	if c := strings.Compare(a.Dir, b.Dir); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// mergeNames calls fn with the union of the sorted name streams of the
// index (walk) and the landed names, in byte order, each name once.
func mergeNames(landed []string, walk func(func(string) error) error, fn func(string) error) error {
	i := 0
	err := walk(func(name string) error {
		for i < len(landed) && landed[i] < name {
			if err := fn(landed[i]); err != nil {
				return err
			}
			i++
		}
		if i < len(landed) && landed[i] == name {
			i++ // ingested, not yet unlinked: once
		}
		return fn(name)
	})
	if err != nil {
		return err
	}
	for ; i < len(landed); i++ {
		if err := fn(landed[i]); err != nil {
			return err
		}
	}
	return nil
}

// removeLanded removes the landed file at path, under the name's lock
// held by the caller, and reports whether there was one. A removal
// cancels its ingest (the ingester finds it gone).
func (s *Store) removeLanded(path string) (bool, error) {
	lf := s.land.get(path)
	if lf == nil {
		return false, nil
	}
	s.changes.Add(1)
	return true, s.land.drop(lf)
}

// removeLandedMany removes the landed files among names of dir (retention)
// and returns the names it removed.
func (s *Store) removeLandedMany(dir string, names []string) (map[string]bool, error) {
	gone := map[string]bool{}
	for _, name := range names {
		p := joinPath(dir, name)
		if s.land.get(p) == nil {
			continue
		}
		unlock := s.land.lock(p)
		ok, err := s.removeLanded(p)
		unlock()
		if err != nil {
			return gone, err
		}
		gone[name] = ok
	}
	return gone, nil
}

// hasLanded reports whether files are landed in namespace dir.
func (s *Store) hasLanded(dir string) bool { return len(s.landedNames(dir)) > 0 }

// landedTotals counts the landed files the index does not hold yet, and
// those of them whose last ingest failed.
func (s *Store) landedTotals() (files, bytes, failing int64) {
	l := s.land
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, lf := range l.files {
		if _, err := s.lookup(lf.path); err != nil {
			files++
			bytes += lf.size
			if _, ok := l.failed[p]; ok {
				failing++
			}
		}
	}
	return files, bytes, failing
}
