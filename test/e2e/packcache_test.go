package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// cacheStatus is the "bucket"."cache" object of `walrus status --json`.
type cacheStatus struct {
	BoundBytes   int64 `json:"bound_bytes"`
	LocalBytes   int64 `json:"local_bytes"`
	EvictedPacks int   `json:"evicted_packs"`
	RangeGets    int64 `json:"range_gets"`
	RangeBytes   int64 `json:"range_bytes"`
}

func serverCache(t *testing.T, w *walrusproc.Server) (*bucketStatus, *cacheStatus) {
	t.Helper()
	var st struct {
		Bucket *struct {
			Cache *cacheStatus `json:"cache"`
		} `json:"bucket"`
	}
	if err := json.Unmarshal([]byte(w.MustCLI("status", "--json")), &st); err != nil {
		t.Fatalf("walrus status --json: %v", err)
	}
	if st.Bucket == nil || st.Bucket.Cache == nil {
		t.Fatal("walrus status --json has no bucket.cache object with --bucket set")
	}
	return serverBucket(t, w), st.Bucket.Cache
}

// A `walrus serve --bucket --bucket-cache-size` keeps DATA/packs within
// the bound once its packs are uploaded; restarted, it serves every
// segment byte-identical through the FUSE mount and through rsync from
// evicted packs (range GETs), and walrus verify passes.
func TestBucketCacheServesEvictedPacks(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	testenv.RequireCommand(t, "rsync")
	const n = 12
	corpus := walCorpus(t, n)
	gw := backendtest.StartVersityGW(t)
	home := t.TempDir()
	_, serveArgs := bucketArgs(t, gw, home, true)
	const bound = 2 << 20
	serveArgs = append(serveArgs, "--bucket-cache-size", strconv.Itoa(bound))

	w := walrusproc.Start(t, home, serveArgs...)
	for _, p := range corpus {
		// One segment per roll age: several packs.
		if out, err := exec.Command("rsync", "-a", p, w.StoreURL(filepath.Base(p))).CombinedOutput(); err != nil {
			t.Fatalf("rsync %s: %v %s", p, err, out)
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	var c *cacheStatus
	for {
		var b *bucketStatus
		b, c = serverCache(t, w)
		if b.WaitingPacks == 0 && b.ActiveBytes == 0 && !b.Failing && c.EvictedPacks > 0 && c.LocalBytes <= bound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the packs were not uploaded and evicted in 3 minutes: %+v %+v", b, c)
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not synchronisation
	}
	if text := w.MustCLI("status"); !strings.Contains(text, "local pack cache:") {
		t.Fatalf("walrus status does not show the pack cache:\n%s", text)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	var onDisk int64
	packs, _ := filepath.Glob(filepath.Join(w.Data, "packs", "*.pack"))
	for _, p := range packs {
		if fi, err := os.Stat(p); err == nil {
			onDisk += fi.Size()
		}
	}
	if onDisk > bound {
		t.Fatalf("DATA/packs holds %d bytes in %d packs, bound %d", onDisk, len(packs), bound)
	}
	t.Logf("%d packs evicted; %d bytes in %d local packs", c.EvictedPacks, onDisk, len(packs))

	w = walrusproc.Start(t, home, serveArgs...)
	for i, p := range corpus {
		name := filepath.Base(p)
		if out, err := exec.Command("cmp", p, filepath.Join(w.Mount, name)).CombinedOutput(); err != nil {
			t.Fatalf("%s through the mount: %v %s", name, err, out)
		}
		if i%4 == 0 {
			dst := filepath.Join(t.TempDir(), name)
			if out, err := exec.Command("rsync", "-a", w.FetchURL(name), dst).CombinedOutput(); err != nil {
				t.Fatalf("rsync fetch %s: %v %s", name, err, out)
			}
			if out, err := exec.Command("cmp", p, dst).CombinedOutput(); err != nil {
				t.Fatalf("%s through rsync: %v %s", name, err, out)
			}
		}
	}
	_, c = serverCache(t, w)
	if c.RangeGets == 0 || c.RangeBytes == 0 {
		t.Fatalf("segments of evicted packs were read without range GETs: %+v", c)
	}
	t.Logf("read back %d segments: %d range GETs, %d bytes", n, c.RangeGets, c.RangeBytes)
	w.Verify()
}
