package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// startFrontEnds is walrusproc.StartFrontEnds in homes PostgreSQL can
// read.
func startFrontEnds(t *testing.T, gw *backendtest.VersityGW, extra ...string) ([2]*walrusproc.Server, string) {
	t.Helper()
	return walrusproc.StartFrontEnds(t, gw, [2]string{pgcluster.TempDir(t), pgcluster.TempDir(t)}, extra...)
}

// Two real `walrus serve` front-ends on one versitygw bucket, each with its
// own packs prefix and both with one claims prefix: real rsync clients push
// different content under one new name to both at once, the way two
// primaries misconfigured into one archive (or a split brain) would, in
// many rounds. Exactly one rsync exits 0 in every round, the other is
// refused with the different-content message and its front-end does not
// have the name; the winner's bytes come back through both rsync modules
// of its front-end. An identical push of the winner's bytes to the loser
// (PostgreSQL retrying through the other host) succeeds.

func TestClaimsTwoFrontEndsRsyncRaces(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("rsync"); err != nil {
		testenv.Require(t, "rsync")
	}
	rounds := 1000
	if testing.Short() {
		rounds = 100
	}
	gw := backendtest.StartVersityGW(t)
	fe, _ := startFrontEnds(t, gw)
	src := t.TempDir()
	wins := [2]int{}
	start := time.Now()
	for r := range rounds {
		name := fmt.Sprintf("race-%04d.dat", r)
		var files [2]string
		for i := range files {
			b := make([]byte, 4096+r)
			rand.Read(b)
			files[i] = filepath.Join(src, fmt.Sprintf("%s.%d", name, i))
			if err := os.WriteFile(files[i], b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		var outs [2][]byte
		var errs [2]error
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = exec.Command("rsync", "-q", files[i], fe[i].StoreURL(name)).CombinedOutput()
			}()
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: rsync to front-end 1: %v %s; to front-end 2: %v %s: want exactly one to succeed", r, errs[0], outs[0], errs[1], outs[1])
		}
		win, lose := 0, 1
		if errs[0] != nil {
			win, lose = 1, 0
		}
		wins[win]++
		if !strings.Contains(string(outs[lose]), "different content") {
			t.Fatalf("round %d: the losing rsync said %q, want the different-content refusal", r, outs[lose])
		}
		// The losing front-end may hold the name only with the winner's
		// content (its follower adopts the winner's files once their pack
		// is in the bucket), never with its own.
		if slices.Contains(fe[lose].Ls(""), name) {
			got := filepath.Join(t.TempDir(), name)
			if out, err := exec.Command("rsync", "-q", fe[lose].FetchURL(name), got).CombinedOutput(); err != nil {
				t.Fatalf("round %d: fetch %s from the losing front-end: %v %s", r, name, err, out)
			}
			want, _ := os.ReadFile(files[win])
			if b, _ := os.ReadFile(got); !bytes.Equal(b, want) {
				t.Fatalf("round %d: the losing front-end holds %s with other content than the winner's", r, name)
			}
		}
		if r%20 == 0 {
			got := filepath.Join(t.TempDir(), name)
			if out, err := exec.Command("rsync", "-q", fe[win].FetchURL(name), got).CombinedOutput(); err != nil {
				t.Fatalf("fetch %s: %v %s", name, err, out)
			}
			want, _ := os.ReadFile(files[win])
			if b, _ := os.ReadFile(got); !bytes.Equal(b, want) {
				t.Fatalf("round %d: the winner's front-end returns other bytes than it was given", r)
			}
			// The winner's content through the other front-end: PostgreSQL's
			// retry through the other host after the first one failed.
			if out, err := exec.Command("rsync", "-q", files[win], fe[lose].StoreURL(name)).CombinedOutput(); err != nil {
				t.Fatalf("round %d: the winner's content pushed to the other front-end: %v %s", r, err, out)
			}
		}
	}
	for i, w := range fe {
		text := w.MustCLI("status")
		if !strings.Contains(text, "name claims") || !strings.Contains(text, fmt.Sprintf("%d claimed", wins[i])) {
			t.Errorf("walrus status of front-end %d does not show its %d claims:\n%s", i+1, wins[i], text)
		}
	}
	t.Logf("%d races of two real rsync pushes in %.1f s (%.0f ms a race); front-end 1 won %d, front-end 2 won %d",
		rounds, time.Since(start).Seconds(), time.Since(start).Seconds()*1000/float64(rounds), wins[0], wins[1])
}
