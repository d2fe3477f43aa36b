package store

import (
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"

	"github.com/walrus-archive/walrus/internal/walgen"
)

// cached reports whether every stored block of path is in the cache.
func cached(t *testing.T, s *Store, path string) bool {
	t.Helper()
	f, err := s.lookup(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range f.Blocks {
		if !h.IsZero() && !s.cache.contains(h) {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, what, 10*time.Second, cond)
}

func TestPrefetchWarmsNextSegments(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, func(c *Config) { c.BlockSize = 64 << 10 })
	small := func(g *walgen.Segment) { g.SegSize = 1 << 20 }
	var names []string
	for i := uint64(10); i < 14; i++ {
		sg := segment(i, small)
		mustPut(t, s, "db/"+sg.Name(), sg.Bytes())
		names = append(names, "db/"+sg.Name())
	}
	other := segment(11, small, func(g *walgen.Segment) { g.TLI = 2; g.Seed = 7 })
	mustPut(t, s, "db/"+other.Name(), other.Bytes())
	// Reopen so the cache is empty (uploads do not fill it).
	s.Close()
	s = openTest(t, dir, func(c *Config) { c.BlockSize = 64 << 10 })
	defer s.StopPrefetch()
	for _, n := range names {
		if cached(t, s, n) {
			t.Fatalf("%s cached before any read", n)
		}
	}

	s.Prefetch(names[0], 2)
	waitFor(t, "segments N, N+1 and N+2 in the cache", func() bool {
		return cached(t, s, names[0]) && cached(t, s, names[1]) && cached(t, s, names[2])
	})
	if cached(t, s, names[3]) {
		t.Errorf("N+3 prefetched with k=2")
	}
	if cached(t, s, "db/"+other.Name()) {
		t.Errorf("segment of another timeline prefetched")
	}
}

func TestPrefetchIgnoresOtherNamesAndStops(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.BlockSize = 64 << 10 })
	mustPut(t, s, "opaque", randomBytes(100, 1))
	s.Prefetch("opaque", 8)
	s.Prefetch("db/000000010000000000000001", 8) // directory unknown
	s.Prefetch("../bad", 8)
	s.StopPrefetch()
	select {
	case <-s.pf.stop:
	default:
		t.Fatal("prefetcher still running after StopPrefetch")
	}
	s.Prefetch("000000010000000000000001", 1) // dropped, must not block
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
