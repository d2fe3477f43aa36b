//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/store"
)

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestSettleBench measures, on the timeline-1 segments of the real corpus
// and against per-file `zstd -3` (pgBackRest's zst archive) of the same
// segments:
//   - push (Create, 128 KiB writes, Commit: fsync and index commit) at the
//     ingest level `fastest` against `default` (the level main used),
//     interleaved segment by segment, wall and process CPU per segment;
//   - stored bytes at ingest, after settling at `better` and `best`, and
//     after the cold tier (a .backup at the last segment makes every
//     earlier segment cold), with the CPU per segment each took;
//   - sequential read of every segment from a fresh store (empty block
//     cache) settled and cold.
func TestSettleBench(t *testing.T) {
	var files []string
	for _, f := range corpus(t) {
		if strings.HasPrefix(filepath.Base(f), "00000001") {
			files = append(files, f)
		}
	}
	data := make([][]byte, len(files))
	var raw int64
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data[i], raw = b, raw+int64(len(b))
	}
	zstdBytes, _ := perFileZstd(t, files)
	segs := float64(len(data))
	load := func() string {
		b, _ := os.ReadFile("/proc/loadavg")
		return strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Printf("\n## Ingest level, settling and the cold tier on %d real segments (%.0f MiB), load %s\n\n", len(data), float64(raw)/(1<<20), load())
	fmt.Printf("per-file `zstd -3` (pgBackRest zst): %d bytes\n\n", zstdBytes)

	open := func(level, settle string) *store.Store {
		s, err := store.Open(store.Config{Dir: t.TempDir(), Level: level, SettleLevel: settle, CacheBytes: 32 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	fast, def := open("fastest", "best"), open("default", "off")
	defer def.Close()
	better := open("fastest", "better")
	defer better.Close()
	var wall, cpu [2][]float64
	push := func(k int, s *store.Store, b []byte) {
		c0, w0 := processCPU(), time.Now()
		putBytes(t, s, "c1/", b)
		wall[k] = append(wall[k], float64(time.Since(w0).Microseconds())/1000)
		cpu[k] = append(cpu[k], float64((processCPU()-c0).Microseconds())/1000)
	}
	for i, b := range data {
		if i%2 == 0 {
			push(0, fast, b)
			push(1, def, b)
		} else {
			push(1, def, b)
			push(0, fast, b)
		}
		putBytes(t, better, "c1/", b)
	}
	fmt.Println("| push, per segment (interleaved) | fastest (ingest) | default (main) | ratio |")
	fmt.Println("|---|---:|---:|---:|")
	fmt.Printf("| wall ms, median | %.1f | %.1f | %.3f |\n", median(wall[0]), median(wall[1]), median(wall[0])/median(wall[1]))
	fmt.Printf("| CPU ms (user+sys), median | %.1f | %.1f | %.3f |\n\n", median(cpu[0]), median(cpu[1]), median(cpu[0])/median(cpu[1]))

	stored := func(s *store.Store) int64 {
		st, err := s.Status()
		if err != nil {
			t.Fatal(err)
		}
		return st.StoredBytes
	}
	fmt.Println("| stored | bytes | / zstd -3 | CPU per segment to get there |")
	fmt.Println("|---|---:|---:|---:|")
	row := func(what string, n int64, c time.Duration) {
		cs := "—"
		if c > 0 {
			cs = fmt.Sprintf("%.0f ms", float64(c.Milliseconds())/segs)
		}
		fmt.Printf("| %s | %d | %.3f | %s |\n", what, n, float64(n)/float64(zstdBytes), cs)
	}
	row("default (main)", stored(def), 0)
	row("fastest (ingest)", stored(fast), 0)
	settle := func(s *store.Store, noCold bool) time.Duration {
		c0 := processCPU()
		if _, err := s.Settle(context.Background(), store.SettleOptions{NoCold: noCold}); err != nil {
			t.Fatal(err)
		}
		return processCPU() - c0
	}
	c := settle(better, true)
	row("settled at better", stored(better), c)
	c = settle(fast, true)
	row("settled at best", stored(fast), c)

	readAll := func(s *store.Store) float64 {
		var ms []float64
		for _, b := range data {
			w0 := time.Now()
			r, err := s.Open("c1/" + segmentFileName(b))
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len(b))
			if _, err := r.ReadAt(buf, 0); err != nil {
				t.Fatal(err)
			}
			ms = append(ms, float64(time.Since(w0).Microseconds())/1000)
		}
		return median(ms)
	}
	readSettled := readAll(fast)
	if !store.CanWriteCold {
		fmt.Println("\n(built without cgo: no cold tier)")
		return
	}
	last := segmentFileName(data[len(data)-1])
	n := wal.ParseName(last)
	segno, _ := n.SegNo(16 << 20)
	seg := wal.SegmentFileName(1, segno, 16<<20)
	startLSN := wal.SegmentStart(segno, 16<<20) + 0x28
	text := fmt.Sprintf("START WAL LOCATION: %s (file %s)\nSTOP WAL LOCATION: %s (file %s)\nCHECKPOINT LOCATION: %s\n"+
		"BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-01 21:48:28 UTC\nLABEL: bench\nSTART TIMELINE: 1\n"+
		"STOP TIME: 2026-12-01 21:48:29 UTC\nSTOP TIMELINE: 1\n", startLSN, seg, startLSN+0xd8, seg, startLSN+0x38)
	u, err := fast.Create(fmt.Sprintf("c1/%s.%08X.backup", seg, 0x28), store.FileMeta{Mode: 0o600, MTime: time.Now()})
	if err == nil {
		_, err = u.Write([]byte(text))
	}
	if err == nil {
		_, err = u.Commit()
	}
	if err != nil {
		t.Fatal(err)
	}
	c = settle(fast, false)
	cold := stored(fast)
	row(fmt.Sprintf("cold tier (LZMA2; %d of %d segments behind the backup)", len(data)-1, len(data)), cold, c)
	fmt.Printf("\ncold tier alone: %d segments, CPU per segment as above\n", len(data)-1)
	readCold := readAll(fast)
	fmt.Printf("\nread one segment (block cache 32 MiB, packs in page cache), median: settled zstd %.1f ms, cold LZMA2 %.1f ms (%.1fx); load %s\n",
		readSettled, readCold, readCold/readSettled, load())
	fast.Close()
}
