package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// PostgreSQL's reference archive module, archive_library = 'basic_archive'
// (contrib, PG 15), with basic_archive.archive_directory on the mount. Per
// segment it does (basic_archive.c, fd.c; fsync = on, as in production, or
// every pg_fsync below is skipped):
//
//	stat(DIR/NAME)                                  ENOENT: a new file
//	open(DIR/archtemp.NAME.PID.MS, O_RDWR|O_CREAT|O_EXCL, 0600)
//	write × 64 KiB from offset 0; sync_file_range; close
//	open(archtemp…, O_RDWR); fsync; close           durable_rename
//	open(DIR/NAME, O_RDWR)                          ENOENT is fine
//	rename(archtemp…, DIR/NAME)
//	open(DIR/NAME, O_RDWR); fsync; close
//	open(DIR, O_RDONLY); fsync; close
//
// and when DIR/NAME exists: read both files (4 KiB at a time) and compare;
// identical → open(DIR/NAME, O_RDWR); fsync; close; fsync DIR → success.

// archiveDir makes namespace ns in the mount (as the postgres user, like an
// operator preparing the archive host) and returns its path.
func archiveDir(t *testing.T, w *walrusproc.Server, ns string) string {
	t.Helper()
	dir := filepath.Join(w.Mount, ns)
	pgcluster.Run(t, w.Home, "mkdir", dir)
	return dir
}

func basicArchiveConf(dir string) []string {
	return []string{
		"archive_mode = on",
		"archive_library = 'basic_archive'",
		"basic_archive.archive_directory = '" + dir + "'",
		// baseConf turns fsync off, which makes basic_archive skip every
		// fsync of the file and of the directory; keep the real sequence.
		"fsync = on",
	}
}

// waitArchivedNoFailure is WaitArchived that stops at the first archive
// failure instead of waiting for the deadline: basic_archive must never fail
// here, and its reason is in the server log.
func waitArchivedNoFailure(t *testing.T, pg *pgcluster.Cluster, timeout time.Duration, names ...string) {
	t.Helper()
	failed := ""
	pgcluster.Eventually(t, timeout, fmt.Sprintf("%s to archive %v", pg.Name, names), func() (bool, string) {
		if a := pg.Archiver(); a.Failed > 0 {
			failed = fmt.Sprintf("%+v", a)
			return true, ""
		}
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(pg.Dir, "pg_wal", "archive_status", n+".done")); err != nil {
				return false, fmt.Sprintf("%s not done; pg_stat_archiver %+v", n, pg.Archiver())
			}
		}
		return true, ""
	})
	if failed != "" {
		t.Fatalf("basic_archive failed: pg_stat_archiver %s; server log:\n%s", failed, logLines(pg.Log, "basic_archive", "archive", "could not"))
	}
}

// logLines returns the lines of the file at path that contain any of the
// words (at most the last 20).
func logLines(path string, words ...string) string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	if len(out) > 20 {
		out = out[len(out)-20:]
	}
	return strings.Join(out, "\n")
}

// TestBasicArchive: issue 9, part 2. A primary archives with basic_archive
// into a namespace of the mount under pgbench load (1 MiB segments, so many
// of them): no archive failure, every segment byte-identical to pg_wal's, no
// archtemp.* left (neither in the mount nor committed in the store), an
// identical re-archive after a crash succeeds without storing anything, and
// a PITR of a base backup restoring with cp from the mount recovers exactly.
func TestBasicArchive(t *testing.T) {
	t.Parallel()
	module := filepath.Join(filepath.Dir(pgcluster.Bin), "lib", "basic_archive.so")
	if _, err := os.Stat(module); err != nil {
		testenv.Require(t, "PostgreSQL's basic_archive module ("+module+")")
	}
	w := startWalrus(t)
	const ns = "basic"
	dir := archiveDir(t, w, ns)
	pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: 1, Conf: basicArchiveConf(dir)})
	pg.Start()

	pg.Pgbench("-i", "-q", "-s", "2")
	first, _ := pg.SwitchWAL()
	waitArchivedNoFailure(t, pg, time.Minute, first)

	// The base backup (-X none) needs the archive: pg_basebackup waits until
	// the WAL it ends with is archived.
	backup := pg.BaseBackup("backup", "-X", "none")
	pg.Pgbench("-n", "-c", "2", "-j", "2", "-T", "10")
	pg.Query("create table t as select g id, md5(g::text) v from generate_series(1, 20000) g")
	want := pg.Query("select (select count(*) from t), (select sum(abalance) from pgbench_accounts), (select count(*) from pgbench_history)")
	last, _ := pg.SwitchWAL()
	waitArchivedNoFailure(t, pg, 3*time.Minute, last)

	segs := assertArchivedIdentical(t, pg, func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, name))
	})
	if len(segs) < 10 {
		t.Fatalf("only %d segments archived under load; the test wants many", len(segs))
	}
	assertNoArchtemp(t, w, ns, dir, pg.ArchiveStatus(".done"))
	t.Logf("basic_archive archived %d segments of 1 MiB; walrus status %+v", len(segs), w.Status())

	// Re-archive: after an immediate shutdown PostgreSQL archives again what
	// it had not marked done. Make the window certain by turning the newest
	// .done files back into .ready while the server is down; basic_archive
	// finds DIR/NAME, compares it with pg_wal's copy, fsyncs it and the
	// directory, and reports success.
	pg.Stop("immediate")
	var done []string
	for _, n := range pg.ArchiveStatus(".done") {
		if segmentName.MatchString(n) {
			done = append(done, n)
		}
	}
	const k = 3
	again := done[len(done)-k:]
	status := filepath.Join(pg.Dir, "pg_wal", "archive_status")
	for _, n := range again {
		if err := os.Rename(filepath.Join(status, n+".done"), filepath.Join(status, n+".ready")); err != nil {
			t.Fatal(err)
		}
	}
	before := w.Status()
	pg.Start()
	waitArchivedNoFailure(t, pg, time.Minute, again...)
	if a := pg.Archiver(); a.Failed != 0 || a.Archived < k {
		t.Fatalf("re-archiving %v: pg_stat_archiver %+v, want %d archived and no failures", again, a, k)
	}
	if after := w.Status(); after.Files != before.Files || after.LogicalBytes != before.LogicalBytes {
		t.Fatalf("re-archiving %d identical segments changed the store: before %+v, after %+v", k, before, after)
	}
	for _, n := range again {
		got, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil || !slices.Equal(got, pg.WALFile(n)) {
			t.Fatalf("%s after its re-archive differs from pg_wal's copy (err %v)", n, err)
		}
	}
	// And archiving goes on after the re-archive.
	pg.Query("insert into t select g, md5(g::text) from generate_series(20001, 30000) g")
	next, _ := pg.SwitchWAL()
	waitArchivedNoFailure(t, pg, time.Minute, next)
	assertNoArchtemp(t, w, ns, dir, pg.ArchiveStatus(".done"))

	// PITR: the base backup restored with cp from the mount, to the end of
	// the archive, holds exactly the primary's rows at the last switch
	// before the crash (later rows are in a later segment, also archived:
	// check them too).
	want2 := pg.Query("select (select count(*) from t), (select sum(abalance) from pgbench_accounts), (select count(*) from pgbench_history)")
	if want2 == want {
		t.Fatalf("the rows after the re-archive did not change the tables: %s", want2)
	}
	r := pgcluster.FromBackup(t, "restored", backup, cpRestore(w, ns+"/"))
	r.Signal("recovery.signal")
	r.Start()
	r.WaitRecovered(2 * time.Minute)
	if got := r.Query("select (select count(*) from t), (select sum(abalance) from pgbench_accounts), (select count(*) from pgbench_history)"); got != want2 {
		t.Fatalf("restored cluster has (rows of t, sum of balances, history rows) = %s, primary %s", got, want2)
	}
	r.Stop("fast")
	pg.Stop("fast")
	w.Verify()
}

// assertNoArchtemp checks that the mount's directory and the store's
// listing of ns hold exactly the files PostgreSQL archived: no archtemp.*
// temp file is left under any name.
func assertNoArchtemp(t *testing.T, w *walrusproc.Server, ns, dir string, archived []string) {
	t.Helper()
	listed := names(t, dir)
	stored := w.Ls(ns)
	for _, l := range [][]string{listed, stored} {
		for _, n := range l {
			if strings.HasPrefix(n, "archtemp.") {
				t.Fatalf("basic_archive's temp file %s left in the archive (mount lists %d files, walrus ls %d)", n, len(listed), len(stored))
			}
		}
	}
	if !slices.Equal(listed, archived) {
		t.Fatalf("mount lists %v, PostgreSQL archived %v", listed, archived)
	}
	slices.Sort(stored)
	if !slices.Equal(stored, archived) {
		t.Fatalf("walrus ls %s shows %v, PostgreSQL archived %v", ns, stored, archived)
	}
}
