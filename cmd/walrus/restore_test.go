package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
)

// restore_command = 'walrus --data WRONG get %f %p' must stop a recovery, not
// end it. Had get answered "not found" (exit 3), PostgreSQL would have taken
// the wrong directory for the end of the archive, finished recovery at the
// end of the base backup's own WAL and promoted, without the rows written
// after the backup.
func TestRestoreCommandOnWrongDataAbortsRecovery(t *testing.T) {
	testenv.RequirePostgres(t)
	bin := binary(t)
	work := pgcluster.TempDir(t)
	data := filepath.Join(work, "data")
	pgcluster.Run(t, work, bin, "--data", data, "init")
	primary := pgcluster.Init(t, "primary", pgcluster.Options{Conf: []string{
		"archive_mode = on",
		fmt.Sprintf("archive_command = '%s --data %s put %%f %%p'", bin, data),
	}})
	primary.Start()
	backup := primary.BaseBackup("base")
	primary.Query("create table after_backup as select generate_series(1, 1000) as i")
	seg, _ := primary.SwitchWAL()
	primary.WaitArchived(60*time.Second, seg)

	wrong := filepath.Join(work, "dta")
	bad := pgcluster.FromBackup(t, "wrong", backup, fmt.Sprintf("restore_command = '%s --data %s get %%f %%p'", bin, wrong))
	bad.Signal("recovery.signal")
	out, err := pgcluster.Command(bad.Work(), filepath.Join(pgcluster.Bin, "pg_ctl"), "-D", bad.Dir, "-l", bad.Log, "-w", "-t", "120", "start").CombinedOutput()
	log, _ := os.ReadFile(bad.Log)
	if err == nil {
		t.Fatalf("a recovery from a wrong --data started a server (recovery ended early instead of aborting):\n%s", log)
	}
	if !bytes.Contains(log, []byte("could not restore file")) || !bytes.Contains(log, []byte(fmt.Sprintf("exit code %d", exitNoStore))) {
		t.Fatalf("pg_ctl start: %v %s\nthe server log does not show restore_command failing with exit %d:\n%s", err, out, exitNoStore, log)
	}
	if _, err := os.Stat(wrong); !os.IsNotExist(err) {
		t.Fatalf("get created %s: %v", wrong, err)
	}

	// The same recovery from the right --data replays everything.
	good := pgcluster.FromBackup(t, "right", backup, fmt.Sprintf("restore_command = '%s --data %s get %%f %%p'", bin, data))
	good.Signal("recovery.signal")
	good.Start()
	good.WaitRecovered(120 * time.Second)
	if n := good.Query("select count(*) from after_backup"); n != "1000" {
		t.Fatalf("recovered %s rows written after the backup, want 1000", n)
	}
}
