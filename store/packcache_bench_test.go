//go:build bench

package store

import (
	"io"
	"os"
	"slices"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// TestPackCacheRestoreBench measures restore latency per segment read
// from evicted packs (range GETs against a local versitygw) against the
// same segments read from local packs, with prefetch on (8 ahead, as
// fs does for restore_command reads) and off: four stores holding the
// same distinct real segments, read in the same run, interleaved (the
// order rotates every segment), each store reopened cold (empty block
// cache; local pack files dropped from the page cache with
// POSIX_FADV_DONTNEED). It reports medians, ratios to local and the
// range GETs and HTTP requests per segment. No timed assertion.
//
//	WALRUS_BENCH=1 go test -tags bench -run PackCacheRestoreBench -v ./store/
func TestPackCacheRestoreBench(t *testing.T) {
	if os.Getenv("WALRUS_BENCH") != "1" {
		t.Skip("benchmark harness: set WALRUS_BENCH=1")
	}
	nseg := 24
	corpus := corpusSegments(t, nseg)
	gw := backendtest.StartVersityGW(t)
	type variant struct {
		name     string
		evicted  bool
		prefetch bool
		obs      *countingObserver
		dir      string
		be       backend.Backend
		s        *Store
		times    []time.Duration
		gets     int64
	}
	vs := []*variant{
		{name: "local", evicted: false, prefetch: false},
		{name: "local+prefetch", evicted: false, prefetch: true},
		{name: "evicted", evicted: true, prefetch: false},
		{name: "evicted+prefetch", evicted: true, prefetch: true},
	}
	cfg := func(v *variant) func(*Config) {
		return func(c *Config) {
			c.CacheBytes, c.PackSize = 256<<20, 32<<20
			c.Remote, c.RollAge = v.be, 200*time.Millisecond
			if v.evicted {
				c.PackCacheBytes = 1
			}
		}
	}
	for _, v := range vs {
		v.obs = &countingObserver{n: map[string]int{}}
		s3, err := backend.NewS3(backend.S3Config{Endpoint: gw.Endpoint, Bucket: gw.NewBucket(t), AccessKey: gw.AccessKey, SecretKey: gw.Secret})
		if err != nil {
			t.Fatal(err)
		}
		v.be = backend.Stack(s3, backend.StackOptions{Observer: v.obs})
		v.dir = t.TempDir()
		v.s = openTest(t, v.dir, cfg(v))
	}
	var names []string
	for i := range nseg {
		name := "c1/" + wal.SegmentFileName(1, uint64(1000+i), 16<<20)
		names = append(names, name)
		data := asSegment(corpus[i], uint64(1000+i))
		for _, v := range vs {
			pushSegment(t, v.s, name, data)
		}
	}
	for _, v := range vs {
		waitBucket(t, v.s, "uploaded (and evicted)", func(b *BucketStatus) bool {
			return drained(b) && (!v.evicted || b.Cache.LocalBytes <= 1)
		})
		v.s.Close()
		dropPageCache(t, v.dir)
		v.s = openTest(t, v.dir, cfg(v))
		v.obs.mu.Lock()
		clear(v.obs.n)
		v.obs.mu.Unlock()
	}
	buf := make([]byte, 1<<20)
	for i, name := range names {
		for k := range vs {
			v := vs[(i+k)%len(vs)]
			before := cacheStatus(t, v.s).RangeGets
			start := time.Now()
			r, err := v.s.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			if v.prefetch {
				v.s.Prefetch(name, 8)
			}
			if _, err := io.CopyBuffer(io.Discard, io.NewSectionReader(r, 0, r.Size()), buf); err != nil {
				t.Fatalf("%s %s: %v", v.name, name, err)
			}
			r.Close()
			v.times = append(v.times, time.Since(start))
			v.gets += cacheStatus(t, v.s).RangeGets - before
		}
	}
	med := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	la, _ := os.ReadFile("/proc/loadavg")
	t.Logf("%d segments of 16 MiB per variant, interleaved; load average %s", nseg, la)
	base := map[bool]time.Duration{false: med(vs[0].times), true: med(vs[1].times)}
	for _, v := range vs {
		// Prefetched blocks may be fetched after the segment's read ends:
		// requests are counted over the whole run.
		v.obs.mu.Lock()
		gets := v.obs.n["read/ok"]
		v.obs.mu.Unlock()
		m := med(v.times)
		var sum time.Duration
		for _, d := range v.times {
			sum += d
		}
		t.Logf("%-17s mean %7.2f ms", v.name, float64(sum.Microseconds())/1000/float64(len(v.times)))
		t.Logf("%-17s median %7.2f ms/segment  ratio to local(same prefetch) %5.2f  range GETs/segment %5.2f  HTTP GETs/segment (whole run) %5.2f",
			v.name, float64(m.Microseconds())/1000, float64(m)/float64(base[v.prefetch]), float64(v.gets)/float64(nseg), float64(gets)/float64(nseg))
	}
}

// dropPageCache asks the kernel to drop the store's pack files from the
// page cache, so that local reads come from the disk as in a restore.
func dropPageCache(t *testing.T, dir string) {
	t.Helper()
	ids, _, err := listPacks(dir + "/packs")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		f, err := os.Open(packFileName(dir+"/packs", id))
		if err != nil {
			t.Fatal(err)
		}
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
	}
}
