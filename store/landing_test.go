package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/retention"
	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
)

func landSeg(segno uint64, seed uint64) walgen.Segment {
	return walgen.Segment{TLI: 1, SegNo: segno, SysID: 7300000000000000001, SegSize: 1 << 20, Seed: seed}
}

func land(t *testing.T, s *Store, path string, data []byte) (FileInfo, error) {
	t.Helper()
	lf, err := s.CreateLanding(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lf.File().WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	return lf.Commit(FileMeta{Mode: 0o640, MTime: time.Unix(1700000000, 0)})
}

func readLanded(t *testing.T, s *Store, path string) []byte {
	t.Helper()
	r, err := s.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer r.Close()
	var b bytes.Buffer
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestLandingRecovery: files landed and not ingested when the store
// closes (or the process dies: the landed record is the file's name in
// landing/, durable at Commit) are there after Open, served, listed and
// then ingested; unfinished landing files are dropped.
func TestLandingRecovery(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	first := landSeg(1, 1).Bytes()
	if _, err := land(t, s, landSeg(1, 1).Name(), first); err != nil { // ingested inline: sets the cluster
		t.Fatal(err)
	}
	resume := s.PauseIngest()
	want := map[string][]byte{}
	for i := uint64(2); i <= 4; i++ {
		g := landSeg(i, 1)
		want[g.Name()] = g.Bytes()
		if _, err := land(t, s, g.Name(), g.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	unfinished, err := s.CreateLanding(landSeg(5, 1).Name(), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	unfinished.File().Write(landSeg(5, 1).Bytes()[:4096])
	if s.Landed() != 3 {
		t.Fatalf("landed %d, want 3", s.Landed())
	}
	// A crash after an ingest committed, before it unlinked: the landed
	// copy of an archived file.
	if err := os.WriteFile(filepath.Join(dir, "landing", "files", landSeg(1, 1).Name()), first, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = resume // the store closes paused: nothing else is ingested
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, func(c *Config) { c.ingestPaused = true })
	resume = func() {
		s.land.mu.Lock()
		s.land.paused--
		s.land.mu.Unlock()
		s.land.wake()
	}
	if n := s.Landed(); n != 4 {
		t.Fatalf("after reopen %d landed, want 4", n)
	}
	var names []string
	s.Names("", func(n string) error { names = append(names, n); return nil })
	if len(names) != 4 {
		t.Fatalf("names %v, want 4 (each once)", names)
	}
	for name, b := range want {
		if got := readLanded(t, s, name); !bytes.Equal(got, b) {
			t.Fatalf("%s landed: content differs", name)
		}
		fi, err := s.Stat(name)
		if err != nil || fi.Mode != 0o640 || !fi.MTime.Equal(time.Unix(1700000000, 0)) {
			t.Fatalf("%s: stat %+v %v", name, fi, err)
		}
	}
	st, _ := s.Status()
	if st.Files != 4 {
		t.Fatalf("status counts %d files, want 4", st.Files)
	}
	resume()
	s.WaitIngested()
	if s.Landed() != 0 {
		t.Fatalf("%d still landed after ingest", s.Landed())
	}
	for name, b := range want {
		if got := readLanded(t, s, name); !bytes.Equal(got, b) {
			t.Fatalf("%s ingested: content differs", name)
		}
		if f, err := s.lookup(name); err != nil || f.Mode != 0o640 {
			t.Fatalf("%s: not in the index after ingest: %v", name, err)
		}
	}
	for _, sub := range []string{"files", "tmp"} {
		if ents, _ := os.ReadDir(filepath.Join(dir, "landing", sub)); len(ents) != 0 {
			t.Fatalf("landing/%s not empty: %v", sub, ents)
		}
	}
	rep, err := s.Verify(context.Background(), "", nil)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %v %+v", err, rep.Problems)
	}
}

// TestLandingGates: an upload (the rsync gateway, walrus put) of a landed
// name compares against it; retention and removal see landed files; a
// namespace with landed files is not empty.
func TestLandingGates(t *testing.T) {
	s := openTest(t, t.TempDir())
	if err := s.Mkdir("ns"); err != nil {
		t.Fatal(err)
	}
	if _, err := land(t, s, "ns/"+landSeg(1, 1).Name(), landSeg(1, 1).Bytes()); err != nil {
		t.Fatal(err)
	}
	resume := s.PauseIngest()
	defer resume()
	a, b := landSeg(2, 1), landSeg(2, 2)
	path := "ns/" + a.Name()
	if _, err := land(t, s, path, a.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := s.Rmdir("ns"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rmdir of a namespace with a landed file: %v", err)
	}
	put := func(data []byte) error {
		u, err := s.Create(path, FileMeta{Mode: 0o600})
		if err != nil {
			return err
		}
		u.Write(data)
		_, err = u.Commit()
		return err
	}
	if err := put(b.Bytes()); !errors.Is(err, ErrExists) {
		t.Fatalf("upload of different content over a landed file: %v", err)
	}
	if err := put(a.Bytes()); err != nil {
		t.Fatalf("identical upload over a landed file: %v", err)
	}
	if got := readLanded(t, s, path); !bytes.Equal(got, a.Bytes()) {
		t.Fatal("content changed")
	}
	// Landed again (a new name), then removed: gone for good.
	c := landSeg(3, 1)
	if _, err := land(t, s, "ns/"+c.Name(), c.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := land(t, s, "ns/"+c.Name(), landSeg(3, 2).Bytes()); !errors.Is(err, ErrExists) {
		t.Fatalf("different content over a landed file: %v", err)
	}
	if err := s.Remove("ns/" + c.Name()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat("ns/" + c.Name()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed landed file: %v", err)
	}
	if err := s.Remove("ns/" + c.Name()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
}

// TestLandingBackPressure: past Config.LandingBytes a landing commit
// ingests its own file before it returns.
func TestLandingBackPressure(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.LandingBytes = 1 })
	resume := s.PauseIngest() // the background ingester takes nothing
	defer resume()
	for i := uint64(1); i <= 3; i++ {
		g := landSeg(i, 1)
		if _, err := land(t, s, g.Name(), g.Bytes()); err != nil {
			t.Fatal(err)
		}
		if n := s.Landed(); n != 0 {
			t.Fatalf("segment %d: %d files landed past the bound", i, n)
		}
		if f, err := s.lookup(g.Name()); err != nil || f.Size != int64(len(g.Bytes())) {
			t.Fatalf("segment %d not ingested inline: %v", i, err)
		}
	}
}

// TestLandingRetention: retention removes landed files like store files
// and reports them.
func TestLandingRetention(t *testing.T) {
	s := openTest(t, t.TempDir())
	if _, err := land(t, s, landSeg(1, 1).Name(), landSeg(1, 1).Bytes()); err != nil {
		t.Fatal(err)
	}
	resume := s.PauseIngest()
	defer resume()
	g := landSeg(2, 1)
	if _, err := land(t, s, g.Name(), g.Bytes()); err != nil {
		t.Fatal(err)
	}
	got, err := s.removeMany(context.Background(), "", []retention.Removal{{Name: landSeg(1, 1).Name()}, {Name: g.Name()}}, 2)
	if err != nil || len(got) != 2 {
		t.Fatalf("removed %v, %v; want both", got, err)
	}
	for _, n := range []string{landSeg(1, 1).Name(), g.Name()} {
		if _, err := s.Stat(n); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after retention: %v", n, err)
		}
	}
	if s.Landed() != 0 {
		t.Fatal("landed file left after retention")
	}
}

// TestLandingStatus: Status counts landed files and those whose ingest
// fails (here: the disk filled after they landed), and both drop to zero
// once space returns and the ingester took them.
func TestLandingStatus(t *testing.T) {
	root := testenv.SmallFS(t, 128<<20)
	s := openTest(t, filepath.Join(root, "data"), smallPacks)
	if _, err := land(t, s, landSeg(1, 1).Name(), landSeg(1, 1).Bytes()); err != nil { // inline: sets the cluster
		t.Fatal(err)
	}
	resume := s.PauseIngest()
	var want int64
	for i := uint64(2); i <= 3; i++ {
		b := landSeg(i, 1).Bytes()
		if _, err := land(t, s, landSeg(i, 1).Name(), b); err != nil {
			t.Fatal(err)
		}
		want += int64(len(b))
	}
	st, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.LandedFiles != 2 || st.LandedBytes != want || st.LandedFailing != 0 || st.Files != 3 {
		t.Fatalf("status with two landed files: %+v", st)
	}
	filler := filepath.Join(root, "filler")
	testenv.Fill(t, filler, 0)
	resume()
	testenv.WaitFor(t, "both landed files to fail their ingest on the full disk", time.Minute, func() bool {
		st, err = s.Status()
		return err == nil && st.LandedFailing == 2
	})
	os.Remove(filler)
	s.land.mu.Lock()
	clear(s.land.failed) // retry now rather than after landRetry
	s.land.mu.Unlock()
	s.land.wake()
	s.WaitIngested()
	if st, err = s.Status(); err != nil || st.LandedFiles != 0 || st.LandedFailing != 0 || st.Files != 3 {
		t.Fatalf("status after the ingest: %+v, %v", st, err)
	}
}
