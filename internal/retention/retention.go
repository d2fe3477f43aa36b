// Package retention decides which WAL archive files a retention policy
// removes. It is pure policy math over names, segment numbers and backups;
// the store gathers the facts and applies the decision.
//
// The rules, strongest first:
//   - nothing is removed unless at least one restorable backup is kept;
//   - a .history file is never removed, nor any file that is not WAL;
//   - nothing at or after the start segment of the oldest kept backup is
//     removed, on any timeline (segment numbers, not names, are compared,
//     as pg_archivecleanup does);
//   - below that cutoff, segments and .partial files are removed, and the
//     .backup files of backups that start below it (their WAL is gone).
//
// A backup is kept when it is among the newest KeepBackups restorable
// backups (by start LSN), or when the recovery window needs it: every
// restorable backup that stopped within the window, plus the newest one that
// stopped before the window began (recovery to the window's first moment
// starts from it). A backup whose WAL is incomplete never counts toward
// KeepBackups, so a broken newest backup cannot cost the last good one.
package retention

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/walrus-archive/walrus/internal/wal"
)

// ErrNoPolicy means neither KeepBackups nor KeepWindow was given.
var ErrNoPolicy = errors.New("retention: no policy: give a number of backups and/or a recovery window to keep")

// Policy is what to keep.
type Policy struct {
	KeepBackups int           // the newest N restorable backups; 0: not by count
	KeepWindow  time.Duration // point-in-time recovery this far back; 0: not by time
}

// Validate checks that p asks for something.
func (p Policy) Validate() error {
	if p.KeepBackups < 0 || p.KeepWindow < 0 {
		return fmt.Errorf("retention: negative policy %+v", p)
	}
	if p.KeepBackups == 0 && p.KeepWindow == 0 {
		return ErrNoPolicy
	}
	return nil
}

func (p Policy) String() string {
	switch {
	case p.KeepBackups > 0 && p.KeepWindow > 0:
		return fmt.Sprintf("keep the newest %d backups and a %s recovery window", p.KeepBackups, p.KeepWindow)
	case p.KeepBackups > 0:
		return fmt.Sprintf("keep the newest %d backups", p.KeepBackups)
	}
	return fmt.Sprintf("keep a %s recovery window", p.KeepWindow)
}

// Backup is a base backup known from its .backup file.
type Backup struct {
	Name       string // the .backup file
	Label      string
	StartLSN   wal.LSN
	StartSeg   uint64
	StopTime   time.Time
	Restorable bool // all of its WAL is present
}

// Input is the state of one archive directory.
type Input struct {
	Now     time.Time
	SegSize uint32
	Names   []string // every file in the directory
	Backups []Backup
}

// Kept is a backup the policy keeps, and why.
type Kept struct {
	Backup
	Reason string
}

// Removal is a file to remove, and why.
type Removal struct {
	Name   string
	Reason string
}

// Decision is what the policy does to one directory.
type Decision struct {
	Kept      []Kept // newest first
	HasCutoff bool
	Cutoff    uint64 // segment number: everything below may go
	CutoffBy  string // the backup whose start is the cutoff
	Remove    []Removal
	Note      string // why nothing is removed, when that is the case
}

// Plan applies p to in.
func Plan(p Policy, in Input) (Decision, error) {
	var d Decision
	if err := p.Validate(); err != nil {
		return d, err
	}
	if !wal.ValidSegmentSize(in.SegSize) {
		d.Note = "no WAL segment archived yet: nothing to remove"
		return d, nil
	}
	d.Kept = keep(p, in)
	if len(d.Kept) == 0 {
		d.Note = "no restorable backup: nothing is removed"
		return d, nil
	}
	oldest := d.Kept[0]
	for _, k := range d.Kept[1:] {
		if k.StartSeg < oldest.StartSeg {
			oldest = k
		}
	}
	d.HasCutoff, d.Cutoff, d.CutoffBy = true, oldest.StartSeg, oldest.Name
	d.Remove = removals(in, d.Cutoff, d.CutoffBy)
	return d, nil
}

// keep chooses the kept backups, newest first.
func keep(p Policy, in Input) []Kept {
	var good []Backup
	for _, b := range in.Backups {
		if b.Restorable {
			good = append(good, b)
		}
	}
	sort.SliceStable(good, func(i, j int) bool { return good[i].StartLSN > good[j].StartLSN })
	reason := map[string]string{}
	for i, b := range good {
		if i < p.KeepBackups {
			reason[b.Name] = fmt.Sprintf("one of the newest %d restorable backups", p.KeepBackups)
		}
	}
	if p.KeepWindow > 0 {
		windowStart := in.Now.Add(-p.KeepWindow)
		base := -1 // newest backup that stopped before the window began
		for i, b := range good {
			if !b.StopTime.Before(windowStart) {
				addReason(reason, b.Name, fmt.Sprintf("stopped within the %s recovery window", p.KeepWindow))
			} else if base < 0 || b.StopTime.After(good[base].StopTime) {
				base = i
			}
		}
		if base >= 0 {
			addReason(reason, good[base].Name, fmt.Sprintf("base for recovery to the start of the %s window (%s)",
				p.KeepWindow, windowStart.UTC().Format(time.RFC3339)))
		}
	}
	var out []Kept
	for _, b := range good {
		if r, ok := reason[b.Name]; ok {
			out = append(out, Kept{Backup: b, Reason: r})
		}
	}
	return out
}

func addReason(m map[string]string, name, r string) {
	if m[name] == "" {
		m[name] = r
	} else {
		m[name] += "; " + r
	}
}

// removals lists the files below the cutoff that may go.
func removals(in Input, cutoff uint64, by string) []Removal {
	cutName := wal.SegmentFileName(1, cutoff, in.SegSize)[8:]
	var out []Removal
	for _, name := range in.Names {
		n := wal.ParseName(name)
		var what string
		switch n.Kind {
		case wal.KindSegment:
			what = "segment"
		case wal.KindPartial:
			what = "partial segment"
		case wal.KindBackup:
			what = "backup history file of a backup starting"
		default:
			continue // .history and non-WAL files are never removed
		}
		segno, err := n.SegNo(in.SegSize)
		if err != nil || segno >= cutoff {
			continue
		}
		out = append(out, Removal{Name: name, Reason: fmt.Sprintf("%s before segment ########%s, where the oldest kept backup %s starts", what, cutName, by)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
