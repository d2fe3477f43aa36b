//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/retention"
	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

// TestCompareGC measures GC on the real WAL corpus: archive it, remove the
// older half (what retention or pg_archivecleanup does), run GC, and compare
// the disk the packs take with a fresh store holding only the kept files.
func TestCompareGC(t *testing.T) {
	files := corpus(t)
	data := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data[i] = b
	}
	fmt.Printf("\n## GC on %d real segments\n\n", len(data))
	fmt.Println("| pack size | removed | disk before | disk after GC | kept files alone | after / alone | GC copied | GC MB/s (copied) | GC s |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, packSize := range []int64{16 << 20, 64 << 20, store.DefaultPackSize} {
		for _, interleaved := range []bool{false, true} {
			measureGC(t, data, packSize, interleaved)
		}
	}
}

func measureGC(t *testing.T, data [][]byte, packSize int64, interleaved bool) {
	cfg := store.Config{Dir: t.TempDir(), PackSize: packSize}
	s, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var kept [][]byte
	for _, b := range data {
		putBytes(t, s, "a/", b)
	}
	for i, b := range data {
		drop := i < len(data)/2
		if interleaved {
			drop = i%2 == 0
		}
		if !drop {
			kept = append(kept, b)
			continue
		}
		if err := s.Remove("a/" + segmentFileName(b)); err != nil {
			t.Fatal(err)
		}
	}
	// Reopen: the pack being appended to is never collected; after a restart
	// every pack is sealed.
	s.Close()
	if s, err = store.Open(cfg); err != nil {
		t.Fatal(err)
	}
	before := packBytes(t, cfg.Dir)
	rep, err := s.GC(context.Background(), store.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := packBytes(t, cfg.Dir)
	s.Close()
	alone := store.Config{Dir: t.TempDir(), PackSize: packSize}
	fresh, err := store.Open(alone)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range kept {
		putBytes(t, fresh, "a/", b)
	}
	fresh.Close()
	need := packBytes(t, alone.Dir)
	what := "older half"
	if interleaved {
		what = "every other"
	}
	fmt.Printf("| %d MiB | %s | %d | %d | %d | %.3f | %d | %.0f | %.2f |\n", packSize>>20, what, before, after, need,
		float64(after)/float64(need), rep.BytesCopied, float64(rep.BytesCopied)/1e6/max(rep.Seconds, 1e-6), rep.Seconds)
}

func packBytes(t *testing.T, dir string) int64 {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	var n int64
	for _, f := range m {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// TestScaleStatusVerify archives WALRUS_SCALE (default 100 000) synthetic,
// mostly zero 1 MiB segments with concurrent writers, then times status,
// retention to the newest backup, GC and verify.
func TestScaleStatusVerify(t *testing.T) {
	if os.Getenv("WALRUS_BENCH") != "1" {
		t.Skip("benchmarks run with WALRUS_BENCH=1 (make bench)")
	}
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("WALRUS_SCALE")); err == nil && v > 0 {
		n = v
	}
	// 16 MiB packs: retention of the older half leaves whole packs dead.
	cfg := store.Config{Dir: t.TempDir(), PackSize: 16 << 20}
	s, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	var wg sync.WaitGroup
	const writers = 16
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				sg := walgen.Segment{TLI: 1, SegNo: uint64(i + 1), SysID: 42, SegSize: 1 << 20, Seed: 1, UsedPages: 2}
				putBytes(t, s, "c/", sg.Bytes())
			}
		}()
	}
	wg.Wait()
	ingest := time.Since(start)
	mid := uint64(n/2 + 1)
	stop := time.Now().UTC().Format("2006-01-02 15:04:05")
	backup := fmt.Sprintf("START WAL LOCATION: %s (file %s)\nSTOP WAL LOCATION: %s (file %s)\nSTART TIME: %s UTC\nLABEL: scale\nSTART TIMELINE: 1\nSTOP TIME: %s UTC\nSTOP TIMELINE: 1\n",
		wal.SegmentStart(mid, 1<<20)+0x28, segName(mid), wal.SegmentStart(mid, 1<<20)+0x100, segName(mid), stop, stop)
	u, _ := s.Create("c/"+segName(mid)+".00000028.backup", store.FileMeta{Mode: 0o600, MTime: time.Now()})
	u.Write([]byte(backup))
	if _, err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	rep, err := s.StatusReport("", time.Now())
	statusTime := time.Since(start)
	if err != nil || len(rep.Dirs) != 1 || rep.Dirs[0].Segments != n || !rep.Dirs[0].Backups[0].Restorable {
		t.Fatalf("status: %v %+v", err, rep.Dirs)
	}
	start = time.Now()
	vr, err := s.Verify(context.Background(), "*", nil)
	verifyTime := time.Since(start)
	if err != nil || len(vr.Problems) > 0 {
		t.Fatalf("verify: %v %+v", err, vr.Problems[:min(5, len(vr.Problems))])
	}
	before, _ := s.Status()
	start = time.Now()
	rr, err := s.Retain(context.Background(), "c", retention.Policy{KeepBackups: 1}, time.Now(), false)
	retainTime := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = store.Open(cfg); err != nil {
		t.Fatal(err)
	}
	gr, err := s.GC(context.Background(), store.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := s.Status()
	disk := packBytes(t, cfg.Dir)
	fmt.Printf("\n## Scale: %d synthetic 1 MiB segments\n\n", n)
	fmt.Printf("ingest (%d writers): %.1f s (%.0f files/s)\n", writers, ingest.Seconds(), float64(n)/ingest.Seconds())
	fmt.Printf("status: %.3f s\n", statusTime.Seconds())
	fmt.Printf("verify: %.1f s, %.0f MB/s logical, %.0f files/s\n", verifyTime.Seconds(), float64(vr.Bytes)/1e6/verifyTime.Seconds(), float64(vr.Files)/verifyTime.Seconds())
	fmt.Printf("retain --keep-backups 1: removed %d files in %.1f s\n", len(rr[0].Removed), retainTime.Seconds())
	fmt.Printf("stored bytes %d -> %d; GC: %d rewritten, %d deleted, copied %d bytes in %.2f s; pack files on disk %d (%.3f x stored)\n",
		before.StoredBytes, after.StoredBytes, gr.PacksRewritten, gr.PacksDeleted, gr.BytesCopied, gr.Seconds, disk, float64(disk)/float64(after.StoredBytes))
	if float64(disk) > float64(after.StoredBytes)*1.05+float64(cfg.PackSize)/64 {
		t.Errorf("after retention and GC, %d bytes of packs hold %d live", disk, after.StoredBytes)
	}
}

func segName(segno uint64) string { return fmt.Sprintf("%08X%08X%08X", 1, segno/4096, segno%4096) }
