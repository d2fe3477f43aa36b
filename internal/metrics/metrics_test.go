package metrics

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
	"github.com/walrus-archive/walrus/store/backend"
)

// The alert rules in contrib/prometheus pass promtool's checks and unit
// tests (an idle database does not fire the stall alert, a stuck archiver
// does), and every walrus_ metric they use is one this package exports.
func TestAlertRules(t *testing.T) {
	testenv.Require(t, testenv.Command("promtool"))
	const dir = "../../contrib/prometheus/"
	for _, args := range [][]string{{"check", "rules", dir + "walrus.rules.yml"}, {"test", "rules", dir + "walrus.rules.test.yml"}} {
		if out, err := exec.Command("promtool", args...).CombinedOutput(); err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}

	st, err := store.Open(store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := New("test")
	m.Watch(st)
	// One event of every kind, so that every family has a sample.
	m.Committed(store.CommitEvent{Origin: store.Origin{Interface: "rsync"}, Dir: "db1", Size: 1})
	m.Committed(store.CommitEvent{Origin: store.Origin{Interface: "rsync"}, Dir: "db1", Existed: true})
	m.Committed(store.CommitEvent{Origin: store.Origin{Interface: "rsync"}, Dir: "db1", Err: store.ErrExists})
	m.Restored(store.ReadEvent{Origin: store.Origin{Interface: "fuse"}, Dir: "db1", Bytes: 1, Duration: time.Millisecond})
	m.ConnOpened()
	m.ConnRefused("auth_failed")
	m.Maintained("gc", 1, time.Second, nil)
	have := families(t, m)
	for n := range groupMetrics(t) {
		have[n] = true
	}
	rules, err := os.ReadFile(dir + "walrus.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`walrus_[a-z_]+`).FindAll(rules, -1) {
		n := string(bytes.TrimSuffix(name, []byte("_"))) // a regexp match never ends in "_" for real names
		if !have[n] && !have[n+"_total"] {
			// State gauges need a directory with WAL: checked below.
			if !stateOnly[n] {
				t.Errorf("rules use %s, which walrus does not export", n)
			}
		}
	}
	// The state gauges of a directory appear once it holds a segment.
	g := walgen.Segment{TLI: 1, SegNo: 1, SysID: 5, SegSize: 1 << 20}
	u, err := st.Create("db1/"+g.Name(), store.FileMeta{Mode: 0o600, MTime: time.Now(), Origin: store.Origin{Interface: "cli"}})
	if err != nil {
		t.Fatal(err)
	}
	u.Write(g.Bytes())
	if _, err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	for n := range families(t, m) {
		have[n] = true
	}
	for n := range stateOnly {
		if !have[n] && n != "walrus_newest_backup_restorable" && n != "walrus_newest_restorable_backup_timestamp_seconds" {
			t.Errorf("state metric %s missing for a directory with WAL", n)
		}
	}
}

// Gauges that exist only for directories (and, for the backup ones,
// directories with a base backup).
var stateOnly = map[string]bool{
	"walrus_gap_segments": true, "walrus_newest_backup_restorable": true,
	"walrus_newest_restorable_backup_timestamp_seconds": true,
}

// groupMetrics returns the metric families of a front-end of a group of
// two (claims, packs prefixes and registry in local directories), once
// it follows the other: the lease and peer families exist only there.
func groupMetrics(t *testing.T) map[string]bool {
	t.Helper()
	root := t.TempDir()
	open := func(prefix string) (backend.Backend, error) { return backend.NewLocal(filepath.Join(root, prefix)) }
	var stores []*store.Store
	for _, prefix := range []string{"fe1", "fe2"} {
		remote, err := open(prefix)
		if err != nil {
			t.Fatal(err)
		}
		claims, err := open("archive")
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(store.Config{Dir: t.TempDir(), Remote: remote, RemotePrefix: prefix, Claims: claims, OpenPrefix: open,
			PeerInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores = append(stores, st)
	}
	testenv.WaitFor(t, "the second front-end to see the first", 30*time.Second, func() bool {
		s, err := stores[1].Status()
		return err == nil && len(s.Peers) == 1 && s.Lease != nil
	})
	m := New("test")
	m.Watch(stores[1])
	return families(t, m)
}

// families returns the names of the metric families m exports now.
func families(t *testing.T, m *Metrics) map[string]bool {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range fams {
		have[f.GetName()] = true
	}
	return have
}
