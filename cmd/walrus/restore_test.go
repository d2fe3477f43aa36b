package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
// archivedAfterBackup runs a PostgreSQL 15 primary that archives with
// walrus put into a fresh store: a base backup, then a table of 1000 rows
// in a segment archived after it (seg).
func archivedAfterBackup(t *testing.T) (bin, work, data string, primary *pgcluster.Cluster, backup, seg string) {
	t.Helper()
	testenv.RequirePostgres(t)
	bin = binary(t)
	work = pgcluster.TempDir(t)
	data = filepath.Join(work, "data")
	pgcluster.Run(t, work, bin, "--data", data, "init")
	primary = pgcluster.Init(t, "primary", pgcluster.Options{Conf: []string{
		"archive_mode = on",
		fmt.Sprintf("archive_command = '%s --data %s put %%f %%p'", bin, data),
	}})
	primary.Start()
	backup = primary.BaseBackup("base")
	primary.Query("create table after_backup as select generate_series(1, 1000) as i")
	seg, _ = primary.SwitchWAL()
	primary.WaitArchived(60*time.Second, seg)
	return bin, work, data, primary, backup, seg
}

func TestRestoreCommandOnWrongDataAbortsRecovery(t *testing.T) {
	bin, work, data, _, backup, _ := archivedAfterBackup(t)

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

// A segment the archive holds but cannot read back intact must stop a
// recovery too: get exits above 125 (exitGetFailed). With exit 1 (as get
// did for every error but a few), PostgreSQL took the unreadable segment
// for the end of the archive, finished recovery before it and promoted,
// without the rows it held.
func TestRestoreCommandOnCorruptSegmentAbortsRecovery(t *testing.T) {
	bin, work, data, primary, backup, seg := archivedAfterBackup(t)
	primary.Stop("fast")

	// The last segment archived is the last file put into the newest pack:
	// its blocks end just before the journal record of its commit. Damage
	// the pack's last 4 KiB (the journal record and the end of that
	// segment's last stored block).
	packs, _ := filepath.Glob(filepath.Join(data, "packs", "*.pack"))
	if len(packs) == 0 {
		t.Fatal("no pack files")
	}
	last := packs[len(packs)-1]
	f, err := os.OpenFile(last, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	junk := bytes.Repeat([]byte{0xa5}, 4096)
	if _, err := f.WriteAt(junk, st.Size()-int64(len(junk))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// As the user PostgreSQL runs restore_command as (files a root get
	// created in the index would lock that user out).
	get := func(name string) (int, string) {
		cmd := pgcluster.Command(work, bin, "--data", data, "get", name, "-")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Run()
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	if code, msg := get(seg); code != exitGetFailed || !strings.Contains(msg, "corrupt") {
		t.Fatalf("get of the damaged segment %s: exit %d (%s), want %d naming the damage", seg, code, msg, exitGetFailed)
	}
	if code, msg := get("000000010000000000000099"); code != exitNotFound {
		t.Fatalf("get of a missing segment: exit %d (%s), want %d", code, msg, exitNotFound)
	}

	bad := pgcluster.FromBackup(t, "damaged", backup, fmt.Sprintf("restore_command = '%s --data %s get %%f %%p'", bin, data))
	bad.Signal("recovery.signal")
	out, err := pgcluster.Command(bad.Work(), filepath.Join(pgcluster.Bin, "pg_ctl"), "-D", bad.Dir, "-l", bad.Log, "-w", "-t", "120", "start").CombinedOutput()
	log, _ := os.ReadFile(bad.Log)
	if err == nil {
		t.Fatalf("a recovery through a damaged segment started a server (recovery ended early instead of aborting):\n%s", log)
	}
	if !bytes.Contains(log, []byte("could not restore file")) || !bytes.Contains(log, []byte(fmt.Sprintf("exit code %d", exitGetFailed))) {
		t.Fatalf("pg_ctl start: %v %s\nthe server log does not show restore_command failing with exit %d:\n%s", err, out, exitGetFailed, log)
	}
}

func TestGetExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		get  bool
	}{
		{[]string{"get", "x", "y"}, true},
		{[]string{"--data", "/srv/w", "get", "x"}, true},
		{[]string{"--data=/srv/w", "--log-level", "info", "get", "--bogus"}, true},
		{[]string{"--config", "/etc/walrus/walrus.toml", "--log-format", "json", "get", "x", "y"}, true},
		{[]string{"put", "get", "-"}, false},
		{[]string{"--data", "get", "put", "x"}, false},
	} {
		if got := isGet(c.args); got != c.get {
			t.Errorf("isGet(%q) = %v, want %v", c.args, got, c.get)
		}
	}
	for code, want := range map[int]int{exitOK: exitOK, exitNotFound: exitNotFound, exitError: exitGetFailed,
		exitLocked: exitGetFailed, exitNoStore: exitNoStore, exitIndexMissing: exitIndexMissing} {
		if got := getExit(code); got != want {
			t.Errorf("getExit(%d) = %d, want %d", code, got, want)
		}
	}
}

// A command run as root on a store that belongs to postgres leaves index
// files postgres cannot open. The next restore_command run as postgres
// must say that (and abort the recovery), not call the index damaged and
// send the DBA to walrus repair.
func TestIndexFilesOfAnotherUserNamed(t *testing.T) {
	testenv.RequirePostgres(t)
	bin := binary(t)
	work := pgcluster.TempDir(t)
	data := filepath.Join(work, "data")
	pgcluster.Run(t, work, bin, "--data", data, "init")
	if r := walrus(t, data, []byte("hello"), "put", "note.txt"); r.code != 0 { // as root
		t.Fatal(r)
	}
	cmd := pgcluster.Command(work, bin, "--data", data, "get", "note.txt", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != exitGetFailed || !strings.Contains(stderr.String(), "must belong to the user walrus runs as") ||
		strings.Contains(stderr.String(), "repair") {
		t.Fatalf("get as postgres after root wrote to its store: exit %d, %s", code, stderr.String())
	}
}
