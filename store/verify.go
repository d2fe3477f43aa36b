package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
)

// Problem is one thing verify found wrong.
type Problem struct {
	Path string `json:"path"` // file or pack concerned
	Err  string `json:"error"`
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Files    int64     `json:"files"`
	Bytes    int64     `json:"bytes"`
	Problems []Problem `json:"problems"`
}

// VerifyProgress is called after each file with the totals so far.
type VerifyProgress func(files, bytes int64)

// Verify re-reads every file from its packs (bypassing the cache), checks
// every block hash and the whole-file hash, re-validates WAL headers and
// checks that packs are as long as the index says. It returns an error only
// when it could not run; what it found is in the report.
func (s *Store) Verify(ctx context.Context, dir string, progress VerifyProgress) (VerifyReport, error) {
	var rep VerifyReport
	if dir == "" {
		dir = "*"
	}
	rep.Problems = append(rep.Problems, s.verifyPacks()...)
	err := s.idx.View(func(x *index.Txn) error {
		return x.Files(ctx, dir, func(f *index.File) error {
			if err := s.verifyFile(f); err != nil {
				rep.Problems = append(rep.Problems, Problem{Path: f.Path(), Err: err.Error()})
			}
			rep.Files++
			rep.Bytes += f.Size
			if progress != nil {
				progress(rep.Files, rep.Bytes)
			}
			return nil
		})
	})
	return rep, err
}

func (s *Store) verifyFile(f *index.File) error {
	r := &Reader{s: s, f: f, noCache: true}
	h := sha256.New()
	var first []byte
	buf := make([]byte, f.BlockSize)
	for off := int64(0); off < f.Size; {
		n, err := r.ReadAt(buf, off)
		if n > 0 {
			h.Write(buf[:n])
			if off == 0 {
				first = append([]byte(nil), buf[:min(n, wal.DefaultBlockSize)]...)
			}
			off += int64(n)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if errors.Is(err, io.EOF) && off < f.Size {
			return fmt.Errorf("%w: short read at %d of %d", ErrCorrupt, off, f.Size)
		}
	}
	if got := h.Sum(nil); string(got) != string(f.Hash[:]) {
		return fmt.Errorf("%w: whole-file hash mismatch", ErrCorrupt)
	}
	name := wal.ParseName(f.Name)
	if name.Kind == wal.KindSegment || name.Kind == wal.KindPartial {
		if _, err := wal.CheckSegment(name, first, f.Size, s.cfg.AllowUnknownMagic); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) verifyPacks() []Problem {
	var out []Problem
	err := s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			name := packFileName(s.packs.dir, p.ID)
			st, err := os.Stat(name)
			switch {
			case err != nil && p.Live > 0:
				out = append(out, Problem{Path: name, Err: err.Error()})
			case err == nil && st.Size() < p.Committed:
				out = append(out, Problem{Path: name, Err: fmt.Sprintf("pack is %d bytes, index committed %d", st.Size(), p.Committed)})
			}
			return nil
		})
	})
	if err != nil {
		out = append(out, Problem{Path: "index", Err: err.Error()})
	}
	return out
}
