//go:build bench

package bench

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

type storeSetting struct {
	blockSize int
	level     string
}

// TestStoreBench measures ingest and read speed and stored bytes of the
// store on real WAL against per-file `zstd -3` (what pgBackRest stores with
// compress-type=zst), for several block sizes and levels; the default is
// the first row.
func TestStoreBench(t *testing.T) {
	files := corpus(t)
	data := make([][]byte, len(files))
	var raw int64
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data[i] = b
		raw += int64(len(b))
	}
	zstdBytes, zstdSecs := perFileZstd(t, files)
	fmt.Printf("\n## Store on %d real segments (%.0f MiB)\n\n", len(files), float64(raw)/(1<<20))
	fmt.Printf("per-file `zstd -3`: %d bytes (%.1fx smaller), %.0f MB/s single-threaded CLI\n\n", zstdBytes, float64(raw)/float64(zstdBytes), float64(raw)/1e6/zstdSecs)
	fmt.Println("| block | level | ingest MB/s (1 writer, fsync) | identical re-push MB/s (4 writers, dedup) | cold read MB/s | warm read MB/s | stored bytes | stored / raw | stored / zstd-3 |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	settings := []storeSetting{
		{store.DefaultBlockSize, "fastest"}, // the ingest level; TestSettleBench measures settling
		{1 << 20, "default"},
		{4 << 20, "default"},
		{1 << 20, "better"},
		{1 << 20, "best"},
		{4 << 20, "best"},
	}
	for _, set := range settings {
		r := measureStore(t, set, data)
		fmt.Printf("| %d KiB | %s | %.0f | %.0f | %.0f | %.0f | %d | %.4f | %.3f |\n",
			set.blockSize>>10, set.level, r.ingest1, r.ingest4, r.cold, r.warm, r.stored, float64(r.stored)/float64(raw), float64(r.stored)/float64(zstdBytes))
	}
	switchedSegment(t)
}

func perFileZstd(t *testing.T, files []string) (int64, float64) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatalf("zstd CLI missing (apt-get install zstd): %v", err)
	}
	var total int64
	start := time.Now()
	for _, f := range files {
		out, err := exec.Command("zstd", "-3", "-q", "-c", f).Output()
		if err != nil {
			t.Fatal(err)
		}
		total += int64(len(out))
	}
	return total, time.Since(start).Seconds()
}

type storeResult struct {
	ingest1, ingest4, cold, warm float64
	stored                       int64
}

func measureStore(t *testing.T, set storeSetting, data [][]byte) storeResult {
	var raw int64
	for _, b := range data {
		raw += int64(len(b))
	}
	cfg := store.Config{Dir: t.TempDir(), BlockSize: set.blockSize, Level: set.level, CacheBytes: raw + 64<<20}
	s, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var res storeResult
	start := time.Now()
	for _, b := range data {
		putBytes(t, s, "a/", b)
	}
	res.ingest1 = float64(raw) / 1e6 / time.Since(start).Seconds()
	st, _ := s.Status()
	res.stored = st.StoredBytes

	// Four concurrent writers re-archive the same segments into a second
	// namespace: every block deduplicates, so this measures hashing and group
	// commit, the cost of PostgreSQL re-archiving after a crash.
	start = time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(data); i += 4 {
				putBytes(t, s, "b/", data[i])
			}
		}()
	}
	wg.Wait()
	res.ingest4 = float64(raw) / 1e6 / time.Since(start).Seconds()
	s.Close()

	// Cold: a freshly opened store (empty block cache; the OS page cache
	// still holds the packs, as it would on a busy archive host).
	s, err = store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res.cold = readAllSegments(t, s, data, raw)
	res.warm = readAllSegments(t, s, data, raw)
	return res
}

// putBytes archives b in 128 KiB pieces (what FUSE delivers) under prefix
// plus the segment's own name, read from its header.
func putBytes(t *testing.T, s *store.Store, prefix string, b []byte) {
	name := prefix + segmentFileName(b)
	u, err := s.Create(name, store.FileMeta{Mode: 0o600, MTime: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for p := b; len(p) > 0; p = p[min(len(p), 128<<10):] {
		if _, err := u.Write(p[:min(len(p), 128<<10)]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := u.Commit(); err != nil {
		t.Fatal(err)
	}
}

func readAllSegments(t *testing.T, s *store.Store, data [][]byte, raw int64) float64 {
	start := time.Now()
	for _, b := range data {
		r, err := s.Open("a/" + segmentFileName(b))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.WriteTo(io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	return float64(raw) / 1e6 / time.Since(start).Seconds()
}

// segmentFileName derives a segment's name from its long page header
// (tli, pageaddr, seg size) so the corpus can be loaded without names.
func segmentFileName(b []byte) string {
	le := func(o, n int) uint64 {
		var v uint64
		for i := n - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[o+i])
		}
		return v
	}
	tli, addr, segSize := uint32(le(4, 4)), le(8, 8), uint32(le(32, 4))
	per := uint64(1<<32) / uint64(segSize)
	segno := addr / uint64(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, segno/per, segno%per)
}

// switchedSegment reports what an idle, switched segment costs: the
// corpus's mostly-zero segment if mkwal.sh made one, else a synthetic one.
func switchedSegment(t *testing.T) {
	s, err := store.Open(store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := findSwitched(t)
	putBytes(t, s, "", b)
	st, _ := s.Status()
	fmt.Printf("\nswitched segment (%d of %d pages non-zero): stored in %d bytes\n", nonZeroPages(b), len(b)/8192, st.StoredBytes)
}

func findSwitched(t *testing.T) []byte {
	for _, f := range corpus(t) {
		b, err := os.ReadFile(f)
		if err == nil && nonZeroPages(b) < len(b)/8192/4 {
			return b
		}
	}
	return walgen.Segment{TLI: 1, SegNo: 1, SysID: 1, SegSize: 16 << 20, UsedPages: 1}.Bytes()
}

func nonZeroPages(b []byte) int {
	zero := make([]byte, 8192)
	n := 0
	for off := 0; off+8192 <= len(b); off += 8192 {
		if !bytes.Equal(b[off:off+8192], zero) {
			n++
		}
	}
	return n
}

// TestStatusMemory builds a store of 10 000 real files through the commit
// path and reports the peak RSS and time of `walrus status` on it (target:
// under 150 MB), and the time of `walrus verify`, which re-reads them all.
func TestStatusMemory(t *testing.T) {
	bin := walrusBin(t)
	dir := t.TempDir()
	s, err := store.Open(store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	const files = 10_000
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < files; i += 16 {
				sg := walgen.Segment{TLI: 1, SegNo: uint64(i + 1), SysID: 5, SegSize: 1 << 20, UsedPages: 1}
				putBytes(t, s, "c/", sg.Bytes())
			}
		}()
	}
	wg.Wait()
	fill := time.Since(start)
	s.Close()
	fmt.Printf("\n## `walrus status` and `walrus verify` on %d real 1 MiB segments (filled in %s, %.0f commits/s with 16 writers)\n\n",
		files, fill.Round(time.Millisecond), files/fill.Seconds())
	fmt.Println("| command | wall s | user+sys s | peak RSS MB |")
	fmt.Println("|---|---:|---:|---:|")
	for _, args := range [][]string{{"status", "--json"}, {"verify"}} {
		r := runMeasured(t, bin, dir, args...)
		if r.Exit != 0 {
			t.Errorf("walrus %s: exit %d\n%s", strings.Join(args, " "), r.Exit, r.Stdout)
		}
		fmt.Printf("| `%s` | %.3f | %.3f | %.1f |\n", strings.Join(args, " "), r.Wall.Seconds(), r.CPU.Seconds(), float64(r.MaxRSS)/(1<<20))
	}
}
