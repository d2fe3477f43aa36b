package e2e

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// The bucket goes down while real PostgreSQL archives through the rsync
// gateway under pgbench: archive_command keeps succeeding (local ack:
// pg_stat_archiver's failed_count does not move), the backlog shows in
// status, and once the bucket is back it drains; then the host's data
// directory is lost and an archive rebuilt from the bucket alone serves
// every archived file byte-identical, those archived during the outage
// included.
func TestBucketOutageDuringPgbench(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	pgcluster.Require(t, "rsync")
	gw := backendtest.StartVersityGW(t)
	home := pgcluster.TempDir(t)
	common, serveArgs := bucketArgs(t, gw, home, true)
	w := walrusproc.Start(t, home, serveArgs...)
	pg := pgcluster.Init(t, "outage", pgcluster.Options{Conf: []string{"archive_mode = on", rsyncArchive(w, "")}})
	pg.Start()
	pg.Pgbench("-i", "-q", "-s", "2")
	first, _ := pg.SwitchWAL()
	pg.WaitArchived(2*time.Minute, first)
	waitBucketEmpty(t, w)

	gw.Stop()
	before := pg.Archiver()
	var during []string
	for range 4 {
		pg.Pgbench("-n", "-c", "2", "-j", "2", "-T", "1")
		seg, _ := pg.SwitchWAL()
		during = append(during, seg)
	}
	pg.WaitArchived(2*time.Minute, during...)
	after := pg.Archiver()
	if after.Failed != before.Failed {
		t.Errorf("archive_command failed %d times while the bucket was down, want 0 (local ack)", after.Failed-before.Failed)
	}
	if after.Archived < before.Archived+len(during) {
		t.Errorf("%d segments archived while the bucket was down, want at least %d", after.Archived-before.Archived, len(during))
	}
	pgcluster.Eventually(t, time.Minute, "the backlog to show in walrus status", func() (bool, string) {
		b := serverBucket(t, w)
		return b.Failing && b.WaitingPacks > 0, "bucket status " + b.LastError
	})

	gw.Restart(t)
	drained := waitBucketEmpty(t, w)
	t.Logf("after the outage: %+v", drained)
	pg.Stop("fast")
	archived := map[string][32]byte{}
	for _, name := range w.Ls("") {
		b, err := os.ReadFile(filepath.Join(w.Mount, name))
		if err != nil {
			t.Fatal(err)
		}
		archived[name] = sha256.Sum256(b)
	}
	for _, seg := range append([]string{first}, during...) {
		if _, ok := archived[seg]; !ok {
			t.Fatalf("%s is acknowledged by PostgreSQL but not listed by walrus", seg)
		}
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}

	rebuildFromBucket(t, w, gw, common)
	w = walrusproc.Start(t, home, serveArgs...)
	got := w.Ls("")
	for name, sum := range archived {
		if !slices.Contains(got, name) {
			t.Errorf("%s missing from the archive rebuilt from the bucket", name)
			continue
		}
		b, err := os.ReadFile(filepath.Join(w.Mount, name))
		if err != nil {
			t.Fatalf("%s after the rebuild: %v", name, err)
		}
		if sha256.Sum256(b) != sum {
			t.Errorf("%s differs after the rebuild from the bucket", name)
		}
	}
	if len(got) != len(archived) {
		t.Errorf("the rebuilt archive lists %d files, the lost one %d", len(got), len(archived))
	}
}
