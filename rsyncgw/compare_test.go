//go:build bench

package rsyncgw

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/test/bench/rusage"
)

// TestCompareStockDaemon measures walrus against a stock `rsync --daemon`
// serving a plain directory: one rsync invocation per segment, as
// archive_command and restore_command run it, without compression and
// with each -z form. Every row starts from an empty gateway store and an
// empty stock directory, and every pull writes a file that does not exist
// yet (as restore_command's %p), so both servers do the same work. Bytes
// on the wire are what the client's --stats counts (file data, protocol
// framing and file lists); cpu is the server's user+sys per file. It
// prints a table and asserts nothing about time. Run it with
//
//	WALRUS_BENCH=1 [WALRUS_WALCACHE=test/testdata/walcache] go test -tags bench ./rsyncgw -run CompareStock -v
//
// Without WALRUS_WALCACHE it uses 20 synthetic 16 MiB segments.
func TestCompareStockDaemon(t *testing.T) {
	if os.Getenv("WALRUS_BENCH") != "1" {
		t.Skip("benchmark harness: set WALRUS_BENCH=1")
	}
	rsyncTimeout = 5 * time.Minute
	segs := benchSegments(t)
	var logical int64
	for _, s := range segs {
		fi, _ := os.Stat(s)
		logical += fi.Size()
	}
	fmt.Printf("\n%d files, %d bytes (rsync %s, %d CPUs)\n", len(segs), logical, rsyncVersion(), runtime.NumCPU())
	fmt.Printf("%-31s %11s %11s %7s %14s %14s %7s %11s %11s\n", "", "walrus", "stock", "ratio", "wire walrus", "wire stock", "ratio", "cpu walrus", "cpu stock")
	for _, r := range []struct{ label, args string }{
		{"", ""}, {" -z (zstd)", "-z"}, {" --zc=zlib", "--zc=zlib"}, {" --zc=lz4", "--zc=lz4"},
	} {
		t.Run(strings.TrimSpace(r.args), func(t *testing.T) { compareRow(t, segs, r.label, strings.Fields(r.args)) })
	}
}

// compareRow pushes and pulls every segment through a fresh gateway and
// a fresh stock daemon, alternating, and prints push and pull rows.
func compareRow(t *testing.T, segs []string, label string, zargs []string) {
	e := startServer(t, "[wal]\n\tpath = /db/pg_archived\n\tread only = false\n",
		func(o *Options) { o.Logger = quiet })
	plain := t.TempDir()
	stock, stockPid := startStockDaemon(t, plain)
	var push, pull [2]measure
	out := t.TempDir()
	// Server CPU: the gateway serves in this process (rusage.Self around
	// each call; the rsync client is a child and not counted), the stock
	// daemon in its own, whose reaped connection handlers are summed over
	// the phase (rusage.Proc).
	phase := func(ms *[2]measure, each func(src string, m *[2]measure)) {
		before := stockUsage(t, stockPid)
		for _, src := range segs {
			each(src, ms)
		}
		ms[1].cpu += stockUsage(t, stockPid).Sub(before).CPU
	}
	phase(&push, func(src string, m *[2]measure) {
		name := filepath.Base(src)
		self := rusage.Self()
		m[0].add(t, e, with(zargs, "-a", "--stats", src, "rsync://HOST/wal/"+name), "Total bytes sent")
		m[0].cpu += rusage.Self().Sub(self).CPU
		m[1].add(t, e, with(zargs, "-a", "--stats", src, "rsync://"+stock+"/wal/"+name), "Total bytes sent")
	})
	phase(&pull, func(src string, m *[2]measure) {
		name := filepath.Base(src)
		dst := filepath.Join(out, name)
		self := rusage.Self()
		m[0].add(t, e, with(zargs, "-a", "--stats", "rsync://HOST/wal/"+name, dst), "Total bytes received")
		m[0].cpu += rusage.Self().Sub(self).CPU
		os.Remove(dst)
		m[1].add(t, e, with(zargs, "-a", "--stats", "rsync://"+stock+"/wal/"+name, dst), "Total bytes received")
		os.Remove(dst)
	})
	printRow("median push per file"+label, push)
	printRow("median pull per file"+label, pull)
	if len(zargs) == 0 {
		st, err := e.st.Status()
		if err != nil {
			t.Fatal(err)
		}
		plainBytes := duBytes(t, plain)
		fmt.Printf("%-31s %11d %11d %7.3f\n", "bytes stored", st.StoredBytes, plainBytes, float64(st.StoredBytes)/float64(plainBytes))
		fmt.Printf("%-31s %11d\n", "pack bytes on disk", st.DiskBytes)
	}
}

// measure collects the times and the wire bytes of one kind of transfer.
type measure struct {
	times []time.Duration
	wire  int64
	cpu   time.Duration // server user+sys over all calls
}

// stockUsage reads the stock daemon's usage once its connection handlers
// have exited and been reaped (their time is counted only then).
func stockUsage(t *testing.T, pid int) rusage.Usage {
	t.Helper()
	testenv.WaitFor(t, "the stock daemon's handlers to exit", 30*time.Second, func() bool { return !rusage.Children(pid) })
	u, err := rusage.Proc(pid)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (m *measure) add(t *testing.T, e *testEnv, args []string, stat string) {
	start := time.Now()
	out, code := e.rsync(args...)
	m.times = append(m.times, time.Since(start))
	if code != 0 {
		t.Fatalf("rsync %v: exit %d: %s", args, code, out)
	}
	m.wire += statNumber(t, out, stat)
}

func printRow(what string, m [2]measure) {
	mw, ms := median(m[0].times), median(m[1].times)
	n := time.Duration(len(m[0].times))
	fmt.Printf("%-31s %11v %11v %7.2f %14d %14d %7.3f %11v %11v\n", what, mw.Round(time.Millisecond/10), ms.Round(time.Millisecond/10),
		float64(mw)/float64(ms), m[0].wire, m[1].wire, float64(m[0].wire)/float64(m[1].wire),
		(m[0].cpu / n).Round(time.Millisecond/10), (m[1].cpu / n).Round(time.Millisecond/10))
}

// benchSegments returns the files to push: WAL from $WALRUS_WALCACHE, or
// 20 synthetic segments.
func benchSegments(t *testing.T) []string {
	if dir := os.Getenv("WALRUS_WALCACHE"); dir != "" {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		seg := regexp.MustCompile(`^[0-9A-F]{24}$`)
		var out []string
		for _, e := range ents {
			if seg.MatchString(e.Name()) {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
		if len(out) == 0 {
			t.Fatalf("no WAL segments in %s", dir)
		}
		return out
	}
	dir := t.TempDir()
	var out []string
	for i := uint64(1); i <= 20; i++ {
		s := segment(i)
		s.SegSize = 16 << 20
		p := filepath.Join(dir, s.Name())
		if err := os.WriteFile(p, s.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// startStockDaemon runs `rsync --daemon --no-detach` on a free loopback
// port serving dir as module "wal"; it returns host:port and its pid.
func startStockDaemon(t *testing.T, dir string) (string, int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "rsyncd.conf")
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	os.WriteFile(conf, []byte(fmt.Sprintf("use chroot = no\nuid = %s\ngid = %s\n[wal]\n\tpath = %s\n\tread only = false\n", uid, gid, dir)), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "rsync", "--daemon", "--no-detach", "--address=127.0.0.1", "--port="+port, "--config="+conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	testenv.WaitFor(t, "the stock rsync daemon", 10*time.Second, func() bool {
		return exec.Command("rsync", "rsync://"+addr+"/").Run() == nil
	})
	return addr, cmd.Process.Pid
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// duBytes is what the files under dir occupy on disk, like du.
func duBytes(t *testing.T, dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

func rsyncVersion() string {
	out, _ := exec.Command("rsync", "--version").Output()
	if m := regexp.MustCompile(`version (\S+)`).FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return "?"
}

// TestComparePushAB measures archive_command's push, one
// `rsync -aq SEG rsync://HOST/wal/NAME` per segment, into this tree's
// walrus serve, into the walrus binary $WALRUS_BENCH_BASE (main's, for an
// A/B of a change) and into a stock rsync daemon, interleaved segment by
// segment (the order rotates), each server in its own process so that
// server CPU (user+sys from /proc, rusage.Proc) is measured alike. Both
// walrus servers run without the settler, which would otherwise use the
// pauses between pushes. It prints medians, quartiles, the ratio to the
// stock daemon and the load average; it asserts nothing about time. Run
//
//	WALRUS_BENCH=1 WALRUS_BENCH_BASE=/path/to/walrus-main WALRUS_WALCACHE=$PWD/test/testdata/walcache \
//	    go test -tags bench ./rsyncgw -run ComparePushAB -v
func TestComparePushAB(t *testing.T) {
	if os.Getenv("WALRUS_BENCH") != "1" {
		t.Skip("benchmark harness: set WALRUS_BENCH=1")
	}
	base := os.Getenv("WALRUS_BENCH_BASE")
	if base == "" {
		t.Skip("A/B harness: set WALRUS_BENCH_BASE to a walrus binary to compare with (e.g. main's)")
	}
	segs := benchSegments(t)
	head := filepath.Join(t.TempDir(), "walrus")
	build := exec.Command("go", "build", "-o", head, "../cmd/walrus")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	type server struct {
		label string
		addr  string
		pid   int
		stock bool
		times []time.Duration
		cpu   time.Duration
	}
	var servers []*server
	for _, b := range []struct{ label, bin string }{{"head", head}, {"base", base}} {
		addr, pid := startWalrusServe(t, b.bin)
		servers = append(servers, &server{label: b.label, addr: addr, pid: pid})
	}
	addr, pid := startStockDaemon(t, t.TempDir())
	servers = append(servers, &server{label: "stock", addr: addr, pid: pid, stock: true})
	before := loadAvg()
	for i, src := range segs {
		name := filepath.Base(src)
		for k := range servers {
			s := servers[(i+k)%len(servers)]
			u0 := procUsage(t, s.pid, s.stock)
			start := time.Now()
			out, err := exec.Command("rsync", "-aq", src, "rsync://"+s.addr+"/wal/"+name).CombinedOutput()
			s.times = append(s.times, time.Since(start))
			if err != nil {
				t.Fatalf("push to %s: %v: %s", s.label, err, out)
			}
			s.cpu += procUsage(t, s.pid, s.stock).Sub(u0).CPU
		}
	}
	fmt.Printf("\npush, rsync -aq, %d segments, interleaved (rsync %s, %d CPUs), load average %s before, %s after\n",
		len(segs), rsyncVersion(), runtime.NumCPU(), before, loadAvg())
	fmt.Printf("%-8s %10s %10s %10s %8s %12s\n", "", "median", "p25", "p75", "/stock", "cpu/segment")
	stock := median(servers[len(servers)-1].times)
	for _, s := range servers {
		q := slices.Clone(s.times)
		slices.Sort(q)
		m := median(s.times)
		fmt.Printf("%-8s %10v %10v %10v %8.3f %12v\n", s.label, m.Round(time.Millisecond/10), q[len(q)/4].Round(time.Millisecond/10),
			q[3*len(q)/4].Round(time.Millisecond/10), float64(m)/float64(stock), (s.cpu / time.Duration(len(segs))).Round(time.Millisecond/10))
	}
}

// startWalrusServe runs `walrus serve` (binary bin) with only the rsync
// gateway, module "wal" writable, on a free loopback port; it returns
// host:port and its pid.
func startWalrusServe(t *testing.T, bin string) (string, int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "rsyncd.conf")
	os.WriteFile(conf, []byte("[wal]\n\tpath = /\n\tread only = false\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--data", filepath.Join(dir, "data"), "serve", "--rsyncd-conf", conf,
		"--rsync-listen", addr, "--archive-root", "/", "--no-settle", "--cold-tier=off", "--retain-interval=0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	testenv.WaitFor(t, bin+" serve", 20*time.Second, func() bool {
		return exec.Command("rsync", "rsync://"+addr+"/").Run() == nil
	})
	return addr, cmd.Process.Pid
}

// procUsage reads a server's usage; a stock daemon's once its
// connection handlers have been reaped.
func procUsage(t *testing.T, pid int, stock bool) rusage.Usage {
	if stock {
		return stockUsage(t, pid)
	}
	u, err := rusage.Proc(pid)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
