package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
)

// scrape reads /metrics and returns the families by name.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// value returns the sample of family name whose labels include want
// (counter, gauge or histogram count), and whether there was one.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// The metrics endpoint during real pushes and pulls through each
// interface: the counters of exactly those events move, refusals are
// counted by reason, the state gauges describe the archive.
func TestMetricsDuringPushesAndPulls(t *testing.T) {
	testenv.Require(t, testenv.FUSE())
	testenv.Require(t, testenv.Command("rsync"))
	home := t.TempDir()
	rport, hport := freePort(t), freePort(t)
	srv := startServeEnv(t, []string{"WALRUS_LOG_LEVEL=info", "WALRUS_LOG_FORMAT=json"}, "--home", home, "--rsync-listen", fmt.Sprintf("127.0.0.1:%d", rport), "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", hport))
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", hport)
	rsyncURL := fmt.Sprintf("rsync://127.0.0.1:%d/", rport)
	mnt := filepath.Join(home, "pg_archived")
	src := t.TempDir()
	seg := func(no uint64) (string, []byte) {
		g := walgen.Segment{TLI: 1, SegNo: no, SysID: 31, SegSize: 1 << 20, Seed: no}
		p := filepath.Join(src, g.Name())
		if err := os.WriteFile(p, g.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p, g.Bytes()
	}
	run := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
		}
		return nil
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := value(scrape(t, url), "walrus_archived_files_total", nil); ok {
		t.Fatal("files archived before any push")
	}

	p1, b1 := seg(1)
	must(run("cp", p1, mnt+"/"))
	p2, _ := seg(2)
	must(run("rsync", "-aq", p2, rsyncURL+"wal_store/"))
	p3, _ := seg(3)
	if r := walrus(t, filepath.Join(home, "data"), nil, "put", filepath.Base(p3), p3); r.code != 0 {
		t.Fatal(r)
	}
	must(run("rsync", "-aq", p2, rsyncURL+"wal_store/")) // identical re-push
	bad := bytes.Clone(b1)
	bad[len(bad)-1] ^= 1
	badPath := filepath.Join(t.TempDir(), filepath.Base(p1))
	must(os.WriteFile(badPath, bad, 0o600))
	if err := run("rsync", "-aq", badPath, rsyncURL+"wal_store/"); err == nil {
		t.Fatal("different content under an archived name was accepted")
	}
	must(run("rsync", "-aq", rsyncURL+"wal_fetch/"+filepath.Base(p1), filepath.Join(t.TempDir(), "x")))
	must(run("cp", filepath.Join(mnt, filepath.Base(p2)), filepath.Join(t.TempDir(), "y")))
	if err := run("rsync", rsyncURL+"no_such_module/"); err == nil {
		t.Fatal("unknown module listed")
	}
	if err := run("rsync", "-aq", p3, rsyncURL+"wal_fetch/"); err == nil {
		t.Fatal("push to the read-only wal_fetch accepted")
	}

	f := scrape(t, url)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"walrus_archived_files_total", map[string]string{"interface": "fuse", "dir": ""}, 1},
		{"walrus_archived_files_total", map[string]string{"interface": "rsync"}, 1},
		{"walrus_archived_files_total", map[string]string{"interface": "cli"}, 1},
		{"walrus_archived_bytes_total", map[string]string{"interface": "rsync"}, 1 << 20},
		{"walrus_rearchived_files_total", map[string]string{"interface": "rsync"}, 1},
		{"walrus_refused_total", map[string]string{"interface": "rsync", "reason": "exists_different"}, 1},
		{"walrus_restored_files_total", map[string]string{"interface": "rsync"}, 1},
		{"walrus_restored_files_total", map[string]string{"interface": "fuse"}, 1},
		{"walrus_restored_bytes_total", map[string]string{"interface": "rsync"}, 1 << 20},
		{"walrus_commit_duration_seconds", map[string]string{"interface": "rsync"}, 2}, // new + identical
		{"walrus_rsync_connections_refused_total", map[string]string{"reason": "unknown_module"}, 1},
		{"walrus_rsync_connections_refused_total", map[string]string{"reason": "read_only"}, 1},
		{"walrus_files", nil, 3},
		{"walrus_logical_bytes", nil, 3 << 20},
		{"walrus_dir_segments", map[string]string{"dir": ""}, 3},
		{"walrus_gap_segments", map[string]string{"dir": ""}, 0},
		{"walrus_timeline_last_segment_end_lsn_bytes", map[string]string{"dir": "", "timeline": "00000001"}, 4 << 20},
	} {
		got, ok := value(f, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if v, _ := value(f, "walrus_rsync_connections_total", nil); v < 6 {
		t.Errorf("walrus_rsync_connections_total = %v, want at least the 6 rsync runs", v)
	}
	if v, _ := value(f, "walrus_rsync_connections_open", nil); v != 0 {
		t.Errorf("walrus_rsync_connections_open = %v after every client exited", v)
	}
	if v, ok := value(f, "walrus_free_bytes", nil); !ok || v <= 0 {
		t.Errorf("walrus_free_bytes = %v (present %v)", v, ok)
	}
	if _, ok := value(f, "walrus_last_archived_timestamp_seconds", map[string]string{"dir": ""}); !ok {
		t.Error("no walrus_last_archived_timestamp_seconds for the root")
	}
	for _, name := range []string{"walrus_landed_files", "walrus_landed_bytes", "walrus_landed_failing_files"} {
		if v, ok := value(f, name, nil); !ok || v < 0 {
			t.Errorf("%s = %v (present %v)", name, v, ok)
		}
	}

	// One JSON log line per transfer, refusals at WARN with the reason.
	if err := srv.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var pushes, refused, restores int
	for _, line := range strings.Split(srv.output(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch {
		case l["msg"] == "push" && l["interface"] == "rsync" && l["outcome"] == "archived":
			if l["peer"] != "127.0.0.1" || l["name"] != filepath.Base(p2) || l["bytes"] != float64(1<<20) || l["stored"].(float64) <= 0 {
				t.Errorf("push line: %v", l)
			}
			pushes++
		case l["msg"] == "push refused":
			if l["level"] != "WARN" || l["reason"] != "exists_different" || l["peer"] != "127.0.0.1" {
				t.Errorf("refusal line: %v", l)
			}
			refused++
		case l["msg"] == "restore" && l["interface"] == "rsync":
			restores++
		}
	}
	if pushes != 1 || refused != 1 || restores != 1 {
		t.Errorf("transfer log: %d rsync pushes, %d refusals, %d rsync restores; want 1 each:\n%s", pushes, refused, restores, srv.output())
	}
}
