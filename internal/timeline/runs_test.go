package timeline

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/walrus-archive/walrus/internal/wal"
)

func runsOf(segnos ...uint64) *runs {
	s := &runs{}
	for _, n := range segnos {
		s.add(n)
	}
	s.normalize()
	return s
}

func TestRuns(t *testing.T) {
	tests := []struct {
		name   string
		add    []uint64
		want   []run
		count  int
		within [2]uint64 // [lo, hi)
		inside []run
	}{
		{name: "ascending, one run", add: []uint64{3, 4, 5, 6}, want: []run{{3, 7}}, count: 4, within: [2]uint64{4, 6}, inside: []run{{4, 6}}},
		{name: "a gap", add: []uint64{1, 2, 5, 6}, want: []run{{1, 3}, {5, 7}}, count: 4, within: [2]uint64{2, 6}, inside: []run{{2, 3}, {5, 6}}},
		{name: "descending", add: []uint64{9, 8, 7, 2}, want: []run{{2, 3}, {7, 10}}, count: 4, within: [2]uint64{0, 100}, inside: []run{{2, 3}, {7, 10}}},
		{name: "duplicates", add: []uint64{5, 5, 6, 5, 6, 4}, want: []run{{4, 7}}, count: 3, within: [2]uint64{7, 9}},
		{name: "out of order fills a gap", add: []uint64{1, 2, 4, 5, 3}, want: []run{{1, 6}}, count: 5, within: [2]uint64{0, 1}},
		{name: "overlapping after sort", add: []uint64{10, 11, 12, 1, 11, 2, 13}, want: []run{{1, 3}, {10, 14}}, count: 6, within: [2]uint64{12, 20}, inside: []run{{12, 14}}},
		{name: "segment 0", add: []uint64{0, 1}, want: []run{{0, 2}}, count: 2, within: [2]uint64{1, 2}, inside: []run{{1, 2}}},
		{name: "empty", within: [2]uint64{0, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := runsOf(tt.add...)
			if d := cmp.Diff(tt.want, s.rs, cmp.AllowUnexported(run{})); d != "" {
				t.Errorf("runs (-want +got):\n%s", d)
			}
			if s.count() != tt.count || s.empty() != (tt.count == 0) {
				t.Errorf("count %d empty %v, want %d", s.count(), s.empty(), tt.count)
			}
			if tt.count > 0 && (s.first() != slices.Min(tt.add) || s.last() != slices.Max(tt.add)) {
				t.Errorf("first %d last %d", s.first(), s.last())
			}
			if d := cmp.Diff(tt.inside, s.within(tt.within[0], tt.within[1], nil), cmp.AllowUnexported(run{})); d != "" {
				t.Errorf("within %v (-want +got):\n%s", tt.within, d)
			}
		})
	}
}

// The runs hold exactly the segments added, in whatever order they come.
func TestRunsAreTheSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		set := map[uint64]bool{}
		var add []uint64
		for j := rng.IntN(60); j > 0; j-- {
			n := uint64(rng.IntN(80))
			set[n] = true
			add = append(add, n)
		}
		if i%2 == 0 {
			slices.Sort(add)
		}
		s := runsOf(add...)
		var want []uint64
		for n := uint64(0); n < 82; n++ {
			if set[n] {
				want = append(want, n)
			}
			if s.has(n) != set[n] {
				t.Fatalf("%v: has(%d) = %v", add, n, s.has(n))
			}
		}
		if got := s.list(); !slices.Equal(got, want) {
			t.Fatalf("%v: list %v, want %v", add, got, want)
		}
		for k := 1; k < len(s.rs); k++ {
			if s.rs[k-1].hi >= s.rs[k].lo {
				t.Fatalf("%v: runs %v touch or overlap", add, s.rs)
			}
		}
	}
}

// A long archive costs its gaps, not its segments: ascending names extend
// a run in place, and shuffled names give the same status.
func TestStatusOfRuns(t *testing.T) {
	const n = 50_000
	var names []string
	for segno := uint64(1); segno <= n; segno++ {
		if segno != 1000 && segno != 1001 {
			names = append(names, wal.SegmentFileName(1, segno, seg16))
		}
	}
	a := build(t, names, nil, []backup{{1, 10, 20}, {1, 990, 1010}})
	if r := a.segs[1]; len(r.rs) != 2 || cap(r.rs) > 4 {
		t.Fatalf("%d names in order made %d runs (capacity %d)", len(names), len(r.rs), cap(r.rs))
	}
	st := a.Status()
	tl := st.Timelines[0]
	if st.Segments != n-2 || tl.Segments != n-2 || len(tl.Gaps) != 1 || tl.Gaps[0].Count != 2 ||
		tl.Gaps[0].From != wal.SegmentFileName(1, 1000, seg16) || tl.Last != wal.SegmentFileName(1, n, seg16) {
		t.Fatalf("status %+v", tl)
	}
	if b := st.Backups; !b[0].Restorable || b[1].Restorable ||
		!slices.Equal(b[1].Missing, []string{wal.SegmentFileName(1, 1000, seg16), wal.SegmentFileName(1, 1001, seg16)}) {
		t.Fatalf("backups %+v", st.Backups)
	}
	shuffled := slices.Clone(names)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if d := cmp.Diff(st, build(t, shuffled, nil, []backup{{1, 10, 20}, {1, 990, 1010}}).Status()); d != "" {
		t.Errorf("shuffled names (-sorted +shuffled):\n%s", d)
	}
}

// A backup's check walks runs, not segments, and stops at the first
// missing files listed.
func TestBackupOverLongRuns(t *testing.T) {
	a := New(seg16)
	for segno := uint64(1); segno <= 300_000; segno++ {
		if segno%100_000 != 0 {
			a.AddName(wal.SegmentFileName(1, segno, seg16))
		}
	}
	a.AddBackup(backup{1, 1, 300_000}.name(), backup{1, 1, 300_000}.label())
	st := a.Status()
	want := []string{wal.SegmentFileName(1, 100_000, seg16), wal.SegmentFileName(1, 200_000, seg16), wal.SegmentFileName(1, 300_000, seg16)}
	if b := st.Backups[0]; b.Restorable || !slices.Equal(b.Missing, want) {
		t.Fatalf("backup %+v", b)
	}
}
