package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/walgen"
)

// gcSeg is a 1 MiB segment with half its pages used: about 100 KiB stored.
func gcSeg(segno uint64) walgen.Segment {
	return walgen.Segment{TLI: 1, SegNo: segno, SysID: testSysID, SegSize: mib, Seed: segno, UsedPages: 64}
}

func gcConfig(c *Config) {
	c.BlockSize, c.PackSize, c.CacheBytes = 64<<10, 1<<20, 256<<10
}

func packFilesBytes(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.packDiskBytes()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestGCShrinksDiskToKeptFiles(t *testing.T) {
	n := uint64(40)
	if raceEnabled {
		n = 16
	}
	s := openTest(t, t.TempDir(), gcConfig)
	kept := map[string][]byte{}
	for i := uint64(1); i <= n; i++ {
		sg := gcSeg(i)
		mustPut(t, s, sg.Name(), sg.Bytes())
		if i%2 == 0 {
			kept[sg.Name()] = sg.Bytes()
		}
	}
	before := packFilesBytes(t, s)
	firstPack := packFileName(s.packs.dir, 1)
	saved, err := os.ReadFile(firstPack)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= n; i += 2 {
		if err := s.Remove(gcSeg(i).Name()); err != nil {
			t.Fatal(err)
		}
	}
	// Readers race with GC: small cache, so every read goes to the packs.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var readErr atomic.Value
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				for name, want := range kept {
					rd, err := s.Open(name)
					var buf bytes.Buffer
					if err == nil {
						_, err = rd.WriteTo(&buf)
					}
					if err == nil && !bytes.Equal(buf.Bytes(), want) {
						err = os.ErrInvalid
					}
					if err != nil {
						readErr.Store(name + ": " + err.Error())
						return
					}
				}
			}
		}()
	}
	rep, err := s.GC(context.Background(), GCOptions{Threshold: 0.9})
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if e := readErr.Load(); e != nil {
		t.Fatalf("read racing with GC: %v", e)
	}
	if rep.PacksRewritten == 0 || rep.BytesCopied == 0 {
		t.Fatalf("GC did nothing: %+v", rep)
	}
	after := packFilesBytes(t, s)
	// What the kept files alone need: a fresh store holding only them.
	fresh := openTest(t, t.TempDir(), gcConfig)
	for name, data := range kept {
		mustPut(t, fresh, name, data)
	}
	need := packFilesBytes(t, fresh)
	t.Logf("disk %d -> %d bytes (kept files alone: %d); %+v", before, after, need, rep)
	if float64(after) > float64(need)*1.05 {
		t.Errorf("after GC the packs take %d bytes, over 5%% more than the %d the kept files need", after, need)
	}
	if rep.DiskAfter != after || rep.DiskBefore < after {
		t.Errorf("report disk bytes %d -> %d, measured %d", rep.DiskBefore, rep.DiskAfter, after)
	}
	for name, want := range kept {
		if !bytes.Equal(readAll(t, s, name), want) {
			t.Fatalf("%s differs after GC", name)
		}
	}
	checkGCInvariants(t, s)
	// A crash after GC's commit but before the unlink leaves a retired pack
	// file behind: put it back, and Open must delete it.
	dir := s.Config().Dir
	s.Close()
	if err := os.WriteFile(firstPack, saved, 0o640); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, dir, gcConfig)
	if _, err := os.Stat(firstPack); !os.IsNotExist(err) {
		t.Errorf("retired pack file survived Open: %v", err)
	}
	if packFilesBytes(t, s2) != after {
		t.Errorf("reopen changed the packs")
	}
	vr, err := s2.Verify(context.Background(), "*", nil)
	if err != nil || len(vr.DataProblems()) > 0 {
		t.Fatalf("verify after GC: %v %+v", err, vr.DataProblems())
	}
}

func TestGCDeletesDeadPacksAtDefaultThreshold(t *testing.T) {
	s := openTest(t, t.TempDir(), gcConfig)
	for i := uint64(1); i <= 12; i++ {
		sg := gcSeg(i)
		mustPut(t, s, sg.Name(), sg.Bytes())
	}
	for i := uint64(1); i <= 9; i++ { // the oldest packs lose everything
		if err := s.Remove(gcSeg(i).Name()); err != nil {
			t.Fatal(err)
		}
	}
	st0, _ := s.Status()
	rep, err := s.GC(context.Background(), GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksDeleted == 0 {
		t.Fatalf("no dead pack deleted: %+v", rep)
	}
	st, _ := s.Status()
	if st.StoredBytes != st0.StoredBytes {
		t.Errorf("live bytes changed: %d -> %d", st0.StoredBytes, st.StoredBytes)
	}
	if d := packFilesBytes(t, s); float64(d) > float64(st.StoredBytes)*1.6+float64(s.Config().PackSize) {
		t.Errorf("disk %d bytes for %d live", d, st.StoredBytes)
	}
	for i := uint64(10); i <= 12; i++ {
		sg := gcSeg(i)
		if !bytes.Equal(readAll(t, s, sg.Name()), sg.Bytes()) {
			t.Fatalf("%s damaged", sg.Name())
		}
	}
	checkGCInvariants(t, s)
}

// checkGCInvariants: every block record points into a pack that is not
// retired and whose file exists; every pack's live count is the sum of its
// block records; no pack file on disk lacks a live record.
func checkGCInvariants(t *testing.T, s *Store) {
	t.Helper()
	live := map[uint32]int64{}
	packs := map[uint32]*index.Pack{}
	err := s.idx.View(func(x *index.Txn) error {
		if err := x.Packs(func(p *index.Pack) error { packs[p.ID] = p; return nil }); err != nil {
			return err
		}
		return x.Blocks(func(h index.Hash, b *index.Block) error {
			live[b.Pack] += b.RecordLen()
			if p := packs[b.Pack]; p == nil || p.Retired {
				t.Errorf("block %s points into pack %d, which is retired or unknown", h, b.Pack)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, p := range packs {
		if !p.Retired && p.Live != live[id] {
			t.Errorf("pack %d: live %d, block records sum to %d", id, p.Live, live[id])
		}
	}
	files, _ := filepath.Glob(filepath.Join(s.packs.dir, "*.pack"))
	for _, f := range files {
		id, _ := parsePackName(filepath.Base(f))
		if p := packs[id]; p == nil || p.Retired {
			t.Errorf("pack file %s on disk has no live record", f)
		}
	}
}
