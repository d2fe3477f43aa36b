package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

func TestCLIStatusRetainGC(t *testing.T) {
	data := newStore(t)
	for n := uint64(1); n <= 8; n++ {
		sg := walgen.Segment{TLI: 1, SegNo: n, SysID: 99, SegSize: 1 << 20, Seed: n, UsedPages: 32}
		if r := walrus(t, data, sg.Bytes(), "put", "c1/"+sg.Name()); r.code != 0 {
			t.Fatalf("put: %+v", r)
		}
	}
	stop := time.Now().UTC().Format("2006-01-02 15:04:05")
	backup := fmt.Sprintf("START WAL LOCATION: 0/500028 (file 000000010000000000000005)\nSTOP WAL LOCATION: 0/600100 (file 000000010000000000000006)\n"+
		"CHECKPOINT LOCATION: 0/500060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: %s UTC\nLABEL: nightly\n"+
		"START TIMELINE: 1\nSTOP TIME: %s UTC\nSTOP TIMELINE: 1\n", stop, stop)
	if r := walrus(t, data, []byte(backup), "put", "c1/000000010000000000000005.00000028.backup"); r.code != 0 {
		t.Fatalf("put backup: %+v", r)
	}
	r := walrus(t, data, nil, "status", "--json")
	var rep store.StatusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
		t.Fatalf("status --json: %+v %v", r, err)
	}
	if rep.Files != 9 || len(rep.Dirs) != 1 || len(rep.Dirs[0].Timelines) != 1 || len(rep.Dirs[0].Backups) != 1 ||
		!rep.Dirs[0].Backups[0].Restorable || rep.Dirs[0].Timelines[0].Segments != 8 || rep.Dirs[0].LastSegment != "000000010000000000000008" {
		t.Fatalf("status: %s", r.stdout)
	}
	if r := walrus(t, data, nil, "status"); r.code != 0 || !strings.Contains(r.stdout, "nightly") || !strings.Contains(r.stdout, "000000010000000000000008") {
		t.Fatalf("status: %+v", r)
	}
	r = walrus(t, data, nil, "retain", "c1", "--keep-backups", "1", "--dry-run")
	if r.code != 0 || strings.Count(r.stdout, "would remove 0000000100000000000000") != 4 {
		t.Fatalf("retain --dry-run: %+v", r)
	}
	if r := walrus(t, data, nil, "retain", "--keep-window", "2d"); r.code != 0 || !strings.Contains(r.stdout, "removed 4 files") {
		t.Fatalf("retain: %+v", r)
	}
	if r := walrus(t, data, nil, "retain"); r.code != exitError {
		t.Fatalf("retain without a policy: %+v", r)
	}
	if r := walrus(t, data, nil, "gc", "--threshold", "0.9"); r.code != 0 || !strings.Contains(r.stdout, "gc: ") {
		t.Fatalf("gc: %+v", r)
	}
	if r := walrus(t, data, nil, "verify"); r.code != 0 {
		t.Fatalf("verify after retention: %+v", r)
	}
	// A missing middle segment is a gap: verify exits 6 and names it.
	if r := walrus(t, data, nil, "rm", "c1/000000010000000000000006"); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	r = walrus(t, data, nil, "verify", "c1")
	if r.code != exitProblems || !strings.Contains(r.stdout, "segment 000000010000000000000006 is missing") {
		t.Fatalf("verify with a gap: %+v", r)
	}
}

func TestParseWindow(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "36h": 36 * time.Hour, "1.5d": 36 * time.Hour} {
		if got, err := parseWindow(in); err != nil || got != want {
			t.Errorf("parseWindow(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1d", "soon", "0h"} {
		if _, err := parseWindow(in); err == nil {
			t.Errorf("parseWindow(%q) accepted", in)
		}
	}
}

// walrus status shows the removals followed and the deletions held for
// other front-ends.
func TestStatusTextPeersHeldDeletes(t *testing.T) {
	rep := store.StatusReport{
		Bucket: &store.BucketStatus{Location: "s3:x/fe1/", Verified: true, PendingDeletePacks: 5, HeldForPeers: 3, HeldBy: []string{"b0b0"}},
		Peers:  []store.PeerStatus{{ID: "b0b0", Packs: "s3:x/fe2/", Marker: 7, Adopted: 4, Removed: 2}},
	}
	var w strings.Builder
	if err := printStatus(&w, rep); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"4 files adopted and 2 removed since start", "3 of them held until front-end b0b0 followed them"} {
		if !strings.Contains(w.String(), s) {
			t.Fatalf("walrus status does not say %q:\n%s", s, w.String())
		}
	}
	rep.Bucket.HeldBy, rep.Bucket.HeldUnlisted = nil, true
	w.Reset()
	if err := printStatus(&w, rep); err != nil {
		t.Fatal(err)
	}
	if s := "3 of them held until the other front-ends' registry is read"; !strings.Contains(w.String(), s) {
		t.Fatalf("walrus status does not say %q:\n%s", s, w.String())
	}
}
