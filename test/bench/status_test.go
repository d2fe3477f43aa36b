//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/test/bench/rusage"
)

// TestStatusScale measures `walrus status --json` and `walrus status
// --check` (the built binary, a child process) on one directory of
// WALRUS_STATUS_SCALE (default 10000,100000,1000000) synthetic 16 MiB
// segments over two timelines, with a .partial, a .history, two .backup
// files and a gap. The few small files and the first segment go through the
// store's commit path; the segment records are written straight into the
// index (the commit path archives a few hundred files a second, an hour
// for a million), each with 16 distinct block hashes, as a busy cluster's
// segments have: the records are as large as real ones, though their
// blocks are not stored, so nothing here reads them. WALRUS_STATUS_KEEP=DIR
// keeps each archive in DIR/N for profiling.
func TestStatusScale(t *testing.T) {
	bin := walrusBin(t)
	scales := []int{10_000, 100_000, 1_000_000}
	if v := os.Getenv("WALRUS_STATUS_SCALE"); v != "" {
		scales = scales[:0]
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 100 {
				t.Fatalf("WALRUS_STATUS_SCALE=%q: want a comma-separated list of counts of at least 100", v)
			}
			scales = append(scales, n)
		}
	}
	fmt.Printf("\n## `walrus status` on synthetic index records (target at 1 000 000 segments: ≤ %.0f s, RSS ≤ %d MB)\n\n", StatusTargetSeconds, StatusTargetRSS>>20)
	fmt.Println("| segments | load s | command | wall s | user+sys s | peak RSS MB | wall / 2 s | RSS / 256 MB |")
	fmt.Println("|---:|---:|---|---:|---:|---:|---:|---:|")
	for _, n := range scales {
		dir := t.TempDir()
		if keep := os.Getenv("WALRUS_STATUS_KEEP"); keep != "" {
			dir = filepath.Join(keep, strconv.Itoa(n))
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		layout := BuildStatusArchive(t, dir, n)
		load := time.Since(start)
		for _, args := range [][]string{{"status", "--json"}, {"status", "--check"}} {
			r := runMeasured(t, bin, dir, args...)
			if args[1] == "--json" {
				layout.Check(t, r.Stdout)
			} else if r.Exit != 2 || !strings.Contains(string(r.Stdout), "3 segments") {
				t.Errorf("status --check on %d: exit %d, want 2 with the gap reported:\n%s", n, r.Exit, r.Stdout)
			}
			fmt.Printf("| %d | %.1f | `%s` | %.3f | %.3f | %.1f | %.2f | %.2f |\n", n, load.Seconds(), strings.Join(args, " "),
				r.Wall.Seconds(), r.CPU.Seconds(), float64(r.MaxRSS)/(1<<20), r.Wall.Seconds()/StatusTargetSeconds, float64(r.MaxRSS)/StatusTargetRSS)
		}
		if os.Getenv("WALRUS_STATUS_KEEP") == "" {
			os.RemoveAll(dir)
		}
	}
}

func walrusBin(t *testing.T) string {
	t.Helper()
	if os.Getenv("WALRUS_BENCH") != "1" {
		t.Skip("benchmarks run with WALRUS_BENCH=1 (make bench)")
	}
	bin := os.Getenv("WALRUS_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin", "walrus")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("build bin/walrus first (make build): %v", err)
	}
	return bin
}

// runMeasured runs `walrus --data dir args...` through rusage.Measure (a
// peak RSS of the command's own) and fails the test if it cannot.
func runMeasured(t *testing.T, bin, dir string, args ...string) rusage.Result {
	t.Helper()
	r, err := rusage.Measure(t.TempDir(), append([]string{bin, "--data", dir}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMain(m *testing.M) {
	rusage.ChildMain()
	os.Exit(m.Run())
}
