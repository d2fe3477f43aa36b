package timeline

import (
	"slices"
	"sort"
)

// run is the segments lo, lo+1, …, hi-1 of one timeline, all present.
type run struct{ lo, hi uint64 }

// runs is the set of segment numbers of one timeline as ascending,
// disjoint, non-adjacent runs. An archive of a million segments without
// gaps is one run: the memory is the number of gaps, not of segments.
//
// add appends in any order; the set is normal (sorted and merged) only
// after normalize, which the queries need.
type runs struct {
	rs     []run
	sorted bool // rs ascending and merged since the last add
}

// add records segment segno. Ascending numbers (what an index scan of
// names yields) extend the last run in place.
func (s *runs) add(segno uint64) {
	if n := len(s.rs); n > 0 {
		last := &s.rs[n-1]
		switch {
		case segno == last.hi:
			last.hi++
			return
		case segno >= last.lo && segno < last.hi:
			return
		case segno < last.lo:
			s.sorted = false
		}
	} else {
		s.sorted = true
	}
	s.rs = append(s.rs, run{segno, segno + 1})
}

// normalize sorts and merges the runs.
func (s *runs) normalize() {
	if s.sorted {
		return
	}
	sort.Slice(s.rs, func(i, j int) bool { return s.rs[i].lo < s.rs[j].lo })
	out := s.rs[:0]
	for _, r := range s.rs {
		if n := len(out); n > 0 && r.lo <= out[n-1].hi {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	s.rs, s.sorted = out, true
}

func (s *runs) empty() bool { return len(s.rs) == 0 }

// count is the number of segments.
func (s *runs) count() int {
	n := 0
	for _, r := range s.rs {
		n += int(r.hi - r.lo)
	}
	return n
}

// first and last are the lowest and the highest segment; the set must not
// be empty.
func (s *runs) first() uint64 { return s.rs[0].lo }
func (s *runs) last() uint64  { return s.rs[len(s.rs)-1].hi - 1 }

// find returns the run holding segno, if any.
func (s *runs) find(segno uint64) (run, bool) {
	i, _ := slices.BinarySearchFunc(s.rs, segno, func(r run, n uint64) int {
		switch {
		case r.hi <= n:
			return -1
		case r.lo > n:
			return 1
		}
		return 0
	})
	if i < len(s.rs) && s.rs[i].lo <= segno && segno < s.rs[i].hi {
		return s.rs[i], true
	}
	return run{}, false
}

func (s *runs) has(segno uint64) bool {
	_, ok := s.find(segno)
	return ok
}

// within returns the parts of the runs inside [lo, hi), ascending.
func (s *runs) within(lo, hi uint64, out []run) []run {
	i := sort.Search(len(s.rs), func(i int) bool { return s.rs[i].hi > lo })
	for ; i < len(s.rs) && s.rs[i].lo < hi; i++ {
		out = append(out, run{max(s.rs[i].lo, lo), min(s.rs[i].hi, hi)})
	}
	return out
}

// list is every segment number, ascending (for tests and small sets).
func (s *runs) list() []uint64 {
	var out []uint64
	for _, r := range s.rs {
		for n := r.lo; n < r.hi; n++ {
			out = append(out, n)
		}
	}
	return out
}
