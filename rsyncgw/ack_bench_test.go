//go:build bench

package rsyncgw

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/store"
	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// TestCompareAck pushes every segment with the real rsync client to four
// gateways in the same run, interleaved (the order rotates per segment):
// no bucket (today without --bucket), a bucket with local-ack (the
// default), a bucket with --ack remote, and local-ack with name claims
// (--bucket-claims-prefix, issue 15), the buckets on one versitygw
// on this machine, and prints the median wall time per push, the ratios,
// and the bucket requests per segment of each. Run it with
//
//	WALRUS_BENCH=1 WALRUS_WALCACHE=test/testdata/walcache go test -tags bench ./rsyncgw -run CompareAck -v
func TestCompareAck(t *testing.T) {
	if os.Getenv("WALRUS_BENCH") == "" {
		t.Skip("set WALRUS_BENCH=1")
	}
	segs := benchSegments(t)
	var rest []string // pushed 4 at a time to remote-ack afterwards (group commit)
	if n := os.Getenv("WALRUS_BENCH_SEGMENTS"); n != "" {
		var k int
		fmt.Sscan(n, &k)
		segs, rest = segs[:min(k, len(segs))], segs[min(k, len(segs)):]
	}
	rsyncTimeout = 5 * time.Minute
	gw := backendtest.StartVersityGW(t)
	names := []string{"no bucket", "local-ack", "remote-ack", "claims"}
	var counts [4]*requestCounter
	envs := make([]*testEnv, 4)
	for j := range envs {
		sc := store.Config{Dir: t.TempDir()}
		if j > 0 {
			bucket := gw.NewBucket(t)
			s3, err := backend.NewS3(backend.S3Config{Endpoint: gw.Endpoint, Bucket: bucket, Prefix: "walrus/",
				AccessKey: gw.AccessKey, SecretKey: gw.Secret})
			if err != nil {
				t.Fatal(err)
			}
			counts[j] = &requestCounter{n: map[string]int{}}
			sc.Remote = backend.Stack(s3, backend.StackOptions{Observer: counts[j]})
			sc.AckRemote = j == 2
			if j == 3 { // local-ack with name claims (issue 15), in the same bucket
				cl, err := backend.NewS3(backend.S3Config{Endpoint: gw.Endpoint, Bucket: bucket, Prefix: "claims/",
					AccessKey: gw.AccessKey, SecretKey: gw.Secret})
				if err != nil {
					t.Fatal(err)
				}
				sc.Claims = backend.Stack(cl, backend.StackOptions{Observer: counts[j]})
			}
		}
		envs[j] = startServerAt(t, sc, "[wal]\n\tpath = /db/pg_archived\n\tread only = false\n",
			func(s *store.Store) Store { return s }, func(o *Options) { o.Logger = quiet })
	}
	var wall [4][]time.Duration
	for i, src := range segs {
		name := filepath.Base(src)
		for k := range envs {
			j := (i + k) % len(envs)
			w0 := time.Now()
			if out, code := envs[j].rsync("-a", src, "rsync://HOST/wal/"+name); code != 0 {
				t.Fatalf("rsync push to %s: exit %d: %s", names[j], code, out)
			}
			wall[j] = append(wall[j], time.Since(w0))
		}
	}
	var load []byte
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("\nrsync push of %d segments, interleaved, versitygw on this machine (load %s)\n", len(segs), strings.TrimSpace(string(load)))
	base := median(wall[0])
	for j := range envs {
		m := median(wall[j])
		fmt.Printf("%-11s median %9v  p90 %9v  %.2fx of no bucket", names[j], m.Round(time.Millisecond/10),
			percentile(wall[j], 0.9).Round(time.Millisecond/10), float64(m)/float64(base))
		if j >= 2 {
			fmt.Printf(", %.2fx of local-ack", float64(m)/float64(median(wall[1])))
		}
		if c := counts[j]; c != nil {
			st, _ := envs[j].st.Status()
			fmt.Printf("; %s per segment (uploads %d, %d bytes)", c.perSegment(len(segs)), st.Bucket.Uploads, st.Bucket.UploadedBytes)
		}
		fmt.Println()
	}
	if len(rest) < 8 {
		return
	}
	// Concurrent pushes share seals: 4 rsync clients at once.
	st0, _ := envs[2].st.Status()
	before := counts[2].total("put/ok")
	var wg sync.WaitGroup
	ch := make(chan string)
	w0 := time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for src := range ch {
				if out, code := envs[2].rsync("-a", src, "rsync://HOST/wal/"+filepath.Base(src)); code != 0 {
					t.Errorf("rsync push: exit %d: %s", code, out)
				}
			}
		}()
	}
	for _, src := range rest {
		ch <- src
	}
	close(ch)
	wg.Wait()
	st1, _ := envs[2].st.Status()
	fmt.Printf("remote-ack, 4 clients at once: %d segments in %v, %d uploads, %.2f PUTs per segment\n", len(rest),
		time.Since(w0).Round(time.Millisecond), st1.Bucket.Uploads-st0.Bucket.Uploads, float64(counts[2].total("put/ok")-before)/float64(len(rest)))
}

func (c *requestCounter) total(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// requestCounter counts bucket requests by method and outcome.
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *requestCounter) Observe(method, outcome string, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[method+"/"+outcome]++
}

func (c *requestCounter) perSegment(segs int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys []string
	for k := range c.n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(c.n[k])/float64(segs)))
	}
	return strings.Join(parts, ", ")
}
