//go:build bench

package bench

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
	"github.com/walrus-archive/walrus/test/bench/rusage"
)

// TestColdStartBench measures the cold start of a new front-end on an
// empty data directory (`walrus repair --from-bucket`, the built binary, a
// child process with its own peak RSS), from the newest index snapshot
// against the rebuild from the packs alone (--ignore-snapshots: download
// every pack, scan it), interleaved, on versitygw on this host:
//
//   - WALRUS_COLDSTART_SEGMENTS (default 10 000) segments pushed through
//     the store's commit path into a store with a bucket: 1 MiB segments
//     of 64 KiB blocks with 4 pages of generated WAL each (one block
//     stored, the rest holes: about 10 KB a segment, so the run takes
//     minutes, not hours); a snapshot after 90 % of them, the rest after
//     it. The rebuild from the packs alone moves the bucket's bytes, so its
//     time for real WAL (about 1.1 MB stored a segment) is longer in
//     proportion; the table gives the measured rate;
//   - (simulated) WALRUS_COLDSTART_SIM (default 1 000 000) segment records
//     of 16 MiB with 16 distinct 1 MiB blocks each, in packs of 256 MiB,
//     written straight into the index (as TestStatusScale does), the
//     snapshot written by the store to versitygw, and the cold start run
//     against a bucket whose listing also names those packs (a Backend
//     that adds them to List: their bytes, about a terabyte, are not
//     stored, and nothing reads them). The rebuild from the packs alone is
//     not run there; its time is extrapolated from the measured download
//     and scan rate.
func TestColdStartBench(t *testing.T) {
	bin := walrusBin(t)
	gw := backendtest.StartVersityGW(t)
	n := envCount(t, "WALRUS_COLDSTART_SEGMENTS", 10_000)
	sims := []int{1_000_000}
	if v := os.Getenv("WALRUS_COLDSTART_SIM"); v != "" {
		sims = sims[:0]
		for _, f := range strings.Split(v, ",") {
			if k, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && k > 0 {
				sims = append(sims, k)
			}
		}
	}
	fmt.Printf("\n## Cold start from the bucket (`walrus repair --from-bucket`, versitygw on this host)\n\n")
	fmt.Println("| segments | rebuild | round | wall s | user+sys s | peak RSS MB | downloaded MB | packs downloaded / in bucket | ratio to packs alone |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	rate := coldStartReal(t, bin, gw, n)
	for _, k := range sims {
		coldStartSim(t, gw, k, rate)
	}
}

func envCount(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 10 {
		t.Fatalf("%s=%q: want a count of at least 10", name, v)
	}
	return n
}

func coldStartBucket(t *testing.T, gw *backendtest.VersityGW) (string, backend.Backend) {
	t.Helper()
	name := gw.NewBucket(t)
	s3, err := backend.NewS3(backend.S3Config{Endpoint: gw.Endpoint, Bucket: name, Prefix: "walrus/", AccessKey: gw.AccessKey, SecretKey: gw.Secret})
	if err != nil {
		t.Fatal(err)
	}
	return name, backend.Stack(s3, backend.StackOptions{})
}

func waitDrained(t *testing.T, s *store.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		st, err := s.Status()
		if err != nil {
			t.Fatal(err)
		}
		if b := st.Bucket; b != nil && !b.Lagging() && !b.Failing {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bucket did not catch up: %+v", st.Bucket)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// coldStartReal is the measured part; it returns the rebuild from the
// packs alone's rate in bucket bytes per second.
func coldStartReal(t *testing.T, bin string, gw *backendtest.VersityGW, n int) float64 {
	bucket, b := coldStartBucket(t, gw)
	dir := t.TempDir()
	s, err := store.Open(store.Config{Dir: dir, BlockSize: 64 << 10, Remote: b, RollAge: time.Second,
		SettleLevel: "off", ColdTier: "off", SnapshotBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	push := func(from, to int) {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + w; i < to; i += 4 {
					sg := walgen.Segment{TLI: 1, SegNo: uint64(i + 1), SysID: 7, SegSize: 1 << 20, Seed: uint64(i), UsedPages: 4}
					u, err := s.Create("c/"+sg.Name(), store.FileMeta{Mode: 0o600, MTime: time.Now()})
					if err == nil {
						_, err = u.Write(sg.Bytes())
					}
					if err == nil {
						_, err = u.Commit()
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	push(0, n*9/10)
	waitDrained(t, s)
	info, _, err := s.WriteSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	push(n*9/10, n)
	waitDrained(t, s)
	st, _ := s.Status()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\n<!-- %d segments pushed in %.0f s; stored %.1f MB (%.1f KB a segment); snapshot %s: %.1f MB, %d files, %d blocks, written in %.2f s -->\n",
		n, time.Since(start).Seconds(), float64(st.StoredBytes)/1e6, float64(st.StoredBytes)/float64(n)/1e3, info.Name, float64(info.Bytes)/1e6, info.Files, info.Blocks, info.Seconds)

	os.Setenv("WALRUS_BUCKET_SECRET_KEY", gw.Secret)
	flags := []string{"repair", "--from-bucket", "--json", "--bucket", bucket, "--bucket-endpoint", gw.Endpoint, "--no-bucket-tls",
		"--bucket-prefix", "walrus/", "--bucket-access-key", gw.AccessKey}
	var snapWall, fullWall, fullBytes float64
	for round := 1; round <= 2; round++ {
		for _, full := range []bool{false, true} {
			target := filepath.Join(t.TempDir(), "data")
			args := append([]string{bin, "--data", target}, flags...)
			what := "index snapshot"
			if full {
				args, what = append(args, "--ignore-snapshots"), "packs alone"
			}
			r, err := rusage.Measure(t.TempDir(), args...)
			if err != nil || r.Exit != 0 {
				t.Fatalf("%s: exit %d %v\n%s", strings.Join(args, " "), r.Exit, err, r.Stdout)
			}
			var got, bucketPacks int
			var mb float64
			if full {
				fullWall = r.Wall.Seconds()
				got, mb = countFetched(t, target)
				bucketPacks, fullBytes = got, mb*1e6
			} else {
				var cs store.ColdStartReport
				if err := json.Unmarshal(r.Stdout, &cs); err != nil {
					t.Fatalf("repair --json: %v\n%s", err, r.Stdout)
				}
				if cs.Files != int64(n) || len(cs.Problems) > 0 {
					t.Fatalf("cold start rebuilt %d files (want %d), problems %v", cs.Files, n, cs.Problems)
				}
				snapWall, got, bucketPacks, mb = r.Wall.Seconds(), cs.FetchedPacks, cs.BucketPacks, float64(cs.FetchedBytes)/1e6
			}
			ratio := ""
			if full {
				ratio = fmt.Sprintf("%.3f", snapWall/fullWall)
			}
			fmt.Printf("| %d | %s | %d | %.2f | %.2f | %.0f | %.1f | %d / %d | %s |\n", n, what, round, r.Wall.Seconds(), r.CPU.Seconds(),
				float64(r.MaxRSS)/(1<<20), mb, got, bucketPacks, ratio)
		}
	}
	return fullBytes / fullWall
}

// countFetched returns the packs in a rebuilt data directory and their MB.
func countFetched(t *testing.T, dir string) (int, float64) {
	ents, err := os.ReadDir(filepath.Join(dir, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var bytes int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".pack") {
			n++
			bytes += fi.Size()
		}
	}
	return n, float64(bytes) / 1e6
}

// The simulated archive: n segments of 16 blocks, packs of 256 MiB of
// records 1 MiB / 15 long (what real WAL stores), pack ids from simFirst.
const (
	simBlocks   = 16
	simStored   = (1 << 20) / 15
	simRecord   = 48 + simStored
	simPackSize = 256 << 20
	simFirst    = 1000
	simPerPack  = (simPackSize - 64) / simRecord
)

func simPacks(n int) int { return (n*simBlocks + simPerPack - 1) / simPerPack }

func simPackSizeOf(n, i int) int64 {
	k := simPerPack
	if i == simPacks(n)-1 {
		k = n*simBlocks - i*simPerPack
	}
	return 64 + int64(k)*simRecord
}

// listedPacks is a bucket whose listing of packs/ also names the
// simulated packs.
type listedPacks struct {
	backend.Backend
	n int
}

func (l listedPacks) List(ctx context.Context, prefix string, fn func(backend.Info) error) error {
	if err := l.Backend.List(ctx, prefix, fn); err != nil {
		return err
	}
	if !strings.HasPrefix("packs/", prefix) {
		return nil
	}
	for i := range simPacks(l.n) {
		if err := fn(backend.Info{Name: fmt.Sprintf("packs/%08d.pack", simFirst+i), Size: simPackSizeOf(l.n, i)}); err != nil {
			return err
		}
	}
	return nil
}

// ListAfter merges the simulated packs into the bucket's listing, in
// order.
func (l listedPacks) ListAfter(ctx context.Context, prefix, after string, fn func(backend.Info) error) error {
	return backend.ListAfterFromList(ctx, l.List, prefix, after, fn)
}

func coldStartSim(t *testing.T, gw *backendtest.VersityGW, n int, rate float64) {
	bucket, raw := coldStartBucket(t, gw)
	b := listedPacks{Backend: raw, n: n}
	dir := t.TempDir()
	start := time.Now()
	s, err := store.Open(store.Config{Dir: dir, SettleLevel: "off", ColdTier: "off"})
	if err != nil {
		t.Fatal(err)
	}
	first := walgen.Segment{TLI: 1, SegNo: 1, SysID: 7, SegSize: 16 << 20, UsedPages: 1}
	u, err := s.Create("c/"+first.Name(), store.FileMeta{Mode: 0o600, MTime: time.Now()})
	if err == nil {
		_, err = u.Write(first.Bytes())
	}
	if err == nil {
		_, err = u.Commit()
	}
	if err == nil {
		err = s.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	loadSimRecords(t, dir, n)
	s, err = store.Open(store.Config{Dir: dir, SettleLevel: "off", ColdTier: "off", Remote: b, SnapshotBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	waitDrained(t, s) // the real pack too: the snapshot's ScanFrom is past every pack
	load := time.Since(start)
	info, _, err := s.WriteSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\n<!-- simulated %d segments: records loaded in %.0f s; snapshot %s: %.1f MB (%.0f B a segment), %d files, %d blocks, written in %.1f s -->\n",
		n, load.Seconds(), info.Name, float64(info.Bytes)/1e6, float64(info.Bytes)/float64(n), info.Files, info.Blocks, info.Seconds)

	target := filepath.Join(t.TempDir(), "data")
	os.Setenv("WALRUS_COLDSTART_CHILD", strings.Join([]string{gw.Endpoint, bucket, gw.AccessKey, gw.Secret, strconv.Itoa(n), target}, "|"))
	defer os.Unsetenv("WALRUS_COLDSTART_CHILD")
	self, _ := os.Executable()
	r, err := rusage.Measure(t.TempDir(), self, "-test.run=^TestColdStartSimChild$")
	if err != nil || r.Exit != 0 {
		t.Fatalf("cold start child: exit %d %v\n%s", r.Exit, err, r.Stdout)
	}
	var cs store.ColdStartReport
	out := string(r.Stdout)
	if i := strings.Index(out, "{"); i >= 0 {
		out = out[i:]
	}
	if j := strings.LastIndex(out, "}"); j >= 0 {
		out = out[:j+1]
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("child report: %v\n%s", err, r.Stdout)
	}
	if cs.Files != int64(n)+1 || len(cs.Problems) > 0 || cs.EvictedPacks < simPacks(n) {
		t.Fatalf("simulated cold start: %d files (want %d), %d packs evicted (want %d), problems %v", cs.Files, n+1, cs.EvictedPacks, simPacks(n), cs.Problems)
	}
	var bucketBytes int64
	for i := range simPacks(n) {
		bucketBytes += simPackSizeOf(n, i)
	}
	full := float64(bucketBytes) / rate
	fmt.Printf("| %d (simulated) | index snapshot | 1 | %.1f | %.1f | %.0f | %.1f | %d / %d | %.4f |\n", n, r.Wall.Seconds(), r.CPU.Seconds(),
		float64(r.MaxRSS)/(1<<20), float64(cs.FetchedBytes)/1e6, cs.FetchedPacks, cs.BucketPacks, r.Wall.Seconds()/full)
	fmt.Printf("| %d (simulated) | packs alone (extrapolated: %.0f GB at the %.0f MB/s measured above) | — | %.0f | | | %.0f | %d / %d | |\n",
		n, float64(bucketBytes)/1e9, rate/1e6, full, float64(bucketBytes)/1e6, cs.BucketPacks, cs.BucketPacks)
	fmt.Printf("\n<!-- simulated %d: snapshot read %.1f s, scan %.1f s, index written and checkpointed %.1f s -->\n", n, cs.SnapshotSeconds, cs.ScanSeconds, cs.WriteSeconds)
}

// TestColdStartSimChild is the simulated cold start's child process
// (coldStartSim): it prints the report as JSON.
func TestColdStartSimChild(t *testing.T) {
	v := os.Getenv("WALRUS_COLDSTART_CHILD")
	if v == "" {
		t.Skip("the child of TestColdStartBench")
	}
	f := strings.Split(v, "|")
	n, _ := strconv.Atoi(f[4])
	s3, err := backend.NewS3(backend.S3Config{Endpoint: f[0], Bucket: f[1], Prefix: "walrus/", AccessKey: f[2], SecretKey: f[3]})
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("GOMEMLIMIT") == "" && os.Getenv("GOGC") == "" {
		var si syscall.Sysinfo_t // as walrus repair --from-bucket does
		if syscall.Sysinfo(&si) == nil {
			debug.SetMemoryLimit(int64(si.Totalram) * int64(si.Unit) / 2)
		}
	}
	if prof := os.Getenv("WALRUS_COLDSTART_HEAPPROFILE"); prof != "" {
		stop := profileHeapPeaks(prof)
		defer stop()
	}
	cs, err := store.RebuildFromBucket(context.Background(), store.Config{Dir: f[5]}, listedPacks{Backend: backend.Stack(s3, backend.StackOptions{}), n: n}, store.RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(cs)
}

// profileHeapPeaks writes a heap profile to path whenever the heap in use
// reaches a new high, checked every 200 ms (where the cold start's memory
// goes).
func profileHeapPeaks(path string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var high uint64
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > high+high/10 {
				high = ms.HeapInuse
				if f, err := os.Create(path); err == nil {
					pprof.WriteHeapProfile(f)
					f.Close()
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// loadSimRecords writes n segment records, their blocks and the packs
// holding them into the closed store's index, and counts them in the
// namespace's and the archive's totals.
func loadSimRecords(t *testing.T, dir string, n int) {
	db, err := index.Open(filepath.Join(dir, "index"), index.Options{MemTableSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := db.NewLoader()
	now := time.Now().UnixNano()
	blk := 0
	for i := range n {
		segno := uint64(i + 2)
		f := &index.File{Dir: "c", Name: segFile(1, segno), Size: scaleSegSize, Mode: 0o600, MTime: now, Archived: now,
			BlockSize: 1 << 20, Blocks: make([]index.Hash, simBlocks), Stored: simBlocks * simRecord}
		binary.BigEndian.PutUint64(f.Hash[:], segno)
		for k := range f.Blocks {
			h := &f.Blocks[k]
			// As incompressible as real block hashes.
			var seed [9]byte
			binary.BigEndian.PutUint64(seed[:], segno)
			seed[8] = byte(k)
			*h = sha256.Sum256(seed[:])
			pk := blk / simPerPack
			off := 64 + int64(blk%simPerPack)*simRecord
			if err := l.PutBlock(*h, &index.Block{Pack: uint32(simFirst + pk), Offset: off, RawLen: 1 << 20, StoredLen: simStored, Codec: index.CodecZstd, Refs: 1}); err != nil {
				t.Fatal(err)
			}
			blk++
		}
		if err := l.PutFile(f); err != nil {
			t.Fatal(err)
		}
	}
	for i := range simPacks(n) {
		size := simPackSizeOf(n, i)
		if err := l.PutPack(&index.Pack{ID: uint32(simFirst + i), Committed: size, Live: size - 64, Uploaded: true, Evicted: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(x *index.Txn) error {
		d, err := x.Dir("c")
		if err != nil {
			return err
		}
		st, err := x.Stats()
		if err != nil {
			return err
		}
		d.Files, d.Segments, d.LogicalBytes = d.Files+int64(n), d.Segments+int64(n), d.LogicalBytes+int64(n)*scaleSegSize
		d.StoredBytes += int64(n) * simBlocks * simRecord
		st.Files, st.LogicalBytes = st.Files+int64(n), st.LogicalBytes+int64(n)*scaleSegSize
		if err := x.PutDir(d); err != nil {
			return err
		}
		return x.PutStats(st)
	})
	if err != nil {
		t.Fatal(err)
	}
}
