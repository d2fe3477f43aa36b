package store

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
)

// Problem is one thing verify found wrong.
type Problem struct {
	Kind string `json:"kind"` // "pack", "file" (damaged data), "index" (index and packs disagree) or "continuity" (WAL missing)
	Path string `json:"path"` // file, pack or directory concerned
	Err  string `json:"error"`
}

// Problem kinds.
const (
	ProblemPack       = "pack"
	ProblemFile       = "file"
	ProblemContinuity = "continuity"
)

// DataProblems returns the problems with stored bytes, leaving out WAL
// continuity (files that are missing rather than damaged).
func (r VerifyReport) DataProblems() []Problem {
	var out []Problem
	for _, p := range r.Problems {
		if p.Kind != ProblemContinuity {
			out = append(out, p)
		}
	}
	return out
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Files    int64     `json:"files"`
	Bytes    int64     `json:"bytes"`
	Segments int       `json:"segments"` // full WAL segments found, all timelines
	Seconds  float64   `json:"seconds"`
	Problems []Problem `json:"problems"`
}

// VerifyProgress is called after each file with the totals so far.
type VerifyProgress func(files, bytes int64)

// Verify re-reads every file from its packs (bypassing the cache), checks
// every block hash and the whole-file hash, re-validates WAL headers,
// checks that packs are as long as the index says, that every pack file has
// a valid header and is known to the index, and that the pack journal names
// exactly the files and namespaces the index holds (verifyJournal), and the
// continuity of each directory's WAL (gaps along every timeline's history,
// timeline and history problems: see DirStatus). It returns an error only
// when it could not run; what it found is in the report.
func (s *Store) Verify(ctx context.Context, dir string, progress VerifyProgress) (VerifyReport, error) {
	start := time.Now()
	var rep VerifyReport
	if dir == "" {
		dir = "*"
	}
	rep.Problems = append(rep.Problems, s.verifyPacks()...)
	rep.Problems = append(rep.Problems, s.verifyJournal(ctx, dir)...)
	if err := s.verifyContinuity(dir, &rep); err != nil {
		return rep, err
	}
	err := s.idx.View(func(x *index.Txn) error {
		return x.Files(ctx, dir, func(f *index.File) error {
			if err := s.verifyFile(f); err != nil {
				rep.Problems = append(rep.Problems, Problem{Kind: ProblemFile, Path: f.Path(), Err: err.Error()})
			}
			rep.Files++
			rep.Bytes += f.Size
			if progress != nil {
				progress(rep.Files, rep.Bytes)
			}
			return nil
		})
	})
	rep.Seconds = time.Since(start).Seconds()
	return rep, err
}

// verifyContinuity adds each directory's WAL continuity problems.
func (s *Store) verifyContinuity(dir string, rep *VerifyReport) error {
	dirs, err := s.statusDirs(dir)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		ds, err := s.DirStatus(d, time.Now())
		if err != nil {
			return err
		}
		rep.Segments += ds.Segments
		for _, p := range ds.Problems {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemContinuity, Path: "/" + d, Err: p})
		}
	}
	return nil
}

// verifyFile streams the file once from its packs, checking every block's
// SHA-256 against the block list (Reader.strict) and the file's identity
// (the whole-file hash, or for HashRoot records the root over size and
// block list), and, for segments, every page header and the zero tail with
// wal.VerifySegment.
func (s *Store) verifyFile(f *index.File) error {
	if want := (f.Size + int64(f.BlockSize) - 1) / max(int64(f.BlockSize), 1); int64(len(f.Blocks)) != want {
		return fmt.Errorf("%w: %d blocks listed for %d bytes", ErrCorrupt, len(f.Blocks), f.Size)
	}
	if f.HashKind == index.HashRoot && index.RootHash(f.Size, f.BlockSize, f.Blocks) != f.Hash {
		return fmt.Errorf("%w: file hash does not match its block list", ErrCorrupt)
	}
	r := &Reader{s: s, f: f, noCache: true, strict: true, checked: -1}
	var src io.Reader = io.NewSectionReader(r, 0, f.Size)
	var whole hash.Hash
	if f.HashKind == index.HashWhole {
		whole = sha256.New()
		src = io.TeeReader(src, whole)
	}
	in := bufio.NewReaderSize(src, int(f.BlockSize))
	name := wal.ParseName(f.Name)
	var err error
	if name.Kind == wal.KindSegment || name.Kind == wal.KindPartial {
		_, err = wal.VerifySegment(name, in, f.Size, s.cfg.AllowUnknownMagic)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, in) // the rest: every block is checked
	}
	if err != nil {
		return err
	}
	if whole != nil && string(whole.Sum(nil)) != string(f.Hash[:]) {
		return fmt.Errorf("%w: whole-file hash mismatch", ErrCorrupt)
	}
	return nil
}

func (s *Store) verifyPacks() []Problem {
	var out []Problem
	var evicted []*index.Pack
	err := s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			if p.Retired {
				return nil
			}
			if p.Evicted {
				evicted = append(evicted, p) // in the bucket only (packcache.go)
				return nil
			}
			name := packFileName(s.packs.dir, p.ID)
			st, err := os.Stat(name)
			switch {
			case err != nil && p.Live > 0:
				out = append(out, Problem{Kind: ProblemPack, Path: name, Err: err.Error()})
			case err == nil && st.Size() < p.Committed:
				out = append(out, Problem{Kind: ProblemPack, Path: name, Err: fmt.Sprintf("pack is %d bytes, index committed %d", st.Size(), p.Committed)})
			}
			return nil
		})
	})
	if err != nil {
		out = append(out, Problem{Kind: ProblemPack, Path: "index", Err: err.Error()})
	}
	return append(out, s.verifyEvicted(evicted)...)
}
