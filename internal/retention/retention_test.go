package retention

import (
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/walrus-archive/walrus/internal/wal"
)

const seg16 = 16 << 20

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// backup makes a backup starting in segment segno that stopped daysAgo.
func backup(name string, segno uint64, daysAgo float64, restorable bool) Backup {
	return Backup{
		Name: name, Label: name, StartSeg: segno, StartLSN: wal.SegmentStart(segno, seg16) + 0x28,
		StopTime: now.Add(-time.Duration(daysAgo * float64(24*time.Hour))), Restorable: restorable,
	}
}

func names(tli uint32, from, to uint64) []string {
	var out []string
	for s := from; s <= to; s++ {
		out = append(out, wal.SegmentFileName(tli, s, seg16))
	}
	return out
}

func TestPlan(t *testing.T) {
	// Timeline 1 segments 1..20, promotion at segment 12 (12.partial on 1),
	// timeline 2 segments 12..30. Backups start in 2 (tl 1), 8 (tl 1),
	// 15 (tl 2) and 25 (tl 2).
	files := append(names(1, 1, 11), wal.SegmentFileName(1, 12, seg16)+".partial", "00000002.history", "notes.txt")
	files = append(files, names(2, 12, 30)...)
	files = append(files,
		"000000010000000000000002.00000028.backup", "000000010000000000000008.00000028.backup",
		"00000002000000000000000F.00000028.backup", "000000020000000000000019.00000028.backup")
	backups := []Backup{
		backup("000000010000000000000002.00000028.backup", 2, 30, true),
		backup("000000010000000000000008.00000028.backup", 8, 20, true),
		backup("00000002000000000000000F.00000028.backup", 15, 10, true),
		backup("000000020000000000000019.00000028.backup", 25, 1, true),
	}
	in := Input{Now: now, SegSize: seg16, Names: files, Backups: backups}
	tests := []struct {
		name       string
		policy     Policy
		backups    []Backup
		wantCutoff int64 // -1: nothing removed
		wantKept   []string
	}{
		{"newest 1", Policy{KeepBackups: 1}, backups, 25, []string{backups[3].Name}},
		{"newest 2", Policy{KeepBackups: 2}, backups, 15, []string{backups[3].Name, backups[2].Name}},
		{"newest 4 keeps all", Policy{KeepBackups: 4}, backups, 2, []string{backups[3].Name, backups[2].Name, backups[1].Name, backups[0].Name}},
		{"newest 9 keeps all", Policy{KeepBackups: 9}, backups, 2, []string{backups[3].Name, backups[2].Name, backups[1].Name, backups[0].Name}},
		// A 15-day window: the 10- and 1-day-old backups are inside, the
		// 20-day-old one is the base for recovery to the window's start.
		{"window 15d", Policy{KeepWindow: 15 * 24 * time.Hour}, backups, 8, []string{backups[3].Name, backups[2].Name, backups[1].Name}},
		{"window 12h", Policy{KeepWindow: 12 * time.Hour}, backups, 25, []string{backups[3].Name}},
		{"window 5d or newest 2", Policy{KeepBackups: 2, KeepWindow: 5 * 24 * time.Hour}, backups, 15, []string{backups[3].Name, backups[2].Name}},
		{"newest 1 or window 25d", Policy{KeepBackups: 1, KeepWindow: 25 * 24 * time.Hour}, backups, 2, []string{backups[3].Name, backups[2].Name, backups[1].Name, backups[0].Name}},
		{"broken newest does not count", Policy{KeepBackups: 1},
			[]Backup{backups[0], backups[1], backups[2], backup(backups[3].Name, 25, 1, false)}, 15, []string{backups[2].Name}},
		{"no restorable backup removes nothing", Policy{KeepBackups: 1},
			[]Backup{backup(backups[0].Name, 2, 30, false)}, -1, nil},
		{"no backup removes nothing", Policy{KeepWindow: time.Hour}, nil, -1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := in
			in.Backups = tc.backups
			d, err := Plan(tc.policy, in)
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, k := range d.Kept {
				kept = append(kept, k.Name)
			}
			if diff := cmp.Diff(tc.wantKept, kept); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			if tc.wantCutoff < 0 {
				if d.HasCutoff || len(d.Remove) > 0 || d.Note == "" {
					t.Fatalf("want nothing removed with a note, got %+v", d)
				}
				return
			}
			if !d.HasCutoff || d.Cutoff != uint64(tc.wantCutoff) {
				t.Fatalf("cutoff %d (%v), want %d", d.Cutoff, d.HasCutoff, tc.wantCutoff)
			}
			var removed []string
			for _, r := range d.Remove {
				removed = append(removed, r.Name)
				if r.Reason == "" {
					t.Errorf("%s: no reason", r.Name)
				}
			}
			if diff := cmp.Diff(expectRemoved(files, uint64(tc.wantCutoff)), removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
		})
	}
}

// expectRemoved is the rule stated independently: WAL segments, .partial
// and .backup files whose segment number is below the cutoff.
func expectRemoved(files []string, cutoff uint64) []string {
	var out []string
	for _, f := range files {
		n := wal.ParseName(f)
		if n.Kind != wal.KindSegment && n.Kind != wal.KindPartial && n.Kind != wal.KindBackup {
			continue
		}
		if s, _ := n.SegNo(seg16); s < cutoff {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

func TestPlanNeverRemovesHistoryOrOtherFiles(t *testing.T) {
	in := Input{Now: now, SegSize: seg16,
		Names:   []string{"00000001.history", "00000002.history", "README", "000000010000000000000001", "000000010000000000000009"},
		Backups: []Backup{backup("000000010000000000000009.00000028.backup", 9, 0, true)}}
	d, err := Plan(Policy{KeepBackups: 1}, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Remove) != 1 || d.Remove[0].Name != "000000010000000000000001" {
		t.Fatalf("removals %+v, want only segment 1", d.Remove)
	}
}

func TestPolicyValidate(t *testing.T) {
	if _, err := Plan(Policy{}, Input{}); !errors.Is(err, ErrNoPolicy) {
		t.Errorf("empty policy: %v", err)
	}
	if err := (Policy{KeepBackups: -1}).Validate(); err == nil {
		t.Error("negative count accepted")
	}
}
