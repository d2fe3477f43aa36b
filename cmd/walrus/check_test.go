package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

// putSegments archives segments first..last of timeline 1 into dir.
func putSegments(t *testing.T, data, dir string, first, last uint64) {
	t.Helper()
	for n := first; n <= last; n++ {
		sg := walgen.Segment{TLI: 1, SegNo: n, SysID: 99, SegSize: 1 << 20, Seed: n, UsedPages: 8}
		if r := walrus(t, data, sg.Bytes(), "put", dir+"/"+sg.Name()); r.code != 0 {
			t.Fatalf("put: %+v", r)
		}
	}
}

// putBackup archives the .backup file of a base backup from segment start
// to segment stop of timeline 1.
func putBackup(t *testing.T, data, dir string, start, stop uint64, stopTime time.Time) string {
	t.Helper()
	at := stopTime.UTC().Format("2006-01-02 15:04:05")
	body := fmt.Sprintf("START WAL LOCATION: 0/%X00028 (file 0000000100000000000000%02X)\nSTOP WAL LOCATION: 0/%X00100 (file 0000000100000000000000%02X)\n"+
		"CHECKPOINT LOCATION: 0/%X00060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: %s UTC\nLABEL: b%d\n"+
		"START TIMELINE: 1\nSTOP TIME: %s UTC\nSTOP TIMELINE: 1\n", start, start, stop, stop, start, at, start, at)
	name := fmt.Sprintf("0000000100000000000000%02X.00000028.backup", start)
	if r := walrus(t, data, []byte(body), "put", dir+"/"+name); r.code != 0 {
		t.Fatalf("put backup: %+v", r)
	}
	return name
}

func TestCLIStatusCheck(t *testing.T) {
	data := newStore(t)
	putSegments(t, data, "c1", 1, 8)
	putBackup(t, data, "c1", 5, 6, time.Now())
	for _, args := range [][]string{{"status", "--check"}, {"status", "--check", "--max-age", "1h"}, {"status", "c1", "--check"}} {
		if r := walrus(t, data, nil, args...); r.code != 0 || !strings.HasPrefix(r.stdout, "OK: 1 directories, no gaps") || strings.Count(r.stdout, "\n") != 1 {
			t.Fatalf("%s of a healthy archive: %+v", strings.Join(args, " "), r)
		}
	}
	// Stale: every segment is older than a nanosecond.
	r := walrus(t, data, nil, "status", "--check", "--max-age", "1ns")
	if r.code != exitUnhealthy || !strings.HasPrefix(r.stdout, "CRITICAL: /c1: last segment 000000010000000000000008 archived ") ||
		!strings.HasSuffix(r.stdout, " ago, more than --max-age 1ns\n") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("status --check --max-age 1ns: %+v, want exit %d and one CRITICAL line", r, exitUnhealthy)
	}
	// A gap, and a newest backup whose WAL is not (yet) archived.
	if r := walrus(t, data, nil, "rm", "c1/000000010000000000000003"); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	putSegments(t, data, "c2", 1, 4)
	putBackup(t, data, "c2", 2, 3, time.Now().Add(-time.Hour))
	newest := putBackup(t, data, "c2", 5, 6, time.Now())
	r = walrus(t, data, nil, "status", "--check")
	want := "CRITICAL: /c1: timeline 1: segment 000000010000000000000003 is missing\n" +
		"CRITICAL: /c2: newest base backup " + newest + " (b5) is not restorable: missing 000000010000000000000005 000000010000000000000006\n"
	if r.code != exitUnhealthy || r.stdout != want || !strings.Contains(r.stderr, "status --check found problems: 2") {
		t.Fatalf("status --check: %+v\nwant exit %d and stdout\n%s", r, exitUnhealthy, want)
	}
	if r := walrus(t, data, nil, "status", "c2", "--check"); r.code != exitUnhealthy || strings.Contains(r.stdout, "/c1") {
		t.Fatalf("status c2 --check: %+v", r)
	}
	if r := walrus(t, data, nil, "status", "--check", "--json"); r.code != exitError {
		t.Fatalf("--check with --json: %+v", r)
	}
	if r := walrus(t, data, nil, "status", "--max-age", "1h"); r.code != exitError || !strings.Contains(r.stderr, "--max-age needs --check") {
		t.Fatalf("--max-age without --check: %+v", r)
	}
}

func TestHealthProblems(t *testing.T) {
	ago := func(d time.Duration) *time.Time { at := time.Now().Add(-d); return &at }
	old, recent := time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	dir := func(age time.Duration, backups ...store.BackupStatus) store.DirStatus {
		return store.DirStatus{Name: "db", LastSegment: "000000010000000000000009", LastArchived: ago(age), LastAge: age.Seconds(), Backups: backups}
	}
	for _, c := range []struct {
		name   string
		rep    store.StatusReport
		maxAge time.Duration
		want   []string
	}{
		{"idle, no --max-age", store.StatusReport{Dirs: []store.DirStatus{dir(30 * 24 * time.Hour)}}, 0, nil},
		{"fresh", store.StatusReport{Dirs: []store.DirStatus{dir(time.Minute)}}, time.Hour, nil},
		{"stale", store.StatusReport{Dirs: []store.DirStatus{dir(2 * time.Hour)}}, time.Hour,
			[]string{"/db: last segment 000000010000000000000009 archived 2h0m0s ago, more than --max-age 1h0m0s"}},
		{"nothing archived", store.StatusReport{Dirs: []store.DirStatus{{Name: "db"}}}, time.Hour,
			[]string{"no WAL segment archived (--max-age 1h0m0s)"}},
		{"older backup unrestorable, newest fine", store.StatusReport{Dirs: []store.DirStatus{dir(time.Minute,
			store.BackupStatus{Name: "new", StopTime: recent, Restorable: true},
			store.BackupStatus{Name: "old", StopTime: old, Missing: []string{"X"}})}}, 0, nil},
		{"newest backup unrestorable", store.StatusReport{Dirs: []store.DirStatus{dir(time.Minute,
			store.BackupStatus{Name: "new", Label: "l", StopTime: recent, Missing: []string{"A", "B"}},
			store.BackupStatus{Name: "old", StopTime: old, Restorable: true})}}, 0,
			[]string{"/db: newest base backup new (l) is not restorable: missing A B"}},
		{"continuity problems", store.StatusReport{Dirs: []store.DirStatus{{Name: "", Problems: []string{"timeline 1: segment S is missing"}}}}, 0,
			[]string{"/: timeline 1: segment S is missing"}},
	} {
		if got := healthProblems(c.rep, c.maxAge); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// The same checks through a running server's control socket.
func TestServeStatusCheckThroughSocket(t *testing.T) {
	home := t.TempDir()
	data := filepath.Join(home, "data")
	conf := filepath.Join(home, "rsyncd.conf")
	if err := os.WriteFile(conf, []byte("[wal]\npath = /db/pg_archived\nread only = false\nhosts allow = 127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startServe(t, "--data", data, "--rsyncd-conf", conf, "--rsync-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t))) // serve creates the store
	if r := walrus(t, data, nil, "init"); r.code != 0 || !strings.Contains(r.stdout, "a walrus serve is running on it") {
		t.Fatalf("init while serve runs: %+v", r)
	}
	putSegments(t, data, "c1", 1, 4)
	if r := walrus(t, data, nil, "status", "--check", "--max-age", "1h"); r.code != 0 || !strings.HasPrefix(r.stdout, "OK: 1 directories") {
		t.Fatalf("status --check through the socket: %+v", r)
	}
	if r := walrus(t, data, nil, "rm", "c1/000000010000000000000002"); r.code != 0 {
		t.Fatalf("rm through the socket: %+v", r)
	}
	r := walrus(t, data, nil, "status", "--check")
	if r.code != exitUnhealthy || r.stdout != "CRITICAL: /c1: timeline 1: segment 000000010000000000000002 is missing\n" {
		t.Fatalf("status --check with a gap through the socket: %+v", r)
	}
	wrong := filepath.Join(home, "dat") // a typo beside a live store
	if r := walrus(t, wrong, nil, "get", "c1/000000010000000000000001", "-"); r.code != exitNoStore {
		t.Fatalf("get from a wrong --data while serve runs: %+v", r)
	}
	if _, err := os.Stat(wrong); !os.IsNotExist(err) {
		t.Fatalf("get created %s", wrong)
	}
}
