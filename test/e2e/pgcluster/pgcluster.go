// Package pgcluster runs throwaway PostgreSQL clusters for end-to-end tests
// and benchmarks: initdb, start, stop, psql, pgbench and pg_basebackup, all
// as the postgres OS user (the tests run as root, and PostgreSQL refuses to
// run as root), on a unix socket in a private directory and no TCP port.
//
// Every cluster is stopped (pg_ctl stop -m immediate) by a t.Cleanup, and its
// server log is printed when the test failed. Conditions are polled with a
// deadline (Eventually), never waited for with a bare sleep.
package pgcluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
)

// Bin is where the PostgreSQL 15 binaries live (Debian's layout).
var Bin = envOr("WALRUS_PGBIN", "/usr/lib/postgresql/15/bin")

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Require skips the test when something a real-PostgreSQL test needs is
// missing (root, /dev/fuse, rsync, PostgreSQL, the postgres user), except
// under CI=true, where a missing capability fails the test instead.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	testenv.Require(t, missingCapability(tools))
}

func missingCapability(tools []string) string {
	if os.Geteuid() != 0 {
		return "root (to mount FUSE directly and to run PostgreSQL as postgres)"
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "/dev/fuse"
	}
	for _, tool := range append([]string{"rsync"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			return "the " + tool + " command"
		}
	}
	for _, b := range []string{"initdb", "pg_ctl", "postgres", "psql", "pgbench", "pg_basebackup"} {
		if _, err := os.Stat(filepath.Join(Bin, b)); err != nil {
			return "PostgreSQL 15 in " + Bin + " (" + b + ")"
		}
	}
	if _, err := postgresUser(); err != nil {
		return "the postgres OS user"
	}
	return ""
}

var (
	pgUserOnce sync.Once
	pgCred     *syscall.Credential
	pgUserErr  error
)

func postgresUser() (*syscall.Credential, error) {
	pgUserOnce.Do(func() {
		u, err := user.Lookup("postgres")
		if err != nil {
			pgUserErr = err
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pgCred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	})
	return pgCred, pgUserErr
}

// Chown gives path to the postgres user.
func Chown(t testing.TB, path string) {
	t.Helper()
	cred, err := postgresUser()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
}

// TempDir is t.TempDir made reachable by the postgres user: the directory and
// its parent (the per-test directory Go creates with mode 0700) get 0755, and
// the directory itself belongs to postgres.
func TempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	Chown(t, dir)
	return dir
}

// Command returns a command that runs as the postgres user in dir.
func Command(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cred, _ := postgresUser()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = append(os.Environ(), "HOME="+dir, "PGUSER=postgres", "PGDATABASE=postgres")
	return cmd
}

// Run runs a command as the postgres user and fails the test on error.
func Run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	out, err := Command(dir, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Eventually polls cond until it reports true or timeout passes; then it
// fails the test with what and the last detail cond gave.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last: %s)", timeout, what, detail)
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a condition with a deadline
	}
}

// Cluster is one PostgreSQL data directory and, while started, its server.
type Cluster struct {
	t    testing.TB
	Name string
	Dir  string // the data directory
	Sock string // unix socket directory
	Log  string // server log
	work string // postgres-owned directory holding all of the above
}

// Options are what initdb and the first configuration need.
type Options struct {
	SegSizeMiB int      // --wal-segsize; 0 means PostgreSQL's default (16)
	Conf       []string // postgresql.conf lines appended after the defaults
}

// baseConf keeps clusters small and quick: no TCP, no fsync, no checkpoints
// by time, WAL kept around (so tests can compare pg_wal with the archive
// before recycling) and quick retries of restore_command.
func baseConf(sock string) []string {
	return []string{
		"listen_addresses = ''",
		"port = 5432",
		"unix_socket_directories = '" + sock + "'",
		"fsync = off",
		"shared_buffers = '32MB'",
		"max_connections = 20",
		"wal_level = replica",
		"max_wal_size = '1GB'",
		"wal_keep_size = '1GB'",
		"checkpoint_timeout = '30min'",
		"autovacuum = off",
		"wal_retrieve_retry_interval = '100ms'",
		"logging_collector = off",
		"log_line_prefix = '%m [%p] '",
	}
}

// newCluster lays out WORK/{data,sock,NAME.log} for a cluster named name.
func newCluster(t testing.TB, name string) *Cluster {
	t.Helper()
	work := TempDir(t)
	c := &Cluster{t: t, Name: name, Dir: filepath.Join(work, "data"), Sock: filepath.Join(work, "sock"), Log: filepath.Join(work, name+".log"), work: work}
	Run(t, work, "mkdir", "-m", "0700", c.Sock)
	t.Cleanup(func() {
		c.stopIfRunning()
		if t.Failed() {
			c.dumpLog()
		}
	})
	return c
}

// Init runs initdb and appends the test configuration; the cluster is not
// started.
func Init(t testing.TB, name string, o Options) *Cluster {
	t.Helper()
	c := newCluster(t, name)
	args := []string{"-D", c.Dir, "-A", "trust", "-U", "postgres", "--no-sync", "--no-instructions"}
	if o.SegSizeMiB != 0 {
		args = append(args, "--wal-segsize="+strconv.Itoa(o.SegSizeMiB))
	}
	Run(t, c.work, filepath.Join(Bin, "initdb"), args...)
	c.Configure(append(baseConf(c.Sock), o.Conf...)...)
	return c
}

// FromBackup makes a new cluster from a copy of a base backup directory (as
// made by BaseBackup) and points its socket at its own directory.
// archive_mode is off unless conf turns it on.
func FromBackup(t testing.TB, name, backup string, conf ...string) *Cluster {
	t.Helper()
	c := newCluster(t, name)
	Run(t, c.work, "cp", "-a", backup, c.Dir)
	c.Configure(append([]string{"unix_socket_directories = '" + c.Sock + "'", "archive_mode = off"}, conf...)...)
	return c
}

// Configure appends lines to postgresql.conf (later lines win). It takes
// effect at the next start.
func (c *Cluster) Configure(lines ...string) {
	c.t.Helper()
	f, err := os.OpenFile(filepath.Join(c.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "\n# walrus e2e\n%s\n", strings.Join(lines, "\n")); err != nil {
		c.t.Fatal(err)
	}
}

// Signal creates recovery.signal or standby.signal in the data directory.
func (c *Cluster) Signal(name string) {
	c.t.Helper()
	p := filepath.Join(c.Dir, name)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		c.t.Fatal(err)
	}
	Chown(c.t, p)
}

// Start starts the server and waits (pg_ctl -w) until it accepts
// connections; a server in recovery counts once it is consistent.
func (c *Cluster) Start() {
	c.t.Helper()
	Run(c.t, c.work, filepath.Join(Bin, "pg_ctl"), "-D", c.Dir, "-l", c.Log, "-w", "-t", "120", "start")
}

// Stop stops the server with the given pg_ctl mode (smart, fast, immediate).
func (c *Cluster) Stop(mode string) {
	c.t.Helper()
	Run(c.t, c.work, filepath.Join(Bin, "pg_ctl"), "-D", c.Dir, "-m", mode, "-w", "-t", "120", "stop")
}

// Promote ends recovery (pg_ctl promote -w).
func (c *Cluster) Promote() {
	c.t.Helper()
	Run(c.t, c.work, filepath.Join(Bin, "pg_ctl"), "-D", c.Dir, "-w", "-t", "120", "promote")
}

func (c *Cluster) stopIfRunning() {
	if _, err := os.Stat(filepath.Join(c.Dir, "postmaster.pid")); err != nil {
		return
	}
	out, err := Command(c.work, filepath.Join(Bin, "pg_ctl"), "-D", c.Dir, "-m", "immediate", "-w", "stop").CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("not running")) {
		c.t.Logf("cleanup: pg_ctl stop %s: %v\n%s", c.Name, err, out)
	}
}

func (c *Cluster) dumpLog() {
	b, err := os.ReadFile(c.Log)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	c.t.Logf("last lines of %s's server log:\n%s", c.Name, strings.Join(lines, "\n"))
}

// psqlArgs connects through the cluster's socket; -X skips any psqlrc.
func (c *Cluster) psqlArgs(sql string) []string {
	return []string{"-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", c.Sock, "-p", "5432", "-U", "postgres", "-d", "postgres", "-c", sql}
}

// TryQuery runs one SQL command and returns its unaligned, tuples-only output.
func (c *Cluster) TryQuery(sql string) (string, error) {
	var stderr bytes.Buffer
	cmd := Command(c.work, filepath.Join(Bin, "psql"), c.psqlArgs(sql)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("psql %q on %s: %v: %s", sql, c.Name, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), nil
}

// Query runs SQL and fails the test on error.
func (c *Cluster) Query(sql string) string {
	c.t.Helper()
	out, err := c.TryQuery(sql)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// Pgbench runs pgbench against the cluster with the given arguments.
func (c *Cluster) Pgbench(args ...string) string {
	c.t.Helper()
	base := []string{"-h", c.Sock, "-p", "5432", "-U", "postgres"}
	return Run(c.t, c.work, filepath.Join(Bin, "pgbench"), append(append(base, args...), "postgres")...)
}

// BaseBackup takes a base backup into a new directory and returns its path.
// With archiving on and "-X none" the backup needs the archive to start:
// pg_basebackup waits until the WAL it needs is archived.
func (c *Cluster) BaseBackup(name string, extra ...string) string {
	c.t.Helper()
	dir := filepath.Join(c.work, name)
	args := append([]string{"-h", c.Sock, "-p", "5432", "-U", "postgres", "-D", dir, "-c", "fast", "--no-sync"}, extra...)
	Run(c.t, c.work, filepath.Join(Bin, "pg_basebackup"), args...)
	return dir
}

// SwitchWAL writes a record (so the switch is never a no-op) and switches to
// a new segment; it returns the name of the segment just completed and the
// LSN pg_switch_wal returned.
func (c *Cluster) SwitchWAL() (segment, lsn string) {
	c.t.Helper()
	out := c.Query("select pg_walfile_name(l), l from (select pg_switch_wal() as l from (select pg_logical_emit_message(false, 'walrus-e2e', 'tick')) m) s")
	f := strings.Split(out, "|")
	if len(f) != 2 {
		c.t.Fatalf("pg_switch_wal: unexpected output %q", out)
	}
	return f[0], f[1]
}

// ArchiveStatus lists pg_wal/archive_status: names with suffix ".done" or ".ready" removed.
func (c *Cluster) ArchiveStatus(suffix string) []string {
	c.t.Helper()
	ents, err := os.ReadDir(filepath.Join(c.Dir, "pg_wal", "archive_status"))
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), suffix); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Archiver is a row of pg_stat_archiver.
type Archiver struct {
	Archived, Failed            int
	LastArchived, LastFailedWAL string
}

// Archiver reads pg_stat_archiver.
func (c *Cluster) Archiver() Archiver {
	c.t.Helper()
	out := c.Query("select archived_count, failed_count, coalesce(last_archived_wal, ''), coalesce(last_failed_wal, '') from pg_stat_archiver")
	f := strings.Split(out, "|")
	if len(f) != 4 {
		c.t.Fatalf("pg_stat_archiver: unexpected output %q", out)
	}
	a := Archiver{LastArchived: f[2], LastFailedWAL: f[3]}
	a.Archived, _ = strconv.Atoi(f[0])
	a.Failed, _ = strconv.Atoi(f[1])
	return a
}

// WaitArchived waits until PostgreSQL has marked every named file archived
// (pg_wal/archive_status/NAME.done, written after archive_command succeeded).
func (c *Cluster) WaitArchived(timeout time.Duration, names ...string) {
	c.t.Helper()
	Eventually(c.t, timeout, fmt.Sprintf("%s to archive %v", c.Name, names), func() (bool, string) {
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(c.Dir, "pg_wal", "archive_status", n+".done")); err != nil {
				return false, fmt.Sprintf("%s not done; pg_stat_archiver %+v", n, c.Archiver())
			}
		}
		return true, ""
	})
}

// WaitArchivedMatch waits until some archived file's name matches the glob
// and returns the names that do.
func (c *Cluster) WaitArchivedMatch(timeout time.Duration, glob string) []string {
	c.t.Helper()
	var found []string
	Eventually(c.t, timeout, fmt.Sprintf("%s to archive a file matching %s", c.Name, glob), func() (bool, string) {
		found, _ = filepath.Glob(filepath.Join(c.Dir, "pg_wal", "archive_status", glob+".done"))
		return len(found) > 0, fmt.Sprintf("pg_stat_archiver %+v", c.Archiver())
	})
	for i, f := range found {
		found[i] = strings.TrimSuffix(filepath.Base(f), ".done")
	}
	return found
}

// WaitRecovered waits until a cluster that was recovering has promoted
// (pg_is_in_recovery() is false).
func (c *Cluster) WaitRecovered(timeout time.Duration) {
	c.t.Helper()
	Eventually(c.t, timeout, c.Name+" to finish recovery", func() (bool, string) {
		out, err := c.TryQuery("select pg_is_in_recovery()")
		return err == nil && out == "f", fmt.Sprintf("%q %v", out, err)
	})
}

// WaitReplayed waits until a standby has replayed WAL up to lsn.
func (c *Cluster) WaitReplayed(timeout time.Duration, lsn string) {
	c.t.Helper()
	Eventually(c.t, timeout, fmt.Sprintf("%s to replay up to %s", c.Name, lsn), func() (bool, string) {
		out, err := c.TryQuery(fmt.Sprintf("select pg_last_wal_replay_lsn() >= '%s'::pg_lsn, pg_last_wal_replay_lsn()", lsn))
		return err == nil && strings.HasPrefix(out, "t|"), fmt.Sprintf("%q %v", out, err)
	})
}

// WALFile returns the contents of pg_wal/NAME.
func (c *Cluster) WALFile(name string) []byte {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir, "pg_wal", name))
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// Work is a postgres-owned scratch directory next to the data directory.
func (c *Cluster) Work() string { return c.work }
