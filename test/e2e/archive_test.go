package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// Scenario 1: archive_command pushes through the rsync gateway while
// pgbench runs; every segment PostgreSQL reports archived is in the archive,
// byte-identical to pg_wal's copy, and nothing else is.
func TestArchiveThroughGateway(t *testing.T) {
	t.Parallel()
	w := startWalrus(t)
	pg := pgcluster.Init(t, "primary", pgcluster.Options{Conf: []string{"archive_mode = on", rsyncArchive(w, "")}})
	pg.Start()
	pg.Pgbench("-i", "-q", "-s", "5")
	pg.Pgbench("-n", "-c", "2", "-j", "2", "-T", "4")
	last, _ := pg.SwitchWAL()
	pg.WaitArchived(2*time.Minute, last)

	pulled := pullAll(t, w, "")
	segs := assertArchivedIdentical(t, pg, func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(pulled, name))
	})
	if got := names(t, pulled); !slices.Equal(got, pg.ArchiveStatus(".done")) {
		t.Fatalf("archive holds %v, PostgreSQL archived %v", got, pg.ArchiveStatus(".done"))
	}
	st := w.Status()
	if st.Files != int64(len(segs)) || st.StoredBytes <= 0 || st.StoredBytes >= st.LogicalBytes {
		t.Fatalf("walrus status %+v after %d segments", st, len(segs))
	}
	t.Logf("%d segments of 16 MiB archived through rsync; walrus status %+v (ratio %.1f)", len(segs), st, float64(st.LogicalBytes)/float64(st.StoredBytes))
	pg.Stop("fast")
	w.Verify()
}

// Scenario 2: archive_command = 'cp %p MOUNT/%f'.
func TestArchiveThroughMount(t *testing.T) {
	t.Parallel()
	w := startWalrus(t)
	pg := pgcluster.Init(t, "primary", pgcluster.Options{Conf: []string{"archive_mode = on", cpArchive(w, "")}})
	pg.Start()
	pg.Pgbench("-i", "-q", "-s", "2")
	pg.Pgbench("-n", "-c", "2", "-j", "2", "-T", "2")
	last, _ := pg.SwitchWAL()
	pg.WaitArchived(2*time.Minute, last)

	segs := assertArchivedIdentical(t, pg, func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(w.Mount, name))
	})
	if got := names(t, w.Mount); !slices.Equal(got, pg.ArchiveStatus(".done")) {
		t.Fatalf("mount lists %v, PostgreSQL archived %v", got, pg.ArchiveStatus(".done"))
	}
	t.Logf("%d segments archived through the mount; walrus status %+v", len(segs), w.Status())
	pg.Stop("fast")
	w.Verify()
}

// Scenario 6: after an immediate shutdown PostgreSQL archives again what it
// had not yet marked done. The crash window (after archive_command succeeded,
// before .ready became .done) is made certain by turning the newest .done
// files back into .ready while the server is down. walrus must accept the
// identical re-pushes without storing anything twice, and archiving must go on.
func TestCrashReArchive(t *testing.T) {
	t.Parallel()
	w := startWalrus(t)
	pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: 1, Conf: []string{"archive_mode = on", rsyncArchive(w, "")}})
	pg.Start()
	pg.Pgbench("-i", "-q", "-s", "1")
	last, _ := pg.SwitchWAL()
	pg.WaitArchived(time.Minute, last)
	pg.Stop("immediate")

	done := pg.ArchiveStatus(".done")
	const k = 5
	if len(done) < k {
		t.Fatalf("only %d files archived before the crash", len(done))
	}
	again := done[len(done)-k:]
	status := filepath.Join(pg.Dir, "pg_wal", "archive_status")
	for _, n := range again {
		if err := os.Rename(filepath.Join(status, n+".done"), filepath.Join(status, n+".ready")); err != nil {
			t.Fatal(err)
		}
	}
	before := w.Status()

	pg.Start() // crash recovery; postgres: pgarch.c pgarch_readyXlog then finds the .ready files
	pg.WaitArchived(time.Minute, again...)
	if a := pg.Archiver(); a.Failed != 0 || a.Archived < k {
		t.Fatalf("re-archiving: pg_stat_archiver %+v, want %d archived and no failures", a, k)
	}
	after := w.Status()
	if after.Files != before.Files || after.LogicalBytes != before.LogicalBytes || after.StoredBytes-before.StoredBytes > 4096 {
		t.Fatalf("re-archiving %d identical segments changed the store: before %+v, after %+v", k, before, after)
	}
	t.Logf("re-archived %v: stored_bytes %d -> %d", again, before.StoredBytes, after.StoredBytes)

	// Archiving goes on after the crash.
	pg.Query("create table after_crash as select g, repeat('y', 100) v from generate_series(1, 20000) g")
	next, _ := pg.SwitchWAL()
	pg.WaitArchived(time.Minute, next)
	if a := pg.Archiver(); a.Failed != 0 {
		t.Fatalf("after the crash: pg_stat_archiver %+v", a)
	}
	grown := w.Status()
	if grown.Files <= after.Files || grown.StoredBytes <= after.StoredBytes {
		t.Fatalf("new segments not stored: %+v then %+v", after, grown)
	}

	// The mount keeps the same promise: an identical copy succeeds, a
	// different one under an existing name is refused.
	seg := filepath.Join(pg.Dir, "pg_wal", again[0])
	if o, err := exec.Command("cp", seg, filepath.Join(w.Mount, again[0])).CombinedOutput(); err != nil {
		t.Fatalf("identical re-push through the mount: %v %s", err, o)
	}
	other := filepath.Join(pg.Dir, "pg_wal", again[1])
	if o, err := exec.Command("cp", other, filepath.Join(w.Mount, again[0])).CombinedOutput(); err == nil {
		t.Fatalf("a different file under an archived name was accepted through the mount: %s", o)
	}
	pg.Stop("fast")
	if st := w.Status(); st.Files != grown.Files {
		t.Fatalf("refused push changed the store: %+v then %+v", grown, st)
	}
	w.Verify()
}

// Scenario 7: a second cluster (another system identifier) whose
// archive_command points at the same directory is refused: its failed_count
// rises, its segment never appears, and the first cluster's files are untouched.
func TestOtherClusterRefused(t *testing.T) {
	t.Parallel()
	w := startWalrus(t)
	a := pgcluster.Init(t, "clusterA", pgcluster.Options{SegSizeMiB: 1, Conf: []string{"archive_mode = on", rsyncArchive(w, "shared/")}})
	b := pgcluster.Init(t, "clusterB", pgcluster.Options{SegSizeMiB: 1})
	a.Start()
	b.Start()
	a.Query("create table a as select g from generate_series(1, 10000) g")
	lastA, _ := a.SwitchWAL()
	a.WaitArchived(time.Minute, lastA)
	snapshot := func() map[string]string {
		m := map[string]string{}
		for _, n := range names(t, filepath.Join(w.Mount, "shared")) {
			out, err := exec.Command("sha256sum", filepath.Join(w.Mount, "shared", n)).Output()
			if err != nil {
				t.Fatal(err)
			}
			m[n] = strings.Fields(string(out))[0]
		}
		return m
	}
	before, statusBefore := snapshot(), w.Status()

	// Move B's WAL past A's names (archiving still off), so that B's first
	// push is refused for its system identifier, not for a name clash.
	for range 8 {
		b.SwitchWAL()
	}
	b.Stop("fast")
	b.Configure("archive_mode = on", rsyncArchive(w, "shared/"))
	b.Start()
	segB, _ := b.SwitchWAL()
	if _, ok := before[segB]; ok || segB <= lastA {
		t.Fatalf("cluster B's segment %s would clash with A's names (A archived up to %s)", segB, lastA)
	}
	pgcluster.Eventually(t, time.Minute, "cluster B's archive_command to fail", func() (bool, string) {
		st := b.Archiver()
		return st.Failed >= 2 && st.LastFailedWAL == segB, fmt.Sprintf("%+v", st)
	})
	if st := b.Archiver(); st.Archived != 0 {
		t.Fatalf("cluster B archived something: %+v", st)
	}
	// The reason reaches the operator: rsync prints the gateway's refusal,
	// and PostgreSQL logs archive_command's standard error.
	if log, _ := os.ReadFile(b.Log); !strings.Contains(string(log), "another cluster") {
		t.Fatalf("cluster B's server log does not say why the archive refused %s", segB)
	}
	// The same refusal through the mount and through the CLI (exit 5).
	if o, err := exec.Command("cp", filepath.Join(b.Dir, "pg_wal", segB), filepath.Join(w.Mount, "shared", segB)).CombinedOutput(); err == nil {
		t.Fatalf("cluster B's segment accepted through the mount: %s", o)
	}
	if _, code, _ := w.CLI("put", "shared/"+segB, filepath.Join(b.Dir, "pg_wal", segB)); code != 5 {
		t.Fatalf("walrus put of cluster B's segment: exit %d, want 5 (invalid WAL or other cluster)", code)
	}
	b.Stop("immediate")

	after := snapshot()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("cluster A's files changed:\nbefore %v\nafter  %v", before, after)
	}
	// Files and logical bytes: stored and disk bytes move with background
	// settling (recompression), refused pushes or not.
	if st := w.Status(); st.Files != statusBefore.Files || st.LogicalBytes != statusBefore.LogicalBytes {
		t.Fatalf("store changed by refused pushes: %+v then %+v", statusBefore, st)
	}
	// A keeps archiving into its directory.
	next, _ := a.SwitchWAL()
	a.WaitArchived(time.Minute, next)
	if st := a.Archiver(); st.Failed != 0 {
		t.Fatalf("cluster A: pg_stat_archiver %+v", st)
	}
	a.Stop("fast")
	w.Verify()
}

// Scenario 8: clusters with 1 MiB and 64 MiB segments archive and restore
// too (one through rsync, the other through the mount, each restoring
// through the other interface).
func TestSegmentSizes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		segMiB  int
		archive func(w *walrusproc.Server) string
		restore func(w *walrusproc.Server) string
	}{
		{1, func(w *walrusproc.Server) string { return cpArchive(w, "") }, func(w *walrusproc.Server) string { return rsyncRestore(w, "") }},
		{64, func(w *walrusproc.Server) string { return rsyncArchive(w, "") }, func(w *walrusproc.Server) string { return cpRestore(w, "") }},
	} {
		t.Run(fmt.Sprintf("%dMiB", tc.segMiB), func(t *testing.T) {
			t.Parallel()
			w := startWalrus(t)
			pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: tc.segMiB, Conf: []string{"archive_mode = on", tc.archive(w)}})
			pg.Start()
			pg.Query("create table t (id int primary key, v text)")
			backup := pg.BaseBackup("backup", "-X", "none")
			pg.Query("insert into t select g, md5(g::text) from generate_series(1, 40000) g")
			pg.SwitchWAL()
			pg.Query("update t set v = v || 'x' where id % 3 = 0")
			last, _ := pg.SwitchWAL()
			pg.WaitArchived(2*time.Minute, last)
			segs := assertArchivedIdentical(t, pg, func(name string) ([]byte, error) {
				return os.ReadFile(filepath.Join(w.Mount, name))
			})
			want := pg.Query("select count(*), md5(string_agg(v, ',' order by id)) from t")

			r := pgcluster.FromBackup(t, "restored", backup, tc.restore(w))
			r.Signal("recovery.signal")
			r.Start()
			r.WaitRecovered(2 * time.Minute)
			if got := r.Query("select count(*), md5(string_agg(v, ',' order by id)) from t"); got != want {
				t.Fatalf("restored cluster has %s, primary %s", got, want)
			}
			if got := r.Query("show wal_segment_size"); got != fmt.Sprintf("%dMB", tc.segMiB) {
				t.Fatalf("wal_segment_size %s", got)
			}
			t.Logf("%d segments of %d MiB archived and restored; walrus status %+v", len(segs), tc.segMiB, w.Status())
			r.Stop("fast")
			pg.Stop("fast")
			w.Verify()
		})
	}
}
