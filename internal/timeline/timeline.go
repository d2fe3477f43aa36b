// Package timeline is the WAL continuity reasoning of one archive directory:
// which timeline provides each segment along each timeline's history, the
// gaps in those streams, the parent each timeline branched off, and whether
// a base backup's WAL is all there. It is pure: the store feeds it the
// directory's names and its parsed .history and .backup files (Archive's
// Add methods), and turns Status into `walrus status`, verify's continuity
// problems and the input of retention.
//
// Each timeline's WAL stream is read from its own history file, as
// PostgreSQL's recovery reads it (postgres: timeline.c readTimeLineHistory,
// tliOfPointInHistory; xlogrecovery.c XLogFileReadAnyTLI): line i of
// TTTTTTTT.history says that timeline i's entry covers the LSNs from the
// previous line's switch point to its own, the timeline itself covers the
// LSNs from its last switch point on, and an LSN belongs to the newest entry
// that covers it. Switch points need not increase: a timeline made by a
// recovery that stopped before its target timeline's switch point has a
// history such as "1 0/3018CB0; 2 0/3018C48", and its WAL is timeline 1's up
// to 0/3018C48 and its own after; timeline 2 contributes nothing to it, and
// timeline 1 is the timeline it branched off. Nothing assumes one global
// tree in which switch points increase.
//
// A segment belongs to the stream of the timeline that covers its last
// byte: recovery reads segment N from the newest timeline of the history
// that began at or before segment N (the first segment of a new timeline
// starts with its parent's bytes up to the switch point). .partial files are
// never read by recovery and never required.
package timeline

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/walrus-archive/walrus/internal/wal"
)

// Archive collects what one archive directory holds.
type Archive struct {
	segSize   uint32
	segs      map[uint32]*runs // full segments per timeline
	partials  map[uint32][]uint64
	histories map[uint32][]wal.HistoryEntry
	backups   []backupFile
	problems  []string
	unsized   int // WAL names seen while the segment size is unknown
}

type backupFile struct {
	name  string
	label wal.BackupLabel
}

// New returns an empty Archive of segments of segSize bytes (0 or another
// invalid size: no segment has been archived yet, so none can be placed).
func New(segSize uint32) *Archive {
	return &Archive{segSize: segSize, segs: map[uint32]*runs{}, partials: map[uint32][]uint64{},
		histories: map[uint32][]wal.HistoryEntry{}}
}

// AddName records a file name of the directory; only segments and .partial
// files count, other names are ignored. It keeps nothing of name, and
// names in ascending order (an index scan's) cost no memory while they
// continue a run of segments.
func (a *Archive) AddName(name string) {
	n := wal.ParseName(name)
	if n.Kind != wal.KindSegment && n.Kind != wal.KindPartial {
		return
	}
	if !wal.ValidSegmentSize(a.segSize) {
		a.unsized++
		return
	}
	segno, err := n.SegNo(a.segSize)
	if err != nil {
		a.problems = append(a.problems, err.Error())
		return
	}
	if n.Kind == wal.KindPartial {
		a.partials[n.TLI] = append(a.partials[n.TLI], segno)
	} else {
		a.runsOf(n.TLI).add(segno)
	}
}

func (a *Archive) runsOf(tli uint32) *runs {
	r := a.segs[tli]
	if r == nil {
		r = &runs{}
		a.segs[tli] = r
	}
	return r
}

// AddHistory records the parsed history file of timeline tli. A history
// that wal.CheckHistory refuses is reported as a problem instead.
func (a *Archive) AddHistory(tli uint32, entries []wal.HistoryEntry) {
	if err := wal.CheckHistory(tli, entries); err != nil {
		a.problems = append(a.problems, err.Error())
		return
	}
	a.histories[tli] = entries
}

// AddBackup records the parsed backup history file name.
func (a *Archive) AddBackup(name string, label wal.BackupLabel) {
	a.backups = append(a.backups, backupFile{name: name, label: label})
}

// AddProblem records a problem found while gathering the facts (such as a
// history file that does not parse); Status reports it first.
func (a *Archive) AddProblem(p string) {
	a.problems = append(a.problems, p)
}

// Status is the continuity of the directory.
type Status struct {
	Segments    int    // full segments, all timelines
	LastSegment string // the newest full segment (highest number; on a tie, the highest timeline)
	Timelines   []Timeline
	Backups     []Backup
	// Problems are continuity problems: gaps, segments or history files
	// that contradict the timeline history, and the problems added.
	Problems []string
}

// Timeline describes one timeline. Its JSON form is part of `walrus status
// --json`.
type Timeline struct {
	TLI uint32 `json:"timeline"`
	// Parent is the timeline this one branched off: the one whose WAL it
	// continues at BeginLSN, by its own history file. It is the parent on
	// the history file's last line unless that timeline contributes no WAL
	// (its switch point lies before that timeline's own beginning).
	Parent   uint32 `json:"parent,omitempty"`
	BeginLSN string `json:"begin_lsn,omitempty"` // the last switch point of its history
	History  bool   `json:"history"`             // TTTTTTTT.history is archived
	// EndLSN is where the first child timeline branched off this one.
	EndLSN   string   `json:"end_lsn,omitempty"`
	First    string   `json:"first_segment,omitempty"`
	Last     string   `json:"last_segment,omitempty"`
	Segments int      `json:"segments"`
	Partial  []string `json:"partial,omitempty"`
	Gaps     []Gap    `json:"gaps"`
}

// Gap is a run of segments of one timeline missing from the WAL stream of
// some timeline's history, between the oldest and the newest segment
// present on it.
type Gap struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count uint64 `json:"count"`
}

func (g Gap) String() string {
	if g.Count == 1 {
		return fmt.Sprintf("segment %s is missing", g.From)
	}
	return fmt.Sprintf("%d segments %s..%s are missing", g.Count, g.From, g.To)
}

// Backup describes one base backup, from its .backup file. Its JSON form is
// part of `walrus status --json`.
type Backup struct {
	Name         string    `json:"name"`
	Label        string    `json:"label"`
	TLI          uint32    `json:"timeline"`
	StartLSN     string    `json:"start_lsn"`
	StopLSN      string    `json:"stop_lsn"`
	StartSegment string    `json:"start_segment"`
	StopSegment  string    `json:"stop_segment"`
	StartTime    time.Time `json:"start_time"`
	StopTime     time.Time `json:"stop_time"`
	// Restorable: every segment from the start to the stop segment is
	// present along the backup's timeline's history, and so is that
	// timeline's history file (past timeline 1).
	Restorable bool     `json:"restorable"`
	Missing    []string `json:"missing,omitempty"` // the first missing files
	// StartSeg and StopSeg are the segment numbers (retention uses them).
	StartSeg uint64 `json:"-"`
	StopSeg  uint64 `json:"-"`
}

// span is a part [lo, hi) of a timeline's WAL stream provided by timeline
// tli, in LSNs or in segment numbers.
type span struct {
	tli    uint32
	lo, hi uint64
}

const noEnd = ^uint64(0)

// stream returns the WAL stream of timeline tli by its own history file, in
// LSNs, oldest first: each LSN from the newest entry that covers it.
// postgres: timeline.c tliOfPointInHistory
func (a *Archive) stream(tli uint32) []span {
	h := a.histories[tli]
	low := uint64(0)
	if len(h) > 0 {
		low = uint64(h[len(h)-1].SwitchLSN)
	}
	out := []span{{tli: tli, lo: low, hi: noEnd}}
	for i := len(h) - 1; i >= 0; i-- {
		begin := uint64(0)
		if i > 0 {
			begin = uint64(h[i-1].SwitchLSN)
		}
		if begin < low { // else newer entries cover all of this one
			out = append(out, span{tli: h[i].ParentTLI, lo: begin, hi: low})
			low = begin
		}
	}
	slices.Reverse(out)
	return out
}

// segments returns the stream of timeline tli in segment numbers: segment
// N is read from the timeline that covers its last byte.
// postgres: xlogrecovery.c XLogFileReadAnyTLI
func (a *Archive) segments(tli uint32) []span {
	var out []span
	for _, sp := range a.stream(tli) {
		lo, hi := a.segNo(sp.lo), noEnd
		if sp.hi != noEnd {
			hi = a.segNo(sp.hi)
		}
		if lo < hi {
			out = append(out, span{tli: sp.tli, lo: lo, hi: hi})
		}
	}
	return out
}

func (a *Archive) segNo(lsn uint64) uint64 { return wal.SegNoOf(wal.LSN(lsn), a.segSize) }

func (a *Archive) segName(tli uint32, segno uint64) string {
	return wal.SegmentFileName(tli, segno, a.segSize)
}

// provider returns the timeline whose segment segno is on the stream.
func provider(stream []span, segno uint64) uint32 { return spanOf(stream, segno).tli }

// spanOf returns the span of the stream that holds segno.
func spanOf(stream []span, segno uint64) span {
	for _, sp := range stream {
		if segno >= sp.lo && segno < sp.hi {
			return sp
		}
	}
	return span{tli: stream[len(stream)-1].tli, lo: segno, hi: noEnd}
}

// present returns the segments of timeline tli (empty, not nil, when it
// has none).
func (a *Archive) present(tli uint32) *runs {
	if r := a.segs[tli]; r != nil {
		return r
	}
	return &runs{}
}

// parent returns the timeline tli branched off and where, by tli's stream.
func (a *Archive) parent(tli uint32) (parent uint32, begin wal.LSN, ok bool) {
	s := a.stream(tli)
	if len(s) < 2 {
		return 0, 0, false
	}
	return s[len(s)-2].tli, wal.LSN(s[len(s)-1].lo), true
}

// timelines returns every timeline that has segments or a history file, or
// that a history file names, ascending.
func (a *Archive) timelines() []uint32 {
	set := map[uint32]bool{}
	for t := range a.segs {
		set[t] = true
	}
	for t := range a.partials {
		set[t] = true
	}
	for t, h := range a.histories {
		set[t] = true
		for _, e := range h {
			set[e.ParentTLI] = true
		}
	}
	out := make([]uint32, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// interval is a run [from, to] of missing segments of one timeline.
type interval struct{ from, to uint64 }

// missing adds to out the segments missing from the stream of timeline
// tli, between the oldest and the newest segment present on it, by the
// timeline that should provide them.
func (a *Archive) missing(tli uint32, out map[uint32][]interval) {
	stream := a.segments(tli)
	var present []run // ascending: the spans are, and so are each timeline's runs
	for _, sp := range stream {
		present = a.present(sp.tli).within(sp.lo, sp.hi, present)
	}
	for i := 1; i < len(present); i++ {
		from, to := present[i-1].hi, present[i].lo-1
		if from > to {
			continue // adjacent runs of two timelines
		}
		for _, sp := range stream { // split where the stream changes timeline
			lo, hi := max(from, sp.lo), min(to, sp.hi-1)
			if lo <= hi {
				out[sp.tli] = append(out[sp.tli], interval{lo, hi})
			}
		}
	}
}

// gaps merges each timeline's missing intervals (found along several
// streams) into runs.
func (a *Archive) gaps(all []uint32) map[uint32][]Gap {
	miss := map[uint32][]interval{}
	for _, t := range all {
		a.missing(t, miss)
	}
	out := map[uint32][]Gap{}
	for tli, ivs := range miss {
		sort.Slice(ivs, func(i, j int) bool { return ivs[i].from < ivs[j].from })
		cur := ivs[0]
		flush := func() {
			out[tli] = append(out[tli], Gap{From: a.segName(tli, cur.from), To: a.segName(tli, cur.to), Count: cur.to - cur.from + 1})
		}
		for _, iv := range ivs[1:] {
			if iv.from <= cur.to+1 {
				cur.to = max(cur.to, iv.to)
				continue
			}
			flush()
			cur = iv
		}
		flush()
	}
	return out
}

// Status computes timelines, gaps, backups and problems.
func (a *Archive) Status() Status {
	st := Status{Timelines: []Timeline{}, Backups: []Backup{}, Problems: append([]string(nil), a.problems...)}
	if !wal.ValidSegmentSize(a.segSize) {
		if a.unsized > 0 {
			st.Problems = append(st.Problems, fmt.Sprintf("%d .partial files but no segment: segment size unknown", a.unsized))
		}
		return st
	}
	for _, s := range a.segs {
		s.normalize()
	}
	for _, s := range a.partials {
		slices.Sort(s)
	}
	all := a.timelines()
	gaps := a.gaps(all)
	ends := map[uint32]wal.LSN{}
	for _, t := range all {
		if p, begin, ok := a.parent(t); ok {
			if end, seen := ends[p]; !seen || begin < end {
				ends[p] = begin
			}
		}
	}
	var lastSeg uint64
	var lastTLI uint32
	for _, t := range all {
		tl := a.timeline(t, gaps[t])
		if end, ok := ends[t]; ok {
			tl.EndLSN = end.String()
		}
		st.Timelines = append(st.Timelines, tl)
		st.Segments += tl.Segments
		if segs := a.present(t); !segs.empty() && (lastTLI == 0 || segs.last() >= lastSeg) {
			lastSeg, lastTLI = segs.last(), t
		}
		for _, g := range tl.Gaps {
			st.Problems = append(st.Problems, fmt.Sprintf("timeline %d: %s", t, g))
		}
		st.Problems = append(st.Problems, a.timelineProblems(t)...)
	}
	if lastTLI != 0 {
		st.LastSegment = a.segName(lastTLI, lastSeg)
	}
	for _, b := range a.backups {
		st.Backups = append(st.Backups, a.backup(b))
	}
	sort.Slice(st.Backups, func(i, j int) bool { return st.Backups[i].Name < st.Backups[j].Name })
	return st
}

func (a *Archive) timeline(t uint32, gaps []Gap) Timeline {
	tl := Timeline{TLI: t, Gaps: []Gap{}}
	if h, ok := a.histories[t]; ok {
		tl.History, tl.BeginLSN = true, h[len(h)-1].SwitchLSN.String()
		tl.Parent, _, _ = a.parent(t)
	}
	if segs := a.present(t); !segs.empty() {
		tl.First, tl.Last, tl.Segments = a.segName(t, segs.first()), a.segName(t, segs.last()), segs.count()
	}
	for _, p := range a.partials[t] {
		tl.Partial = append(tl.Partial, a.segName(t, p)+".partial")
	}
	tl.Gaps = append(tl.Gaps, gaps...)
	return tl
}

// timelineProblems reports what contradicts t's history.
func (a *Archive) timelineProblems(t uint32) []string {
	var out []string
	h, hasHistory := a.histories[t]
	if t > 1 && !hasHistory && (!a.present(t).empty() || len(a.partials[t]) > 0) {
		out = append(out, fmt.Sprintf("timeline %d has segments but no %s", t, wal.HistoryFileName(t)))
	}
	if !hasHistory {
		return out
	}
	begin := a.segNo(uint64(h[len(h)-1].SwitchLSN))
	if segs := a.present(t); !segs.empty() && segs.first() < begin {
		out = append(out, fmt.Sprintf("timeline %d: segment %s is older than the timeline, which begins in segment %s",
			t, a.segName(t, segs.first()), a.segName(t, begin)))
	}
	// PostgreSQL writes a child's history as a copy of its parent's plus
	// one line: line i names a timeline whose own history is the lines
	// before it. Another content means the child was made from a history
	// of that timeline other than the archived one.
	for i, e := range h {
		if ph, ok := a.histories[e.ParentTLI]; ok && !sameHistory(ph, h[:i]) {
			out = append(out, fmt.Sprintf("timeline %d: %s does not continue %s: it was made from another history of timeline %d",
				t, wal.HistoryFileName(t), wal.HistoryFileName(e.ParentTLI), e.ParentTLI))
		}
	}
	return out
}

// sameHistory compares timelines and switch points, not reasons.
func sameHistory(x, y []wal.HistoryEntry) bool {
	return slices.EqualFunc(x, y, func(p, q wal.HistoryEntry) bool {
		return p.ParentTLI == q.ParentTLI && p.SwitchLSN == q.SwitchLSN
	})
}

const maxMissingListed = 10

// backup describes b and checks it: recovery from the backup needs every
// segment from its start to its stop segment along its timeline's stream,
// and that timeline's history file.
func (a *Archive) backup(f backupFile) Backup {
	b := f.label
	bs := Backup{
		Name: f.name, Label: b.Label, TLI: b.StopTLI,
		StartLSN: b.StartLSN.String(), StopLSN: b.StopLSN.String(),
		StartSegment: b.StartSegment, StopSegment: b.StopSegment,
		StartTime: b.StartTime, StopTime: b.StopTime,
	}
	if bs.TLI == 0 {
		bs.TLI = wal.ParseName(f.name).TLI
	}
	bs.StartSeg = a.segNoOfLocation(b.StartSegment, b.StartLSN)
	bs.StopSeg = a.segNoOfLocation(b.StopSegment, b.StopLSN)
	if _, ok := a.histories[bs.TLI]; bs.TLI > 1 && !ok {
		bs.Missing = append(bs.Missing, wal.HistoryFileName(bs.TLI))
	}
	stream := a.segments(bs.TLI)
	for segno := bs.StartSeg; segno <= bs.StopSeg && len(bs.Missing) < maxMissingListed; {
		sp := spanOf(stream, segno)
		if r, ok := a.present(sp.tli).find(segno); ok {
			segno = min(r.hi, sp.hi) // skip what is present, up to where the stream changes timeline
			continue
		}
		bs.Missing = append(bs.Missing, a.segName(sp.tli, segno))
		segno++
	}
	bs.Restorable = len(bs.Missing) == 0
	return bs
}

// segNoOfLocation is the segment a backup label names "(file NAME)", or
// the one holding lsn if the name does not parse.
func (a *Archive) segNoOfLocation(name string, lsn wal.LSN) uint64 {
	if segno, err := wal.ParseName(name).SegNo(a.segSize); err == nil {
		return segno
	}
	return wal.SegNoOf(lsn, a.segSize)
}
