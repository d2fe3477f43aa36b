//go:build bench

package compare

import (
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/test/bench"
	"github.com/walrus-archive/walrus/test/bench/rusage"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// statusResult is `walrus status` on a synthetic archive.
type statusResult struct {
	n         int
	build     time.Duration
	json, chk rusage.Result
}

// statusScale builds test/bench's synthetic archive of n segments (index
// records written straight into the index; see bench.BuildStatusArchive)
// and runs `walrus status --json` and `walrus status --check` on it, each
// started from a fresh copy of this binary so its peak RSS is its own. The
// report is checked against what was built.
func statusScale(t *testing.T, n int) statusResult {
	dir := t.TempDir()
	start := time.Now()
	layout := bench.BuildStatusArchive(t, dir, n)
	r := statusResult{n: n, build: time.Since(start)}
	bin := walrusproc.Binary(t)
	run := func(args ...string) rusage.Result {
		res, err := rusage.Measure(t.TempDir(), append([]string{bin, "--data", dir}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	r.json = run("status", "--json")
	layout.Check(t, r.json.Stdout)
	r.chk = run("status", "--check")
	if r.chk.Exit != 2 || !strings.Contains(string(r.chk.Stdout), "3 segments") {
		t.Errorf("status --check on %d: exit %d, want 2 with the gap reported:\n%s", n, r.chk.Exit, r.chk.Stdout)
	}
	return r
}
