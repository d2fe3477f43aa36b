package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// pg_receivewal -D MOUNT/NS (PG 15), as observed with strace on a local
// directory (receivelog.c, walmethods.c, fd.c):
//
//   - start: opendir DIR and stat every name; a completed .gz is opened
//     O_RDONLY and its last 4 bytes read (lseek -4 SEEK_END, the gzip ISIZE),
//     a completed .lz4 is read whole (decompressed to check its size); a
//     plain segment must be seg_size bytes.
//   - new segment, plain: open(SEG.partial, O_WRONLY|O_CREAT, 0600) (no
//     O_TRUNC, no O_EXCL); write(8 KiB of zeros) × seg_size/8 KiB; lseek(0);
//     open(SEG.partial, O_RDWR) (a second handle); fsync; close; open(DIR,
//     O_RDONLY); fsync; close; then write() sequentially from offset 0 as WAL
//     arrives (--synchronous: fsync(fd) after each batch; otherwise no fsync
//     until the segment ends).
//   - segment end: close(fd); then durable_rename: open(SEG.partial, O_RDWR);
//     fsync; close; open(SEG, O_RDWR) → ENOENT; rename(SEG.partial, SEG);
//     open(SEG, O_RDWR); fsync; close; open(DIR, O_RDONLY); fsync; close.
//   - resume (plain): the newest SEG.partial must be 0 or seg_size bytes
//     (stat); it is opened O_WRONLY|O_CREAT, fsynced by a second handle and
//     through fd, and rewritten from offset 0 with the same WAL (streaming
//     restarts at the segment's start), then continued.
//   - gzip: SEG.gz.partial, O_WRONLY|O_CREAT, no padding; second handle
//     O_RDWR + fsync and the directory fsync right after create; gzip stream
//     written with write() from offset 0; end as above (.gz.partial →
//     .gz). Resume rewrites the old .gz.partial from offset 0 without
//     truncating it.
//   - lz4 --no-sync: SEG.lz4.partial, O_WRONLY|O_CREAT; writes (many of
//     them 0 bytes); close; rename to SEG.lz4; no fsync of anything.
//   - SIGINT: "not renaming SEG.partial, segment is not complete": close,
//     fsync the .partial by path and the directory; exit 0.
//
// No flock or fcntl lock is taken on any of these files.

// walSegMiB is the segment size of the clusters these tests stream from.
const walSegMiB = 1

const walSegSize = walSegMiB << 20

// receiveMode is a way of running pg_receivewal: its extra options and
// how it names (ext) and encodes the files it writes.
type receiveMode struct {
	name string
	args []string
	ext  string // "", ".gz" or ".lz4": completed files are SEGMENT+ext
}

var receiveModes = []receiveMode{
	{"plain", nil, ""},
	{"synchronous", []string{"--synchronous"}, ""},
	{"gzip", []string{"--compress=gzip"}, ".gz"},
	{"lz4", []string{"--compress=lz4", "--no-sync"}, ".lz4"},
}

// requireTools skips (or fails under CI) without pg_receivewal or the
// decompressor this mode's checks need.
func (m receiveMode) requireTools(t *testing.T) {
	t.Helper()
	missing := ""
	if _, err := os.Stat(filepath.Join(pgcluster.Bin, "pg_receivewal")); err != nil {
		missing = "pg_receivewal in " + pgcluster.Bin
	} else if m.ext == ".lz4" {
		missing = testenv.Command("lz4")
	}
	testenv.Require(t, missing)
}

// decode returns the WAL bytes a file written in this mode holds.
func (m receiveMode) decode(path string) ([]byte, error) {
	switch m.ext {
	case ".gz":
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			return b, fmt.Errorf("%s: gzip: %w", path, err)
		}
		return b, nil
	case ".lz4":
		var stderr bytes.Buffer
		cmd := exec.Command("lz4", "-dc", path)
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			return b, fmt.Errorf("lz4 -dc %s: %v: %s", path, err, stderr.Bytes())
		}
		return b, nil
	}
	return os.ReadFile(path)
}

// restoreCommand reads completed segments of this mode from dir.
func (m receiveMode) restoreCommand(dir string) string {
	switch m.ext {
	case ".gz":
		return fmt.Sprintf("restore_command = 'gzip -dc %s/%%f.gz > %%p'", dir)
	case ".lz4":
		return fmt.Sprintf("restore_command = 'lz4 -dcq %s/%%f.lz4 > %%p'", dir)
	}
	return fmt.Sprintf("restore_command = 'cp %s/%%f %%p'", dir)
}

// segment returns the uncompressed bytes this mode's receiver holds in dir
// for segment name: the completed file if there is one, else the .partial.
func (m receiveMode) segment(dir, name string) (data []byte, partial bool, err error) {
	path := filepath.Join(dir, name+m.ext)
	if _, err := os.Stat(path); err == nil {
		data, err = m.decode(path)
		return data, false, err
	}
	data, err = m.decode(path + ".partial")
	return data, true, err
}

// receiver is one pg_receivewal process (run as the postgres user with
// --no-loop, so that an error ends it instead of a retry loop).
type receiver struct {
	t      *testing.T
	pg     *pgcluster.Cluster
	slot   string
	log    string // its standard output and error
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's result, set before exited closes
}

// createSlot makes the physical replication slot pg_receivewal streams
// from, reserving WAL at once: no WAL from here on is recycled before it is
// received, and the receiver's first segment is the one holding the slot's
// restart_lsn, so a base backup taken after this is covered. (pg_receivewal
// --create-slot does not reserve WAL: its first START_REPLICATION then
// begins at the server's current position.)
func createSlot(t *testing.T, pg *pgcluster.Cluster, slot string) {
	t.Helper()
	pg.Query(fmt.Sprintf("select pg_create_physical_replication_slot('%s', true)", slot))
}

// startReceiver runs pg_receivewal -D dir -S slot with extra options. It
// sends status packets every second (-s 1) so that pg_stat_replication
// follows what it wrote and fsynced.
func startReceiver(t *testing.T, pg *pgcluster.Cluster, dir, slot string, extra ...string) *receiver {
	t.Helper()
	r := &receiver{t: t, pg: pg, slot: slot, exited: make(chan struct{})}
	f, err := os.CreateTemp(t.TempDir(), "pg_receivewal-*.log")
	if err != nil {
		t.Fatal(err)
	}
	r.log = f.Name()
	args := append([]string{"-h", pg.Sock, "-p", "5432", "-U", "postgres", "-D", dir, "-S", slot, "-v", "-n", "-s", "1"}, extra...)
	r.cmd = pgcluster.Command(pg.Work(), filepath.Join(pgcluster.Bin, "pg_receivewal"), args...)
	r.cmd.Stdout, r.cmd.Stderr = f, f
	if err := r.cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); f.Close(); close(r.exited) }()
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("pg_receivewal %s output:\n%s", strings.Join(extra, " "), r.output())
		}
	})
	return r
}

func (r *receiver) output() string {
	b, _ := os.ReadFile(r.log)
	return string(b)
}

// waitFor polls cond with a deadline and fails the test at once, with
// pg_receivewal's output, if the receiver exits meanwhile.
func (r *receiver) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	r.t.Helper()
	gone := false
	pgcluster.Eventually(r.t, timeout, what, func() (bool, string) {
		ok, detail := cond()
		if !ok {
			select {
			case <-r.exited:
				gone = true
				return true, ""
			default:
			}
		}
		return ok, detail
	})
	if gone {
		r.t.Fatalf("waiting for %s: pg_receivewal exited (%v):\n%s", what, r.err, r.output())
	}
}

// waitFiles waits until every named file is in dir.
func (r *receiver) waitFiles(dir string, files ...string) {
	r.t.Helper()
	r.waitFor(fmt.Sprintf("pg_receivewal to write %v", files), time.Minute, func() (bool, string) {
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				ents, _ := os.ReadDir(dir)
				var have []string
				for _, e := range ents {
					have = append(have, e.Name())
				}
				return false, fmt.Sprintf("%v; the directory holds %v", err, have)
			}
		}
		return true, ""
	})
}

// positions returns the write and flush LSNs the receiver last reported
// (pg_stat_replication of the walsender serving its slot).
func (r *receiver) positions() (write, flush wal.LSN, err error) {
	out, err := r.pg.TryQuery(fmt.Sprintf("select r.write_lsn, r.flush_lsn from pg_replication_slots s join pg_stat_replication r on r.pid = s.active_pid where s.slot_name = '%s'", r.slot))
	if err != nil {
		return 0, 0, err
	}
	w, f, ok := strings.Cut(out, "|")
	if !ok {
		return 0, 0, fmt.Errorf("no walsender serves slot %s (%q)", r.slot, out)
	}
	if write, err = wal.ParseLSN(w); err == nil {
		flush, err = wal.ParseLSN(f)
	}
	return write, flush, err
}

// waitReported waits until the receiver reports having written (or, with
// flushed, fsynced) WAL up to lsn, and returns the position it reported.
func (r *receiver) waitReported(lsn wal.LSN, flushed bool) wal.LSN {
	r.t.Helper()
	var got wal.LSN
	what := fmt.Sprintf("pg_receivewal to report WAL written up to %s", lsn)
	if flushed {
		what = fmt.Sprintf("pg_receivewal to report WAL fsynced up to %s", lsn)
	}
	r.waitFor(what, time.Minute, func() (bool, string) {
		w, f, err := r.positions()
		if flushed {
			w = f
		}
		got = w
		return err == nil && w >= lsn, fmt.Sprintf("write %s flush %s %v", w, f, err)
	})
	return got
}

// stop ends the receiver as an operator does (SIGINT): it closes and
// fsyncs its .partial, exits 0 and logs no error or warning.
func (r *receiver) stop() {
	r.t.Helper()
	r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		r.t.Fatalf("pg_receivewal did not exit within 30 s of SIGINT:\n%s", r.output())
	}
	if r.err != nil {
		r.t.Fatalf("pg_receivewal after SIGINT: %v\n%s", r.err, r.output())
	}
	r.assertCleanLog()
}

// kill ends the receiver with SIGKILL (if it still runs).
func (r *receiver) kill() {
	select {
	case <-r.exited:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

func (r *receiver) assertCleanLog() {
	r.t.Helper()
	for _, l := range strings.Split(r.output(), "\n") {
		if strings.Contains(l, "error:") || strings.Contains(l, "warning:") {
			r.t.Fatalf("pg_receivewal logged %q:\n%s", l, r.output())
		}
	}
}

// currentLSN is the primary's flush position: all WAL a receiver can get.
func currentLSN(t *testing.T, pg *pgcluster.Cluster) wal.LSN {
	t.Helper()
	l, err := wal.ParseLSN(pg.Query("select pg_current_wal_flush_lsn()"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func segmentOf(lsn wal.LSN) string {
	return wal.SegmentFileName(1, wal.SegNoOf(lsn, walSegSize), walSegSize)
}

// assertPrefix checks that what the receiver holds in dir for the segment
// of from is the primary's segment up to upto (or the segment's end): the
// bytes it reported written or fsynced are there, exactly. It returns the
// name of the segment and whether it is still a .partial.
func assertPrefix(t *testing.T, pg *pgcluster.Cluster, m receiveMode, dir string, from, upto wal.LSN) (string, bool) {
	t.Helper()
	name := segmentOf(from)
	start := wal.SegmentStart(wal.SegNoOf(from, walSegSize), walSegSize)
	n := min(int(upto-start), walSegSize)
	got, partial, err := m.segment(dir, name)
	if err != nil {
		t.Fatalf("%s: reading what pg_receivewal wrote: %v", name, err)
	}
	if partial && m.ext == "" && len(got) != walSegSize {
		// pg_receivewal refuses to resume a .partial of any other size.
		t.Fatalf("%s.partial is %d bytes, want the padded %d", name, len(got), walSegSize)
	}
	want := pg.WALFile(name)
	if len(got) < n {
		t.Fatalf("%s (partial %v): %d bytes of WAL, want at least the %d pg_receivewal reported (up to %s)", name, partial, len(got), n, upto)
	}
	if i := firstDiff(got[:n], want[:n]); i >= 0 {
		t.Fatalf("%s (partial %v): byte %d of the %d reported (up to %s) differs from the primary's", name, partial, i, n, upto)
	}
	return name, partial
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// assertReceived checks the whole directory: the completed segments form
// one unbroken run that covers every name in want, each byte-identical
// (decompressed) to the primary's pg_wal copy; besides them there is at
// most one .partial, for the segment after the run; nothing else (no temp
// file, no leftover .partial). It returns the completed segments.
func assertReceived(t *testing.T, pg *pgcluster.Cluster, m receiveMode, dir string, want ...string) []string {
	t.Helper()
	var segs, partials []string
	for _, n := range names(t, dir) {
		base, isPartial := strings.CutSuffix(n, ".partial")
		base, ok := strings.CutSuffix(base, m.ext)
		if !ok || !segmentName.MatchString(base) {
			t.Fatalf("unexpected file %s in the receiver's directory (all: %v)", n, names(t, dir))
		}
		if isPartial {
			partials = append(partials, base)
			continue
		}
		segs = append(segs, base)
	}
	if len(segs) == 0 {
		t.Fatalf("no completed segment in %v", names(t, dir))
	}
	var first uint64
	for i, s := range segs {
		no, err := wal.ParseName(s).SegNo(walSegSize)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = no
		} else if no != first+uint64(i) {
			t.Fatalf("gap before %s among the completed segments %v", s, segs)
		}
		got, err := m.decode(filepath.Join(dir, s+m.ext))
		if err != nil {
			t.Fatalf("%s%s: %v", s, m.ext, err)
		}
		if w := pg.WALFile(s); !bytes.Equal(got, w) {
			t.Fatalf("%s%s: %d bytes (decompressed) differ from the primary's %d (first difference at byte %d)", s, m.ext, len(got), len(w), firstDiff(got, w))
		}
	}
	next := wal.SegmentFileName(1, first+uint64(len(segs)), walSegSize)
	if len(partials) > 1 || len(partials) == 1 && partials[0] != next {
		t.Fatalf("partial files %v next to completed segments %s..%s; want at most %s%s.partial", partials, segs[0], segs[len(segs)-1], next, m.ext)
	}
	for _, w := range want {
		if w < segs[0] || w > segs[len(segs)-1] {
			t.Fatalf("segment %s not among the completed %s..%s", w, segs[0], segs[len(segs)-1])
		}
	}
	return segs
}

// fill inserts rows from..to into t (about 200 bytes of WAL each).
func fill(pg *pgcluster.Cluster, from, to int) {
	pg.Query(fmt.Sprintf("insert into t select g, md5(g::text) || repeat('w', 100) from generate_series(%d, %d) g", from, to))
}

const rowsQuery = "select count(*), md5(string_agg(v, ',' order by id)) from t"

// assertPITR restores backup with restore_command reading the receiver's
// completed segments from dir and checks that recovery to the end of them
// yields want (rowsQuery).
func assertPITR(t *testing.T, m receiveMode, backup, dir, want string) {
	t.Helper()
	r := pgcluster.FromBackup(t, "restored", backup, m.restoreCommand(dir))
	r.Signal("recovery.signal")
	r.Start()
	r.WaitRecovered(2 * time.Minute)
	if got := r.Query(rowsQuery); got != want {
		t.Fatalf("restored from pg_receivewal's %s segments: %s, primary %s", m.name, got, want)
	}
	r.Stop("fast")
}

// TestReceiveWAL: issue 9, part 3. pg_receivewal streams into a namespace
// of the mount, one walrus serving four receivers in the modes a user picks
// (plain, --synchronous, --compress=gzip, --compress=lz4 --no-sync), each
// from its own primary: completed segments are byte-identical to the
// primary's, the current segment's .partial holds every byte reported
// written, a restarted receiver resumes its .partial and completes the
// segment, and a PITR from the completed segments recovers exactly.
func TestReceiveWAL(t *testing.T) {
	t.Parallel()
	w := startWalrus(t)
	t.Run("modes", func(t *testing.T) {
		for _, m := range receiveModes {
			t.Run(m.name, func(t *testing.T) {
				t.Parallel()
				m.requireTools(t)
				receiveAndResume(t, w, m)
			})
		}
	})
	w.Verify()
}

func receiveAndResume(t *testing.T, w *walrusproc.Server, m receiveMode) {
	dir := archiveDir(t, w, "receivewal-"+m.name)
	pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: walSegMiB})
	pg.Start()
	const slot = "walrus"
	createSlot(t, pg, slot)
	pg.Query("create table t (id int primary key, v text)")
	backup := pg.BaseBackup("backup", "-X", "none") // its WAL comes from the receiver

	r := startReceiver(t, pg, dir, slot, m.args...)
	var switched []string
	for i := range 3 {
		fill(pg, i*10000+1, (i+1)*10000)
		seg, _ := pg.SwitchWAL()
		switched = append(switched, seg)
	}
	r.waitFiles(dir, switched[len(switched)-1]+m.ext)
	// Some WAL in the current segment, all of it reported written, then a
	// clean stop: the .partial holds it.
	fill(pg, 30001, 31000)
	target := currentLSN(t, pg)
	written := r.waitReported(target, m.name == "synchronous")
	r.stop()

	assertReceived(t, pg, m, dir, switched...)
	cur, partial := assertPrefix(t, pg, m, dir, target, written)
	if !partial {
		t.Fatalf("segment %s is complete already; the test wants WAL in a .partial", cur)
	}
	t.Logf("%s: completed %v, %s%s.partial holds the %d bytes reported written", m.name, switched, cur, m.ext, written-wal.SegmentStart(wal.SegNoOf(target, walSegSize), walSegSize))

	// Restart: pg_receivewal resumes the .partial (restarting at its
	// segment's start), logs no error, and completes the segment.
	r = startReceiver(t, pg, dir, slot, m.args...)
	fill(pg, 31001, 35000)
	want := pg.Query(rowsQuery)
	last, _ := pg.SwitchWAL()
	r.waitFiles(dir, cur+m.ext, last+m.ext)
	r.stop()
	if !strings.Contains(r.output(), "starting log streaming at ") {
		t.Fatalf("restarted pg_receivewal did not stream:\n%s", r.output())
	}
	segs := assertReceived(t, pg, m, dir, append(switched, cur, last)...)
	t.Logf("%s: after the restart %d segments %s..%s, byte-identical; walrus status %+v", m.name, len(segs), segs[0], segs[len(segs)-1], w.Status())

	assertPITR(t, m, backup, dir, want)
	pg.Stop("fast")
}

// TestReceiveWALCrash: issue 9, part 3, the crashes. pg_receivewal
// --synchronous streams into the mount; after SIGKILL of pg_receivewal, and
// after SIGKILL of walrus and a restart on the same home, every byte it had
// reported fsynced is in its .partial; restarted, it resumes the .partial
// and completes the segment byte-identical to the primary's, and a PITR from
// the mount recovers exactly.
//
// A SIGKILLed client's descriptors are closed by the kernel (FUSE FLUSH and
// RELEASE follow), so only the walrus crash tests the durability of fsync on
// an unfinished file.
func TestReceiveWALCrash(t *testing.T) {
	t.Parallel()
	m := receiveModes[1] // --synchronous
	m.requireTools(t)
	w := startWalrus(t)
	dir := archiveDir(t, w, "stream")
	pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: walSegMiB})
	pg.Start()
	const slot = "walrus"
	createSlot(t, pg, slot)
	pg.Query("create table t (id int primary key, v text)")
	backup := pg.BaseBackup("backup", "-X", "none")

	r := startReceiver(t, pg, dir, slot, m.args...)
	fill(pg, 1, 10000)
	first, _ := pg.SwitchWAL()
	r.waitFiles(dir, first)

	// fsynced fills a fresh segment halfway (about 400 kB of WAL) and waits
	// until the receiver reports all of it fsynced; it returns the LSN the
	// WAL reached and the receiver's flush position just before the crash
	// that follows (a lower bound of what it had fsynced).
	fsynced := func(from int) (target, flushed wal.LSN) {
		t.Helper()
		fill(pg, from, from+1999)
		target = currentLSN(t, pg)
		r.waitReported(target, true)
		_, flushed, err := r.positions()
		if err != nil {
			t.Fatal(err)
		}
		return target, flushed
	}
	mustPartial := func(when string, target, flushed wal.LSN) string {
		t.Helper()
		seg, partial := assertPrefix(t, pg, m, dir, target, flushed)
		if !partial {
			t.Fatalf("%s: segment %s is complete already; the test wants WAL in a .partial", when, seg)
		}
		t.Logf("%s: %s.partial holds the WAL fsynced up to %s", when, seg, flushed)
		return seg
	}

	// 1. SIGKILL of pg_receivewal.
	target, flushed := fsynced(10001)
	r.kill()
	seg := mustPartial("after SIGKILL of pg_receivewal", target, flushed)

	// 2. Restarted, it resumes that .partial and completes it at the switch.
	r = startReceiver(t, pg, dir, slot, m.args...)
	fill(pg, 12001, 12100)
	switched, _ := pg.SwitchWAL()
	r.waitFiles(dir, seg, switched)

	// 3. SIGKILL of walrus under it, then a restart of walrus on the same
	// home (the mount was left stale).
	target, flushed = fsynced(12101)
	w.Kill()
	// pg_receivewal finds the mount gone at its next write (ENOTCONN) and,
	// with --no-loop, exits; it is killed if it has not by then.
	fill(pg, 14101, 14200)
	select {
	case <-r.exited:
		t.Logf("pg_receivewal when walrus died: %v\n%s", r.err, r.output())
	case <-time.After(30 * time.Second):
		t.Logf("pg_receivewal still runs 30 s after walrus died; killing it:\n%s", r.output())
		r.kill()
	}
	w = walrusproc.Start(t, w.Home)
	seg = mustPartial("after SIGKILL and restart of walrus", target, flushed)

	// 4. Restarted once more, it resumes and completes the segment; the run
	// of completed segments is byte-identical and restores exactly.
	r = startReceiver(t, pg, dir, slot, m.args...)
	fill(pg, 14201, 16000)
	want := pg.Query(rowsQuery)
	last, _ := pg.SwitchWAL()
	r.waitFiles(dir, seg, last)
	r.stop()
	segs := assertReceived(t, pg, m, dir, first, switched, seg, last)
	t.Logf("after both crashes: %d segments %s..%s, byte-identical; walrus status %+v", len(segs), segs[0], segs[len(segs)-1], w.Status())

	assertPITR(t, m, backup, dir, want)
	pg.Stop("fast")
	w.Verify()
}
