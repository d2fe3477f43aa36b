package store

import (
	"context"
	"time"

	"github.com/walrus-archive/walrus/internal/retention"
	"github.com/walrus-archive/walrus/internal/wal"
)

// RetainReport says what a retention policy kept and removed in one
// directory (or, with DryRun, would remove).
type RetainReport struct {
	Dir     string              `json:"dir"`
	Policy  string              `json:"policy"`
	DryRun  bool                `json:"dry_run"`
	Kept    []KeptBackup        `json:"kept_backups"`
	Cutoff  string              `json:"cutoff,omitempty"` // first segment kept (any timeline), as XXXXXXXXYYYYYYYY
	Removed []retention.Removal `json:"removed"`
	Note    string              `json:"note,omitempty"`
	// LogicalBytesFreed is the drop in the directory's logical bytes; the
	// stored bytes are reclaimed by GC.
	LogicalBytesFreed int64 `json:"logical_bytes_freed"`
}

// KeptBackup is a backup the policy keeps.
type KeptBackup struct {
	Name         string    `json:"name"`
	Label        string    `json:"label"`
	StartSegment string    `json:"start_segment"`
	StopTime     time.Time `json:"stop_time"`
	Reason       string    `json:"reason"`
}

// Retain applies policy p to dir ("" or "*": every directory) as of now: it
// removes the files retention.Plan chooses, in batches of one index
// transaction each. With dryRun it only reports. The space is reclaimed by a
// later GC.
func (s *Store) Retain(ctx context.Context, dir string, p retention.Policy, now time.Time, dryRun bool) ([]RetainReport, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if !dryRun {
		if err := s.maintainer(); err != nil {
			return nil, err // several front-ends: retention runs on the lease holder (lease.go)
		}
	}
	dirs, err := s.statusDirs(dir)
	if err != nil {
		return nil, err
	}
	var out []RetainReport
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		rep, err := s.retainDir(ctx, d, p, now, dryRun)
		if err != nil {
			return out, err
		}
		out = append(out, rep)
	}
	return out, nil
}

func (s *Store) retainDir(ctx context.Context, dir string, p retention.Policy, now time.Time, dryRun bool) (RetainReport, error) {
	rep := RetainReport{Dir: dir, Policy: p.String(), DryRun: dryRun, Kept: []KeptBackup{}, Removed: []retention.Removal{}}
	meta, err := s.DirMeta(dir)
	if err != nil && dir != "" {
		return rep, err
	}
	in, err := s.retentionInput(dir, meta.SegSize, now)
	if err != nil {
		return rep, err
	}
	dec, err := retention.Plan(p, in)
	if err != nil {
		return rep, err
	}
	rep.Note = dec.Note
	for _, k := range dec.Kept {
		rep.Kept = append(rep.Kept, KeptBackup{Name: k.Name, Label: k.Label, StopTime: k.StopTime, Reason: k.Reason,
			StartSegment: wal.ParseName(k.Name).String()[:24]})
	}
	if dec.HasCutoff {
		rep.Cutoff = wal.SegmentFileName(1, dec.Cutoff, meta.SegSize)[8:]
	}
	if dryRun || len(dec.Remove) == 0 {
		rep.Removed = append(rep.Removed, dec.Remove...)
		return rep, nil
	}
	removed, err := s.removeMany(ctx, dir, dec.Remove, s.blocksPerFile(meta.SegSize))
	rep.Removed = append(rep.Removed, removed...)
	if after, aerr := s.DirMeta(dir); aerr == nil {
		rep.LogicalBytesFreed = max(0, meta.LogicalBytes-after.LogicalBytes)
	}
	if len(removed) > 0 {
		s.log.Info("retention removed files", "dir", dir, "files", len(removed), "cutoff", rep.Cutoff, "policy", rep.Policy)
	}
	return rep, err
}

// retentionInput gathers names and backups (with restorability) of dir.
func (s *Store) retentionInput(dir string, segSize uint32, now time.Time) (retention.Input, error) {
	in := retention.Input{Now: now, SegSize: segSize}
	if err := s.Names(dir, func(name string) error { in.Names = append(in.Names, name); return nil }); err != nil {
		return in, err
	}
	a, err := s.scanWAL(dir, segSize)
	if err != nil {
		return in, err
	}
	for _, b := range a.Status().Backups {
		start, _ := wal.ParseLSN(b.StartLSN)
		in.Backups = append(in.Backups, retention.Backup{Name: b.Name, Label: b.Label, StartLSN: start,
			StartSeg: b.StartSeg, StopTime: b.StopTime, Restorable: b.Restorable})
	}
	return in, nil
}

func (s *Store) blocksPerFile(segSize uint32) int {
	return int(segSize)/s.cfg.BlockSize + 1
}

// maxRemoveEntries bounds the records one removal transaction touches
// (badger refuses transactions past a size derived from its memtable).
const maxRemoveEntries = 4000

// removeMany removes files in batches, each one durable index transaction,
// and returns those actually removed (a name already gone is skipped).
func (s *Store) removeMany(ctx context.Context, dir string, files []retention.Removal, blocksPerFile int) ([]retention.Removal, error) {
	per := max(1, maxRemoveEntries/(blocksPerFile+3))
	var out []retention.Removal
	for len(files) > 0 {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if err := s.maintainer(); err != nil {
			return out, err // lost the lease meanwhile: its holder goes on
		}
		n := min(per, len(files))
		op := &removeFilesOp{dir: dir}
		for _, f := range files[:n] {
			op.names = append(op.names, f.Name)
		}
		gone, err := s.removeLandedMany(dir, op.names)
		if err == nil {
			err = s.submit(op)
		}
		if err != nil {
			return out, err
		}
		for _, name := range op.removed {
			gone[name] = true
		}
		for _, f := range files[:n] {
			if gone[f.Name] {
				out = append(out, f)
			}
		}
		files = files[n:]
	}
	return out, nil
}
