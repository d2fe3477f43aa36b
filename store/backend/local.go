package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Local is a Backend on a local directory: object name "a/b" is the file
// Dir/a/b. Temporary files are named ".tmp-<random>" in the object's
// directory; List and names never see them (a component never starts with
// "."). A crash can leave one behind; it is never read and is safe to
// delete once no Put runs.
//
// Local checks ctx between steps; a single read or write stuck in the
// kernel (a hung NFS mount) is outside its reach.
type Local struct {
	dir string
}

var _ Backend = (*Local)(nil)

// NewLocal returns a Local on dir, creating it if needed.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("backend: local directory is empty: give a directory path")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("backend: local directory: %w", err)
	}
	return &Local{dir: dir}, nil
}

// Location implements Backend.
func (l *Local) Location() string { return "local:" + l.dir }

func (l *Local) path(name string) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	return filepath.Join(l.dir, filepath.FromSlash(name)), nil
}

// Put implements Backend: see writeTemp and publish for the durability
// order.
func (l *Local) Put(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	return l.put(ctx, name, r, size, false)
}

// PutIfAbsent implements Backend: the temporary file is published with
// link(2), which fails with EEXIST rather than replace, so of concurrent
// callers (in any process on this filesystem) exactly one wins.
func (l *Local) PutIfAbsent(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	return l.put(ctx, name, r, size, true)
}

func (l *Local) put(ctx context.Context, name string, r io.ReaderAt, size int64, exclusive bool) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("backend: put %q: negative size %d", name, size)
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("backend: put %q: %w", name, err)
	}
	if exclusive {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%w: %q", ErrExist, name)
		}
	}
	tmp, err := writeTemp(ctx, dir, r, size)
	if err != nil {
		return fmt.Errorf("backend: put %q: %w", name, err)
	}
	defer os.Remove(tmp) // after a link, or after a failure; a no-op after a rename
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := publish(tmp, p, exclusive); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %q", ErrExist, name)
		}
		return fmt.Errorf("backend: put %q: %w", name, err)
	}
	return nil
}

// writeTemp writes the object to a new temporary file in dir and fsyncs
// it. Order: write all bytes → fsync the file → close. Only a file whose
// bytes are on disk may get the object's name (publish), so a crash
// before publish leaves only an unnamed temporary file, and a crash after
// it the whole object: never a name on a partial or unsynced file.
func writeTemp(ctx context.Context, dir string, r io.ReaderAt, size int64) (string, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	err = copyAt(ctx, f, r, size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// copyAt copies r[0:size) to w, checking ctx between pieces, and fails if
// r ends early.
func copyAt(ctx context.Context, w io.Writer, r io.ReaderAt, size int64) error {
	buf := make([]byte, min(size, 1<<20))
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(int64(len(buf)), size-off))
		m, err := r.ReadAt(buf[:n], off)
		if m < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading the object's source at %d: %w", off+int64(m), err)
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// publish gives the synced temporary file tmp the name p, then fsyncs the
// directory so that the name itself is durable before Put returns.
// rename(2) replaces atomically (a reader opens the old file or the new
// one); link(2) never replaces (EEXIST), which makes PutIfAbsent a claim.
func publish(tmp, p string, exclusive bool) error {
	var err error
	if exclusive {
		err = os.Link(tmp, p)
	} else {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadAt implements Backend.
func (l *Local) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	path, err := l.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return l.wrap("read", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return l.wrap("read", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %q is not a regular file", ErrNotExist, name)
	}
	if off < 0 || off+int64(len(p)) > fi.Size() {
		return shortError(name, off, int64(len(p)), fi.Size())
	}
	n, err := f.ReadAt(p, off)
	if n < len(p) {
		// The file shrank under us: not something Put does (it renames).
		return fmt.Errorf("%w: %q shrank while being read: %v", ErrShort, name, err)
	}
	return nil
}

// Stat implements Backend.
func (l *Local) Stat(ctx context.Context, name string) (Info, error) {
	p, err := l.path(name)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, l.wrap("stat", name, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%w: %q is not a regular file", ErrNotExist, name)
	}
	return Info{Name: name, Size: fi.Size()}, nil
}

// List implements Backend: ListAfter from the start.
func (l *Local) List(ctx context.Context, prefix string, fn func(Info) error) error {
	return l.ListAfter(ctx, prefix, "", fn)
}

// ListAfter implements Backend: it walks the directory holding prefix's
// last complete component, one directory read at a time, in byte order
// of the names: a directory's entries are sorted with "/" appended to
// the subdirectories' names ("a-b" and "a.b" before "a/b", as the names
// sort), and a subdirectory whose names all sort at or before after is
// not read.
func (l *Local) ListAfter(ctx context.Context, prefix, after string, fn func(Info) error) error {
	if err := validPrefix(prefix); err != nil {
		return err
	}
	base := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		base = prefix[:i+1]
	}
	return l.walk(ctx, base, prefix, after, fn)
}

// walk lists directory rel ("" or a name prefix ending in "/") for
// ListAfter.
func (l *Local) walk(ctx context.Context, rel, prefix, after string, fn func(Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ents, err := os.ReadDir(filepath.Join(l.dir, filepath.FromSlash(rel)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil // a directory removed during the walk, or no such prefix
		}
		return fmt.Errorf("backend: list %q: %w", prefix, err)
	}
	type entry struct {
		name string // rel + the entry's name, + "/" for a directory
		d    fs.DirEntry
	}
	es := make([]entry, 0, len(ents))
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), ".") {
			continue // temporary files, and no name has such a component
		}
		name := rel + d.Name()
		if d.IsDir() {
			name += "/"
		}
		es = append(es, entry{name, d})
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.d.IsDir() {
			inPrefix := strings.HasPrefix(e.name, prefix) || strings.HasPrefix(prefix, e.name)
			allBefore := e.name < after && !strings.HasPrefix(after, e.name)
			if inPrefix && !allBefore {
				if err := l.walk(ctx, e.name, prefix, after, fn); err != nil {
					return err
				}
			}
			continue
		}
		if !e.d.Type().IsRegular() || !strings.HasPrefix(e.name, prefix) || e.name <= after {
			continue
		}
		fi, err := e.d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted during the walk
			}
			return fmt.Errorf("backend: list %q: %w", prefix, err)
		}
		if err := fn(Info{Name: e.name, Size: fi.Size()}); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Backend. The directory is fsynced so that the removal
// is durable when Delete returns; empty directories are left in place.
func (l *Local) Delete(ctx context.Context, name string) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("backend: delete %q: %w", name, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("backend: delete %q: %w", name, err)
	}
	return nil
}

func (l *Local) wrap(op, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %q", ErrNotExist, name)
	}
	return fmt.Errorf("backend: %s %q: %w", op, name, err)
}
