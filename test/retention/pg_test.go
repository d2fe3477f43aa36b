package retention

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"

	"github.com/walrus-archive/walrus/internal/retention"
	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/store"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// requirePostgres: see internal/testenv.
func requirePostgres(t *testing.T) { t.Helper(); testenv.RequirePostgres(t) }

// cluster is one running PostgreSQL server.
type cluster struct {
	t          *testing.T
	data, sock string
	port       int
}

func asPostgres(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := asPostgres(filepath.Join(pgBin, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// workDir makes a directory the postgres user owns.
func workDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "walrus-retention-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	if os.Geteuid() == 0 {
		u, _ := user.Lookup("postgres")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func (c *cluster) configure(arch string) {
	conf := fmt.Sprintf(`
listen_addresses = ''
port = %d
unix_socket_directories = '%s'
archive_mode = on
archive_command = 'if [ -f %s/%%f ]; then cmp -s %%p %s/%%f; else cp %%p %s/%%f.tmp && mv %s/%%f.tmp %s/%%f; fi'
wal_level = replica
fsync = off
max_wal_senders = 4
shared_buffers = '32MB'
`, c.port, c.sock, arch, arch, arch, arch, arch)
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	f.WriteString(conf)
	f.Close()
}

func (c *cluster) start() {
	run(c.t, "pg_ctl", "-D", c.data, "-l", c.data+".log", "-w", "-t", "60", "start")
	c.t.Cleanup(func() {
		asPostgres(filepath.Join(pgBin, "pg_ctl"), "-D", c.data, "-m", "immediate", "stop").Run()
		if c.t.Failed() {
			log, _ := os.ReadFile(c.data + ".log")
			c.t.Logf("%s log:\n%s", c.data, log)
		}
	})
}

func (c *cluster) sql(q string) string {
	return run(c.t, "psql", "-h", c.sock, "-p", strconv.Itoa(c.port), "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", q)
}

// switchAndWait forces a segment switch and waits until the switched
// segment is in the archive.
func (c *cluster) switchAndWait(arch string) {
	c.sql("insert into t select generate_series(1, 2000)")
	name := c.sql("select pg_walfile_name(pg_switch_wal())")
	waitFile(c.t, filepath.Join(arch, name))
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	testenv.WaitFor(t, path+" archived", 30*time.Second, func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
}

// backup takes a base backup with pg_basebackup and waits for its .backup
// file in the archive.
func (c *cluster) backup(work, label, arch string) {
	before := backupFiles(arch)
	dst := filepath.Join(work, label)
	run(c.t, "pg_basebackup", "-h", c.sock, "-p", strconv.Itoa(c.port), "-D", dst, "-X", "none", "-l", label, "-c", "fast")
	testenv.WaitFor(c.t, "the .backup file of "+label, 60*time.Second, func() bool {
		return len(backupFiles(arch)) > len(before)
	})
	c.switchAndWait(arch) // the stop segment
}

func backupFiles(arch string) []string {
	m, _ := filepath.Glob(filepath.Join(arch, "*.backup"))
	return m
}

// TestRetentionOnRealCluster archives a real cluster through three base
// backups, a promotion to timeline 2 and a fourth backup there, then checks
// status, retention keeping two and one backups, and gap detection.
func TestRetentionOnRealCluster(t *testing.T) {
	requirePostgres(t)
	work := workDir(t)
	arch := filepath.Join(work, "archive")
	sock := filepath.Join(work, "sock")
	for _, d := range []string{arch, sock} {
		run(t, "initdb", "--version") // cheap check that the binaries run
		if out, err := asPostgres("mkdir", "-p", d).CombinedOutput(); err != nil {
			t.Fatalf("mkdir %s: %v %s", d, err, out)
		}
	}
	primary := &cluster{t: t, data: filepath.Join(work, "primary"), sock: sock, port: freePort(t)}
	run(t, "initdb", "-D", primary.data, "--wal-segsize=1", "-A", "trust", "-U", "postgres", "--no-sync")
	primary.configure(arch)
	primary.start()
	primary.sql("create table t (x int)")
	for i := 1; i <= 3; i++ {
		primary.switchAndWait(arch)
		primary.backup(work, fmt.Sprintf("base%d", i), arch)
		primary.switchAndWait(arch)
	}
	// A standby from a fresh backup, promoted after the primary stops.
	standby := &cluster{t: t, data: filepath.Join(work, "standby"), sock: sock, port: freePort(t)}
	run(t, "pg_basebackup", "-h", sock, "-p", strconv.Itoa(primary.port), "-D", standby.data, "-X", "stream", "-R", "-c", "fast")
	standby.configure(arch)
	standby.start()
	primary.switchAndWait(arch)
	run(t, "pg_ctl", "-D", primary.data, "-m", "fast", "-w", "stop")
	run(t, "pg_ctl", "-D", standby.data, "-w", "promote")
	waitFile(t, filepath.Join(arch, "00000002.history"))
	standby.switchAndWait(arch)
	standby.backup(work, "base4", arch)
	standby.switchAndWait(arch)

	s, err := store.Open(store.Config{Dir: filepath.Join(work, "store"), BlockSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	importDir(t, s, arch, "pg")
	ds, err := s.DirStatus("pg", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Five backups: base1..3, the standby's (pg_basebackup's default
	// label) and base4 on timeline 2.
	if len(ds.Timelines) != 2 || ds.Timelines[1].Parent != 1 || len(ds.Backups) != 5 || len(ds.Problems) != 0 {
		t.Fatalf("status of the real archive: %+v", ds)
	}
	for _, b := range ds.Backups {
		if !b.Restorable {
			t.Fatalf("backup %s not restorable: missing %v", b.Name, b.Missing)
		}
	}
	t.Logf("archive: %d files, timelines %+v", ds.Files, ds.Timelines)

	for _, keep := range []int{2, 1} {
		before := names(t, s)
		reps, err := s.Retain(context.Background(), "pg", retention.Policy{KeepBackups: keep}, time.Now(), false)
		if err != nil {
			t.Fatal(err)
		}
		want := expectedAfterRetention(t, before, ds.Backups, keep)
		if got := names(t, s); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("keep %d: files left\n got %v\nwant %v", keep, got, want)
		}
		after, err := s.DirStatus("pg", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(after.Problems) != 0 || len(reps[0].Kept) != keep {
			t.Fatalf("keep %d: problems %q, kept %+v", keep, after.Problems, reps[0].Kept)
		}
		for _, b := range after.Backups {
			if !b.Restorable {
				t.Fatalf("keep %d: kept backup %s not restorable: %v", keep, b.Name, b.Missing)
			}
		}
		t.Logf("keep %d: removed %d files, %d left", keep, len(reps[0].Removed), len(want))
	}
	if _, err := s.GC(context.Background(), store.GCOptions{}); err != nil {
		t.Fatal(err)
	}

	// Delete a segment between the kept backup's start and the end: a gap
	// in status and a continuity failure in verify.
	final := names(t, s)
	var segs []string
	for _, n := range final {
		if wal.ParseName(n).Kind == wal.KindSegment {
			segs = append(segs, n)
		}
	}
	victim := segs[len(segs)/2]
	if err := s.Remove("pg/" + victim); err != nil {
		t.Fatal(err)
	}
	ds, err = s.DirStatus("pg", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tl := range ds.Timelines {
		for _, g := range tl.Gaps {
			found = found || (g.From == victim && g.Count == 1)
		}
	}
	if !found {
		t.Fatalf("deleted %s: no gap in status %+v", victim, ds.Timelines)
	}
	rep, err := s.Verify(context.Background(), "pg", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.DataProblems()) != 0 || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0].Err, victim) {
		t.Fatalf("verify after deleting %s: %+v", victim, rep.Problems)
	}
}

func importDir(t *testing.T, s *store.Store, src, dir string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	// .history first, as PostgreSQL archives them.
	sort.SliceStable(entries, func(i, j int) bool {
		return strings.HasSuffix(entries[i].Name(), ".history") && !strings.HasSuffix(entries[j].Name(), ".history")
	})
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		u, err := s.Create(dir+"/"+e.Name(), store.FileMeta{Mode: 0o600, MTime: time.Now()})
		if err == nil {
			_, err = u.Write(data)
		}
		if err == nil {
			_, err = u.Commit()
		}
		if err != nil {
			t.Fatalf("import %s: %v", e.Name(), err)
		}
	}
}

func names(t *testing.T, s *store.Store) []string {
	t.Helper()
	var out []string
	if err := s.Names("pg", func(n string) error { out = append(out, n); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// expectedAfterRetention states the rule independently of the store: the
// cutoff is the start segment of the keep-th newest backup; WAL segment,
// .partial and .backup names below it go, everything else stays.
func expectedAfterRetention(t *testing.T, files []string, backups []store.BackupStatus, keep int) []string {
	t.Helper()
	starts := make([]uint64, 0, len(backups))
	for _, b := range backups {
		lsn, err := wal.ParseLSN(b.StartLSN)
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, wal.SegNoOf(lsn, 1<<20))
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] > starts[j] })
	cutoff := starts[keep-1]
	var out []string
	for _, f := range files {
		n := wal.ParseName(f)
		if segno, err := n.SegNo(1 << 20); err == nil && segno < cutoff {
			continue
		}
		out = append(out, f)
	}
	return out
}
