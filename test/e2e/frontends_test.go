package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
)

// Issue 15's proof: two walrus front-ends on one versitygw bucket (own
// packs prefixes, one claims prefix, --ack remote so that what either
// acknowledges is in the bucket), real PostgreSQL archiving with
// archive_command = rsync to the first || rsync to the second, pgbench
// running, and the first front-end SIGKILLed in the middle of it.
// Archiving goes on through the second with failed_count rising by at most
// a few; every segment PostgreSQL marked archived, those the dead
// front-end acknowledged included, is served byte-identical by the
// survivor's mount; and a point-in-time recovery of the base backup with
// restore_command = cp from the survivor's mount recovers exactly the rows
// before the restore point.
func TestTwoFrontEndsSurviveKill(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	pgcluster.Require(t, "rsync")
	gw := backendtest.StartVersityGW(t)
	fe, bucket := startFrontEnds(t, gw, "--ack", "remote", "--bucket-roll-age", "1s", "--log-level", "info")
	archive := fmt.Sprintf("archive_command = 'rsync -aq %%p %s || rsync -aq %%p %s'", fe[0].StoreURL("%f"), fe[1].StoreURL("%f"))
	pg := pgcluster.Init(t, "twofe", pgcluster.Options{SegSizeMiB: 1, Conf: []string{"archive_mode = on", archive}})
	pg.Start()
	pg.Query("create table t (id int primary key, batch int, pad text)")
	backup := pg.BaseBackup("backup", "-X", "none")
	insert := func(batch, from, to int) string {
		return fmt.Sprintf("insert into t select g, %d, repeat('p', 200) from generate_series(%d, %d) g", batch, from, to)
	}
	pg.Query(insert(1, 1, 10000))
	pg.Pgbench("-i", "-q", "-s", "1")
	seg, _ := pg.SwitchWAL()
	pg.WaitArchived(2*time.Minute, seg)
	before := pg.Archiver()

	// Segments end at the generator's pace, not at pgbench's: on a loaded
	// machine 2 pgbench clients may write less than two 1 MiB segments in
	// their whole run, and the kill must come while pgbench still runs.
	done := make(chan string, 1)
	go func() { done <- pg.Pgbench("-n", "-c", "2", "-j", "2", "-T", "10") }()
	stopWAL := walGenerator(pg, 300*time.Millisecond)
	pgcluster.Eventually(t, time.Minute, "two more segments archived through the first front-end while pgbench runs", func() (bool, string) {
		a := pg.Archiver()
		return a.Archived >= before.Archived+2, fmt.Sprintf("%+v", a)
	})
	select {
	case <-done:
		t.Fatal("pgbench ended before the first front-end was killed: the kill is not mid-pgbench")
	default:
	}
	fe[0].Kill()
	killedAt := pg.Archiver()
	<-done
	stopWAL()
	pg.Query("select pg_create_restore_point('before_batch_2')")
	pg.Query(insert(2, 10001, 20000))
	last, _ := pg.SwitchWAL()
	pg.WaitArchived(2*time.Minute, last)
	after := pg.Archiver()
	t.Logf("archiver: before the kill %+v, at it %+v, after %+v", before, killedAt, after)
	if after.Failed-before.Failed > 3 {
		t.Errorf("failed_count rose by %d after a front-end was killed, want at most a few (the other one takes the pushes)", after.Failed-before.Failed)
	}
	if after.Archived <= killedAt.Archived {
		t.Fatalf("nothing archived after the kill: %+v then %+v", killedAt, after)
	}

	// Every file PostgreSQL marked archived is in the survivor's mount,
	// byte for byte as in pg_wal (those the killed front-end acknowledged
	// come from its packs in the bucket). Stopped first, so that no
	// checkpoint recycles a segment while it is compared.
	pg.Stop("fast")
	done2 := pg.ArchiveStatus(".done")
	checked := 0
	for _, name := range done2 {
		if strings.HasSuffix(name, ".backup") || strings.HasSuffix(name, ".history") {
			continue
		}
		want, err := os.ReadFile(filepath.Join(pg.Dir, "pg_wal", name))
		if err != nil {
			t.Fatalf("%s is marked archived but not in pg_wal: %v", name, err)
		}
		got, err := os.ReadFile(filepath.Join(fe[1].Mount, name))
		if err != nil {
			t.Fatalf("%s (acknowledged to PostgreSQL) through the survivor's mount: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs in the survivor's mount", name)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no archived segment left in pg_wal to compare")
	}
	t.Logf("%d archived segments still in pg_wal compared through the survivor's mount", checked)

	r := pgcluster.FromBackup(t, "twofe-pitr", backup, cpRestore(fe[1], ""), "recovery_target_name = 'before_batch_2'", "recovery_target_action = 'promote'")
	r.Signal("recovery.signal")
	r.Start()
	r.WaitRecovered(2 * time.Minute)
	if got := r.Query("select batch, count(*), min(id), max(id) from t group by batch order by batch"); got != "1|10000|1|10000" {
		t.Fatalf("recovered rows (batch|count|min|max) = %q, want exactly batch 1: 1|10000|1|10000", got)
	}
	r.Stop("fast")
	text := fe[1].MustCLI("status")
	if !strings.Contains(text, "packs "+"s3:http://"+gw.Endpoint+"/"+bucket+"/fe1/") || !strings.Contains(text, " 0 packs behind") ||
		strings.Contains(text, " 0 files adopted") {
		t.Errorf("walrus status of the survivor does not show the killed front-end as a peer it caught up with:\n%s", text)
	}
}
