package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/walrus-archive/walrus/index"
)

// Free space: see "Full disk" in doc.go for why these rules keep the
// server alive and removals working on a full filesystem.

// DefaultMinFree is Config.MinFree when not set.
const DefaultMinFree = 64 << 20

// ReserveFileName is the file in the data directory that holds space back
// for the index (see "Full disk" in doc.go). Deleting it by hand in an
// emergency is harmless; walrus recreates it when space allows.
const ReserveFileName = "space-reserve"

// spaceRemeasure is how long a measurement of the index's need is reused.
const spaceRemeasure = time.Second

// noSpaceError is a refusal for lack of space. It matches ErrNoSpace and
// syscall.ENOSPC, so adapters that map errnos report ENOSPC.
type noSpaceError struct{ msg string }

func (e *noSpaceError) Error() string   { return e.msg }
func (e *noSpaceError) Unwrap() []error { return []error{ErrNoSpace, syscall.ENOSPC} }

// spaceErr marks a failed write as a lack of space when the system said so.
func spaceErr(err error) error {
	if err != nil && !errors.Is(err, ErrNoSpace) && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// spaceGuard decides, before each write, whether the data directory's
// filesystem has room for it. Locking: mu guards need, measured and the
// reserve fields; statfs needs no lock.
type spaceGuard struct {
	dir      string // the data directory
	indexDir string
	minFree  int64
	log      *slog.Logger

	statfsFailed atomic.Bool // logged once

	mu        sync.Mutex
	need      int64 // index.SpaceNeeded at measured
	measured  time.Time
	reserved  int64     // bytes allocated to the reserve file (0: none)
	failed    time.Time // last failed attempt to allocate it
	noReserve bool      // the filesystem cannot preallocate

	// Landing files are written by the kernel without asking (FUSE
	// passthrough): the room for a whole segment is claimed when one is
	// created and counted as taken until it is closed. claimGate makes
	// check-and-claim one step; claimMu guards claims.
	claimGate sync.Mutex
	claimMu   sync.Mutex
	claims    map[*os.File]int64
}

func newSpaceGuard(cfg Config) *spaceGuard {
	g := &spaceGuard{dir: cfg.Dir, indexDir: filepath.Join(cfg.Dir, "index"), minFree: cfg.MinFree, log: cfg.Logger}
	if fi, err := os.Stat(g.reservePath()); err == nil {
		g.reserved = fi.Size()
	}
	return g
}

func (g *spaceGuard) reservePath() string { return filepath.Join(g.dir, ReserveFileName) }

// free returns the bytes available on the data directory's filesystem, or
// false when the filesystem cannot say (then nothing is refused).
func (g *spaceGuard) free() (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(g.dir, &st); err != nil {
		if !g.statfsFailed.Swap(true) {
			g.log.Warn("statfs of the data directory failed; free space is not checked", "dir", g.dir, "err", err)
		}
		return 0, false
	}
	return int64(st.Bavail)*st.Bsize - g.unwritten(), true
}

// unwritten is what the open landing files may still write of their
// claims.
func (g *spaceGuard) unwritten() int64 {
	g.claimMu.Lock()
	defer g.claimMu.Unlock()
	var n int64
	for f, claim := range g.claims {
		if fi, err := f.Stat(); err == nil {
			claim -= fi.Size()
		}
		n += max(0, claim)
	}
	return n
}

// claimLanding checks room for n bytes as forUpload does and, if there is
// room, creates a file with create and claims n bytes of free space for
// it until release is called: two landing files created together do not
// both count the same free bytes.
func (g *spaceGuard) claimLanding(n int64, create func() (*os.File, error)) (f *os.File, release func(), err error) {
	g.claimGate.Lock()
	defer g.claimGate.Unlock()
	if err := g.forUpload(n); err != nil {
		return nil, nil, err
	}
	if f, err = create(); err != nil {
		return nil, nil, err
	}
	g.claimMu.Lock()
	if g.claims == nil {
		g.claims = map[*os.File]int64{}
	}
	g.claims[f] = n
	g.claimMu.Unlock()
	return f, func() {
		g.claimMu.Lock()
		delete(g.claims, f)
		g.claimMu.Unlock()
	}, nil
}

// indexNeed returns the free space the index must keep (index.SpaceNeeded),
// re-measured at most once per spaceRemeasure.
func (g *spaceGuard) indexNeed() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.measured) < spaceRemeasure {
		return g.need
	}
	need, err := index.SpaceNeeded(g.indexDir, index.Options{})
	if err != nil {
		g.log.Warn("measuring the index failed", "err", err)
		return g.need
	}
	g.need, g.measured = need, time.Now()
	return need
}

// uploadFloor is the free space below which uploads are refused: what the
// index needs, MinFree, and whatever the reserve file lacks, so that uploads
// never take the space the reserve must be able to get back.
func (g *spaceGuard) uploadFloor() int64 { return g.indexNeed() + g.minFree + g.reserveShort() }

// reserveShort returns the bytes the reserve file lacks.
func (g *spaceGuard) reserveShort() int64 {
	want := g.reserveSize()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.noReserve {
		return 0
	}
	return max(0, want-g.reserved)
}

// forUpload refuses n more bytes of upload data when they would leave less
// than uploadFloor free. When the reserve file was released (or the index
// outgrew it) and there is room again, it is allocated first.
func (g *spaceGuard) forUpload(n int64) error {
	free, ok := g.free()
	if !ok {
		return nil
	}
	if g.growReserve(free - n) {
		free, _ = g.free()
	}
	floor := g.uploadFloor()
	if free-n < floor {
		why := fmt.Sprintf("what its index needs %s + min free %s", inMiB(g.indexNeed()), inMiB(g.minFree))
		if short := g.reserveShort(); short > 0 {
			why += fmt.Sprintf(" + %s to restore its reserve file", inMiB(short))
		}
		return &noSpaceError{fmt.Sprintf("%v: %s has %s free; walrus takes no uploads below %s (%s), "+
			"so that rm, retain and gc keep working: remove or retain files and run walrus gc, or add space",
			ErrNoSpace, g.dir, inMiB(free), inMiB(floor), why)}
	}
	return nil
}

// growReserve allocates (or grows) the reserve file when free bytes leave
// room for it above what the index needs and MinFree. It reports whether
// it did. After a failure other than ENOSPC it waits a minute before it
// tries again; ENOSPC only means another writer took the space between the
// check and the allocation, and the next upload must try again, or the
// next full disk finds no reserve and removals fail.
func (g *spaceGuard) growReserve(free int64) bool {
	short := g.reserveShort()
	if short == 0 || free-short < g.indexNeed()+g.minFree {
		return false
	}
	want := g.reserveSize()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.noReserve || g.reserved >= want || time.Since(g.failed) < time.Minute {
		return false
	}
	if err := allocate(g.reservePath(), want); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return false
		}
		g.failed = time.Now()
		if errors.Is(err, syscall.EOPNOTSUPP) {
			g.noReserve = true
			g.log.Warn("this filesystem cannot preallocate files: no free-space reserve file, so removals "+
				"can fail on a disk that other writers fill completely", "path", g.reservePath())
		} else {
			g.log.Warn("could not allocate the free-space reserve file", "path", g.reservePath(), "err", err)
		}
		return false
	}
	g.reserved = want
	g.log.Debug("allocated the free-space reserve file", "path", g.reservePath(), "bytes", want)
	return true
}

// reserveSize is the index's need and a quarter more, so that deleting the
// reserve file on a full filesystem gives the index all it needs even after
// it grew a little.
func (g *spaceGuard) reserveSize() int64 {
	need := g.indexNeed()
	return (need + need/4 + 1<<20 - 1) &^ (1<<20 - 1)
}

// forIndex refuses a write of n bytes (0: an index transaction) that would
// leave the index less free space than it needs. Before refusing it deletes
// the reserve file, which exists for exactly this moment: the filesystem
// filled up anyway (other writers, work files) and a removal must still be
// able to commit. Only what frees space or must run to stay consistent
// calls it (removals, GC, Open, Close); everything else calls forData.
func (g *spaceGuard) forIndex(n int64) error { return g.check(n, true) }

// forData is forIndex for writes that do not free space: pack appends and
// the commits of uploads and background work. They never delete the
// reserve file: space it gave back would go to whoever writes next (the
// program that filled the disk, usually), and rm, retain and gc would then
// fail on the full disk they are meant to clear.
func (g *spaceGuard) forData(n int64) error { return g.check(n, false) }

// check is forIndex (release) or forData (not).
func (g *spaceGuard) check(n int64, release bool) error {
	free, ok := g.free()
	if !ok {
		return nil
	}
	need := g.indexNeed()
	if free-n >= need {
		return nil
	}
	if release && g.releaseReserve() {
		if free, ok = g.free(); !ok || free-n >= need {
			return nil
		}
	}
	what := "an index write"
	if n > 0 {
		what = "writing " + inMiB(n)
	}
	todo := ", and its reserve file is used up: free space on this filesystem"
	if !release {
		todo = " (its reserve file is kept for rm, retain and gc): remove or retain files and run walrus gc, or add space"
	}
	return &noSpaceError{fmt.Sprintf("%v: %s has %s free; %s would leave less than the %s walrus's index needs to write safely%s",
		ErrNoSpace, g.dir, inMiB(free), what, inMiB(need), todo)}
}

// releaseReserve deletes the reserve file; it reports whether one was
// deleted.
func (g *spaceGuard) releaseReserve() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reserved == 0 {
		return false
	}
	g.reserved = 0
	if err := os.Remove(g.reservePath()); err != nil {
		g.log.Error("could not delete the free-space reserve file", "path", g.reservePath(), "err", err)
		return false
	}
	g.log.Warn("filesystem full: deleted the free-space reserve file so that the index stays writable; "+
		"it is recreated when space returns", "path", g.reservePath())
	return true
}

// allocateFile creates or grows path to size bytes, allocated (not a
// sparse file: the point is to hold the blocks).
// allocate is allocateFile; tests replace it to inject failures.
var allocate = allocateFile

func allocateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func inMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
