package fs

import (
	"context"
	"io"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/walrus-archive/walrus/store"
)

// fileNode is a regular file: committed (in the store, immutable) or a
// draft (being written through the mount, see draft.go).
type fileNode struct {
	gofs.Inode
	fsys *fileSystem

	mu    sync.Mutex     // guards info and draft
	info  store.FileInfo // the committed file, when draft is nil
	draft *draft         // the content being written, until committed
}

// state returns the committed info, or the draft the node still is. A
// draft that has committed turns the node into a committed file.
func (n *fileNode) state() (store.FileInfo, *draft) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.draft != nil {
		if info, ok := n.draft.committed(); ok {
			n.info, n.draft = info, nil
		}
	}
	return n.info, n.draft
}

func (n *fileNode) setCommitted(info store.FileInfo) {
	n.mu.Lock()
	n.info, n.draft = info, nil
	n.mu.Unlock()
}

func (n *fileNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	info, d := n.state()
	if d != nil {
		size, mtime := d.attrs()
		n.fsys.fileAttr(&out.Attr, size, mtime, mtime)
		out.SetTimeout(0) // changes with every write
		return 0
	}
	n.fsys.fileAttr(&out.Attr, info.Size, info.MTime, info.Archived)
	out.SetTimeout(n.fsys.opts.AttrTimeout)
	return 0
}

// Setattr changes drafts. On committed files it accepts what cannot change
// content (mode, owner and times are ignored: stat shows the mount's
// owner and mode and the archived mtime) and refuses a size change.
func (n *fileNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	info, d := n.state()
	if h, ok := f.(*writeHandle); ok {
		d = h.d
	}
	if d == nil {
		if size, ok := in.GetSize(); ok && int64(size) != info.Size {
			return n.fsys.fail("setattr", info.Path, errImmutable)
		}
		return n.Getattr(ctx, nil, out)
	}
	if size, ok := in.GetSize(); ok {
		if err := d.truncate(int64(size)); err != nil {
			return n.fsys.fail("truncate", d.currentPath(), err)
		}
	}
	var mode *uint32
	if m, ok := in.GetMode(); ok {
		mode = &m
	}
	var mtime *time.Time
	if t, ok := in.GetMTime(); ok {
		mtime = &t
	}
	d.setMeta(mode, mtime)
	size, mt := d.attrs()
	n.fsys.fileAttr(&out.Attr, size, mt, mt)
	return 0
}

// Open returns a reader of the committed file, or a write handle. Opening a
// committed file for writing starts a draft of the same name: the store
// accepts it at close only if the content is identical (cp over an
// archived file), and the committed file stays readable meanwhile.
func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if write && n.fsys.opts.ReadOnly {
		return nil, 0, syscall.EROFS
	}
	info, d := n.state()
	switch {
	case d != nil && !d.temp:
		return nil, 0, syscall.ENOENT // not committed yet: only its creator's handle reaches it
	case d != nil:
		if write && flags&syscall.O_TRUNC != 0 {
			if err := d.truncate(0); err != nil {
				return nil, 0, n.fsys.fail("open", d.currentPath(), err)
			}
		}
		return &writeHandle{node: n, d: d, write: write}, fuse.FOPEN_DIRECT_IO, 0
	case write:
		d := n.fsys.newDraft(info.Path, uint32(info.Mode))
		return &writeHandle{node: n, d: d, write: true}, fuse.FOPEN_DIRECT_IO, 0
	}
	r, err := n.fsys.st.Open(info.Path)
	if err != nil {
		return nil, 0, n.fsys.fail("open", info.Path, err)
	}
	if n.fsys.opts.Prefetch > 0 {
		n.fsys.st.Prefetch(info.Path, n.fsys.opts.Prefetch)
	}
	return &readHandle{fsys: n.fsys, r: r}, fuse.FOPEN_KEEP_CACHE, 0
}

// readHandle reads a committed file.
type readHandle struct {
	fsys *fileSystem
	r    *store.Reader
}

func (h *readHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := h.r.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, h.fsys.fail("read", h.r.Info().Path, err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (h *readHandle) Release(ctx context.Context) syscall.Errno {
	h.r.Close()
	return 0
}

// writeHandle writes a draft. Flush (close) commits a non-temp draft and
// returns the outcome; Release only discards what did not commit.
type writeHandle struct {
	node  *fileNode
	d     *draft
	write bool
}

func (h *writeHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if !h.write {
		return 0, syscall.EBADF
	}
	if err := h.d.write(data, off); err != nil {
		return 0, h.node.fsys.fail("write", h.d.currentPath(), err)
	}
	return uint32(len(data)), 0
}

func (h *writeHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := h.d.readAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, h.node.fsys.fail("read", h.d.currentPath(), err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

// Flush is close(2) of a descriptor (so maybe several times, once per
// dup): the durability point of files written under their final name. The
// first close after data was written commits; a close before any write
// does not (a shell's redirection closes the descriptor it opened after
// dup2, before the command writes).
func (h *writeHandle) Flush(ctx context.Context) syscall.Errno {
	return h.sync("close")
}

// Fsync commits like close: whatever is written then is what is archived.
func (h *writeHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.sync("fsync")
}

func (h *writeHandle) sync(op string) syscall.Errno {
	if !h.write {
		return 0
	}
	if h.d.temp { // committed by rename; report a failed write again
		h.d.mu.Lock()
		err := h.d.err
		h.d.mu.Unlock()
		return h.node.fsys.fail(op, h.d.currentPath(), err)
	}
	if err := h.d.commit(false); err != nil {
		return h.node.fsys.fail(op, h.d.currentPath(), err)
	}
	if info, ok := h.d.committed(); ok {
		h.node.setCommitted(info)
	}
	return 0
}

// Release commits a file that was created and closed without any write
// (touch, : > NAME); the kernel ignores Release's result, so a failure is
// only logged. Anything else not committed by now is discarded.
func (h *writeHandle) Release(ctx context.Context) syscall.Errno {
	if h.d.temp || !h.write {
		return 0
	}
	if err := h.d.commit(true); err != nil {
		h.node.fsys.fail("release", h.d.currentPath(), err)
	} else if info, ok := h.d.committed(); ok {
		h.node.setCommitted(info)
	}
	h.d.discard() // frees what did not commit
	return 0
}
