package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// countingObserver counts backend requests by method (what a provider bills).
type countingObserver struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countingObserver) Observe(method, outcome string, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[method+"/"+outcome]++
}

// corpusSegments loads n real segments of the corpus (timeline 1).
func corpusSegments(tb testing.TB, n int) [][]byte {
	dir := os.Getenv("WALRUS_WALCACHE")
	if dir == "" {
		dir = filepath.Join("..", "test", "testdata", "walcache")
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		testenv.Require(tb, fmt.Sprintf("real WAL in %s: %v", dir, err))
	}
	var out [][]byte
	for i := 1; i <= n; i++ {
		b, err := os.ReadFile(filepath.Join(dir, wal.SegmentFileName(1, uint64(i), 16<<20)))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// asSegment returns a copy of real segment src as segment segno: every
// page's xlp_pageaddr rewritten, so that every block is new to the store
// (no dedup against earlier iterations) and the segment stays valid.
func asSegment(src []byte, segno uint64) []byte {
	b := append([]byte(nil), src...)
	for off := 0; off < len(b); off += 8192 {
		binary.LittleEndian.PutUint64(b[off+8:off+16], segno*uint64(len(b))+uint64(off))
	}
	return b
}

func pushSegment(tb testing.TB, s *Store, name string, data []byte) time.Duration {
	start := time.Now()
	u, err := s.Create(name, FileMeta{Mode: 0o600, MTime: time.Now()})
	if err != nil {
		tb.Fatal(err)
	}
	for p := data; len(p) > 0; p = p[128<<10:] {
		if _, err := u.Write(p[:128<<10]); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := u.Commit(); err != nil {
		tb.Fatalf("push %s: %v", name, err)
	}
	return time.Since(start)
}

// BenchmarkBucketPushAB pushes the same distinct real segments into three
// stores in turn, interleaved (the order rotates every iteration): no
// bucket, a bucket (versitygw on this host), an encrypted bucket; roll age
// 1 s, so packs are sealed and uploaded while pushes go on. It reports
// the push latency of each and the ratios to no bucket, then the upload
// throughput, requests per pack and per segment, and the time to rebuild
// the bucket store from its bucket (FetchPacks + Repair).
//
//	go test -run '^$' -bench BucketPushAB -benchtime 48x ./store/
func BenchmarkBucketPushAB(b *testing.B) {
	corpus := corpusSegments(b, 24)
	gw := backendtest.StartVersityGW(b)
	obs := &countingObserver{n: map[string]int{}}
	newBackend := func(encrypt bool) backend.Backend {
		s3, err := backend.NewS3(backend.S3Config{Endpoint: gw.Endpoint, Bucket: gw.NewBucket(b), AccessKey: gw.AccessKey, SecretKey: gw.Secret})
		if err != nil {
			b.Fatal(err)
		}
		var be backend.Backend = backend.Stack(s3, backend.StackOptions{Observer: obs})
		if encrypt {
			var k backend.Key
			rand.Read(k[:])
			be = backend.NewEncrypted(be, k)
		}
		return be
	}
	plainBucket, encBucket := newBackend(false), newBackend(true)
	names := []string{"none", "bucket", "encrypted"}
	stores := make([]*Store, 3)
	dirs := make([]string, 3)
	for i, be := range []backend.Backend{nil, plainBucket, encBucket} {
		dirs[i] = b.TempDir()
		stores[i] = openTest(b, dirs[i], func(c *Config) { c.Remote, c.RollAge = be, time.Second })
	}
	var total [3]time.Duration
	b.SetBytes(16 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data := asSegment(corpus[i%len(corpus)], uint64(1000+i))
		name := wal.SegmentFileName(1, uint64(1000+i), 16<<20)
		for k := range 3 {
			v := (i + k) % 3
			total[v] += pushSegment(b, stores[v], name, data)
		}
	}
	b.StopTimer()
	for v := range 3 {
		b.ReportMetric(float64(total[v].Microseconds())/float64(b.N)/1000, "ms/push-"+names[v])
	}
	b.ReportMetric(float64(total[1])/float64(total[0]), "ratio-bucket/none")
	b.ReportMetric(float64(total[2])/float64(total[0]), "ratio-encrypted/none")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for v := 1; v < 3; v++ {
		if err := stores[v].WaitBucket(ctx, drained); err != nil {
			b.Fatal(err)
		}
		st, _ := stores[v].Status()
		bs := st.Bucket
		b.ReportMetric(float64(bs.UploadedBytes)/bs.UploadSeconds/(1<<20), "upload-MiB/s-"+names[v])
		b.ReportMetric(float64(b.N)/float64(bs.UploadedPacks), "segments/pack-"+names[v])
		b.Logf("%s: %d packs, %d uploads, %d MiB stored of %d MiB pushed", names[v], bs.UploadedPacks, bs.Uploads, bs.UploadedBytes>>20, b.N*16)
	}
	obs.mu.Lock()
	b.Logf("requests by method/outcome, both buckets: %v", obs.n)
	clear(obs.n)
	obs.mu.Unlock()

	// Rebuild the encrypted one from its bucket.
	stores[2].Close()
	dir := filepath.Join(b.TempDir(), "rebuilt")
	start := time.Now()
	fr, err := FetchPacks(ctx, encBucket, dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	fetched := time.Since(start)
	rep, err := Repair(ctx, Config{Dir: dir}, RepairOptions{})
	if err != nil || rep.Files != int64(b.N) {
		b.Fatalf("repair: %v, %d files", err, rep.Files)
	}
	b.ReportMetric(time.Since(start).Seconds(), "s-rebuild")
	obs.mu.Lock()
	b.Logf("rebuild: %d packs, %d MiB fetched in %.2fs; requests %v", fr.Packs, fr.Bytes>>20, fetched.Seconds(), obs.n)
	obs.mu.Unlock()
	b.ReportMetric(float64(fr.Bytes)/fetched.Seconds()/(1<<20), "fetch-MiB/s")
}
