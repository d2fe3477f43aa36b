//go:build bench

package bench

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
)

var segmentName = regexp.MustCompile(`^[0-9A-F]{24}$`)

// corpusDir is where mkwal.sh put real WAL.
func corpusDir() string {
	if d := os.Getenv("WALRUS_WALCACHE"); d != "" {
		return d
	}
	return filepath.Join("..", "testdata", "walcache")
}

// corpus returns the paths of the real WAL segments, in name order.
func corpus(t *testing.T) []string {
	t.Helper()
	if os.Getenv("WALRUS_BENCH") != "1" {
		t.Skip("benchmarks run with WALRUS_BENCH=1 (make bench)")
	}
	dir := corpusDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("no WAL corpus in %s (run test/testdata/mkwal.sh %s): %v", dir, dir, err)
	}
	var out []string
	for _, e := range entries {
		if segmentName.MatchString(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	if len(out) < 10 {
		t.Fatalf("WAL corpus in %s has %d segments; run test/testdata/mkwal.sh", dir, len(out))
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}
