package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// Two front-ends with the same retention policy (keep the newest base
// backup) and a short maintenance lease, real PostgreSQL archiving to the
// first || the second: only the lease holder runs retention, the other
// logs that it skips it and follows the holder's removals, so both keep
// exactly the WAL from the newest backup on. The holder is SIGKILLed; the
// survivor takes the lease and its retention applies the policy to the
// next backup.
func TestTwoFrontEndsRetentionByLease(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	pgcluster.Require(t, "rsync")
	gw := backendtest.StartVersityGW(t)
	fe, _ := startFrontEnds(t, gw, "--retain-backups", "1", "--retain-interval", "1s", "--lease-ttl", "3s",
		"--bucket-roll-age", "1s", "--log-level", "info")
	holder := func() (int, string) {
		a, b := fe[0].Status().Lease, fe[1].Status().Lease
		if a == nil || b == nil {
			t.Fatal("walrus status --json shows no maintenance lease with --bucket-claims-prefix")
		}
		switch {
		case a.Here && !b.Here && b.Holder == a.Holder:
			return 0, a.Holder
		case b.Here && !a.Here && a.Holder == b.Holder:
			return 1, b.Holder
		}
		return -1, fmt.Sprintf("%+v / %+v", *a, *b)
	}
	h := -1
	pgcluster.Eventually(t, time.Minute, "exactly one front-end to hold the lease, seen by both", func() (bool, string) {
		var why string
		h, why = holder()
		return h >= 0, why
	})

	archive := fmt.Sprintf("archive_command = 'rsync -aq %%p %s || rsync -aq %%p %s'", fe[0].StoreURL("%f"), fe[1].StoreURL("%f"))
	pg := pgcluster.Init(t, "lease", pgcluster.Options{SegSizeMiB: 1, Conf: []string{"archive_mode = on", archive}})
	pg.Start()
	pg.Query("create table t (id int primary key, pad text)")
	rows := 0
	backup := func(name string) (start, last string) {
		pg.BaseBackup(name, "-X", "none")
		rows += 5000
		pg.Query(fmt.Sprintf("insert into t select g, repeat('p', 200) from generate_series(%d, %d) g", rows-4999, rows))
		last, _ = pg.SwitchWAL()
		pg.WaitArchived(2*time.Minute, last)
		var hist []string
		for _, n := range pg.ArchiveStatus(".done") {
			if strings.HasSuffix(n, ".backup") {
				hist = append(hist, n)
			}
		}
		slices.Sort(hist)
		return hist[len(hist)-1][:24], last
	}
	// kept waits until s holds exactly the segments [from, to] of
	// timeline 1 (what keep-newest-1 leaves once PostgreSQL archived to).
	kept := func(s *walrusproc.Server, who, from, to string) {
		pgcluster.Eventually(t, time.Minute, who+" to keep exactly the WAL from "+from, func() (bool, string) {
			var segs []string
			for _, n := range s.Ls("") {
				if len(n) == 24 && strings.HasPrefix(n, "00000001") {
					segs = append(segs, n)
				}
			}
			slices.Sort(segs)
			ok := len(segs) > 0 && segs[0] == from && segs[len(segs)-1] >= to
			return ok, fmt.Sprintf("segments %v", segs)
		})
	}
	backup("b1")
	start2, last2 := backup("b2")
	kept(fe[h], "the holder", start2, last2)
	kept(fe[1-h], "the other front-end (following the holder's removals)", start2, last2)
	if out := fe[1-h].Output(); !strings.Contains(out, "retention skipped here") || strings.Contains(out, "retention removed files") {
		t.Fatalf("the front-end without the lease ran retention itself, or did not say it skips it:\n%s", out)
	}

	if out, code, err := fe[1-h].CLI("retain", "--keep-backups", "1"); err == nil || !strings.Contains(out+err.Error(), "retention runs there") {
		t.Fatalf("walrus retain on the front-end without the lease: exit %d, %v:\n%s\nwant a refusal naming the holder", code, err, out)
	}
	fe[h].Kill()
	s := fe[1-h]
	pgcluster.Eventually(t, time.Minute, "the survivor to take the lease", func() (bool, string) {
		l := s.Status().Lease
		return l.Here, fmt.Sprintf("%+v", *l)
	})
	start3, last3 := backup("b3")
	kept(s, "the survivor", start3, last3)
	if out := s.Output(); !strings.Contains(out, "took the maintenance lease") || !strings.Contains(out, "retention removed files") {
		t.Fatalf("the survivor's log does not show it took the lease and ran retention:\n%s", out)
	}
	s.Verify()
	pg.Stop("fast")
}
