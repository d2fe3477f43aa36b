package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
)

// The status page, rendered by a real browser (headless Chromium): two
// clusters, one with a branched timeline 2, a restorable and an
// unrestorable base backup and a gap; the DOM shows each of them, the
// chart counts the segments archived in the last hour; a screenshot is
// written for a human to look at.
func TestStatusPageInChromium(t *testing.T) {
	testenv.Require(t, testenv.Command("chromium"))
	home := t.TempDir()
	port := freePort(t)
	p := startServe(t, "--home", home, "--rsync-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--http", fmt.Sprintf("127.0.0.1:%d", port))
	data := filepath.Join(home, "data")
	put := func(name string, b []byte) {
		t.Helper()
		if r := walrus(t, data, b, "put", name); r.code != 0 {
			t.Fatalf("put %s: %+v", name, r)
		}
	}
	seg := func(tli uint32, no uint64) walgen.Segment {
		return walgen.Segment{TLI: tli, SegNo: no, SysID: 4242, SegSize: 1 << 20, Seed: no}
	}
	for no := uint64(1); no <= 6; no++ {
		if no == 4 {
			continue // a gap on timeline 1
		}
		g := seg(1, no)
		put("alpha/"+g.Name(), g.Bytes())
	}
	// Timeline 2 forks off timeline 1 inside segment 3.
	put("alpha/00000002.history", []byte("1\t0/300100\tno recovery target specified\n"))
	for no := uint64(3); no <= 4; no++ {
		g := seg(2, no)
		put("alpha/"+g.Name(), g.Bytes())
	}
	backup := func(seg, start, stop string) []byte {
		return []byte(fmt.Sprintf("START WAL LOCATION: %s (file %s)\nSTOP WAL LOCATION: %s (file %s)\nCHECKPOINT LOCATION: %s\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-01 10:00:00 UTC\nLABEL: nightly\nSTART TIMELINE: 1\nSTOP TIME: 2026-12-01 10:05:00 UTC\nSTOP TIMELINE: 1\n",
			start, seg, stop, seg, start))
	}
	put("alpha/000000010000000000000002.00000028.backup", backup("000000010000000000000002", "0/2000028", "0/2000100"))
	put("alpha/000000010000000000000004.00000028.backup", backup("000000010000000000000004", "0/4000028", "0/4000100"))
	other := walgen.Segment{TLI: 1, SegNo: 9, SysID: 77, SegSize: 1 << 20, Seed: 1}
	put("beta/"+other.Name(), other.Bytes())

	shot := filepath.Join(os.TempDir(), "walrus-statuspage.png")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	chrome := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("chromium", append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1600"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	dom := chrome("--dump-dom", url)
	chrome("--screenshot="+shot, url)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("status page screenshot: %s", shot)

	section := func(dir string) string {
		i := strings.Index(dom, `data-dir="`+dir+`"`)
		if i < 0 {
			t.Fatalf("no section for /%s in the rendered page:\n%s", dir, dom)
		}
		rest := dom[i:]
		if j := strings.Index(rest[1:], "<section"); j >= 0 {
			rest = rest[:j+1]
		}
		return rest
	}
	alpha := section("alpha")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`system 4242`),
		regexp.MustCompile(`segment 000000010000000000000004 is missing`),
		regexp.MustCompile(`(?s)data-tli="1".*data-tli="2".*branched off timeline 1 at <code class="fork">0/0*300100</code>`),
		regexp.MustCompile(`(?s)000000010000000000000002\.00000028\.backup.*class="ok restorable">yes`),
		regexp.MustCompile(`(?s)000000010000000000000004\.00000028\.backup.*class="bad unrestorable">no`),
		regexp.MustCompile(`<code class="last-segment">000000010000000000000006</code>`),
	} {
		if !want.MatchString(alpha) {
			t.Errorf("/alpha: rendered DOM does not match %s", want)
		}
	}
	// Every archived segment of alpha arrived within the hour: the last bar.
	bars := regexp.MustCompile(`data-count="(\d+)"`).FindAllStringSubmatch(alpha, -1)
	if len(bars) != 24 || bars[23][1] != "7" {
		t.Errorf("/alpha chart: %d bars, last %v; want 24 bars, the last counting 7 segments", len(bars), bars[len(bars)-1])
	}
	if beta := section("beta"); !strings.Contains(beta, "system 77") || !strings.Contains(beta, "no gaps") {
		t.Errorf("/beta section: %s", beta)
	}
	p.stop(t, syscall.SIGTERM)
}
