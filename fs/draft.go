package fs

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/walrus-archive/walrus/store"
)

// A draft is a file being written under an archive name through the mount
// and not (yet) in the store. It is in one of two modes, chosen at the
// first write:
//
//   - streaming: the first write is at offset 0. Bytes go straight into a
//     store.Upload as they arrive (a forward gap is filled with zeros);
//     close or fsync commits. A write before the end fails with ESPIPE,
//     since the bytes already handed to the store cannot be rewritten.
//   - staging: the first write (or truncate) is elsewhere. Bytes go to a
//     stageBuffer at any offset; the content is uploaded and committed in
//     one go at close or fsync.
//
// Work files (names that are not archive names) are not drafts: they are
// files in the store's work area (see workHandle).
type draft struct {
	fsys *fileSystem

	mu   sync.Mutex // guards every field below
	path string     // where the draft commits
	meta store.FileMeta
	size int64
	up   *store.Upload // streaming
	buf  *stageBuffer  // staging
	err  error         // first failure: later writes and the commit return it
	done bool          // committed or discarded: no more writes
	// touched is set by the first write, truncate or attribute change. Until then a close
	// does not commit: shells and dd open, dup2 and close the original
	// descriptor before anything is written (see writeHandle.sync).
	touched bool
	// rewrite: opened for writing over an archived file (cp over it). It
	// commits only if something was written or truncated (wrote); until
	// then attribute changes go to the archived file (fileNode.Setattr).
	rewrite, wrote bool
	info           store.FileInfo

	land *store.LandingFile // landing (landing.go): set at create, never changed
}

func (fsys *fileSystem) newDraft(path string, mode uint32) *draft {
	return &draft{
		fsys: fsys, path: path,
		meta: store.FileMeta{Mode: os.FileMode(mode).Perm(), MTime: time.Now(), Origin: store.Origin{Interface: "fuse"}},
	}
}

// write writes p at off.
func (d *draft) write(p []byte, off int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	d.touched, d.wrote = true, true
	if max := d.fsys.st.Config().MaxFileSize; off+int64(len(p)) > max {
		return fmt.Errorf("%w: %s: write beyond %d bytes", store.ErrTooLarge, d.path, max)
	}
	if d.land != nil {
		return d.landWrite(p, off)
	}
	if d.up == nil && d.buf == nil {
		if err := d.start(off == 0); err != nil {
			return d.setErr(err)
		}
	}
	if d.buf != nil {
		if err := d.buf.WriteAt(p, off); err != nil {
			return d.setErr(err) // the staged content is incomplete now
		}
		d.size = d.buf.Size()
		return nil
	}
	if off < d.size {
		return errSequential // the draft stays usable: the write was refused whole
	}
	if err := d.zeros(off - d.size); err != nil {
		return err
	}
	if _, err := d.up.Write(p); err != nil {
		return d.setErr(err)
	}
	d.size += int64(len(p))
	return nil
}

func (d *draft) usable() error {
	if d.err != nil {
		return d.err
	}
	if d.done {
		return errCommitted
	}
	return nil
}

// start picks the mode: streaming into a store upload, or staging.
func (d *draft) start(stream bool) error {
	if !stream {
		d.buf = newStageBuffer(d.fsys)
		return nil
	}
	up, err := d.fsys.st.Create(d.path, d.meta)
	if err != nil {
		return err
	}
	d.up = up
	return nil
}

// zeros streams n zero bytes (a forward seek by the writer).
func (d *draft) zeros(n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeroChunk)))
		if _, err := d.up.Write(zeroChunk[:k]); err != nil {
			return d.setErr(err)
		}
		d.size += k
		n -= k
	}
	return nil
}

var zeroChunk = make([]byte, 64<<10)

// setErr records the first failure and discards a streaming upload.
func (d *draft) setErr(err error) error {
	if d.err == nil {
		d.err = err
	}
	if d.up != nil {
		d.up.Abort()
		d.up = nil
	}
	if d.land != nil {
		d.land.Abort()
	}
	return d.err
}

// truncate sets the size (ftruncate, or open with O_TRUNC).
func (d *draft) truncate(n int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	d.touched, d.wrote = true, true
	if d.land != nil {
		return d.landTruncate(n)
	}
	switch {
	case n == d.size:
		return nil
	case d.buf == nil && d.up == nil:
		if err := d.start(false); err != nil {
			return d.setErr(err)
		}
	case d.up != nil && n > d.size:
		return d.zeros(n - d.size)
	case d.up != nil:
		return errSequential
	}
	if err := d.buf.Truncate(n); err != nil {
		return d.setErr(err)
	}
	d.size = n
	return nil
}

// setMeta records mode and mtime for the commit. It counts as touching the
// draft: touch(1) creates, sets times and closes, and that close commits.
func (d *draft) setMeta(mode *uint32, mtime *time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.touched = d.touched || mode != nil || mtime != nil
	if mode != nil {
		d.meta.Mode = os.FileMode(*mode).Perm()
	}
	if mtime != nil {
		d.meta.MTime = *mtime
	}
}

// readAt reads staged content back.
func (d *draft) readAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.land != nil {
		return d.landReadAt(p, off)
	}
	if d.buf == nil {
		if d.up != nil {
			return 0, errSequential
		}
		return 0, io.EOF
	}
	return d.buf.ReadAt(p, off)
}

// attrs returns what stat shows while the draft is open.
func (d *draft) attrs() (mode os.FileMode, size int64, mtime time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meta.Mode, d.landSize(), d.meta.MTime
}

// commit makes a non-temp draft durable under its own path, once; later
// calls return the first result. Unless force is set, a draft nothing was
// written to is left alone (returning nil).
func (d *draft) commit(force bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return d.err
	}
	d.touched = d.touched || d.landSize() > 0 // the kernel wrote it (passthrough)
	if (!d.touched && !force) || (d.rewrite && !d.wrote) {
		return nil
	}
	err := d.commitLocked(d.path)
	d.done = true
	if err != nil {
		d.setErr(err)
	}
	d.freeLocked()
	return err
}

func (d *draft) commitLocked(path string) error {
	if d.err != nil {
		return d.err
	}
	if d.land != nil {
		info, err := d.land.Commit(d.meta)
		d.info = info
		return err
	}
	up := d.up
	d.up = nil
	if up == nil {
		var err error
		if up, err = d.fsys.st.Create(path, d.meta); err != nil {
			return err
		}
		if d.buf != nil {
			if err := d.buf.WriteTo(up, d.fsys.st.Config().BlockSize); err != nil {
				up.Abort()
				return err
			}
		}
	}
	// Mode and times set while streaming (cp -p sets them on the open
	// descriptor before close) are committed with the file.
	up.SetMeta(d.meta)
	info, err := up.Commit()
	if err != nil {
		return err
	}
	d.info = info
	return nil
}

// discard drops the draft's content (unlink, failed close, unmount).
func (d *draft) discard() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.done {
		d.done = true
		if d.up != nil {
			d.up.Abort()
			d.up = nil
		}
		if d.land != nil {
			d.land.Abort()
		}
	}
	d.freeLocked()
}

func (d *draft) freeLocked() {
	if d.buf != nil {
		d.buf.Close()
		d.buf = nil
	}
}

// replacing reports whether the draft is open and carries new content
// (anything but a rewrite nothing was written to yet).
func (d *draft) replacing() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.done && (!d.rewrite || d.wrote)
}

// committed returns the file's info once the draft is in the store.
func (d *draft) committed() (store.FileInfo, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.info, d.done && d.err == nil && d.info.Path != ""
}
