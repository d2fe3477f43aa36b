package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// The README's strict restore_commands (mount and rsync) abort a recovery
// when a segment the archive holds cannot be read back, or the archive is
// not there at all, and answer "not found" only when the archive is up and
// the file is not in it. A plain `cp MOUNT/%f %p` or `rsync URL/%f %p`
// exits 1 or 23 in every one of these cases, which PostgreSQL takes for the
// end of the archive: recovery ends early and promotes without the WAL.
func strictCpRestore(w *walrusproc.Server) string {
	m := w.Mount
	return fmt.Sprintf(`restore_command = 'if [ -e %[1]s/%%f ]; then cp %[1]s/%%f %%p || exit 202; elif mountpoint -q %[1]s; then exit 1; else exit 202; fi'`, m)
}

func strictRsyncRestore(w *walrusproc.Server) string {
	u := w.FetchURL("%f")
	return fmt.Sprintf(`restore_command = 'rsync -a %[1]s %%p && exit 0; rsync --list-only %[1]s >/dev/null 2>&1; [ $? = 23 ] && exit 1; exit 202'`, u)
}

func TestStrictRestoreCommands(t *testing.T) {
	t.Parallel()
	w := startWalrus(t)
	pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: 1, Conf: []string{"archive_mode = on", rsyncArchive(w, "")}})
	pg.Start()
	backup := pg.BaseBackup("backup", "-X", "none")
	pg.Query("create table after_backup as select generate_series(1, 1000) as i")
	seg, _ := pg.SwitchWAL()
	pg.WaitArchived(time.Minute, seg)
	pg.Stop("fast")

	// Both recipes recover everything from an intact archive, and end
	// recovery at the end of the archive ("not found" of the next segment).
	for _, rc := range []string{strictCpRestore(w), strictRsyncRestore(w)} {
		r := pgcluster.FromBackup(t, "intact", backup, rc, "recovery_target_action = 'promote'")
		r.Signal("recovery.signal")
		r.Start()
		r.WaitRecovered(time.Minute)
		if n := r.Query("select count(*) from after_backup"); n != "1000" {
			t.Fatalf("%s: recovered %s rows, want 1000", rc, n)
		}
		r.Stop("fast")
	}

	// Damage the end of the newest pack (the journal record of the last
	// commit and the end of the last segment's stored block) while walrus
	// is stopped: a running server may hold the block in its cache.
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(w.Data, "packs", "*.pack"))
	if len(packs) == 0 {
		t.Fatal("no pack files")
	}
	f, err := os.OpenFile(packs[len(packs)-1], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 4096), st.Size()-4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	w = walrusproc.Start(t, w.Home)
	if out, code, _ := w.CLI("get", seg, "-"); code != 202 {
		t.Fatalf("walrus get of the damaged %s: exit %d, want 202 (%s)", seg, code, out)
	}

	abort := func(what, rc string) {
		t.Helper()
		r := pgcluster.FromBackup(t, "damaged", backup, rc, "recovery_target_action = 'promote'")
		r.Signal("recovery.signal")
		out, err := pgcluster.Command(r.Work(), filepath.Join(pgcluster.Bin, "pg_ctl"), "-D", r.Dir, "-l", r.Log, "-w", "-t", "120", "start").CombinedOutput()
		log, _ := os.ReadFile(r.Log)
		if err == nil {
			t.Fatalf("%s: %s\nrecovery ended early and started a server instead of aborting:\n%s", what, rc, log)
		}
		if !bytes.Contains(log, []byte("exit code 202")) {
			t.Fatalf("%s: %s\npg_ctl: %v %s\nthe log does not show restore_command failing with exit 202:\n%s", what, rc, err, out, log)
		}
	}
	abort("unreadable segment through the mount", strictCpRestore(w))
	abort("unreadable segment through rsync", strictRsyncRestore(w))

	// walrus down: the mount point is an empty directory, the rsync port
	// refuses connections.
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	abort("walrus not running (mount)", strictCpRestore(w))
	abort("walrus not running (rsync)", strictRsyncRestore(w))
}
