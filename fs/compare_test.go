//go:build bench

package fs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
	"github.com/walrus-archive/walrus/test/bench/rusage"
)

// TestCompareMount times, per segment, the mount against a plain directory
// on the same disk: cp into the mount vs cp + sync into the directory; cp
// out of the mount cold (fresh store, empty cache) and warm, with and
// without prefetch, vs cp out of the directory. It prints medians and
// ratios and asserts nothing. Run with WALRUS_BENCH=1; segments come from
// $WALRUS_WALCACHE (real WAL) or else walgen.
//
//	WALRUS_BENCH=1 WALRUS_WALCACHE=test/testdata/walcache go test -run TestCompareMount -v ./fs
func TestCompareMount(t *testing.T) {
	if os.Getenv("WALRUS_BENCH") != "1" {
		t.Skip("set WALRUS_BENCH=1 to compare the mount with a plain directory")
	}
	requireFUSE(t)
	base := t.TempDir()
	src := benchSegments(t, filepath.Join(base, "src"))
	plain, out := filepath.Join(base, "plain"), filepath.Join(base, "out")
	mnt, data := filepath.Join(base, "mnt"), filepath.Join(base, "data")
	for _, d := range []string{plain, out, mnt} {
		os.MkdirAll(d, 0o755)
	}
	// cpu holds, per label, the user+sys time of this process (the
	// mount's server, in-process; children are not counted) per command.
	cpu := map[string][]time.Duration{}
	faults := map[string]int64{} // minor page faults of this process
	var label string
	sh := func(script string, args ...string) time.Duration {
		t.Helper()
		before := rusage.Self()
		start := time.Now()
		if o, err := exec.Command("sh", append([]string{"-c", script, "sh"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", script, args, err, o)
		}
		wall := time.Since(start)
		used := rusage.Self().Sub(before)
		cpu[label] = append(cpu[label], used.CPU)
		faults[label] += used.MinFlt
		return wall
	}
	res := map[string][]time.Duration{}
	mountAt := func(data, mnt string, prefetch int, noLanding bool) (*store.Store, *Server) {
		// WALRUS_BENCH_LEVEL picks the store's zstd level (default "default").
		st, err := store.Open(store.Config{Dir: data, Level: os.Getenv("WALRUS_BENCH_LEVEL")})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := Mount(st, Options{Mount: mnt, Prefetch: prefetch, NoLanding: noLanding})
		if err != nil {
			t.Fatal(err)
		}
		return st, srv
	}
	mount := func(prefetch int) (*store.Store, *Server) { return mountAt(data, mnt, prefetch, false) }
	unmount := func(st *store.Store, srv *Server) {
		srv.Unmount()
		srv.Wait()
		st.StopPrefetch()
		st.Close()
	}

	// Sustained: each variant alone on a fresh store, every segment cp'd
	// back to back (landing: ingest runs behind in the background), then
	// until everything is ingested; server CPU per segment, ingest
	// included.
	for i, v := range []struct {
		label     string
		noLanding bool
	}{{"sustained cp in: mount", false}, {"sustained cp in: mount, streaming", true}} {
		d, m := filepath.Join(base, fmt.Sprintf("sdata%d", i)), filepath.Join(base, fmt.Sprintf("smnt%d", i))
		os.MkdirAll(m, 0o755)
		sst, ssrv := mountAt(d, m, 0, v.noLanding)
		label = v.label
		before := rusage.Self()
		start := time.Now()
		for _, p := range src {
			res[label] = append(res[label], sh(`cp "$1" "$2"`, p, filepath.Join(m, filepath.Base(p))))
		}
		sst.WaitIngested()
		cpu := rusage.Self().Sub(before).CPU
		fmt.Printf("  %-36s until ingested: %6.1f ms wall, %6.1f ms server cpu per segment\n", v.label,
			ms(time.Since(start)/time.Duration(len(src))), ms(cpu/time.Duration(len(src))))
		unmount(sst, ssrv)
	}

	// Per segment, interleaved: the landing mount (its ingest finished
	// before the next command, untimed), a second mount over its own store
	// that streams segments into the store (NoLanding: the path before
	// landing), plain cp + sync.
	mnt2, data2 := filepath.Join(base, "mnt2"), filepath.Join(base, "data2")
	os.MkdirAll(mnt2, 0o755)
	st2, srv2 := mountAt(data2, mnt2, 0, true)
	st, srv := mount(0)
	if !srv.fsys.passthrough.Load() {
		t.Log("the kernel refused FUSE passthrough: both mounts stream")
	}
	for _, p := range src {
		name := filepath.Base(p)
		label = "cp in: mount"
		res[label] = append(res[label], sh(`cp "$1" "$2"`, p, filepath.Join(mnt, name)))
		label = "ingest"
		st.WaitIngested()
		label = "cp in: mount, streaming"
		res[label] = append(res[label], sh(`cp "$1" "$2"`, p, filepath.Join(mnt2, name)))
		label = "cp in: plain+sync"
		res[label] = append(res[label], sh(`cp "$1" "$2" && sync "$2"`, p, filepath.Join(plain, name)))
		// rsync writes a temp file and renames it: a work file committed
		// by the rename.
		sub := filepath.Join(mnt, "rsync")
		label = "mkdir"
		sh(`mkdir -p "$1" "$2"`, sub, filepath.Join(plain, "rsync")) // never touch the mount from its server
		label = "rsync in: mount"
		res[label] = append(res[label], sh(`rsync -a "$1" "$2"`, p, filepath.Join(sub, name)))
		label = "rsync in: plain+sync"
		res[label] = append(res[label], sh(`rsync -a "$1" "$2" && sync "$2"`, p, filepath.Join(plain, "rsync", name)))
	}
	unmount(st2, srv2)
	unmount(st, srv)

	restore := func(l, dir string) {
		// Every phase starts with no dirty pages of earlier phases' copies
		// (writeback would throttle this one's cp).
		label = "sync"
		sh(`rm -f "$1"/* && sync`, out)
		label = l
		for _, p := range src {
			name := filepath.Base(p)
			res[label] = append(res[label], sh(`cp "$1" "$2"`, filepath.Join(dir, name), filepath.Join(out, name)))
		}
	}
	for _, pf := range []int{-1, DefaultPrefetch} {
		st, srv := mount(pf) // fresh store: empty block cache, new inodes
		tag := fmt.Sprintf("prefetch %d", max(pf, 0))
		restore("cp out: mount cold, "+tag, mnt)
		restore("cp out: mount warm, "+tag, mnt)
		unmount(st, srv)
	}
	if dropCaches() {
		restore("cp out: plain cold", plain)
	}
	restore("cp out: plain warm", plain)

	if testing.Verbose() {
		for _, k := range []string{"cp out: mount cold, prefetch 0", "cp out: mount cold, prefetch 8"} {
			t.Logf("%s, in order: %v", k, res[k])
		}
	}
	med := map[string]time.Duration{}
	var labels []string
	for k, v := range res {
		med[k] = median(v)
		labels = append(labels, k)
	}
	sort.Strings(labels)
	fmt.Printf("%d segments of %d MiB, median wall per segment; cpu (user+sys) and minor faults of the in-process server per segment (mean):\n", len(src), segSizeOf(src[0])>>20)
	for _, k := range labels {
		fmt.Printf("  %-36s %8.1f ms  cpu %6.1f ms  minflt %6d\n", k, ms(med[k]), ms(mean(cpu[k])), faults[k]/int64(len(res[k])))
	}
	ratio := func(a, b string) {
		if med[a] > 0 && med[b] > 0 {
			fmt.Printf("  %-36s / %-22s = %.2f\n", a, b, float64(med[a])/float64(med[b]))
		}
	}
	ratio("cp in: mount", "cp in: plain+sync")
	ratio("cp in: mount, streaming", "cp in: plain+sync")
	ratio("sustained cp in: mount", "cp in: plain+sync")
	ratio("sustained cp in: mount, streaming", "cp in: plain+sync")
	ratio("rsync in: mount", "rsync in: plain+sync")
	for _, tag := range []string{"prefetch 0", "prefetch 8"} {
		ratio("cp out: mount cold, "+tag, "cp out: plain cold")
		ratio("cp out: mount cold, "+tag, "cp out: plain warm")
		ratio("cp out: mount warm, "+tag, "cp out: plain warm")
	}
}

func median(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	v = append([]time.Duration(nil), v...)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[len(v)/2]
}

func mean(v []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range v {
		sum += d
	}
	return sum / time.Duration(max(1, len(v)))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchSegments copies up to 16 segments ($WALRUS_BENCH_SEGMENTS) from
// $WALRUS_WALCACHE into dir, or writes 16 synthetic 16 MiB segments there.
// More than the block cache holds (256 MiB: 16 segments) measures a
// restore whose cache evicts, as a long recovery does.
func benchSegments(t *testing.T, dir string) []string {
	os.MkdirAll(dir, 0o755)
	limit := 16
	if n, err := strconv.Atoi(os.Getenv("WALRUS_BENCH_SEGMENTS")); err == nil && n > 0 {
		limit = n
	}
	var out []string
	if cache := os.Getenv("WALRUS_WALCACHE"); cache != "" {
		names, _ := filepath.Glob(filepath.Join(cache, "[0-9A-F]*"))
		sort.Strings(names)
		for _, n := range names {
			if fi, err := os.Stat(n); err != nil || len(filepath.Base(n)) != 24 || fi.Size() < 1<<20 {
				continue
			}
			b, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, filepath.Base(n))
			os.WriteFile(p, b, 0o600)
			if out = append(out, p); len(out) == limit {
				break
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	for i := range 16 {
		g := walgen.Segment{TLI: 1, SegNo: uint64(i + 1), SysID: testSysID, SegSize: 16 << 20, Seed: 1}
		p := filepath.Join(dir, g.Name())
		os.WriteFile(p, g.Bytes(), 0o600)
		out = append(out, p)
	}
	return out
}

func segSizeOf(p string) int64 {
	fi, _ := os.Stat(p)
	return fi.Size()
}

// dropCaches empties the kernel's page cache (root only) so plain reads are
// cold like the mount's.
func dropCaches() bool {
	exec.Command("sync").Run()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0) == nil
}

// TestCompareLs times `ls` of 100 000 names in the mount against `ls` of a
// plain directory holding as many empty files (target: under 1 s).
func TestCompareLs(t *testing.T) {
	if os.Getenv("WALRUS_BENCH") != "1" {
		t.Skip("set WALRUS_BENCH=1 to compare the mount with a plain directory")
	}
	const n = 100_000
	e := mountTest(t)
	fill(t, e, "big", n)
	plain := t.TempDir()
	for i := 0; i < n; i++ {
		f, err := os.Create(filepath.Join(plain, fmt.Sprintf("f%06d", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	timeLs := func(dir string) time.Duration {
		var best time.Duration
		for i := 0; i < 3; i++ {
			start := time.Now()
			e.mustRun("ls", dir)
			if d := time.Since(start); best == 0 || d < best {
				best = d
			}
		}
		return best
	}
	mnt, pl := timeLs(e.m("big")), timeLs(plain)
	fmt.Printf("ls of %d names (best of 3): mount %v, plain %v, ratio %.2f\n", n, mnt, pl, float64(mnt)/float64(pl))
}
