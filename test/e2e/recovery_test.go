package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
)

// Scenario 3: point-in-time recovery. A base backup, a first batch of rows,
// the targets (xid, LSN, time, restore point), a second batch; each restore
// of the backup with restore_command = 'cp MOUNT/%f %p' and one
// recovery_target_* holds exactly the first batch.
func TestPointInTimeRecovery(t *testing.T) {
	t.Parallel()
	w := startWalrus(t)
	pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: 1, Conf: []string{"archive_mode = on", cpArchive(w, "")}})
	pg.Start()
	pg.Query("create table t (id int primary key, batch int, pad text)")
	backup := pg.BaseBackup("backup", "-X", "none")

	insert := func(batch, from, to int) string {
		return fmt.Sprintf("insert into t select g, %d, repeat('p', 200) from generate_series(%d, %d) g", batch, from, to)
	}
	pg.Query(insert(1, 1, 5000))
	pg.Query(insert(1, 5001, 10000))
	// The last transaction of batch 1 also yields the xid target.
	xid := pg.Query(fmt.Sprintf("with ins as (%s returning 1) select pg_current_xact_id() from ins limit 1", insert(1, 10001, 15000)))
	lsn := pg.Query("select pg_current_wal_lsn()")
	when := pg.Query("select clock_timestamp()")
	pg.Query("select pg_create_restore_point('before_batch_2')")
	pg.Query(insert(2, 15001, 20000))
	pg.Query(insert(2, 20001, 25000))
	last, _ := pg.SwitchWAL()
	pg.WaitArchived(time.Minute, last)
	if got := pg.Query("select count(*) from t"); got != "25000" {
		t.Fatalf("primary has %s rows", got)
	}

	for _, target := range []string{
		"recovery_target_xid = '" + xid + "'",
		"recovery_target_lsn = '" + lsn + "'",
		"recovery_target_time = '" + when + "'",
		"recovery_target_name = 'before_batch_2'",
	} {
		kind := strings.Fields(target)[0]
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r := pgcluster.FromBackup(t, "pitr", backup, cpRestore(w, ""), target, "recovery_target_action = 'promote'")
			r.Signal("recovery.signal")
			r.Start()
			r.WaitRecovered(time.Minute)
			got := r.Query("select batch, count(*), min(id), max(id) from t group by batch order by batch")
			if got != "1|15000|1|15000" {
				t.Fatalf("%s: recovered rows (batch|count|min|max) = %q, want exactly batch 1: 1|15000|1|15000", target, got)
			}
			r.Stop("fast")
		})
	}
}

// Scenario 4: a standby fed only from the archive (restore_command pulls
// from wal_fetch with rsync; no streaming) catches up with the primary,
// twice in a row.
func TestStandbyFromArchive(t *testing.T) {
	t.Parallel()
	w := startWalrus(t)
	pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: 1, Conf: []string{"archive_mode = on", rsyncArchive(w, "")}})
	pg.Start()
	backup := pg.BaseBackup("backup", "-X", "none")
	sb := pgcluster.FromBackup(t, "standby", backup, rsyncRestore(w, ""), "hot_standby = on")
	sb.Signal("standby.signal")
	sb.Start()

	for round, load := range [][]string{
		{"-i", "-q", "-s", "1"},
		{"-n", "-c", "2", "-j", "2", "-T", "3"},
	} {
		pg.Pgbench(load...)
		seg, lsn := pg.SwitchWAL()
		pg.WaitArchived(time.Minute, seg)
		sb.WaitReplayed(time.Minute, lsn)
		want := pg.Query("select count(*), sum(abalance) from pgbench_accounts")
		if got := sb.Query("select count(*), sum(abalance) from pgbench_accounts"); got != want {
			t.Fatalf("round %d: standby has %s, primary %s", round, got, want)
		}
		if got := sb.Query("select pg_is_in_recovery(), pg_last_wal_receive_lsn() is null"); got != "t|t" {
			t.Fatalf("round %d: standby (in recovery, not streaming) = %s", round, got)
		}
	}
	sb.Stop("fast")
	pg.Stop("fast")
}

// Scenario 5: promotion. A streaming standby that archives into the same
// directory is promoted after the primary stops: timeline 2's .history, the
// old timeline's .partial and timeline 2's segments are archived and listed.
// A recovery of a base backup taken on timeline 1 with
// recovery_target_timeline = 'latest' follows the switch and ends on
// timeline 3 with the rows of both timelines.
func TestPromotionTimelineSwitch(t *testing.T) {
	t.Parallel()
	w := startWalrus(t)
	const dir = "clusterA/"
	pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: 1, Conf: []string{"archive_mode = on", rsyncArchive(w, dir)}})
	pg.Start()
	pg.Query("create table t (id int primary key, tli int)")
	backup := pg.BaseBackup("backup", "-X", "none")
	streamed := pg.BaseBackup("standby-backup", "-X", "stream")
	sb := pgcluster.FromBackup(t, "standby", streamed,
		"archive_mode = on", cpArchive(w, dir), rsyncRestore(w, dir), "hot_standby = on",
		fmt.Sprintf("primary_conninfo = 'host=%s port=5432 user=postgres'", pg.Sock))
	sb.Signal("standby.signal")
	sb.Start()

	pg.Query("insert into t select g, 1 from generate_series(1, 20000) g")
	seg, _ := pg.SwitchWAL()
	pg.Query("insert into t select g, 1 from generate_series(20001, 21000) g")
	end := pg.Query("select pg_current_wal_lsn()")
	pg.WaitArchived(time.Minute, seg)
	sb.WaitReplayed(time.Minute, end)
	pg.Stop("fast") // a fast shutdown streams everything to the standby first
	// postgres: xlog.c CleanupAfterArchiveRecovery renames the old timeline's
	// last, partly replayed segment to SEGMENT.partial and marks it .ready;
	// the new timeline's first segment starts with the same bytes.
	sb.Promote()

	if got := sb.Query("select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"); got != "00000002" {
		t.Fatalf("promoted standby writes timeline %s", got)
	}
	sb.Query("insert into t select g, 2 from generate_series(21001, 22000) g")
	tl2seg, _ := sb.SwitchWAL()
	sb.WaitArchived(time.Minute, "00000002.history", tl2seg)
	partial := sb.WaitArchivedMatch(time.Minute, "00000001*.partial")
	if st := sb.Archiver(); st.Failed != 0 {
		t.Fatalf("promoted standby: pg_stat_archiver %+v", st)
	}
	listed := w.Ls(dir)
	for _, n := range []string{"00000002.history", partial[0], tl2seg} {
		if !slices.Contains(listed, n) {
			t.Fatalf("walrus ls %s does not show %s: %v", dir, n, listed)
		}
		got, err := os.ReadFile(filepath.Join(w.Mount, dir, n))
		if err != nil || !bytes.Equal(got, sb.WALFile(n)) {
			t.Fatalf("%s through the mount differs from the standby's pg_wal copy (err %v)", n, err)
		}
	}
	t.Logf("archived after promotion: 00000002.history, %s, %s; walrus status %+v", partial[0], tl2seg, w.Status())

	r := pgcluster.FromBackup(t, "recovered", backup, cpRestore(w, dir), "recovery_target_timeline = 'latest'")
	r.Signal("recovery.signal")
	r.Start()
	r.WaitRecovered(time.Minute)
	if got := r.Query("select tli, count(*) from t group by tli order by tli"); got != "1|21000\n2|1000" {
		t.Fatalf("recovered rows per timeline = %q, want 1|21000 and 2|1000", got)
	}
	if got := r.Query("select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"); got != "00000003" {
		t.Fatalf("recovery across the switch ended on timeline %s, want 00000003", got)
	}
	r.Stop("fast")
	sb.Stop("fast")
	w.Verify()
}
