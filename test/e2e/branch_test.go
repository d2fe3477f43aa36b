package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
)

// Scenario 9: branched timelines (issue 9, part 1). A primary on timeline 1
// archives into one namespace. A PITR copy of its base backup recovers to
// the end of the archive and is promoted to timeline 2. A second PITR copy
// of the same backup, following timeline 2's history (recovery_target_timeline
// defaults to latest), stops at a restore point that lies segments before
// timeline 2's switch point and is promoted to timeline 3, whose history
// file therefore has decreasing switch points ("1 X; 2 Y" with Y < X). All
// three archive into the same namespace while the primary goes on. Every
// history file and segment must be archived, a PITR along each timeline must
// recover exactly that timeline's rows, and walrus status must show timeline
// 3 branching off timeline 1 at Y, with no gaps and no problems.
func TestBranchedTimelines(t *testing.T) {
	t.Parallel()
	w := startWalrus(t)
	const dir = "branch/"
	if err := os.Mkdir(filepath.Join(w.Mount, dir), 0o755); err != nil {
		t.Fatal(err)
	}
	archive := []string{"archive_mode = on", cpArchive(w, dir), cpRestore(w, dir)}
	pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: 1, Conf: archive[:2]})
	pg.Start()
	pg.Query("create table t (id int primary key, tag text)")
	backup := pg.BaseBackup("backup", "-X", "none")
	insert := func(c *pgcluster.Cluster, tag string, from, to int) {
		c.Query(fmt.Sprintf("insert into t select g, '%s' from generate_series(%d, %d) g", tag, from, to))
	}
	insert(pg, "base", 1, 1000)
	pg.Query("select pg_create_restore_point('rp')")
	rpSeg, _ := pg.SwitchWAL()
	// More than a segment of WAL after the restore point, so that timeline
	// 3's switch point lies segments before timeline 2's.
	insert(pg, "tl1-early", 1001, 12000)
	seg, _ := pg.SwitchWAL()
	pg.WaitArchived(time.Minute, rpSeg, seg)

	// Timeline 2: recovery to the end of the archive. The primary writes
	// nothing meanwhile, so where that end lies is certain.
	tl2 := pgcluster.FromBackup(t, "tl2", backup, archive...)
	tl2.Signal("recovery.signal")
	tl2.Start()
	tl2.WaitRecovered(time.Minute)
	requireTimeline(t, tl2, 2)
	insert(tl2, "tl2", 20001, 21000)
	tl2Seg, _ := tl2.SwitchWAL()
	tl2.WaitArchived(time.Minute, "00000002.history", tl2Seg)

	// The primary goes on on timeline 1.
	insert(pg, "tl1-late", 30001, 31000)
	seg, _ = pg.SwitchWAL()
	pg.WaitArchived(time.Minute, seg)

	// Timeline 3: back to the restore point, along timeline 2's history.
	tl3 := pgcluster.FromBackup(t, "tl3", backup, append(archive, "recovery_target_name = 'rp'", "recovery_target_action = 'promote'")...)
	tl3.Signal("recovery.signal")
	tl3.Start()
	tl3.WaitRecovered(time.Minute)
	requireTimeline(t, tl3, 3)
	insert(tl3, "tl3", 40001, 41000)
	tl3Seg, _ := tl3.SwitchWAL()
	tl3.WaitArchived(time.Minute, "00000003.history", tl3Seg)

	// 00000003.history is the kind: timeline 2's line, then a
	// switch point before it, on the line naming timeline 2.
	hist := tl3.WALFile("00000003.history")
	entries, err := wal.ParseHistory(hist)
	if err != nil || len(entries) != 2 || entries[0].ParentTLI != 1 || entries[1].ParentTLI != 2 || entries[1].SwitchLSN >= entries[0].SwitchLSN {
		t.Fatalf("00000003.history = %q (%+v, %v), want 1 X / 2 Y with Y < X", hist, entries, err)
	}
	x, y := entries[0].SwitchLSN, entries[1].SwitchLSN
	if wal.SegNoOf(y, 1<<20) >= wal.SegNoOf(x, 1<<20) {
		t.Fatalf("timeline 3's switch point %s is not in a segment before timeline 2's %s", y, x)
	}

	// Everything each cluster archived is in the store, byte for byte.
	listed := w.Ls(dir)
	for _, c := range []*pgcluster.Cluster{pg, tl2, tl3} {
		assertArchivedToStore(t, c, w.Mount, dir, listed)
	}
	for _, n := range []string{"00000002.history", "00000003.history", tl2Seg, tl3Seg} {
		if !slices.Contains(listed, n) {
			t.Fatalf("walrus ls %s does not show %s: %v", dir, n, listed)
		}
	}

	// walrus status: timeline 3 branches off timeline 1 (its WAL up to Y is
	// timeline 1's; timeline 2 contributes nothing), no gaps, no problems.
	out := w.MustCLI("status", "--json", strings.TrimSuffix(dir, "/"))
	var st branchStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Dirs) != 1 {
		t.Fatalf("walrus status --json: %v\n%s", err, out)
	}
	d := st.Dirs[0]
	want := map[uint32]struct {
		parent uint32
		begin  wal.LSN
	}{1: {0, 0}, 2: {1, x}, 3: {1, y}}
	if len(d.Timelines) != len(want) {
		t.Fatalf("status timelines %+v, want 1, 2, 3", d.Timelines)
	}
	for _, tl := range d.Timelines {
		wt, ok := want[tl.TLI]
		begin, _ := wal.ParseLSN(tl.BeginLSN)
		if !ok || tl.Parent != wt.parent || (tl.TLI > 1 && (begin != wt.begin || !tl.History)) || len(tl.Gaps) != 0 || tl.Segments == 0 {
			t.Errorf("status timeline %+v, want parent %d, begin %s, history, segments and no gaps", tl, wt.parent, wt.begin)
		}
	}
	if len(d.Problems) != 0 || len(d.Backups) != 1 || !d.Backups[0].Restorable {
		t.Errorf("status problems %q, backups %+v", d.Problems, d.Backups)
	}
	if t.Failed() {
		t.Fatalf("walrus status --json:\n%s", out)
	}
	t.Logf("archived %v; 00000003.history %q; status timelines %+v", listed, hist, d.Timelines)
	w.Verify()

	// PITR along each timeline recovers exactly that timeline's rows.
	for _, tc := range []struct{ target, rows string }{
		{"1", "base|1000|1|1000\ntl1-early|11000|1001|12000\ntl1-late|1000|30001|31000"},
		{"2", "base|1000|1|1000\ntl1-early|11000|1001|12000\ntl2|1000|20001|21000"},
		{"latest", "base|1000|1|1000\ntl3|1000|40001|41000"},
	} {
		t.Run("timeline="+tc.target, func(t *testing.T) {
			t.Parallel()
			r := pgcluster.FromBackup(t, "pitr", backup, cpRestore(w, dir), "recovery_target_timeline = '"+tc.target+"'")
			r.Signal("recovery.signal")
			r.Start()
			r.WaitRecovered(time.Minute)
			got := r.Query("select tag, count(*), min(id), max(id) from t group by tag order by tag")
			if got != tc.rows {
				t.Fatalf("recovery_target_timeline = '%s': rows (tag|count|min|max)\n%s\nwant\n%s", tc.target, got, tc.rows)
			}
			r.Stop("fast")
		})
	}
}

// branchStatus is the part of `walrus status --json` this test reads.
type branchStatus struct {
	Dirs []struct {
		Timelines []struct {
			TLI      uint32            `json:"timeline"`
			Parent   uint32            `json:"parent"`
			BeginLSN string            `json:"begin_lsn"`
			History  bool              `json:"history"`
			Segments int               `json:"segments"`
			Gaps     []json.RawMessage `json:"gaps"`
		} `json:"timelines"`
		Backups []struct {
			Name       string   `json:"name"`
			Restorable bool     `json:"restorable"`
			Missing    []string `json:"missing"`
		} `json:"backups"`
		Problems []string `json:"problems"`
	} `json:"dirs"`
}

// requireTimeline fails unless c writes WAL on timeline tli.
func requireTimeline(t *testing.T, c *pgcluster.Cluster, tli uint32) {
	t.Helper()
	if got := c.Query("select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"); got != fmt.Sprintf("%08X", tli) {
		t.Fatalf("%s writes timeline %s, want %d", c.Name, got, tli)
	}
}

// assertArchivedToStore checks what c's archiver did: no failures, nothing
// left to archive, and every file it marked done is listed in the store,
// with pg_wal's bytes when pg_wal still holds it. (A PITR copy marks files
// it restored from the archive done without archiving them, so
// pg_stat_archiver's count is not compared.)
func assertArchivedToStore(t *testing.T, c *pgcluster.Cluster, mount, dir string, listed []string) {
	t.Helper()
	if a := c.Archiver(); a.Failed != 0 || a.Archived == 0 {
		t.Fatalf("%s: pg_stat_archiver %+v, want archivals and no failure", c.Name, a)
	}
	if ready := c.ArchiveStatus(".ready"); len(ready) > 0 {
		t.Fatalf("%s: files still waiting to be archived: %v", c.Name, ready)
	}
	for _, name := range c.ArchiveStatus(".done") {
		if !slices.Contains(listed, name) {
			t.Fatalf("%s archived %s, but the store does not list it", c.Name, name)
		}
		want, err := os.ReadFile(filepath.Join(c.Dir, "pg_wal", name))
		if err != nil {
			continue // recycled, or restored under a temporary name
		}
		got, err := os.ReadFile(filepath.Join(mount, dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %s in the store differs from pg_wal's copy (%d bytes, err %v)", c.Name, name, len(got), err)
		}
	}
}
