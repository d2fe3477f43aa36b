package store

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/timeline"
	"github.com/walrus-archive/walrus/internal/wal"
)

// WAL status is derived on demand from a key-only scan of a directory's
// names (a million segments in about a second, in memory that does not
// grow with them: package timeline keeps runs of segments, and
// index.ScanFileNames neither copies names nor keeps the index's pages
// resident) plus the few, small .history and .backup files, rather than
// maintained as extra index records: it is then always consistent with the
// files actually present, whichever way they were added or removed.

// StatusReport is `walrus status` in full: the archive totals and, per
// directory, timelines, gaps, backups and the last archived segment. Its JSON
// form is documented in the README and kept stable.
type StatusReport struct {
	Files        int64 `json:"files"`
	LogicalBytes int64 `json:"logical_bytes"`
	StoredBytes  int64 `json:"stored_bytes"` // live bytes in packs
	DiskBytes    int64 `json:"disk_bytes"`   // pack bytes committed, dead bytes included
	Packs        int   `json:"packs"`
	// UnsettledBytes and ColdBytes: the parts of StoredBytes waiting for
	// the settler, and in the cold tier (settle.go).
	UnsettledBytes int64 `json:"unsettled_bytes"`
	ColdBytes      int64 `json:"cold_bytes"`
	// Landed files: acknowledged, waiting to be ingested (Status).
	LandedFiles   int64       `json:"landed_files"`
	LandedBytes   int64       `json:"landed_bytes"`
	LandedFailing int64       `json:"landed_failing"`
	Ratio         float64     `json:"ratio"` // logical / stored
	Time          time.Time   `json:"time"`
	Dirs          []DirStatus `json:"dirs"`
	// Bucket: the upload backlog (Status.Bucket); absent without a bucket.
	Bucket *BucketStatus `json:"bucket,omitempty"`
	// Claims: the name claims shared with other front-ends (Status.Claims).
	Claims *ClaimsStatus `json:"claims,omitempty"`
	// Peers: the other front-ends followed (Status.Peers, peers.go).
	Peers []PeerStatus `json:"peers,omitempty"`
	// Lease: the maintenance lease (Status.Lease, lease.go).
	Lease *LeaseStatus `json:"lease,omitempty"`
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

// TimelineStatus, Gap and BackupStatus are computed by package timeline,
// which documents their meaning.
type (
	TimelineStatus = timeline.Timeline
	Gap            = timeline.Gap
	BackupStatus   = timeline.Backup
)

// StatusReport returns the archive totals and the WAL status of dir, or of
// every directory (and the root, when it holds files) when dir is "" or "*".
func (s *Store) StatusReport(dir string, now time.Time) (StatusReport, error) {
	st, err := s.Status()
	if err != nil {
		return StatusReport{}, err
	}
	rep := StatusReport{Files: st.Files, LogicalBytes: st.LogicalBytes, StoredBytes: st.StoredBytes,
		DiskBytes: st.DiskBytes, Packs: st.Packs, Ratio: ratio(st.LogicalBytes, st.StoredBytes), Time: now, Dirs: []DirStatus{},
		UnsettledBytes: st.UnsettledBytes, ColdBytes: st.ColdBytes,
		LandedFiles: st.LandedFiles, LandedBytes: st.LandedBytes, LandedFailing: st.LandedFailing, Bucket: st.Bucket, Claims: st.Claims, Peers: st.Peers, Lease: st.Lease}
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
	a, err := s.scanWAL(dir, meta.SegSize)
	if err != nil {
		return DirStatus{}, err
	}
	st := a.Status()
	ds := DirStatus{Name: dir, SystemID: meta.SysID, Version: meta.Version, SegmentSize: meta.SegSize,
		Files: meta.Files, Segments: st.Segments, LogicalBytes: meta.LogicalBytes, StoredBytes: meta.StoredBytes,
		Ratio: ratio(meta.LogicalBytes, meta.StoredBytes), LastSegment: st.LastSegment,
		Timelines: st.Timelines, Backups: st.Backups, Problems: st.Problems}
	if ds.LastSegment != "" {
		if f, err := s.Stat(joinPath(dir, ds.LastSegment)); err == nil {
			t := f.Archived.UTC()
			ds.LastArchived, ds.LastAge = &t, now.Sub(t).Seconds()
		}
	}
	return ds, nil
}

// scanWAL feeds package timeline with dir's names (keys only) and its
// parsed .history and .backup files.
func (s *Store) scanWAL(dir string, segSize uint32) (*timeline.Archive, error) {
	a := timeline.New(segSize)
	var small []string
	// Each string(name) below is converted where it is used: AddName and
	// ParseName keep nothing of it, so a segment's name is never copied to
	// the heap, and only the few small files' names are.
	err := s.idx.ScanFileNames(strings.Trim(dir, "/"), func(name []byte) error {
		switch wal.ParseName(string(name)).Kind {
		case wal.KindHistory, wal.KindBackup:
			small = append(small, string(name))
		default:
			a.AddName(string(name))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, name := range s.landedNames(strings.Trim(dir, "/")) {
		a.AddName(name) // landed, not yet ingested (landing.go)
	}
	for _, name := range small {
		data, err := s.readSmallFile(joinPath(dir, name))
		if errors.Is(err, ErrNotFound) {
			continue // removed since the scan
		}
		if err == nil {
			err = addSmall(a, name, data)
		}
		if err != nil {
			a.AddProblem(fmt.Sprintf("%s: %v", name, err))
		}
	}
	return a, nil
}

// addSmall parses a .history or .backup file into a.
func addSmall(a *timeline.Archive, name string, data []byte) error {
	n := wal.ParseName(name)
	if n.Kind == wal.KindHistory {
		h, err := wal.ParseHistory(data)
		if err != nil {
			return err
		}
		a.AddHistory(n.TLI, h)
		return nil
	}
	b, err := wal.ParseBackup(data)
	if err != nil {
		return err
	}
	a.AddBackup(name, b)
	return nil
}

const maxSmallFile = 1 << 20

// readSmallFile reads a .history or .backup file.
func (s *Store) readSmallFile(path string) ([]byte, error) {
	r, err := s.openInternal(path) // status and the settler: not a restore
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if r.Size() > maxSmallFile {
		return nil, fmt.Errorf("%d bytes: far larger than any real history or backup file", r.Size())
	}
	return io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
}
