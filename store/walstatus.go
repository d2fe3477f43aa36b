package store

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
)

// WAL status is derived on demand from a key-only scan of a directory's
// names (100 000 segments take well under a second) plus the few, small
// .history and .backup files, rather than maintained as extra index
// records: it is then always consistent with the files actually present,
// whichever way they were added or removed.

// StatusReport is `walrus status` in full: the archive totals and, per
// directory, timelines, gaps, backups and the last archived segment. Its JSON
// form is documented in the README and kept stable.
type StatusReport struct {
	Files        int64       `json:"files"`
	LogicalBytes int64       `json:"logical_bytes"`
	StoredBytes  int64       `json:"stored_bytes"` // live bytes in packs
	DiskBytes    int64       `json:"disk_bytes"`   // pack bytes committed, dead bytes included
	Packs        int         `json:"packs"`
	Ratio        float64     `json:"ratio"` // logical / stored
	Time         time.Time   `json:"time"`
	Dirs         []DirStatus `json:"dirs"`
}

// DirStatus is the WAL view of one directory (one PostgreSQL cluster).
type DirStatus struct {
	Name         string `json:"name"` // "" is the archive root
	SystemID     uint64 `json:"system_identifier,string"`
	Version      string `json:"postgres_version"`
	SegmentSize  uint32 `json:"segment_size"`
	Files        int64  `json:"files"`
	Segments     int    `json:"segments"` // full segments, all timelines
	LogicalBytes int64  `json:"logical_bytes"`
	// StoredBytes counts each stored block once, in the directory that first
	// stored it.
	StoredBytes  int64            `json:"stored_bytes"`
	Ratio        float64          `json:"ratio"`
	LastSegment  string           `json:"last_segment,omitempty"`
	LastArchived *time.Time       `json:"last_archived,omitempty"`
	LastAge      float64          `json:"last_age_seconds,omitempty"`
	Timelines    []TimelineStatus `json:"timelines"`
	Backups      []BackupStatus   `json:"backups"`
	// Problems are continuity problems: gaps, segments or history files
	// that contradict the timeline history, unreadable history or backup
	// files. Verify reports each of them.
	Problems []string `json:"problems"`
}

// TimelineStatus describes one timeline of a directory.
type TimelineStatus struct {
	TLI      uint32 `json:"timeline"`
	Parent   uint32 `json:"parent,omitempty"`    // from the .history file
	BeginLSN string `json:"begin_lsn,omitempty"` // where it branched off its parent
	History  bool   `json:"history"`             // TTTTTTTT.history is archived
	// EndLSN is where the first child timeline branched off: segments past
	// it on this timeline are not needed to reach the child.
	EndLSN   string   `json:"end_lsn,omitempty"`
	First    string   `json:"first_segment,omitempty"`
	Last     string   `json:"last_segment,omitempty"`
	Segments int      `json:"segments"`
	Partial  []string `json:"partial,omitempty"`
	Gaps     []Gap    `json:"gaps"`
}

// Gap is a run of segments missing from the WAL stream of a timeline.
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

// BackupStatus describes one base backup, from its .backup file.
type BackupStatus struct {
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
	// present on the backup's timeline path (and its history file, past
	// timeline 1).
	Restorable bool     `json:"restorable"`
	Missing    []string `json:"missing,omitempty"` // the first missing files
	// startSeg and stopSeg are the segment numbers (retention uses them).
	startSeg, stopSeg uint64
}

// StatusReport returns the archive totals and the WAL status of dir, or of
// every directory (and the root, when it holds files) when dir is "" or "*".
func (s *Store) StatusReport(dir string, now time.Time) (StatusReport, error) {
	st, err := s.Status()
	if err != nil {
		return StatusReport{}, err
	}
	rep := StatusReport{Files: st.Files, LogicalBytes: st.LogicalBytes, StoredBytes: st.StoredBytes,
		DiskBytes: st.DiskBytes, Packs: st.Packs, Ratio: ratio(st.LogicalBytes, st.StoredBytes), Time: now, Dirs: []DirStatus{}}
	dirs, err := s.statusDirs(strings.Trim(dir, "/"))
	if err != nil {
		return rep, err
	}
	for _, d := range dirs {
		ds, err := s.DirStatus(d, now)
		if err != nil {
			return rep, err
		}
		rep.Dirs = append(rep.Dirs, ds)
	}
	return rep, nil
}

func ratio(logical, stored int64) float64 {
	if stored <= 0 {
		return 0
	}
	return float64(logical) / float64(stored)
}

func (s *Store) statusDirs(dir string) ([]string, error) {
	if dir != "" && dir != "*" {
		if _, err := s.DirMeta(dir); err != nil {
			return nil, err
		}
		return []string{dir}, nil
	}
	var out []string
	err := s.idx.View(func(x *index.Txn) error {
		return x.Dirs(func(d *index.Dir) error {
			if d.Name != "" || d.Files > 0 {
				out = append(out, d.Name)
			}
			return nil
		})
	})
	return out, err
}

// DirStatus returns the WAL status of one directory.
func (s *Store) DirStatus(dir string, now time.Time) (DirStatus, error) {
	meta, err := s.DirMeta(dir)
	if err != nil && dir != "" {
		return DirStatus{}, err
	}
	w, err := s.scanWAL(dir, meta.SegSize)
	if err != nil {
		return DirStatus{}, err
	}
	ds := w.status()
	ds.Name, ds.SystemID, ds.Version, ds.SegmentSize = dir, meta.SysID, meta.Version, meta.SegSize
	ds.Files, ds.LogicalBytes, ds.StoredBytes = meta.Files, meta.LogicalBytes, meta.StoredBytes
	ds.Ratio = ratio(meta.LogicalBytes, meta.StoredBytes)
	if ds.LastSegment != "" {
		if f, err := s.lookup(joinPath(dir, ds.LastSegment)); err == nil {
			t := time.Unix(0, f.Archived).UTC()
			ds.LastArchived, ds.LastAge = &t, now.Sub(t).Seconds()
		}
	}
	return ds, nil
}

// walDir is what a directory's names and small WAL files say.
type walDir struct {
	segSize   uint32
	segs      map[uint32][]uint64 // full segments per timeline, ascending
	partials  map[uint32][]uint64
	histories map[uint32][]wal.HistoryEntry // timeline → its history file
	backups   []BackupStatus
	problems  []string
	unsized   int // WAL names that need a segment size, before the first segment
}

// scanWAL lists dir's names (keys only) and reads its .history and .backup
// files.
func (s *Store) scanWAL(dir string, segSize uint32) (*walDir, error) {
	w := &walDir{segSize: segSize, segs: map[uint32][]uint64{}, partials: map[uint32][]uint64{}, histories: map[uint32][]wal.HistoryEntry{}}
	var small []string
	err := s.Names(dir, func(name string) error {
		n := wal.ParseName(name)
		switch n.Kind {
		case wal.KindHistory, wal.KindBackup:
			small = append(small, name)
		case wal.KindSegment, wal.KindPartial:
			w.addSegment(n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, name := range small {
		data, err := s.readSmallFile(joinPath(dir, name))
		if errors.Is(err, ErrNotFound) {
			continue // removed since the scan
		}
		if err != nil {
			w.problems = append(w.problems, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		w.addSmall(name, data)
	}
	return w, nil
}

func (w *walDir) addSegment(n wal.Name) {
	if !wal.ValidSegmentSize(w.segSize) {
		w.unsized++
		return
	}
	segno, err := n.SegNo(w.segSize)
	if err != nil {
		w.problems = append(w.problems, err.Error())
		return
	}
	if n.Kind == wal.KindPartial {
		w.partials[n.TLI] = append(w.partials[n.TLI], segno)
	} else {
		w.segs[n.TLI] = append(w.segs[n.TLI], segno)
	}
}

func (w *walDir) addSmall(name string, data []byte) {
	n := wal.ParseName(name)
	if n.Kind == wal.KindHistory {
		h, err := wal.ParseHistory(data)
		if err == nil {
			err = wal.CheckHistory(n.TLI, h)
		}
		if err != nil {
			w.problems = append(w.problems, fmt.Sprintf("%s: %v", name, err))
			return
		}
		w.histories[n.TLI] = h
		return
	}
	b, err := wal.ParseBackup(data)
	if err != nil {
		w.problems = append(w.problems, fmt.Sprintf("%s: %v", name, err))
		return
	}
	w.backups = append(w.backups, w.backupStatus(name, n, b))
}

const maxSmallFile = 1 << 20

// readSmallFile reads a .history or .backup file.
func (s *Store) readSmallFile(path string) ([]byte, error) {
	r, err := s.Open(path)
	if err != nil {
		return nil, err
	}
	if r.Size() > maxSmallFile {
		return nil, fmt.Errorf("%d bytes: far larger than any real history or backup file", r.Size())
	}
	return io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
}

func (w *walDir) segName(tli uint32, segno uint64) string {
	return wal.SegmentFileName(tli, segno, w.segSize)
}

// span is the part of the WAL stream a timeline provides on some timeline's
// path: segments [lo, hi).
type span struct {
	tli    uint32
	lo, hi uint64
}

const noEnd = ^uint64(0)

// path returns the timelines that timeline tli's WAL stream is made of,
// oldest first, from tli's history file.
// postgres: xlogrecovery.c XLogFileReadAnyTLI reads segment segno from the
// newest timeline on the path whose begin segment is at or before segno.
func (w *walDir) path(tli uint32) []span {
	var out []span
	var lo uint64
	for _, e := range w.histories[tli] {
		hi := wal.SegNoOf(e.SwitchLSN, w.segSize)
		if hi > lo {
			out = append(out, span{tli: e.ParentTLI, lo: lo, hi: hi})
		}
		lo = max(lo, hi)
	}
	return append(out, span{tli: tli, lo: lo, hi: noEnd})
}

// tliFor returns the timeline that provides segment segno on tli's path.
func (w *walDir) tliFor(path []span, segno uint64) uint32 {
	for _, sp := range path {
		if segno >= sp.lo && segno < sp.hi {
			return sp.tli
		}
	}
	return path[len(path)-1].tli
}

func (w *walDir) has(tli uint32, segno uint64) bool {
	segs := w.segs[tli]
	i := sort.Search(len(segs), func(i int) bool { return segs[i] >= segno })
	return i < len(segs) && segs[i] == segno
}

// timelines returns every timeline that has segments or a history file,
// or that a history file names, ascending.
func (w *walDir) timelines() []uint32 {
	set := map[uint32]bool{}
	for t := range w.segs {
		set[t] = true
	}
	for t := range w.partials {
		set[t] = true
	}
	for t, h := range w.histories {
		set[t] = true
		for _, e := range h {
			set[e.ParentTLI] = true
		}
	}
	out := make([]uint32, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// leaves returns the timelines no history file names as a parent: every
// timeline lies on the path of at least one of them.
func (w *walDir) leaves(all []uint32) []uint32 {
	parent := map[uint32]bool{}
	for _, h := range w.histories {
		for _, e := range h {
			parent[e.ParentTLI] = true
		}
	}
	var out []uint32
	for _, t := range all {
		if !parent[t] {
			out = append(out, t)
		}
	}
	return out
}

// gaps finds the segments missing from the WAL stream of leaf: along its
// path, between the oldest and the newest segment present on it. On a
// parent timeline only the segments before the child's begin segment count;
// later ones belong to the child.
func (w *walDir) gaps(leaf uint32) map[uint32][]Gap {
	path := w.path(leaf)
	var present []uint64
	for _, sp := range path {
		segs := w.segs[sp.tli]
		i := sort.Search(len(segs), func(i int) bool { return segs[i] >= sp.lo })
		for ; i < len(segs) && segs[i] < sp.hi; i++ {
			present = append(present, segs[i])
		}
	}
	out := map[uint32][]Gap{}
	for i := 1; i < len(present); i++ {
		for from := present[i-1] + 1; from < present[i]; {
			tli := w.tliFor(path, from)
			to := present[i] - 1
			for _, sp := range path { // split at the path's timeline switches
				if sp.tli == tli && sp.hi-1 < to {
					to = sp.hi - 1
				}
			}
			out[tli] = append(out[tli], Gap{From: w.segName(tli, from), To: w.segName(tli, to), Count: to - from + 1})
			from = to + 1
		}
	}
	return out
}

// status computes timelines, gaps, backups and problems.
func (w *walDir) status() DirStatus {
	ds := DirStatus{Timelines: []TimelineStatus{}, Backups: []BackupStatus{}, Problems: append([]string(nil), w.problems...)}
	if !wal.ValidSegmentSize(w.segSize) {
		if w.unsized > 0 {
			ds.Problems = append(ds.Problems, fmt.Sprintf("%d .partial files but no segment: segment size unknown", w.unsized))
		}
		return ds
	}
	all := w.timelines()
	gaps := map[uint32]map[string]Gap{}
	for _, leaf := range w.leaves(all) {
		for tli, gs := range w.gaps(leaf) {
			if gaps[tli] == nil {
				gaps[tli] = map[string]Gap{}
			}
			for _, g := range gs {
				gaps[tli][g.From] = g
			}
		}
	}
	var lastSeg uint64
	var lastTLI uint32
	for _, t := range all {
		ts := w.timelineStatus(t, all, gaps[t])
		ds.Timelines = append(ds.Timelines, ts)
		ds.Segments += ts.Segments
		if segs := w.segs[t]; len(segs) > 0 && (lastTLI == 0 || segs[len(segs)-1] >= lastSeg) {
			lastSeg, lastTLI = segs[len(segs)-1], t
		}
		for _, g := range ts.Gaps {
			ds.Problems = append(ds.Problems, fmt.Sprintf("timeline %d: %s", t, g))
		}
		ds.Problems = append(ds.Problems, w.timelineProblems(t)...)
	}
	if lastTLI != 0 {
		ds.LastSegment = w.segName(lastTLI, lastSeg)
	}
	sort.Slice(w.backups, func(i, j int) bool { return w.backups[i].Name < w.backups[j].Name })
	for i := range w.backups {
		w.checkRestorable(&w.backups[i])
	}
	ds.Backups = append(ds.Backups, w.backups...)
	return ds
}

func (w *walDir) timelineStatus(t uint32, all []uint32, gaps map[string]Gap) TimelineStatus {
	ts := TimelineStatus{TLI: t, Gaps: []Gap{}}
	if h, ok := w.histories[t]; ok {
		last := h[len(h)-1]
		ts.History, ts.Parent, ts.BeginLSN = true, last.ParentTLI, last.SwitchLSN.String()
	}
	if end, ok := w.endLSN(t, all); ok {
		ts.EndLSN = end.String()
	}
	if segs := w.segs[t]; len(segs) > 0 {
		ts.First, ts.Last, ts.Segments = w.segName(t, segs[0]), w.segName(t, segs[len(segs)-1]), len(segs)
	}
	for _, p := range w.partials[t] {
		ts.Partial = append(ts.Partial, w.segName(t, p)+".partial")
	}
	for _, g := range gaps {
		ts.Gaps = append(ts.Gaps, g)
	}
	sort.Slice(ts.Gaps, func(i, j int) bool { return ts.Gaps[i].From < ts.Gaps[j].From })
	return ts
}

// endLSN is the earliest switch point at which a child branched off t.
func (w *walDir) endLSN(t uint32, all []uint32) (wal.LSN, bool) {
	var end wal.LSN
	found := false
	for _, c := range all {
		for _, e := range w.histories[c] {
			if e.ParentTLI == t && (!found || e.SwitchLSN < end) {
				end, found = e.SwitchLSN, true
			}
		}
	}
	return end, found
}

// timelineProblems reports what contradicts t's history.
func (w *walDir) timelineProblems(t uint32) []string {
	var out []string
	_, hasHistory := w.histories[t]
	if t > 1 && !hasHistory && (len(w.segs[t]) > 0 || len(w.partials[t]) > 0) {
		out = append(out, fmt.Sprintf("timeline %d has segments but no %s", t, wal.HistoryFileName(t)))
	}
	if hasHistory {
		path := w.path(t)
		begin := path[len(path)-1].lo
		if segs := w.segs[t]; len(segs) > 0 && segs[0] < begin {
			out = append(out, fmt.Sprintf("timeline %d: segment %s is older than the timeline, which begins in segment %s",
				t, w.segName(t, segs[0]), w.segName(t, begin)))
		}
	}
	return out
}

func (w *walDir) backupStatus(name string, n wal.Name, b wal.BackupLabel) BackupStatus {
	bs := BackupStatus{
		Name: name, Label: b.Label, TLI: b.StopTLI,
		StartLSN: b.StartLSN.String(), StopLSN: b.StopLSN.String(),
		StartSegment: b.StartSegment, StopSegment: b.StopSegment,
		StartTime: b.StartTime, StopTime: b.StopTime,
	}
	if bs.TLI == 0 {
		bs.TLI = n.TLI
	}
	bs.startSeg = segNoOfLocation(b.StartSegment, b.StartLSN, w.segSize)
	bs.stopSeg = segNoOfLocation(b.StopSegment, b.StopLSN, w.segSize)
	return bs
}

// segNoOfLocation is the segment a backup label names "(file NAME)", or
// the one holding lsn if the name does not parse.
func segNoOfLocation(name string, lsn wal.LSN, segSize uint32) uint64 {
	if segno, err := wal.ParseName(name).SegNo(segSize); err == nil {
		return segno
	}
	return wal.SegNoOf(lsn, segSize)
}

const maxMissingListed = 10

// checkRestorable sets b.Restorable and b.Missing: recovery from the backup
// needs every segment from its start to its stop segment on its timeline's
// path, and the history file of that timeline.
func (w *walDir) checkRestorable(b *BackupStatus) {
	b.Missing = nil
	if _, ok := w.histories[b.TLI]; b.TLI > 1 && !ok {
		b.Missing = append(b.Missing, wal.HistoryFileName(b.TLI))
	}
	path := w.path(b.TLI)
	for segno := b.startSeg; segno <= b.stopSeg && len(b.Missing) < maxMissingListed; segno++ {
		tli := w.tliFor(path, segno)
		if !w.has(tli, segno) {
			b.Missing = append(b.Missing, w.segName(tli, segno))
		}
	}
	b.Restorable = len(b.Missing) == 0
}
