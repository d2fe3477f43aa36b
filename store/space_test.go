package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/testenv"
)

// Full-disk tests run on a real, small tmpfs (testenv.SmallFS): the
// filesystem really runs out of space.

func freeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

func smallPacks(c *Config) {
	c.BlockSize, c.PackSize, c.MinFree = 64<<10, 4<<20, 1<<20
}

// checkNoSpace checks that err is the one-line refusal adapters turn into
// ENOSPC and exit 8.
func checkNoSpace(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("got %v, want ErrNoSpace (and ENOSPC)", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("refusal is not one line: %q", err)
	}
}

func checkIntact(t *testing.T, s *Store, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		if !bytes.Equal(readAll(t, s, name), data) {
			t.Fatalf("%s reads back different bytes", name)
		}
	}
	rep, err := s.Verify(context.Background(), "*", nil)
	if err != nil || len(rep.DataProblems()) > 0 {
		t.Fatalf("verify: %v %+v", err, rep.DataProblems())
	}
}

// pushUntilRefused archives 256 KiB random files until the store refuses
// one, and returns the refusal.
func pushUntilRefused(t *testing.T, s *Store, prefix string, acked map[string][]byte) error {
	t.Helper()
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("%s-%03d", prefix, i)
		data := randomBytes(256<<10, uint64(len(acked)+i))
		if _, err := put(t, s, name, data); err != nil {
			return err
		}
		acked[name] = data
	}
	t.Fatal("1000 pushes and no refusal")
	return nil
}

// TestFullDiskRefusedThenResumes fills the filesystem to just above the
// upload floor, pushes until refused, and checks that the refusal is clear,
// that nothing acknowledged is lost, that removals work below the floor,
// and that once space returns the very next push succeeds, without
// reopening the store.
func TestFullDiskRefusedThenResumes(t *testing.T) {
	root := testenv.SmallFS(t, 128<<20)
	s := openTest(t, filepath.Join(root, "data"), smallPacks)
	filler := filepath.Join(root, "filler")
	testenv.Fill(t, filler, s.space.uploadFloor()+3<<20)
	acked := map[string][]byte{}
	for cycle := 0; cycle < 3; cycle++ {
		err := pushUntilRefused(t, s, fmt.Sprintf("c%d", cycle), acked)
		checkNoSpace(t, err)
		if !strings.Contains(err.Error(), "takes no uploads") {
			t.Errorf("refusal does not say why: %v", err)
		}
		if _, err := put(t, s, "again", randomBytes(256<<10, uint64(1e9+cycle))); !errors.Is(err, ErrNoSpace) {
			t.Fatalf("second push on a full disk: %v", err)
		}
		checkIntact(t, s, acked)
		os.Remove(filler)
		start := time.Now()
		name := fmt.Sprintf("after-%d", cycle)
		data := randomBytes(300<<10, uint64(cycle))
		mustPut(t, s, name, data)
		acked[name] = data
		t.Logf("cycle %d: %d files acknowledged; first push after space returned took %v", cycle, len(acked), time.Since(start))
		testenv.Fill(t, filler, s.space.uploadFloor()+3<<20)
	}
	for name := range acked { // removals commit below the floor
		if err := s.Remove(name); err != nil {
			t.Fatalf("rm %s below the upload floor: %v", name, err)
		}
		delete(acked, name)
		if len(acked) < 5 {
			break
		}
	}
	checkIntact(t, s, acked)
}

// TestPackWriteFailureDoesNotWedge makes the pack writes themselves hit
// ENOSPC (the packs live on a small filesystem the free-space guard does
// not watch), and checks that the writer recovers as soon as space returns:
// the next push succeeds and the store reopens clean.
func TestPackWriteFailureDoesNotWedge(t *testing.T) {
	small := testenv.SmallFS(t, 16<<20)
	dir := t.TempDir()
	if err := os.Symlink(small, filepath.Join(dir, "packs")); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir, smallPacks)
	filler := filepath.Join(small, "filler")
	acked := map[string][]byte{}
	for cycle := 0; cycle < 4; cycle++ {
		testenv.Fill(t, filler, 2<<20)
		err := pushUntilRefused(t, s, fmt.Sprintf("c%d", cycle), acked)
		checkNoSpace(t, err)
		if !strings.Contains(err.Error(), "no space left on device") {
			t.Fatalf("want the kernel's ENOSPC from a pack write, got %v", err)
		}
		os.Remove(filler)
		name := fmt.Sprintf("after-%d", cycle)
		data := randomBytes(700<<10, uint64(cycle))
		mustPut(t, s, name, data) // the writer is not wedged
		acked[name] = data
	}
	checkIntact(t, s, acked)
	s.Close()
	s = openTest(t, dir, smallPacks)
	checkIntact(t, s, acked)
	checkGCInvariants(t, s)
}

// TestGCReclaimsTheActivePack: files that never filled a pack are removed;
// GC must free their space although their pack is the active one.
func TestGCReclaimsTheActivePack(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.BlockSize, c.PackSize = 64<<10, 64<<20 })
	for i := range 20 {
		mustPut(t, s, fmt.Sprintf("f%02d", i), randomBytes(200<<10, uint64(i)))
	}
	mustPut(t, s, "kept", randomBytes(100<<10, 99))
	for i := range 20 {
		if err := s.Remove(fmt.Sprintf("f%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.GC(context.Background(), GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DiskAfter > 1<<20 {
		t.Fatalf("GC left %d bytes on disk for 100 KiB live (before %d): %+v", rep.DiskAfter, rep.DiskBefore, rep)
	}
	t.Logf("active pack collected: disk %d -> %d bytes", rep.DiskBefore, rep.DiskAfter)
	if !bytes.Equal(readAll(t, s, "kept"), randomBytes(100<<10, 99)) {
		t.Fatal("kept file damaged")
	}
	mustPut(t, s, "later", randomBytes(100<<10, 98))
	checkGCInvariants(t, s)
}

// TestGCLeavesRewritesItCannotFinish: on a nearly full disk GC must delete
// what it can without copying, and not start copying live bytes that do not
// fit; when space returns it rewrites them.
func TestGCLeavesRewritesItCannotFinish(t *testing.T) {
	root := testenv.SmallFS(t, 128<<20)
	s := openTest(t, filepath.Join(root, "data"), smallPacks)
	kept := map[string][]byte{}
	for i := range 48 { // 12 MiB in 4 MiB packs
		name, data := fmt.Sprintf("f%02d", i), randomBytes(256<<10, uint64(i))
		mustPut(t, s, name, data)
		kept[name] = data
	}
	for i := range 48 { // every pack keeps a third live: all below the threshold
		if i%3 != 0 {
			if err := s.Remove(fmt.Sprintf("f%02d", i)); err != nil {
				t.Fatal(err)
			}
			delete(kept, fmt.Sprintf("f%02d", i))
		}
	}
	// The disk was full before: the reserve file is used up. Leave less
	// than one pack's live bytes above what the index needs.
	s.space.releaseReserve()
	filler := filepath.Join(root, "filler")
	testenv.Fill(t, filler, s.space.indexNeed()+512<<10)
	rep, err := s.GC(context.Background(), GCOptions{})
	if err != nil {
		t.Fatalf("gc on a full disk: %v", err)
	}
	if rep.PacksNoSpace == 0 || rep.BytesCopied > 0 {
		t.Fatalf("gc started rewrites that do not fit: %+v", rep)
	}
	t.Logf("full disk: %d packs deleted, %d left for lack of space, %d bytes copied", rep.PacksDeleted, rep.PacksNoSpace, rep.BytesCopied)
	os.Remove(filler)
	if rep, err = s.GC(context.Background(), GCOptions{}); err != nil || rep.PacksRewritten == 0 || rep.PacksNoSpace > 0 {
		t.Fatalf("gc once space returned: %+v, %v", rep, err)
	}
	t.Logf("space returned: %d packs rewritten, disk %d -> %d bytes", rep.PacksRewritten, rep.DiskBefore, rep.DiskAfter)
	checkIntact(t, s, kept)
	checkGCInvariants(t, s)
}

// TestPackResumedAcrossOpens: a store opened for every file, as `walrus
// put` without a server does, appends to one pack instead of starting one
// per call.
func TestPackResumedAcrossOpens(t *testing.T) {
	n := 200
	if testing.Short() || raceEnabled {
		n = 50
	}
	if os.Getenv("WALRUS_SOAK") != "" {
		n = 1000
	}
	dir := t.TempDir()
	files := map[string][]byte{}
	for i := range n {
		s, err := Open(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		name, data := fmt.Sprintf("f%04d", i), randomBytes(1000+i, uint64(i))
		if _, err := put(t, s, name, data); err != nil {
			t.Fatal(err)
		}
		files[name] = data
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("%d opens left %d packs, want 1", n, len(packs))
	}
	t.Logf("%d opens with one put each: %d pack", n, len(packs))
	s := openTest(t, dir)
	checkIntact(t, s, files)
}

// TestSmallPacksCompacted: a store full of tiny packs (written before packs
// were resumed) is merged into one by GC.
func TestSmallPacksCompacted(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.BlockSize, c.PackSize = 64<<10, 16<<20 })
	files := map[string][]byte{}
	for i := range 30 {
		name, data := fmt.Sprintf("f%02d", i), randomBytes(20<<10, uint64(i))
		mustPut(t, s, name, data)
		files[name] = data
		id, _ := s.pw.active()
		s.pw.sealActive(id) // the next put starts a new pack, as every `walrus put` did
	}
	rep, err := s.GC(context.Background(), GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(s.packs.dir, "*.pack"))
	if len(packs) > 1 {
		t.Fatalf("%d packs after GC, want 1: %+v", len(packs), rep)
	}
	checkIntact(t, s, files)
	checkGCInvariants(t, s)
}

// openPackFDs counts this process's descriptors open on files in dir.
func openPackFDs(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}

// TestOpenPackFilesBounded: reading from many packs keeps a bounded number
// of them open.
func TestOpenPackFilesBounded(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.BlockSize, c.PackSize, c.CacheBytes = 64<<10, 128<<10, 64<<10 })
	files := map[string][]byte{}
	for i := range 3 * maxIdlePacks {
		name, data := fmt.Sprintf("f%03d", i), randomBytes(100<<10, uint64(i))
		mustPut(t, s, name, data)
		files[name] = data
	}
	checkIntact(t, s, files) // reads every pack
	st, _ := s.Status()
	open := openPackFDs(t, s.packs.dir)
	if open > maxIdlePacks+1 {
		t.Fatalf("%d pack files open for %d packs, want at most %d", open, st.Packs, maxIdlePacks+1)
	}
	t.Logf("%d packs, %d open", st.Packs, open)
}

// TestFailedFsyncPoisonsUncommittedBytes: after an fsync failure of the
// active pack, a commit naming blocks written before it is refused (they
// may be lost), and the next upload goes to a new pack and succeeds.
func TestFailedFsyncPoisonsUncommittedBytes(t *testing.T) {
	s := openTest(t, t.TempDir(), smallPacks)
	mustPut(t, s, "before", randomBytes(100<<10, 1))
	u, err := s.Create("caught", FileMeta{Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(randomBytes(200<<10, 2)); err != nil {
		t.Fatal(err)
	}
	u.wg.Wait() // its blocks are in the pack, not yet fsynced
	id, _ := s.pw.active()
	s.pw.takeDirty()
	s.pw.poison(id) // what commitBatch does when the fsync of id fails
	if _, err := u.Commit(); !errors.Is(err, ErrRetry) {
		t.Fatalf("commit of blocks past a failed fsync: %v, want ErrRetry", err)
	}
	mustPut(t, s, "caught", randomBytes(200<<10, 2)) // the retry
	if now, _ := s.pw.active(); now == id {
		t.Fatalf("still appending to pack %d after its fsync failed", id)
	}
	checkIntact(t, s, map[string][]byte{"before": randomBytes(100<<10, 1), "caught": randomBytes(200<<10, 2)})
}

// The reserve file is restored at the next upload after an allocation
// that lost a race for the space (ENOSPC), not a minute later: a full disk
// right after must still find it, or removals fail there.
func TestReserveRestoredAfterLostRace(t *testing.T) {
	root := testenv.SmallFS(t, 128<<20)
	s := openTest(t, filepath.Join(root, "data"), smallPacks)
	s.space.releaseReserve()
	lost := true // another writer takes the space whenever the store tries
	allocate = func(path string, size int64) error {
		if lost {
			return syscall.ENOSPC
		}
		return allocateFile(path, size)
	}
	t.Cleanup(func() { allocate = allocateFile })
	mustPut(t, s, "first", randomBytes(64<<10, 1)) // its tries to restore the reserve lose the race
	lost = false
	if s.space.reserveShort() == 0 {
		t.Fatal("the injected ENOSPC did not keep the reserve from being restored")
	}
	mustPut(t, s, "second", randomBytes(64<<10, 2))
	if short := s.space.reserveShort(); short != 0 {
		t.Fatalf("reserve still %d bytes short after the next upload", short)
	}
	filler := filepath.Join(root, "filler")
	testenv.Fill(t, filler, 0)
	if err := s.Remove("second"); err != nil {
		t.Fatalf("rm on a full disk: %v", err)
	}
}

// Only what frees space may take the reserve file. An upload whose blocks
// are written when the disk fills, a background rewrite, a pack append:
// each is refused with ErrNoSpace and leaves the reserve alone. Deleting it
// for them handed its space to whoever wrote next (here, as in the e2e
// test that found it, the program that filled the disk goes on writing),
// and then rm failed on the full disk that it is meant to clear.
func TestOnlyRemovalsTakeTheReserve(t *testing.T) {
	root := testenv.SmallFS(t, 128<<20)
	s := openTest(t, filepath.Join(root, "data"), smallPacks)
	mustPut(t, s, "keep", randomBytes(256<<10, 1))
	if s.space.reserveShort() != 0 {
		t.Fatal("no reserve file to begin with")
	}
	u, err := s.Create("late", FileMeta{Mode: 0o600, MTime: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(randomBytes(2*s.cfg.BlockSize, 2)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the upload's two blocks in a pack", 10*time.Second, func() bool {
		s.pendingMu.Lock()
		defer s.pendingMu.Unlock()
		return len(s.pending) == 2
	})
	testenv.Fill(t, filepath.Join(root, "filler"), 0)

	if _, _, err := s.pw.append(index.Hash{1}, 10, index.CodecRaw, make([]byte, 10)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("pack append on a full disk: %v, want ErrNoSpace", err)
	}
	_, err = u.Commit()
	checkNoSpace(t, err)
	if _, err := os.Stat(filepath.Join(root, "data", ReserveFileName)); err != nil {
		t.Fatalf("the reserve file went for an upload or an append: %v", err)
	}
	testenv.Fill(t, filepath.Join(root, "filler2"), 0) // the other writer goes on
	if err := s.Remove("keep"); err != nil {
		t.Fatalf("rm on a full disk: %v", err)
	}
	if _, err := s.GC(context.Background(), GCOptions{}); err != nil {
		t.Fatalf("gc on a full disk: %v", err)
	}
}

// The kernel writes a landing file without asking walrus (FUSE
// passthrough), so each CreateLanding claims a whole segment's room until
// the file is closed. Without the claim, every create checked the same
// free bytes: twenty segments promised on a 128 MiB filesystem, whose
// writes then took the room the index needs (badger faults there).
func TestLandingFilesClaimTheirRoom(t *testing.T) {
	root := testenv.SmallFS(t, 128<<20)
	s := openTest(t, filepath.Join(root, "data"), smallPacks)
	var open []*LandingFile
	defer func() {
		for _, lf := range open {
			lf.Abort()
		}
	}()
	for i := range 20 {
		lf, err := s.CreateLanding(fmt.Sprintf("0000000100000000000000%02X", i+1), 0o600)
		if err != nil {
			checkNoSpace(t, err)
			break
		}
		open = append(open, lf)
	}
	if len(open) == 0 || len(open) == 20 {
		t.Fatalf("%d landing files of 16 MiB created on a 128 MiB filesystem", len(open))
	}
	seg := make([]byte, 16<<20)
	for _, lf := range open { // the kernel writes each whole segment
		if _, err := lf.File().WriteAt(seg, 0); err != nil {
			t.Fatalf("writing a landing file whose room was claimed: %v", err)
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	if free, need := int64(st.Bavail)*st.Bsize, s.space.indexNeed()+s.cfg.MinFree; free < need {
		t.Fatalf("%d landing files written: %d bytes free, below the %d the index and MinFree need", len(open), free, need)
	}
	for _, lf := range open {
		lf.Abort()
	}
	open = nil
	if lf, err := s.CreateLanding("000000010000000000000030", 0o600); err != nil {
		t.Fatalf("create after the landing files were closed: %v", err)
	} else {
		lf.Abort()
	}
}
