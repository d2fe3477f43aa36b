//go:build bench

package bench

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

// Targets of issue 12 for `walrus status` on 1 000 000 segments.
const (
	statusTargetSeconds = 2.0
	statusTargetRSS     = 256 << 20
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
	fmt.Printf("\n## `walrus status` on synthetic index records (target at 1 000 000 segments: ≤ %.0f s, RSS ≤ %d MB)\n\n", statusTargetSeconds, statusTargetRSS>>20)
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
		layout := buildStatusArchive(t, dir, n)
		load := time.Since(start)
		for _, args := range [][]string{{"status", "--json"}, {"status", "--check"}} {
			r := runMeasured(t, bin, dir, args...)
			if args[1] == "--json" {
				layout.check(t, r.stdout)
			} else if r.exit != 2 || !strings.Contains(string(r.stdout), "3 segments") {
				t.Errorf("status --check on %d: exit %d, want 2 with the gap reported:\n%s", n, r.exit, r.stdout)
			}
			fmt.Printf("| %d | %.1f | `%s` | %.3f | %.3f | %.1f | %.2f | %.2f |\n", n, load.Seconds(), strings.Join(args, " "),
				r.wall.Seconds(), r.cpu.Seconds(), float64(r.rss)/(1<<20), r.wall.Seconds()/statusTargetSeconds, float64(r.rss)/statusTargetRSS)
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

type measured struct {
	stdout    []byte
	exit      int
	wall, cpu time.Duration
	rss       int64 // bytes
}

// runMeasured runs `walrus --data dir args...` and reports its wall time,
// CPU time and peak resident set (getrusage ru_maxrss). The child is
// started by a fresh copy of this test binary (measureChild), not by this
// process: Go starts children with vfork, and Linux's ru_maxrss of a
// vforked child that execs is at least its parent's peak RSS (exec takes
// the old, shared mm's high-water mark: kernel exec_mmap,
// setmax_mm_hiwater_rss), so a child of a test that has just loaded a
// million records would report the test's memory, not its own.
func runMeasured(t *testing.T, bin, dir string, args ...string) measured {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv, _ := json.Marshal(append([]string{bin, "--data", dir}, args...))
	usage, err := os.CreateTemp(t.TempDir(), "rusage")
	if err != nil {
		t.Fatal(err)
	}
	defer usage.Close()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), measureChildEnv+"="+string(argv), measureChildEnv+"_OUT="+usage.Name())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	r := measured{stdout: out}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.exit = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("walrus %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var u childUsage
	if b, err := io.ReadAll(usage); err != nil || json.Unmarshal(b, &u) != nil || u.Error != "" {
		t.Fatalf("walrus %s: no usage reported (%v %s)\n%s", strings.Join(args, " "), err, u.Error, stderr.Bytes())
	}
	r.wall, r.cpu, r.rss = u.Wall, u.CPU, u.MaxRSS
	return r
}

const measureChildEnv = "WALRUS_BENCH_MEASURE"

type childUsage struct {
	Wall, CPU time.Duration
	MaxRSS    int64 // bytes
	Error     string
}

func TestMain(m *testing.M) {
	if argv := os.Getenv(measureChildEnv); argv != "" {
		os.Exit(measureChild(argv, os.Getenv(measureChildEnv+"_OUT")))
	}
	os.Exit(m.Run())
}

// measureChild runs the command argv (JSON) with this process's standard
// streams, writes its wall time, CPU time and peak RSS to out and returns
// its exit status. This process is small when it starts the command, so
// the command's ru_maxrss is its own.
func measureChild(argv, out string) int {
	var args []string
	var u childUsage
	code := 1
	if err := json.Unmarshal([]byte(argv), &args); err != nil || len(args) == 0 {
		u.Error = fmt.Sprintf("bad %s: %v", measureChildEnv, err)
	} else {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		start := time.Now()
		err := cmd.Run()
		u.Wall = time.Since(start)
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			code = exit.ExitCode()
		case err != nil:
			u.Error = err.Error()
		default:
			code = 0
		}
		if cmd.ProcessState != nil {
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			u.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			u.MaxRSS = ru.Maxrss << 10 // KiB on Linux
		}
	}
	b, _ := json.Marshal(u)
	if err := os.WriteFile(out, b, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}

// statusArchive is what buildStatusArchive made, for checking the report.
type statusArchive struct {
	segments     int    // full segments
	branch       uint64 // timeline 2 begins in this segment; timeline 1's is its .partial
	gap          uint64 // timeline 1 lacks gap, gap+1, gap+2
	last         uint64 // the newest segment, on timeline 2
	firstBackup  string // on timeline 1, before the gap
	secondBackup string // on timeline 2
}

const scaleSegSize = 16 << 20

// buildStatusArchive makes the directory "c" of n full segments: timeline
// 1 from segment 1 to branch-1 (without the three segments of the gap) and
// the .partial of branch; timeline 2 from branch to n+3.
func buildStatusArchive(t *testing.T, dir string, n int) statusArchive {
	a := statusArchive{segments: n, branch: uint64(n) * 3 / 4, gap: uint64(n) / 2}
	a.last = uint64(n) + 3
	s, err := store.Open(store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	seg := func(tli uint32, segno uint64) []byte {
		return walgen.Segment{TLI: tli, SegNo: segno, SysID: 7, SegSize: scaleSegSize, UsedPages: 1}.Bytes()
	}
	put := func(name string, b []byte) {
		t.Helper()
		u, err := s.Create("c/"+name, store.FileMeta{Mode: 0o600, MTime: time.Now()})
		if err == nil {
			_, err = u.Write(b)
		}
		if err == nil {
			_, err = u.Commit()
		}
		if err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
	}
	put(segFile(1, 1), seg(1, 1))
	put(segFile(1, a.branch)+".partial", seg(1, a.branch))
	switchLSN := wal.SegmentStart(a.branch, scaleSegSize) + 0x1a0
	put(wal.HistoryFileName(2), fmt.Appendf(nil, "1\t%s\tno recovery target specified\n", switchLSN))
	a.firstBackup = putBackup(t, put, 1, a.gap/2)
	a.secondBackup = putBackup(t, put, 2, a.last-10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	loadSegmentRecords(t, dir, a)
	// A first open does whatever one-time work the store wants on an index
	// it has not seen (a checkpoint of records no pack journals) and stays
	// open until badger's compactions of the bulk load are done, so the
	// measured runs see an archive as a long-running walrus serve leaves it.
	if s, err = store.Open(store.Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	waitTablesSettle(t, filepath.Join(dir, "index"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return a
}

// waitTablesSettle waits until the set of index tables has not changed for
// 5 s (compaction is idle), for at most 3 minutes.
func waitTablesSettle(t *testing.T, dir string) {
	t.Helper()
	tables := func() string {
		m, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
		return strings.Join(m, " ")
	}
	last, since := tables(), time.Now()
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if now := tables(); now != last {
			last, since = now, time.Now()
		} else if time.Since(since) >= 5*time.Second {
			return
		}
	}
	t.Logf("index tables in %s still changing after 3 minutes", dir)
}

func segFile(tli uint32, segno uint64) string { return wal.SegmentFileName(tli, segno, scaleSegSize) }

// putBackup archives the .backup file of a backup on timeline tli that
// starts and stops in segment segno, and returns its name.
func putBackup(t *testing.T, put func(string, []byte), tli uint32, segno uint64) string {
	start := wal.SegmentStart(segno, scaleSegSize) + 0x28
	stop := start + 0x1000
	when := time.Now().UTC().Format("2006-01-02 15:04:05")
	body := fmt.Sprintf("START WAL LOCATION: %s (file %s)\nSTOP WAL LOCATION: %s (file %s)\nCHECKPOINT LOCATION: %s\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: %s UTC\nLABEL: scale %d\nSTART TIMELINE: %d\nSTOP TIME: %s UTC\nSTOP TIMELINE: %d\n",
		start, segFile(tli, segno), stop, segFile(tli, segno), start+0x60, when, tli, tli, when, tli)
	name := fmt.Sprintf("%s.%08X.backup", segFile(tli, segno), uint32(start)%scaleSegSize)
	put(name, []byte(body))
	return name
}

// loadSegmentRecords writes the file records of the synthetic segments
// into the index of the closed store in dir, and counts them in the
// directory's and the archive's totals.
func loadSegmentRecords(t *testing.T, dir string, a statusArchive) {
	db, err := index.Open(filepath.Join(dir, "index"), index.Options{MemTableSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var batch []uint64
	var tlis []uint32
	added := 0
	flush := func() {
		err := db.Update(func(x *index.Txn) error {
			for i, segno := range batch {
				if err := x.PutFile(syntheticSegment(tlis[i], segno)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		added += len(batch)
		batch, tlis = batch[:0], tlis[:0]
	}
	for segno := uint64(2); segno <= a.last; segno++ {
		tli := uint32(1)
		if segno >= a.branch {
			tli = 2
		}
		if segno >= a.gap && segno < a.gap+3 {
			continue
		}
		batch, tlis = append(batch, segno), append(tlis, tli)
		if len(batch) == 8000 {
			flush()
		}
	}
	flush()
	err = db.Update(func(x *index.Txn) error {
		d, err := x.Dir("c")
		if err != nil {
			return err
		}
		st, err := x.Stats()
		if err != nil {
			return err
		}
		d.Files, d.Segments, d.LogicalBytes = d.Files+int64(added), d.Segments+int64(added), d.LogicalBytes+int64(added)*scaleSegSize
		st.Files, st.LogicalBytes = st.Files+int64(added), st.LogicalBytes+int64(added)*scaleSegSize
		if err := x.PutDir(d); err != nil {
			return err
		}
		return x.PutStats(st)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// syntheticSegment is the record of a busy segment: 16 distinct 1 MiB
// blocks.
func syntheticSegment(tli uint32, segno uint64) *index.File {
	now := time.Now().UnixNano()
	f := &index.File{Dir: "c", Name: segFile(tli, segno), Size: scaleSegSize, Mode: 0o600, MTime: now, Archived: now,
		BlockSize: 1 << 20, Blocks: make([]index.Hash, scaleSegSize>>20), Stored: scaleSegSize / 15}
	binary.BigEndian.PutUint64(f.Hash[:], segno)
	for i := range f.Blocks {
		binary.BigEndian.PutUint64(f.Blocks[i][:], segno)
		f.Blocks[i][8], f.Blocks[i][31] = byte(i), 1
	}
	return f
}

// check compares `walrus status --json` with what was built.
func (a statusArchive) check(t *testing.T, out []byte) {
	t.Helper()
	var rep store.StatusReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if len(rep.Dirs) != 1 {
		t.Fatalf("status: %d dirs, want 1", len(rep.Dirs))
	}
	d := rep.Dirs[0]
	want := []store.TimelineStatus{
		{TLI: 1, First: segFile(1, 1), Last: segFile(1, a.branch-1), Segments: int(a.branch - 1 - 3),
			Partial: []string{segFile(1, a.branch) + ".partial"}, Gaps: []store.Gap{{From: segFile(1, a.gap), To: segFile(1, a.gap+2), Count: 3}}},
		{TLI: 2, Parent: 1, History: true, First: segFile(2, a.branch), Last: segFile(2, a.last), Segments: int(a.last - a.branch + 1)},
	}
	ok := d.Segments == a.segments && d.LastSegment == segFile(2, a.last) && len(d.Timelines) == 2 &&
		len(d.Backups) == 2 && d.Backups[0].Name == a.firstBackup && d.Backups[0].Restorable &&
		d.Backups[1].Name == a.secondBackup && d.Backups[1].Restorable && d.LastArchived != nil
	for i := 0; ok && i < 2; i++ {
		g, w := d.Timelines[i], want[i]
		ok = g.TLI == w.TLI && g.Parent == w.Parent && g.History == w.History && g.First == w.First && g.Last == w.Last &&
			g.Segments == w.Segments && len(g.Partial) == len(w.Partial) && len(g.Gaps) == len(w.Gaps) &&
			(len(w.Gaps) == 0 || g.Gaps[0] == w.Gaps[0])
	}
	if !ok {
		t.Errorf("status of %d segments: got %s", a.segments, out)
	}
}
