package timeline

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/walrus-archive/walrus/internal/wal"
)

const seg16 = 16 << 20

// The history files of the issue 9 scenario: timeline 2 is a recovery to
// the end of timeline 1's archive, timeline 3 a second recovery of the same
// backup, along timeline 2's history, to a restore point before timeline
// 2's switch point.
const (
	hist2 = "1\t0/3018CB0\tno recovery target specified\n"
	hist3 = hist2 + "\n2\t0/3018C48\tat restore point \"rp\"\n"
)

// segs lists segments "TLI:FROM-TO" (hex segment numbers, 16 MiB), or
// "TLI:N" for one, with a "p" suffix for .partial files.
func segs(specs ...string) []string {
	var out []string
	for _, s := range specs {
		tliText, rng, _ := strings.Cut(s, ":")
		partial := strings.HasSuffix(rng, "p")
		rng = strings.TrimSuffix(rng, "p")
		fromText, toText, ok := strings.Cut(rng, "-")
		if !ok {
			toText = fromText
		}
		var tli uint32
		var from, to uint64
		fmt.Sscanf(tliText, "%d", &tli)
		fmt.Sscanf(fromText, "%x", &from)
		fmt.Sscanf(toText, "%x", &to)
		for n := from; n <= to; n++ {
			name := wal.SegmentFileName(tli, n, seg16)
			if partial {
				name += ".partial"
			}
			out = append(out, name)
		}
	}
	return out
}

// backup is a .backup file on timeline tli from segment start to stop.
type backup struct {
	tli         uint32
	start, stop uint64
}

func (b backup) name() string {
	return fmt.Sprintf("%s.00000028.backup", wal.SegmentFileName(b.tli, b.start, seg16))
}

func (b backup) label() wal.BackupLabel {
	return wal.BackupLabel{
		StartLSN: wal.SegmentStart(b.start, seg16) + 0x28, StopLSN: wal.SegmentStart(b.stop, seg16) + 0x100,
		StartSegment: wal.SegmentFileName(b.tli, b.start, seg16), StopSegment: wal.SegmentFileName(b.tli, b.stop, seg16),
		Label: "b", StartTLI: b.tli, StopTLI: b.tli, StopTime: time.Unix(1e9, 0),
	}
}

func build(t *testing.T, names []string, histories map[uint32]string, backups []backup) *Archive {
	t.Helper()
	a := New(seg16)
	for _, n := range names {
		a.AddName(n)
	}
	for tli, text := range histories {
		h, err := wal.ParseHistory([]byte(text))
		if err != nil {
			t.Fatalf("history of %d: %v", tli, err)
		}
		a.AddHistory(tli, h)
	}
	for _, b := range backups {
		a.AddBackup(b.name(), b.label())
	}
	return a
}

// tl is the part of a Timeline the table compares.
type tl struct {
	Parent     uint32
	Begin, End string
	Gaps       []string // "FROM..TO"
}

func without(names []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(drop, n) })
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name      string
		segs      []string
		histories map[uint32]string
		backups   []backup
		timelines map[uint32]tl
		missing   map[string][]string // backup -> missing files; absent: restorable
		problems  []string
	}{{
		name: "promotion: the parent ends in a .partial, never required",
		segs: segs("1:1-2", "1:3p", "2:3-5"), histories: map[uint32]string{2: hist2},
		backups: []backup{{1, 1, 2}, {2, 2, 4}},
		timelines: map[uint32]tl{
			1: {End: "0/03018CB0"},
			2: {Parent: 1, Begin: "0/03018CB0"},
		},
	}, {
		// Issue 9: 00000003.history's switch points decrease. Timeline 3's
		// WAL is timeline 1's up to 0/3018C48 and its own after; timeline 2
		// contributes nothing to it, and timeline 1 goes on past both forks.
		name: "issue 9: a sibling forks before the newest timeline's switch point",
		segs: segs("1:1-6", "2:3-5", "3:3-4"), histories: map[uint32]string{2: hist2, 3: hist3},
		backups: []backup{{1, 1, 2}, {3, 2, 3}, {3, 3, 4}},
		timelines: map[uint32]tl{
			1: {End: "0/03018C48"},
			2: {Parent: 1, Begin: "0/03018CB0"},
			3: {Parent: 1, Begin: "0/03018C48"},
		},
	}, {
		name: "issue 9: timeline 3's first segment is its own, not timeline 2's or timeline 1's",
		segs: without(segs("1:1-6", "2:3-5", "3:3-4"), "000000030000000000000003"), histories: map[uint32]string{2: hist2, 3: hist3},
		backups: []backup{{3, 2, 3}},
		timelines: map[uint32]tl{
			1: {End: "0/03018C48"},
			2: {Parent: 1, Begin: "0/03018CB0"},
			3: {Parent: 1, Begin: "0/03018C48", Gaps: []string{"000000030000000000000003..000000030000000000000003"}},
		},
		missing:  map[string][]string{backup{3, 2, 3}.name(): {"000000030000000000000003"}},
		problems: []string{"timeline 3: segment 000000030000000000000003 is missing"},
	}, {
		// Timeline 3 forks off timeline 1 in segment 3, two segments before
		// timeline 2 does: segments 3 and 4 of its stream are its own.
		name: "the sibling's fork lies segments earlier",
		segs: without(segs("1:1-8", "2:5-7", "3:3-6"), "000000030000000000000004"),
		histories: map[uint32]string{
			2: "1\t0/5000100\tno recovery target specified\n",
			3: "1\t0/5000100\tno recovery target specified\n\n2\t0/3000500\tat restore point \"rp\"\n",
		},
		backups: []backup{{3, 3, 4}, {2, 4, 6}},
		timelines: map[uint32]tl{
			1: {End: "0/03000500"},
			2: {Parent: 1, Begin: "0/05000100"},
			3: {Parent: 1, Begin: "0/03000500", Gaps: []string{"000000030000000000000004..000000030000000000000004"}},
		},
		missing:  map[string][]string{backup{3, 3, 4}.name(): {"000000030000000000000004"}},
		problems: []string{"timeline 3: segment 000000030000000000000004 is missing"},
	}, {
		// Switch points fall, then rise: 1 → 2 at 5, 2 → 3 at 3 (timeline 2
		// contributes nothing), 3 → 4 at 4. Timeline 4 reads 1..2 from 1,
		// 3 from 3, 4.. from 4.
		name: "switch points fall and rise",
		segs: segs("1:1-6", "2:5-6", "3:3-4", "4:4-6"),
		histories: map[uint32]string{
			2: "1\t0/5000010\tx\n",
			3: "1\t0/5000010\tx\n2\t0/3000010\ty\n",
			4: "1\t0/5000010\tx\n2\t0/3000010\ty\n3\t0/4000010\tz\n",
		},
		backups: []backup{{4, 2, 5}},
		timelines: map[uint32]tl{
			1: {End: "0/03000010"},
			2: {Parent: 1, Begin: "0/05000010"},
			3: {Parent: 1, Begin: "0/03000010", End: "0/04000010"},
			4: {Parent: 3, Begin: "0/04000010"},
		},
	}, {
		// Timeline 1 goes on past the fork (the original primary of a PITR):
		// its own stream counts, so a hole after the fork is a gap.
		name: "a parent's own stream after a child's fork",
		segs: without(segs("1:1-9", "2:3-5"), "000000010000000000000007"), histories: map[uint32]string{2: hist2},
		timelines: map[uint32]tl{
			1: {End: "0/03018CB0", Gaps: []string{"000000010000000000000007..000000010000000000000007"}},
			2: {Parent: 1, Begin: "0/03018CB0"},
		},
		problems: []string{"timeline 1: segment 000000010000000000000007 is missing"},
	}, {
		// Timeline 2 is named by timeline 3's history but provides none of
		// its WAL: timeline 2's own stream is still checked.
		name: "a timeline that only a sibling's history names",
		segs: without(segs("1:1-6", "2:3-8", "3:3-4"), "000000020000000000000005"), histories: map[uint32]string{2: hist2, 3: hist3},
		timelines: map[uint32]tl{
			1: {End: "0/03018C48"},
			2: {Parent: 1, Begin: "0/03018CB0", Gaps: []string{"000000020000000000000005..000000020000000000000005"}},
			3: {Parent: 1, Begin: "0/03018C48"},
		},
		problems: []string{"timeline 2: segment 000000020000000000000005 is missing"},
	}, {
		// Missing segments 5..8 of timeline 1: timeline 2 (forked in 7)
		// needs 5..6, timeline 1 all four: one gap.
		name:      "gaps found along several streams merge",
		segs:      without(segs("1:1-9", "2:7-9"), segs("1:5-8")...),
		histories: map[uint32]string{2: "1\t0/7000100\tx\n"},
		timelines: map[uint32]tl{
			1: {End: "0/07000100", Gaps: []string{"000000010000000000000005..000000010000000000000008"}},
			2: {Parent: 1, Begin: "0/07000100"},
		},
		problems: []string{"timeline 1: 4 segments 000000010000000000000005..000000010000000000000008 are missing"},
	}, {
		name: "a gap across a switch is split by timeline",
		segs: segs("1:1-3", "2:7-8"), histories: map[uint32]string{2: "1\t0/5000100\tx\n"},
		timelines: map[uint32]tl{
			1: {End: "0/05000100", Gaps: []string{"000000010000000000000004..000000010000000000000004"}},
			2: {Parent: 1, Begin: "0/05000100", Gaps: []string{"000000020000000000000005..000000020000000000000006"}},
		},
		problems: []string{"timeline 1: segment 000000010000000000000004 is missing",
			"timeline 2: 2 segments 000000020000000000000005..000000020000000000000006 are missing"},
	}, {
		// A recovery that ends just after pg_switch_wal begins the new
		// timeline on a segment boundary: segment A is timeline 1's.
		name: "switch point on a segment boundary",
		segs: segs("1:1-A", "2:B-C"), histories: map[uint32]string{2: "1\t0/B000000\tno recovery target specified\n"},
		backups: []backup{{2, 0xA, 0xB}},
		timelines: map[uint32]tl{
			1: {End: "0/0B000000"},
			2: {Parent: 1, Begin: "0/0B000000"},
		},
	}, {
		name: "a child's history that contradicts its parent's file",
		segs: segs("1:1-6", "2:3-5", "3:3-4"), histories: map[uint32]string{2: "1\t0/2000000\tx\n", 3: hist3},
		timelines: map[uint32]tl{
			1: {End: "0/02000000"},
			2: {Parent: 1, Begin: "0/02000000", Gaps: []string{"000000020000000000000002..000000020000000000000002"}},
			3: {Parent: 1, Begin: "0/03018C48"},
		},
		problems: []string{"timeline 2: segment 000000020000000000000002 is missing",
			"timeline 3: 00000003.history does not continue 00000002.history: it was made from another history of timeline 2"},
	}, {
		name: "segments without their history file; a backup on that timeline",
		segs: segs("1:1-2", "3:3-4"), backups: []backup{{3, 3, 4}},
		timelines: map[uint32]tl{1: {}, 3: {}},
		missing:   map[string][]string{backup{3, 3, 4}.name(): {"00000003.history"}},
		problems:  []string{"timeline 3 has segments but no 00000003.history"},
	}, {
		name: "segments older than their timeline",
		segs: segs("1:1-3", "2:2-4"), histories: map[uint32]string{2: hist2},
		timelines: map[uint32]tl{1: {End: "0/03018CB0"}, 2: {Parent: 1, Begin: "0/03018CB0"}},
		problems:  []string{"timeline 2: segment 000000020000000000000002 is older than the timeline, which begins in segment 000000020000000000000003"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := build(t, tt.segs, tt.histories, tt.backups).Status()
			got := map[uint32]tl{}
			for _, x := range st.Timelines {
				g := tl{Parent: x.Parent, Begin: x.BeginLSN, End: x.EndLSN}
				for _, gap := range x.Gaps {
					g.Gaps = append(g.Gaps, gap.From+".."+gap.To)
				}
				got[x.TLI] = g
				if x.History != (tt.histories[x.TLI] != "") {
					t.Errorf("timeline %d: History = %v", x.TLI, x.History)
				}
			}
			if d := cmp.Diff(tt.timelines, got); d != "" {
				t.Errorf("timelines (-want +got):\n%s", d)
			}
			gotMissing := map[string][]string{}
			for _, b := range st.Backups {
				if b.Restorable != (len(b.Missing) == 0) {
					t.Errorf("backup %+v", b)
				}
				if !b.Restorable {
					gotMissing[b.Name] = b.Missing
				}
			}
			if d := cmp.Diff(tt.missing, gotMissing, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("backups' missing files (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.problems, st.Problems); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

func TestStatusCounts(t *testing.T) {
	a := build(t, append(segs("1:1-5", "1:6p", "2:6-7"), "notes.txt", "00000002.history"), map[uint32]string{2: "1\t0/6000100\tx\n"},
		[]backup{{2, 6, 7}, {1, 1, 2}})
	st := a.Status()
	if st.Segments != 7 || st.LastSegment != "000000020000000000000007" || len(st.Timelines) != 2 || len(st.Backups) != 2 {
		t.Fatalf("status %+v", st)
	}
	t1 := st.Timelines[0]
	if t1.First != "000000010000000000000001" || t1.Last != "000000010000000000000005" || t1.Segments != 5 ||
		!slices.Equal(t1.Partial, []string{"000000010000000000000006.partial"}) {
		t.Errorf("timeline 1 %+v", t1)
	}
	b := st.Backups[0] // sorted by name
	if b.Name != "000000010000000000000001.00000028.backup" || b.StartSeg != 1 || b.StopSeg != 2 || !b.Restorable || b.TLI != 1 {
		t.Errorf("backup %+v", b)
	}
}

// Before the first segment the segment size is unknown: nothing can be
// placed, and a backup file must not make Status fail.
func TestStatusUnknownSegmentSize(t *testing.T) {
	a := New(0)
	a.AddName("000000010000000000000003.partial")
	a.AddBackup("000000010000000000000002.00000028.backup", backup{1, 2, 3}.label())
	st := a.Status()
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "segment size unknown") || len(st.Backups) != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestAddHistoryRefusesWhatPostgresRefuses(t *testing.T) {
	a := New(seg16)
	h, err := wal.ParseHistory([]byte(hist3))
	if err != nil {
		t.Fatal(err)
	}
	a.AddHistory(2, h) // names timeline 2 in timeline 2's own file
	st := a.Status()
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "parent timeline 2 is not lower than the file's timeline 2") || len(st.Timelines) != 0 {
		t.Fatalf("status %+v", st)
	}
}

// history is a timeline's history as readTimeLineHistory returns it,
// newest first, with PostgreSQL's InvalidXLogRecPtr (0) for "no bound".
type pgEntry struct {
	tli        uint32
	begin, end uint64
}

func pgReadHistory(tli uint32, h []wal.HistoryEntry) []pgEntry {
	var out []pgEntry
	prevend := uint64(0)
	for _, e := range h {
		out = append([]pgEntry{{e.ParentTLI, prevend, uint64(e.SwitchLSN)}}, out...)
		prevend = uint64(e.SwitchLSN)
	}
	return append([]pgEntry{{tli, prevend, 0}}, out...)
}

// pgTLIOfPoint is timeline.c tliOfPointInHistory.
func pgTLIOfPoint(ptr uint64, history []pgEntry) uint32 {
	for _, e := range history {
		if (e.begin == 0 || e.begin <= ptr) && (e.end == 0 || ptr < e.end) {
			return e.tli
		}
	}
	panic("timeline history was not contiguous")
}

// pgSegmentTLI is the timeline XLogFileReadAnyTLI reads segment segno
// from when that file exists: the newest whose begin segment is at or
// before segno.
func pgSegmentTLI(segno uint64, history []pgEntry, segSize uint64) uint32 {
	for _, e := range history {
		if e.begin != 0 && segno < e.begin/segSize {
			continue
		}
		return e.tli
	}
	panic("no timeline")
}

// TestStreamIsPostgres compares stream and segments with direct ports of
// PostgreSQL's functions on random histories whose switch points go up and
// down.
func TestStreamIsPostgres(t *testing.T) {
	const segSize = 1 << 20
	r := rand.New(rand.NewPCG(9, 9))
	for iter := 0; iter < 2000; iter++ {
		var h []wal.HistoryEntry
		tli := uint32(0)
		for n := r.IntN(6); len(h) < n; {
			tli += 1 + uint32(r.IntN(2))
			lsn := uint64(r.IntN(12))*segSize + uint64(r.IntN(3))*(segSize/2) // boundaries and middles
			if r.IntN(4) == 0 {
				lsn = uint64(r.IntN(40)) * 8 // tiny, even 0
			}
			h = append(h, wal.HistoryEntry{ParentTLI: tli, SwitchLSN: wal.LSN(lsn)})
		}
		self := tli + 1
		a := New(segSize)
		a.histories[self] = h
		pg := pgReadHistory(self, h)
		stream, segStream := a.stream(self), a.segments(self)
		for ptr := uint64(0); ptr < 14*segSize; ptr += segSize / 4 {
			for _, p := range []uint64{ptr, ptr + 7, ptr + segSize/4 - 1} {
				if got, want := provider(stream, p), pgTLIOfPoint(p, pg); got != want {
					t.Fatalf("history %+v: LSN %X on timeline %d, PostgreSQL says %d (stream %+v)", h, p, got, want, stream)
				}
			}
		}
		for segno := uint64(0); segno < 14; segno++ {
			if got, want := provider(segStream, segno), pgSegmentTLI(segno, pg, segSize); got != want {
				t.Fatalf("history %+v: segment %d from timeline %d, PostgreSQL reads %d (segments %+v)", h, segno, got, want, segStream)
			}
		}
	}
}
