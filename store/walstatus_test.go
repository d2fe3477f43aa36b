package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/walrus-archive/walrus/internal/retention"
	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/internal/walgen"
)

const mib = 1 << 20

// smallSeg is a 1 MiB synthetic segment with a few used pages: cheap
// enough to archive dozens under the race detector.
func smallSeg(tli uint32, segno uint64) walgen.Segment {
	return walgen.Segment{TLI: tli, SegNo: segno, SysID: testSysID, SegSize: mib, Seed: uint64(tli), UsedPages: 4}
}

// backupText is a backup history file in PostgreSQL's format
// (postgres: xlogbackup.c build_backup_content) for a backup on timeline tli
// from segment start (offset 0x28) to segment stop (offset 0x100).
func backupText(tli uint32, start, stop uint64, label string, stopTime time.Time) (name, text string) {
	startSeg := wal.SegmentFileName(tli, start, mib)
	stopSeg := wal.SegmentFileName(tli, stop, mib)
	startLSN := wal.SegmentStart(start, mib) + 0x28
	stopLSN := wal.SegmentStart(stop, mib) + 0x100
	st := stopTime.UTC()
	text = fmt.Sprintf("START WAL LOCATION: %s (file %s)\nSTOP WAL LOCATION: %s (file %s)\nCHECKPOINT LOCATION: %s\n"+
		"BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: %s UTC\nLABEL: %s\nSTART TIMELINE: %d\nSTOP TIME: %s UTC\nSTOP TIMELINE: %d\n",
		startLSN, startSeg, stopLSN, stopSeg, startLSN+0x38, st.Add(-time.Second).Format("2006-01-02 15:04:05"), label, tli,
		st.Format("2006-01-02 15:04:05"), tli)
	return fmt.Sprintf("%s.%08X.backup", startSeg, 0x28), text
}

// historyText is the history file of a timeline that branched off parent
// at switchLSN (postgres: timeline.c writeTimeLineHistory).
func historyText(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// archiveLayout puts a two-timeline cluster into dir c1: timeline 1
// segments first..9 and 10.partial, a promotion inside segment 10 (switch
// LSN 0/A00100), timeline 2 segments 10..last, and timeline 1 segments 10
// to 12, archived by the old primary, which went on after the switch.
func archiveLayout(t *testing.T, s *Store, first, last uint64) {
	t.Helper()
	for n := first; n <= 12; n++ {
		putSeg(t, s, smallSeg(1, n), "")
	}
	putSeg(t, s, smallSeg(1, 10), ".partial")
	mustPut(t, s, "c1/00000002.history", []byte(historyText("1\t0/A00100\tno recovery target specified")))
	for n := uint64(10); n <= last; n++ {
		putSeg(t, s, smallSeg(2, n), "")
	}
}

func putSeg(t *testing.T, s *Store, sg walgen.Segment, suffix string) {
	t.Helper()
	mustPut(t, s, "c1/"+sg.Name()+suffix, sg.Bytes())
}

func putBackup(t *testing.T, s *Store, tli uint32, start, stop uint64, label string, stopTime time.Time) string {
	t.Helper()
	name, text := backupText(tli, start, stop, label, stopTime)
	mustPut(t, s, "c1/"+name, []byte(text))
	return name
}

func TestStatusGapsAcrossTimelineSwitch(t *testing.T) {
	s := openTest(t, t.TempDir())
	archiveLayout(t, s, 1, 15)
	now := time.Now()
	good := putBackup(t, s, 1, 2, 3, "good", now.Add(-time.Hour))
	broken := putBackup(t, s, 1, 4, 6, "broken", now.Add(-time.Hour))
	onTL2 := putBackup(t, s, 2, 9, 11, "spans the switch", now)
	for _, n := range []string{wal.SegmentFileName(1, 5, mib), wal.SegmentFileName(2, 13, mib), wal.SegmentFileName(2, 14, mib)} {
		if err := s.Remove("c1/" + n); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.DirStatus("c1", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Timelines) != 2 {
		t.Fatalf("timelines %+v", ds.Timelines)
	}
	t1, t2 := ds.Timelines[0], ds.Timelines[1]
	// Timeline 2 reads segments up to 9 from timeline 1 and its own from 10
	// on; timeline 1's own stream goes on to 12. Only segment 5 is missing
	// on timeline 1 (the .partial is never required).
	wantT1 := []Gap{{From: "000000010000000000000005", To: "000000010000000000000005", Count: 1}}
	wantT2 := []Gap{{From: "00000002000000000000000D", To: "00000002000000000000000E", Count: 2}}
	if d := cmp.Diff(wantT1, t1.Gaps); d != "" {
		t.Errorf("timeline 1 gaps (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantT2, t2.Gaps); d != "" {
		t.Errorf("timeline 2 gaps (-want +got):\n%s", d)
	}
	if t1.First != "000000010000000000000001" || t1.Last != "00000001000000000000000C" || t1.EndLSN != "0/00A00100" ||
		len(t1.Partial) != 1 || t2.Parent != 1 || t2.BeginLSN != "0/00A00100" || !t2.History || t2.First != "00000002000000000000000A" {
		t.Errorf("timelines: %+v", ds.Timelines)
	}
	if ds.LastSegment != "00000002000000000000000F" || ds.LastArchived == nil || ds.LastAge < 0 || ds.LastAge > 60 {
		t.Errorf("last segment %q archived %v age %v", ds.LastSegment, ds.LastArchived, ds.LastAge)
	}
	restorable := map[string]bool{}
	for _, b := range ds.Backups {
		restorable[b.Name] = b.Restorable
	}
	// The backup on timeline 2 from segment 9 to 11 reads 9 from timeline 1
	// and 10, 11 from timeline 2.
	if d := cmp.Diff(map[string]bool{good: true, broken: false, onTL2: true}, restorable); d != "" {
		t.Errorf("restorable (-want +got):\n%s", d)
	}
	if len(ds.Problems) != 2 {
		t.Errorf("problems: %q", ds.Problems)
	}
	rep, err := s.Verify(context.Background(), "c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var cont []string
	for _, p := range rep.Problems {
		if p.Kind != ProblemContinuity {
			t.Errorf("data problem: %+v", p)
		}
		cont = append(cont, p.Err)
	}
	if len(cont) != 2 || !strings.Contains(cont[0], "000000010000000000000005") || !strings.Contains(cont[1], "2 segments") {
		t.Errorf("verify continuity: %q", cont)
	}
}

func TestStatusReportsTimelineProblems(t *testing.T) {
	s := openTest(t, t.TempDir())
	putSeg(t, s, smallSeg(1, 1), "")
	putSeg(t, s, smallSeg(3, 2), "") // timeline 3 without its history file
	ds, err := s.DirStatus("c1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Problems) != 1 || !strings.Contains(ds.Problems[0], "no 00000003.history") {
		t.Fatalf("problems %q", ds.Problems)
	}
}

func names(t *testing.T, s *Store, dir string) []string {
	t.Helper()
	var out []string
	if err := s.Names(dir, func(n string) error { out = append(out, n); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRetentionKeepsExactlyWhatBackupsNeed(t *testing.T) {
	for _, tc := range []struct {
		keep   int
		cutoff uint64 // first segment number kept
	}{{1, 11}, {2, 7}, {3, 2}, {5, 2}} {
		t.Run(fmt.Sprint("keep", tc.keep), func(t *testing.T) {
			s := openTest(t, t.TempDir())
			archiveLayout(t, s, 1, 15)
			now := time.Now()
			backups := []string{
				putBackup(t, s, 1, 2, 3, "b1", now.Add(-72*time.Hour)),
				putBackup(t, s, 1, 7, 8, "b2", now.Add(-48*time.Hour)),
				putBackup(t, s, 2, 11, 12, "b3", now.Add(-24*time.Hour)),
			}
			mustPut(t, s, "c1/notes.txt", []byte("not WAL: never removed"))
			before := names(t, s, "c1")
			// A dry run removes nothing but says what it would.
			dry, err := s.Retain(context.Background(), "c1", retention.Policy{KeepBackups: tc.keep}, now, true)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(before, names(t, s, "c1")); d != "" {
				t.Fatalf("dry run removed files:\n%s", d)
			}
			reps, err := s.Retain(context.Background(), "c1", retention.Policy{KeepBackups: tc.keep}, now, false)
			if err != nil {
				t.Fatal(err)
			}
			var want, wantRemoved []string
			for _, n := range before {
				pn := wal.ParseName(n)
				segno, err := pn.SegNo(mib)
				if err == nil && segno < tc.cutoff { // segments, .partial and .backup below the cutoff
					wantRemoved = append(wantRemoved, n)
					continue
				}
				want = append(want, n)
			}
			if d := cmp.Diff(want, names(t, s, "c1")); d != "" {
				t.Errorf("files left (-want +got):\n%s", d)
			}
			var removed, dryRemoved []string
			for _, r := range reps[0].Removed {
				removed = append(removed, r.Name)
			}
			for _, r := range dry[0].Removed {
				dryRemoved = append(dryRemoved, r.Name)
			}
			sort.Strings(wantRemoved)
			if d := cmp.Diff(wantRemoved, removed); d != "" {
				t.Errorf("reported removals (-want +got):\n%s", d)
			}
			if d := cmp.Diff(removed, dryRemoved); d != "" {
				t.Errorf("dry run differs from the real run:\n%s", d)
			}
			if len(reps[0].Kept) != min(tc.keep, len(backups)) {
				t.Errorf("kept %+v", reps[0].Kept)
			}
			// Everything kept is still restorable and continuous.
			ds, err := s.DirStatus("c1", now)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds.Problems) != 0 {
				t.Errorf("problems after retention: %q", ds.Problems)
			}
			for _, b := range ds.Backups {
				if !b.Restorable {
					t.Errorf("kept backup %s not restorable: missing %v", b.Name, b.Missing)
				}
			}
		})
	}
}

// TestBranchedHistoryStatusAndRetention archives issue 9's shape, with the
// forks segments apart: timeline 1 goes on to segment 12, timeline 2
// branches off it in segment 9, and timeline 3, a recovery along timeline
// 2's history to a restore point, in segment 5 ("1 0/900100; 2 0/500100").
// Timeline 3's segment 7 is missing, so its backup from 6 to 7 cannot be
// restored although timeline 1's segment 7 is there: retention must keep
// the older backup that can.
func TestBranchedHistoryStatusAndRetention(t *testing.T) {
	s := openTest(t, t.TempDir())
	for n := uint64(1); n <= 12; n++ {
		putSeg(t, s, smallSeg(1, n), "")
	}
	mustPut(t, s, "c1/00000002.history", []byte(historyText("1\t0/900100\tno recovery target specified")))
	for n := uint64(9); n <= 12; n++ {
		putSeg(t, s, smallSeg(2, n), "")
	}
	mustPut(t, s, "c1/00000003.history", []byte(historyText("1\t0/900100\tno recovery target specified", "", "2\t0/500100\tat restore point \"rp\"")))
	for _, n := range []uint64{5, 6, 8} {
		putSeg(t, s, smallSeg(3, n), "")
	}
	now := time.Now()
	old := putBackup(t, s, 1, 2, 3, "old", now.Add(-time.Hour))
	broken := putBackup(t, s, 3, 6, 7, "on timeline 3", now)

	ds, err := s.DirStatus("c1", now)
	if err != nil {
		t.Fatal(err)
	}
	type tl struct {
		TLI, Parent     uint32
		Begin, End, Gap string
	}
	var got []tl
	for _, x := range ds.Timelines {
		g := tl{TLI: x.TLI, Parent: x.Parent, Begin: x.BeginLSN, End: x.EndLSN}
		for _, gap := range x.Gaps {
			g.Gap += gap.String()
		}
		got = append(got, g)
	}
	want := []tl{
		{TLI: 1, End: "0/00500100"},
		{TLI: 2, Parent: 1, Begin: "0/00900100"},
		{TLI: 3, Parent: 1, Begin: "0/00500100", Gap: "segment 000000030000000000000007 is missing"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("timelines (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"timeline 3: segment 000000030000000000000007 is missing"}, ds.Problems); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
	for _, b := range ds.Backups {
		if b.Name == broken && (b.Restorable || !slices.Equal(b.Missing, []string{"000000030000000000000007"})) ||
			b.Name == old && !b.Restorable {
			t.Errorf("backup %+v", b)
		}
	}

	reps, err := s.Retain(context.Background(), "c1", retention.Policy{KeepBackups: 1}, now, false)
	if err != nil {
		t.Fatal(err)
	}
	if r := reps[0]; len(r.Kept) != 1 || r.Kept[0].Name != old || r.Cutoff != "0000000000000002" ||
		len(r.Removed) != 1 || r.Removed[0].Name != "000000010000000000000001" {
		t.Errorf("retention kept %+v, cutoff %s, removed %+v", r.Kept, r.Cutoff, r.Removed)
	}
}

// A history file PostgreSQL's recovery would refuse to read (naming its
// own or a later timeline) is refused at upload; the branched history of a
// second PITR (switch points that do not increase) is accepted.
func TestHistoryUploadFollowsTimelineC(t *testing.T) {
	s := openTest(t, t.TempDir())
	bad := map[string]string{
		"00000002.history": historyText("2\t0/900100\tself"),
		"00000003.history": historyText("1\t0/900100\tx", "4\t0/A00000\tlater"),
	}
	for name, text := range bad {
		if _, err := put(t, s, name, []byte(text)); !errors.Is(err, ErrInvalidWAL) {
			t.Errorf("%s: %v, want ErrInvalidWAL", name, err)
		}
	}
	mustPut(t, s, "00000003.history", []byte(historyText("1\t0/3018CB0\tno recovery target specified", "", "2\t0/3018C48\tat restore point \"rp\"")))
}
