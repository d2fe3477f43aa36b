package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/retention"
	"github.com/walrus-archive/walrus/internal/walgen"
)

func repairConfig(c *Config) {
	c.BlockSize, c.PackSize, c.CacheBytes = 64<<10, 4<<20, 1<<20
}

// workload is what repairWorkload archived, removed and changed.
type workload struct {
	removed []string // paths that must stay gone
	gcRep   GCReport
}

// repairWorkload fills s the way an archive lives: two clusters in their
// own namespaces (segments, a .history, .backup files) with retention
// applied, opaque files in the root and in a third namespace (some with
// identical content), files removed with rm, renamed, chmodded and
// touched, an empty namespace, one created and removed again, and GC.
// Writers run concurrently, so group commits carry several files.
func repairWorkload(t *testing.T, s *Store, segs, opaque int) workload {
	t.Helper()
	var w workload
	now := time.Now()
	for ci, ns := range []string{"c1", "c2"} {
		sysID := uint64(testSysID) + uint64(ci)
		parallel(t, segs, func(i int) error {
			sg := walgen.Segment{TLI: 1, SegNo: uint64(i + 1), SysID: sysID, SegSize: mib, Seed: uint64(i%5 + ci), UsedPages: 2 + i%3}
			_, err := put(t, s, ns+"/"+sg.Name(), sg.Bytes())
			return err
		})
		for k, at := range []uint64{uint64(segs / 4), uint64(segs / 2)} {
			name, text := backupText(1, at, at+1, fmt.Sprintf("b%d", k), now.Add(time.Duration(k-2)*time.Hour))
			mustPut(t, s, ns+"/"+name, []byte(text))
		}
	}
	mustPut(t, s, "c2/00000002.history", []byte(historyText("1\t0/A00100\tno recovery target specified")))
	parallel(t, opaque, func(i int) error {
		ns := []string{"", "c3", "c1"}[i%3]
		data := randomBytes(1+i%5*4096+i, uint64(i%(opaque/2+1))) // every other pair shares content
		_, err := put(t, s, joinPath(ns, fmt.Sprintf("file-%05d.dat", i)), data)
		return err
	})
	before := names(t, s, "c1")
	reps, err := s.Retain(context.Background(), "c1", retention.Policy{KeepBackups: 1}, now, false)
	if err != nil || len(reps) != 1 || len(reps[0].Removed) == 0 {
		t.Fatalf("retention removed nothing: %+v %v", reps, err)
	}
	for _, r := range reps[0].Removed {
		w.removed = append(w.removed, "c1/"+r.Name)
	}
	if len(names(t, s, "c1")) >= len(before) {
		t.Fatal("retention removed nothing")
	}
	for i := 0; i < opaque; i += 17 {
		p := joinPath([]string{"", "c3", "c1"}[i%3], fmt.Sprintf("file-%05d.dat", i))
		if err := s.Remove(p); err != nil {
			t.Fatal(err)
		}
		w.removed = append(w.removed, p)
	}
	rms := len(w.removed)
	for i := 1; i < opaque; i += 29 {
		if i%17 == 0 {
			continue // removed above
		}
		from := joinPath([]string{"", "c3", "c1"}[i%3], fmt.Sprintf("file-%05d.dat", i))
		if _, err := s.Rename(from, joinPath("c3", fmt.Sprintf("renamed-%05d", i))); err != nil {
			t.Fatal(err)
		}
		w.removed = append(w.removed, from)
	}
	t.Logf("removed: %d by retention, %d by rm, %d renamed away", len(reps[0].Removed), rms-len(reps[0].Removed), len(w.removed)-rms)
	mode, mtime := fs.FileMode(0o444), time.Unix(1600000000, 123456789)
	if _, err := s.SetMeta("file-00003.dat", &mode, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetMeta("c3/file-00004.dat", nil, &mtime); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"empty", "gone"} {
		if err := s.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Rmdir("gone"); err != nil {
		t.Fatal(err)
	}
	if w.gcRep, err = s.GC(context.Background(), GCOptions{Threshold: 0.9}); err != nil {
		t.Fatal(err)
	}
	return w
}

// parallel runs fn(0..n-1) on four goroutines.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// storeState is everything a client can see of a store.
type storeState struct {
	Files  map[string]FileInfo
	Sums   map[string][32]byte
	Dirs   []index.Dir
	Status Status
}

func stateOf(t *testing.T, s *Store) storeState {
	t.Helper()
	st := storeState{Files: map[string]FileInfo{}, Sums: map[string][32]byte{}}
	err := s.Walk(context.Background(), "*", func(fi FileInfo) error {
		st.Files[fi.Path] = fi
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range st.Files {
		st.Sums[p] = sha256.Sum256(readAll(t, s, p))
	}
	if st.Dirs, err = s.Dirs(); err != nil {
		t.Fatal(err)
	}
	for i := range st.Dirs {
		st.Dirs[i].StoredBytes = 0 // attributed to the first namespace storing a block: may differ
	}
	if st.Status, err = s.Status(); err != nil {
		t.Fatal(err)
	}
	st.Status.DiskBytes, st.Status.Packs = 0, 0 // the checkpoint repair writes
	return st
}

func compareStates(t *testing.T, want, got storeState) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("repaired store differs (-before +after):\n%s", d)
	}
}

func checkRemovedGone(t *testing.T, s *Store, removed []string) {
	t.Helper()
	for _, p := range removed {
		if _, err := s.Stat(p); !errors.Is(err, ErrNotFound) {
			t.Fatalf("removed %s is back after repair: %v", p, err)
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
}

// TestRepairRebuildsLostIndex: losing the index must not lose the archive.
// A store with thousands of files loses index/ (or only its MANIFEST):
// every Open refuses and deletes nothing; Repair rebuilds an index under
// which every file reads back byte-identical with the same metadata,
// removed files stay removed and verify finds nothing; also for the state
// before GC rewrote and retired packs.
func TestRepairRebuildsLostIndex(t *testing.T) {
	segs, opaque := 400, 1800
	if testing.Short() || raceEnabled {
		segs, opaque = 40, 200
	}
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	s := openTest(t, dir, repairConfig)
	w := repairWorkload(t, s, segs, opaque)
	if w.gcRep.PacksRewritten+w.gcRep.PacksDeleted == 0 {
		t.Fatalf("GC rewrote and retired nothing: %+v", w.gcRep)
	}
	want := stateOf(t, s)
	if len(want.Files) < 1000 && !testing.Short() && !raceEnabled {
		t.Fatalf("only %d files", len(want.Files))
	}
	s.Close()
	t.Logf("%d files, %d removed; gc %+v", len(want.Files), len(w.removed), w.gcRep)

	for _, tc := range []struct {
		name   string
		damage func(dir string) error
		want   error
	}{
		{"index deleted", func(dir string) error { return os.RemoveAll(filepath.Join(dir, "index")) }, ErrIndexMissing},
		{"MANIFEST deleted", func(dir string) error { return os.Remove(filepath.Join(dir, "index", "MANIFEST")) }, ErrIndexDamaged},
		{"index emptied", func(dir string) error {
			os.RemoveAll(filepath.Join(dir, "index"))
			db, err := index.Open(filepath.Join(dir, "index"), index.Options{})
			if err == nil {
				err = db.Close()
			}
			return err
		}, ErrIndexDamaged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "data")
			copyDir(t, dir, d)
			if err := tc.damage(d); err != nil {
				t.Fatal(err)
			}
			packsBefore := packListing(t, d)
			_, err := Open(Config{Dir: d, MustExist: true})
			if !errors.Is(err, tc.want) {
				t.Fatalf("open of a store with a %s: %v, want %v", tc.name, err, tc.want)
			}
			if got := packListing(t, d); got != packsBefore {
				t.Fatalf("a refused open changed the packs:\n%s\n%s", packsBefore, got)
			}
			start := time.Now()
			rep, err := Repair(context.Background(), Config{Dir: d}, RepairOptions{})
			if err != nil {
				t.Fatalf("repair: %v (%+v)", err, rep)
			}
			t.Logf("repair of %d files, %d packs, %d MiB: %.2fs", rep.Files, rep.Packs, rep.PackBytes>>20, time.Since(start).Seconds())
			if len(rep.Problems) > 0 || rep.Verify == nil || len(rep.Verify.Problems) > 0 {
				t.Fatalf("repair found problems: %+v / %+v", rep.Problems, rep.Verify)
			}
			s := openTest(t, d, repairConfig)
			compareStates(t, want, stateOf(t, s))
			checkRemovedGone(t, s, w.removed)
		})
	}
}

// packListing lists the pack files with their sizes and times.
func packListing(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d %d\n", e.Name(), fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

// TestRepairBeforeAndAfterGC: repair of the same archive gives the same
// files whether or not GC has rewritten and retired its packs since.
func TestRepairBeforeAndAfterGC(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openTest(t, dir, repairConfig)
	n := uint64(24)
	if raceEnabled {
		n = 12
	}
	for i := uint64(1); i <= n; i++ {
		sg := gcSeg(i)
		sg.UsedPages = 16
		mustPut(t, s, "c/"+sg.Name(), sg.Bytes())
	}
	for i := uint64(1); i <= n; i += 3 {
		if err := s.Remove("c/" + gcSeg(i).Name()); err != nil {
			t.Fatal(err)
		}
	}
	want := stateOf(t, s)
	s.Close()
	pre := filepath.Join(t.TempDir(), "data")
	copyDir(t, dir, pre)
	s = openTest(t, dir, repairConfig)
	rep, err := s.GC(context.Background(), GCOptions{Threshold: 0.95})
	if err != nil || rep.PacksRewritten+rep.PacksDeleted == 0 {
		t.Fatalf("gc: %+v %v", rep, err)
	}
	s.Close()
	for _, d := range []string{pre, dir} {
		os.RemoveAll(filepath.Join(d, "index"))
		if rep, err := Repair(context.Background(), Config{Dir: d}, RepairOptions{}); err != nil || len(rep.Verify.DataProblems()) > 0 {
			t.Fatalf("repair: %v %+v %+v", err, rep, rep.Verify)
		}
		s := openTest(t, d, repairConfig)
		compareStates(t, want, stateOf(t, s))
		s.Close()
	}
}

// TestOpenKeepsUnknownPacks: a pack file the index does not know may hold
// the only copy of data a damaged index lost. Open keeps it, GC leaves it,
// verify reports it, repair accounts for it. (Today's code deleted it.)
func TestOpenKeepsUnknownPacks(t *testing.T) {
	dir := t.TempDir()
	small := func(c *Config) { repairConfig(c); c.PackSize = 256 << 10 }
	s := openTest(t, dir, small)
	a, b := randomBytes(100<<10, 1), randomBytes(600<<10, 2)
	mustPut(t, s, "a", a)
	mustPut(t, s, "b", b) // spills over into packs 2 and 3
	s.Close()
	lost := packFileName(filepath.Join(dir, "packs"), 3)
	if _, err := os.Stat(lost); err != nil {
		t.Fatal(err)
	}
	// The index loses everything it knew about pack 3.
	db, err := index.Open(filepath.Join(dir, "index"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(x *index.Txn) error { return errors.Join(x.DeletePack(3), x.DeleteNewPack(3)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = openTest(t, dir, small)
	if _, err := os.Stat(lost); err != nil {
		t.Fatalf("Open deleted a pack the index does not know: %v", err)
	}
	vr, err := s.Verify(context.Background(), "*", nil)
	if err != nil || !hasProblem(vr, "unknown to the index") {
		t.Fatalf("verify: %v %+v, want the unknown pack reported", err, vr.Problems)
	}
	if _, err := s.GC(context.Background(), GCOptions{Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lost); err != nil {
		t.Fatalf("GC deleted a pack the index does not know: %v", err)
	}
	s.Close()
	if rep, err := Repair(context.Background(), Config{Dir: dir}, RepairOptions{}); err != nil || len(rep.Verify.Problems) > 0 {
		t.Fatalf("repair: %v %+v", err, rep.Verify)
	}
	s = openTest(t, dir, small)
	if !bytes.Equal(readAll(t, s, "a"), a) || !bytes.Equal(readAll(t, s, "b"), b) {
		t.Fatal("repair did not account for every pack")
	}
}

// TestOpenRefusesIndexOlderThanPacks: an index restored from an old backup
// knows shorter packs than there are; cutting them back ("torn tails")
// would delete acknowledged files. The journal in the tail tells a lost
// commit from one a crash cut short.
func TestOpenRefusesIndexOlderThanPacks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openTest(t, dir, repairConfig)
	mustPut(t, s, "a", randomBytes(100<<10, 1))
	s.Close()
	backup := filepath.Join(t.TempDir(), "index")
	copyDir(t, filepath.Join(dir, "index"), backup)
	s = openTest(t, dir, repairConfig)
	b, c := randomBytes(100<<10, 2), randomBytes(100<<10, 3)
	mustPut(t, s, "b", b)
	mustPut(t, s, "c", c)
	s.Close()
	os.RemoveAll(filepath.Join(dir, "index"))
	copyDir(t, backup, filepath.Join(dir, "index"))
	before := packListing(t, dir)
	if _, err := Open(Config{Dir: dir, MustExist: true}); !errors.Is(err, ErrIndexDamaged) || !strings.Contains(err.Error(), "older than the packs") {
		t.Fatalf("open with an old index: %v, want ErrIndexDamaged", err)
	}
	if packListing(t, dir) != before {
		t.Fatal("a refused open changed the packs")
	}
	if _, err := Repair(context.Background(), Config{Dir: dir}, RepairOptions{}); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, repairConfig)
	if !bytes.Equal(readAll(t, s, "b"), b) || !bytes.Equal(readAll(t, s, "c"), c) {
		t.Fatal("files committed after the index backup lost")
	}
}

// fixPackID rewrites a copied pack's header to name id.
func fixPackID(t *testing.T, name string, id uint32) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hdr [4]byte
	hdr[0], hdr[1], hdr[2], hdr[3] = byte(id), byte(id>>8), byte(id>>16), byte(id>>24)
	if _, err := f.WriteAt(hdr[:], 12); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyFindsIndexAndPacksDisagree: verify compares the index with the
// pack journal and checks pack headers.
func TestVerifyFindsIndexAndPacksDisagree(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, repairConfig)
	mustPut(t, s, "x/a", randomBytes(100<<10, 1))
	mustPut(t, s, "x/b", randomBytes(100<<10, 2))
	mode := fs.FileMode(0o400)
	if _, err := s.SetMeta("x/b", &mode, nil); err != nil {
		t.Fatal(err)
	}
	if vr, err := s.Verify(context.Background(), "*", nil); err != nil || len(vr.Problems) > 0 {
		t.Fatalf("verify of a healthy store: %v %+v", err, vr.Problems)
	}
	// The index loses a file record and changes another behind the packs' back.
	err := s.idx.Update(func(x *index.Txn) error {
		f, err := x.File("x", "b")
		if err != nil {
			return err
		}
		f.Mode = 0o644
		if err := x.PutFile(f); err != nil {
			return err
		}
		return x.DeleteFile("x", "a")
	})
	if err != nil {
		t.Fatal(err)
	}
	vr, err := s.Verify(context.Background(), "*", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range vr.Problems {
		got = append(got, p.Path+": "+p.Err)
	}
	sort.Strings(got)
	if len(got) != 2 || !strings.Contains(got[0], "x/a: recorded in the packs, missing from the index") ||
		!strings.Contains(got[1], "x/b: the index and the pack journal disagree about it: mode (index 644, packs 400)") {
		t.Fatalf("verify problems: %q", got)
	}
	s.Close()
	// A damaged pack header.
	f, err := os.OpenFile(packFileName(filepath.Join(dir, "packs"), 1), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("X"), 0)
	f.Close()
	s = openTest(t, dir, repairConfig)
	vr, err = s.Verify(context.Background(), "x", nil)
	if err != nil || !hasProblem(vr, "bad pack magic") {
		t.Fatalf("verify of a damaged pack header: %v %+v", err, vr.Problems)
	}
}

func hasProblem(vr VerifyReport, text string) bool {
	for _, p := range vr.Problems {
		if strings.Contains(p.Err, text) {
			return true
		}
	}
	return false
}

// downgradeToLegacy turns a store into one written before packs carried a
// journal: pack headers say version 1, every journal record becomes a
// block record no file uses (same length, so offsets hold), and the index
// says its records are not covered by the packs.
func downgradeToLegacy(t *testing.T, dir string) {
	t.Helper()
	ids, _, err := listPacks(filepath.Join(dir, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		name := packFileName(filepath.Join(dir, "packs"), id)
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		data[8] = 1
		var offs []int64
		scanPack(bytes.NewReader(data), id, int64(len(data)), true, func(off int64, h recordHeader, payload []byte) error {
			if h.Codec == codecJournal {
				offs = append(offs, off)
			}
			return nil
		})
		for _, off := range offs {
			hdr := data[off : off+recordHeaderLen]
			payload := data[off+recordHeaderLen : off+recordHeaderLen+int64(len32(hdr[40:44]))]
			encodeRecordHeader(hdr, sha256.Sum256(payload), len(payload), index.CodecRaw, payload)
		}
		if err := os.WriteFile(name, data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	db, err := index.Open(filepath.Join(dir, "index"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(x *index.Txn) error { return x.PutJournal(&index.Journal{}) })
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func len32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// TestRepairOfPacksWithoutJournal: packs written before walrus journaled
// file records name no file. Repair refuses to build an index without
// their files unless forced; a store opened once by this walrus with its
// index intact is checkpointed, and then repairs fully.
func TestRepairOfPacksWithoutJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openTest(t, dir, repairConfig)
	files := map[string][]byte{}
	for i := 0; i < 20; i++ {
		p := fmt.Sprintf("ns/f%02d", i)
		files[p] = randomBytes(50<<10+i, uint64(i))
		mustPut(t, s, p, files[p])
	}
	s.Close()
	downgradeToLegacy(t, dir)

	lost := filepath.Join(t.TempDir(), "data")
	copyDir(t, dir, lost)
	os.RemoveAll(filepath.Join(lost, "index"))
	rep, err := Repair(context.Background(), Config{Dir: lost}, RepairOptions{})
	if !errors.Is(err, ErrUnnamed) || len(rep.UnnamedPacks) == 0 || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("repair of journal-less packs: %v %+v, want ErrUnnamed naming the packs and --force", err, rep)
	}
	if _, err := os.Stat(filepath.Join(lost, "index")); !os.IsNotExist(err) {
		t.Fatalf("a refused repair made an index: %v", err)
	}
	rep, err = Repair(context.Background(), Config{Dir: lost}, RepairOptions{Force: true})
	if err != nil || rep.Files != 0 || len(rep.UnnamedPacks) == 0 {
		t.Fatalf("forced repair: %v %+v", err, rep)
	}

	// The same store with its index: Open checkpoints it, after which
	// losing the index loses nothing.
	s = openTest(t, dir, repairConfig)
	s.Close()
	os.RemoveAll(filepath.Join(dir, "index"))
	if rep, err := Repair(context.Background(), Config{Dir: dir}, RepairOptions{}); err != nil || len(rep.Verify.Problems) > 0 {
		t.Fatalf("repair after the checkpoint: %v %+v", err, rep)
	}
	s = openTest(t, dir, repairConfig)
	for p, data := range files {
		if !bytes.Equal(readAll(t, s, p), data) {
			t.Fatalf("%s differs", p)
		}
	}
}

// repairChild is run in a child process by TestRepairCrash: it repairs dir
// and prints a line at every progress report, until killed.
func repairChild(dir string) {
	_, err := Repair(context.Background(), Config{Dir: dir}, RepairOptions{Progress: func(p RepairProgress) {
		fmt.Printf("progress %s %d\n", p.Phase, p.Items)
	}})
	fmt.Println("done", err)
}

// TestRepairCrash SIGKILLs repair at random points (scanning, writing the
// new index, swapping it in, verifying); whatever it left, another repair
// completes the job.
func TestRepairCrash(t *testing.T) {
	iterations, segs, opaque := 12, 30, 200
	if testing.Short() || raceEnabled {
		iterations, segs, opaque = 6, 10, 60
	}
	dir := filepath.Join(t.TempDir(), "data")
	s := openTest(t, dir, func(c *Config) { repairConfig(c); c.PackSize = 512 << 10 })
	w := repairWorkload(t, s, segs, opaque)
	want := stateOf(t, s)
	s.Close()
	t.Logf("%d files, %d removed", len(want.Files), len(w.removed))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	phases := map[string]int{}
	for it := 0; it < iterations; it++ {
		os.RemoveAll(filepath.Join(dir, "index"))
		ids, _, err := listPacks(filepath.Join(dir, "packs"))
		if err != nil {
			t.Fatal(err)
		}
		// The child prints a line per pack scanned, one before writing the
		// new index, one before swapping it in, then one per file verified:
		// aim at each in turn.
		n := len(ids)
		killAfter := []int{0, n / 2, n + 1, n + 2, n + 1, n + 2 + rng.IntN(20)}[it%6]
		last := "start"
		runKilledChild(t, "WALRUS_REPAIR_CHILD="+dir, 0, killAfter, time.Duration(rng.IntN(3000))*time.Microsecond, func(f []string) bool {
			if len(f) >= 2 && f[0] == "progress" {
				last = f[1]
			}
			return len(f) >= 2 && (f[0] == "progress" || f[0] == "done")
		})
		phases[last]++
		if s, err := Open(Config{Dir: dir, MustExist: true}); err == nil {
			s.Close() // killed after the swap: the index is whole already
		}
		rep, err := Repair(context.Background(), Config{Dir: dir}, RepairOptions{})
		if err != nil || len(rep.Verify.DataProblems()) > 0 {
			t.Fatalf("iteration %d: repair after a killed repair: %v %+v", it, err, rep)
		}
		s := openTest(t, dir, repairConfig)
		compareStates(t, want, stateOf(t, s))
		s.Close()
	}
	t.Logf("killed after the last line of these phases: %v", phases)
}

// TestRepairNeverReusesSeq: the valid first part of a batch a crash cut
// short stays in a repaired pack; batches committed after the repair must
// not reuse its number, or the next repair could not tell them apart.
func TestRepairNeverReusesSeq(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, repairConfig)
	mustPut(t, s, "a", randomBytes(10<<10, 1))
	var last uint64
	s.idx.View(func(x *index.Txn) error { j, _, _ := x.Journal(); last = j.LastSeq; return nil })
	s.Close()
	// Part 0 of 2 of batch last+1, naming a file whose blocks never made it.
	torn := &jrecord{typ: jrBatch, seq: last + 1, prev: last, covered: true, parts: 2, entries: []jentry{
		{kind: jeFile, file: &index.File{Dir: "", Name: "lost", Size: 1, BlockSize: 64 << 10, Blocks: []index.Hash{{1}}}}}}
	f, err := os.OpenFile(packFileName(filepath.Join(dir, "packs"), 1), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(appendRecord(nil, codecJournal, torn.encode()))
	f.Close()
	for round := 0; round < 2; round++ {
		os.RemoveAll(filepath.Join(dir, "index"))
		rep, err := Repair(context.Background(), Config{Dir: dir}, RepairOptions{})
		if err != nil || len(rep.Problems) > 0 || len(rep.Verify.Problems) > 0 {
			t.Fatalf("round %d: repair: %v %+v %+v", round, err, rep.Problems, rep.Verify)
		}
		s = openTest(t, dir, repairConfig)
		if _, err := s.Stat("lost"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("round %d: a batch cut short was replayed: %v", round, err)
		}
		mustPut(t, s, fmt.Sprintf("after-%d", round), randomBytes(10<<10, uint64(round+2)))
		s.Close()
	}
	s = openTest(t, dir, repairConfig)
	for _, p := range []string{"a", "after-0", "after-1"} {
		if _, err := s.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
}
