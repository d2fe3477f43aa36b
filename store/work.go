package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Work files are files a writer has not finished yet: rsync's and
// basic_archive's temp files, pg_receivewal's .partial segments, anything
// that is not (yet) an archive name. They are ordinary files in
// DIR/work/ (files/ for the archive root, dirs/NS/ for namespace NS), so
// they support everything a local file does — random writes, truncate,
// reopen by another process, locks — and survive a crash of walrus exactly
// as they would survive one of a plain archive directory: what the writer
// fsynced (the file, and the directory for its name) is there after a
// restart. A work file enters the archive only through CommitWork, which
// validates it as any upload and, once the store has committed it, removes
// the work file.
//
// Callers (package fs) decide which names are work files; the store only
// keeps their bytes apart from the packs and never compresses, validates
// or retains them.

const workDirName = "work"

// WorkPath returns where the work file for path ("NAME" or "NS/NAME")
// lives on disk. It does not create anything.
func (s *Store) WorkPath(path string) (string, error) {
	dir, name, err := SplitPath(path)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.workDir(dir), name), nil
}

func (s *Store) workDir(dir string) string {
	if dir == "" {
		return filepath.Join(s.cfg.Dir, workDirName, "files")
	}
	return filepath.Join(s.cfg.Dir, workDirName, "dirs", dir)
}

// CreateWork creates (O_CREAT, plus O_EXCL or O_TRUNC as given in flags)
// the work file for path and opens it read-write. The work directory is
// created on first use and fsynced with its parents, so only the file's
// own directory entry waits for SyncWorkDir (as in any directory).
func (s *Store) CreateWork(path string, flags int, perm fs.FileMode) (*os.File, error) {
	p, err := s.WorkPath(path)
	if err != nil {
		return nil, err
	}
	// A new work file is an upload on its way: below the upload floor it
	// would eat the space kept for removals and GC.
	if err := s.space.forUpload(0); err != nil {
		return nil, err
	}
	if err := s.ensureWorkDir(filepath.Dir(p)); err != nil {
		return nil, err
	}
	flags = flags&(os.O_EXCL|os.O_TRUNC) | os.O_RDWR | os.O_CREATE
	f, err := os.OpenFile(p, flags, perm.Perm())
	if err != nil {
		return nil, workErr(path, err)
	}
	return f, nil
}

// OpenWork opens the existing work file for path read-write (the caller's
// access mode is enforced by the kernel on its own descriptor); flags may
// carry O_TRUNC.
func (s *Store) OpenWork(path string, flags int) (*os.File, error) {
	p, err := s.WorkPath(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, flags&os.O_TRUNC|os.O_RDWR, 0)
	if err != nil {
		return nil, workErr(path, err)
	}
	return f, nil
}

// StatWork returns the work file's attributes, or ErrNotFound.
func (s *Store) StatWork(path string) (os.FileInfo, error) {
	p, err := s.WorkPath(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, workErr(path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s (not a regular work file)", ErrNotFound, path)
	}
	return fi, nil
}

// RemoveWork unlinks the work file for path, or returns ErrNotFound.
func (s *Store) RemoveWork(path string) error {
	p, err := s.WorkPath(path)
	if err != nil {
		return err
	}
	return workErr(path, os.Remove(p))
}

// RenameWork renames a work file, replacing a work file at to (rename(2)).
func (s *Store) RenameWork(from, to string) error {
	pf, err := s.WorkPath(from)
	if err != nil {
		return err
	}
	pt, err := s.WorkPath(to)
	if err != nil {
		return err
	}
	if err := s.ensureWorkDir(filepath.Dir(pt)); err != nil {
		return err
	}
	return workErr(from, os.Rename(pf, pt))
}

// WorkNames returns the names of the work files in dir, sorted.
func (s *Store) WorkNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(s.workDir(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: list work files of %q: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// SyncWorkDir makes the names of dir's work files durable (fsync of the
// directory: what a writer's fsync of the archive directory asks for).
// Committed files need nothing: a commit is durable when it returns.
func (s *Store) SyncWorkDir(dir string) error {
	err := syncDir(s.workDir(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no work file was ever created there
	}
	return err
}

// RemoveWorkDir removes dir's work directory if it is empty; ErrNotEmpty
// if work files remain (rmdir of a namespace).
func (s *Store) RemoveWorkDir(dir string) error {
	err := os.Remove(s.workDir(dir))
	switch {
	case err == nil, errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("%w: namespace %s has work files", ErrNotEmpty, dir)
	}
	return fmt.Errorf("store: remove work directory of %s: %w", dir, err)
}

// CommitWork archives the work file from under the name to: its bytes go
// through an ordinary Upload (deduplicated, compressed, validated as a
// WAL file of that name) with meta, and once the commit is durable the work
// file is unlinked. On any failure the work file stays as it was, so the
// writer can retry or remove it. An identical file already archived under
// to counts as success (PostgreSQL re-archiving), as with Upload.
//
// Order: the store commit is durable (packs fsynced, index committed)
// before the unlink; a crash in between leaves the work file behind next to
// the archived copy, never the reverse. The unlink itself becomes durable
// with the writer's next fsync of the directory (basic_archive and
// pg_receivewal do one right after the rename).
func (s *Store) CommitWork(from, to string, meta FileMeta) (FileInfo, error) {
	p, err := s.WorkPath(from)
	if err != nil {
		return FileInfo{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return FileInfo{}, workErr(from, err)
	}
	defer f.Close()
	up, err := s.Create(to, meta)
	if err != nil {
		return FileInfo{}, err
	}
	if _, err := io.CopyBuffer(up, f, make([]byte, s.cfg.BlockSize)); err != nil {
		up.Abort()
		return FileInfo{}, workErr(from, err)
	}
	info, err := up.Commit()
	if err != nil {
		return FileInfo{}, err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.cfg.Logger.Warn("store: archived a work file but could not remove it", "from", from, "to", to, "err", err)
	}
	return info, nil
}

// ensureWorkDir creates dir (and its parents up to the data directory)
// and fsyncs each parent that got a new entry, so a work file created in it
// can be made durable by fsyncing dir alone.
func (s *Store) ensureWorkDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if parent := filepath.Dir(dir); len(parent) > len(s.cfg.Dir) {
		if err := s.ensureWorkDir(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store: create work directory: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}

// workErr maps a missing work file to ErrNotFound and keeps the errno of
// anything else (ENOSPC, EDQUOT... reach the writer as themselves).
func workErr(path string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	return fmt.Errorf("store: work file %s: %w", path, err)
}

// CheckoutWork moves the archived file at path back into the work area,
// for a writer that continues it (pg_receivewal reopening its .partial
// after a restart). Order: the work copy is written, fsynced and its name
// made durable before the file record is removed, so the bytes are on disk
// under the name at every instant.
func (s *Store) CheckoutWork(path string, uid, gid int) error {
	r, err := s.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	info := r.Info()
	f, err := s.CreateWork(path, os.O_EXCL, info.Mode)
	if err != nil {
		return err
	}
	if err := s.fillWork(f, r, uid, gid, info.MTime); err != nil {
		f.Close()
		s.RemoveWork(path)
		return err
	}
	if err := f.Close(); err != nil {
		return workErr(path, err)
	}
	if err := s.SyncWorkDir(info.Dir); err != nil {
		return err
	}
	return s.Remove(path)
}

func (s *Store) fillWork(f *os.File, r *Reader, uid, gid int, mtime time.Time) error {
	if _, err := io.CopyBuffer(f, io.NewSectionReader(r, 0, r.Size()), make([]byte, s.cfg.BlockSize)); err != nil {
		return fmt.Errorf("store: check out %s: %w", r.Info().Path, err)
	}
	if err := f.Chown(uid, gid); err != nil {
		return workErr(r.Info().Path, err)
	}
	if err := os.Chtimes(f.Name(), mtime, mtime); err != nil {
		return workErr(r.Info().Path, err)
	}
	return workErr(r.Info().Path, f.Sync())
}
