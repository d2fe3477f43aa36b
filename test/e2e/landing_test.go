package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"testing"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

var landedAtOpen = regexp.MustCompile(`landed files to ingest.* files=(\d+)`)

// TestLandingKillAfterCp: cp real segments into the mount (they land:
// FUSE passthrough, ingested in the background) and SIGKILL walrus serve
// right after the last cp returned. After a restart every acknowledged
// file is present and identical, through the mount and in walrus ls; the
// files still landed at the kill are ingested by the new server.
func TestLandingKillAfterCp(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	corpus, _ := filepath.Glob(filepath.Join("..", "testdata", "walcache", "[0-9A-F]*"))
	corpus = slices.DeleteFunc(corpus, func(p string) bool { return len(filepath.Base(p)) != 24 })
	sort.Strings(corpus)
	const rounds, per = 3, 5
	if len(corpus) < rounds*per {
		testenv.Require(t, "the WAL corpus in test/testdata/walcache")
	}
	home := t.TempDir()
	w := walrusproc.Start(t, home, "--log-level", "info")
	if !regexp.MustCompile(`landing=true`).MatchString(w.Output()) {
		testenv.Require(t, "FUSE passthrough (walrus serve did not enable landing)")
	}
	if out, err := exec.Command("mkdir", filepath.Join(w.Mount, "ns")).CombinedOutput(); err != nil {
		t.Fatalf("mkdir: %v %s", err, out)
	}
	var acked []string
	landedSeen := 0
	for r := range rounds {
		for _, p := range corpus[r*per : (r+1)*per] {
			if out, err := exec.Command("cp", p, filepath.Join(w.Mount, "ns", filepath.Base(p))).CombinedOutput(); err != nil {
				t.Fatalf("cp %s: %v %s", p, err, out)
			}
			acked = append(acked, p)
		}
		w.Kill()
		w = walrusproc.Start(t, home, "--log-level", "info")
		if m := landedAtOpen.FindStringSubmatch(w.Output()); m != nil {
			n, _ := strconv.Atoi(m[1])
			landedSeen += n
		}
		ls := w.Ls("ns")
		for _, p := range acked {
			name := filepath.Base(p)
			if !slices.Contains(ls, name) {
				t.Fatalf("round %d: acknowledged %s missing after the kill (walrus ls: %v)", r, name, ls)
			}
			if out, err := exec.Command("cmp", p, filepath.Join(w.Mount, "ns", name)).CombinedOutput(); err != nil {
				t.Fatalf("round %d: %s after the kill: %v %s", r, name, err, out)
			}
		}
	}
	if landedSeen == 0 {
		t.Fatalf("no file was still landed at any of %d kills: the test did not reach the window it is for", rounds)
	}
	t.Logf("%d files were landed, not ingested, at the kills; all %d acknowledged files survived", landedSeen, len(acked))
	if out, code, err := w.CLI("status", "--check"); err != nil {
		t.Fatalf("walrus status --check: exit %d: %v\n%s", code, err, out)
	}
	w.Verify()
}
