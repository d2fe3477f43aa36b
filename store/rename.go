package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/walrus-archive/walrus/index"
)

// Rename moves the archived file at from to the name to. The new name is
// committed like any upload — validated for its name (a .partial renamed
// onto its segment name must be a complete, valid segment), refused with
// ErrExists if to holds different content — and its blocks are all known,
// so nothing is compressed or written to a pack again. Only then is from
// removed: a crash in between leaves the file under both names, never
// under neither.
func (s *Store) Rename(from, to string) (FileInfo, error) {
	r, err := s.Open(from)
	if err != nil {
		return FileInfo{}, err
	}
	defer r.Close()
	old := r.Info()
	up, err := s.Create(to, FileMeta{Mode: old.Mode, MTime: old.MTime})
	if err != nil {
		return FileInfo{}, err
	}
	if _, err := io.CopyBuffer(up, io.NewSectionReader(r, 0, r.Size()), make([]byte, s.cfg.BlockSize)); err != nil {
		up.Abort()
		return FileInfo{}, fmt.Errorf("store: rename %s: %w", from, err)
	}
	info, err := up.Commit()
	if err != nil {
		return FileInfo{}, err
	}
	if from == to {
		return info, nil
	}
	if err := s.Remove(from); err != nil {
		return FileInfo{}, fmt.Errorf("store: %s is archived as %s too, but removing the old name failed: %w", from, to, err)
	}
	return info, nil
}

// SetMeta changes the mode and/or mtime of the archived file at path (chmod
// and touch through the mount, rsync -a setting what it preserves); nil
// leaves a field as it is. Content never changes. The change is one index
// transaction, durable when SetMeta returns.
func (s *Store) SetMeta(path string, mode *fs.FileMode, mtime *time.Time) (FileInfo, error) {
	dir, name, err := SplitPath(path)
	if err != nil {
		return FileInfo{}, err
	}
	if err := s.settle(joinPath(dir, name)); err != nil {
		return FileInfo{}, err
	}
	o := &setMetaOp{dir: dir, name: name, mode: mode, mtime: mtime}
	if err := s.submit(o); err != nil {
		return FileInfo{}, err
	}
	return infoOf(o.file), nil
}

type setMetaOp struct {
	dir, name string
	mode      *fs.FileMode
	mtime     *time.Time
	file      *index.File // out: the updated record
}

func (o *setMetaOp) apply(x *index.Txn, _ time.Time) error {
	f, err := x.File(o.dir, o.name)
	if errors.Is(err, index.ErrNotFound) {
		return refuse(fmt.Errorf("%w: %s", ErrNotFound, joinPath(o.dir, o.name)))
	}
	if err != nil {
		return err
	}
	if o.mode != nil {
		f.Mode = uint32(o.mode.Perm())
	}
	if o.mtime != nil {
		f.MTime = o.mtime.UnixNano()
	}
	o.file = f
	return x.PutFile(f)
}
