package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/store"
)

// A work file (a name that is not an archive name, see names.go) is a file
// in the store's work area (store/work.go), and the mount passes its
// operations through to it: random writes, seeks back, truncate, reopen by
// any process, fsync. Locks (flock, fcntl) are the kernel's own: the mount
// does not ask for FUSE lock requests, so the kernel keeps them locally,
// as for a local file. Attributes are the work file's (size, mode, owner,
// times, blocks); a new work file belongs to the user who created it.
//
// Durability is the local file system's: fsync of the handle fsyncs the
// work file; fsync of the directory fsyncs the work directory, which makes
// created, renamed and unlinked names durable. Closing a .partial fsyncs
// it too (archive_command copies NAME.partial with cp and must have it on
// stable storage when cp exits 0). After a crash of walrus, a restart
// shows every work file as the local file system kept it.
//
// A .partial segment is both: pg_receivewal writes one as a work file and
// renames it when the segment is complete, while archive_command copies
// the old timeline's last segment as NAME.partial at promotion and means
// it as archived. So when the last open handle of a written .partial is
// closed (the close of its only handle, or else the release of the last),
// it is checked in: archived under its own name (validated, like any
// segment) if it is valid, else left a work file. A writer that opens
// an archived .partial for writing without O_TRUNC and writes to it
// (pg_receivewal continuing after a restart) checks it out again at the
// first write (store.CheckoutWork, continueHandle); with O_TRUNC (cp over
// it) it is an ordinary rewrite: identical content
// succeeds, different content is refused.
//
// Renaming a work file onto an archive name (or onto a name the store
// holds) archives it: store.CommitWork uploads its bytes, validated for the
// new name, and removes the work file once the commit is durable; the
// rename returns 0 only then. A refused commit fails the rename with the
// refusal's errno and leaves the work file where it was.

// workHandle is an open work file. Its descriptor follows the file through
// renames (and unlink), as a local descriptor does.
type workHandle struct {
	node *fileNode
	f    *os.File

	mu    sync.Mutex // guards dirty and wrote
	dirty bool       // written since the last fsync
	wrote bool       // written through this handle
}

var (
	_ = (gofs.FileReader)((*workHandle)(nil))
	_ = (gofs.FileWriter)((*workHandle)(nil))
	_ = (gofs.FileFlusher)((*workHandle)(nil))
	_ = (gofs.FileFsyncer)((*workHandle)(nil))
	_ = (gofs.FileReleaser)((*workHandle)(nil))
	_ = (gofs.FileGetattrer)((*workHandle)(nil))
	_ = (gofs.FileAllocater)((*workHandle)(nil))
)

// createWork creates the work file for path and its node.
func (n *dirNode) createWork(ctx context.Context, path string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	f, err := n.fsys.st.CreateWork(path, int(flags), os.FileMode(mode))
	if err != nil {
		return nil, nil, 0, n.fsys.fail("create", path, err)
	}
	// Owned by its creator, as on a local file system (default_permissions
	// lets the kernel check access against what stat shows).
	if c, ok := fuse.FromContext(ctx); ok {
		if err := f.Chown(int(c.Uid), int(c.Gid)); err != nil {
			n.fsys.log.Warn("fuse: cannot give a work file to its creator", "path", path, "err", err)
		}
	}
	node := &fileNode{fsys: n.fsys, work: path, opens: 1}
	if errno := n.fsys.workAttr(&out.Attr, f); errno != 0 {
		f.Close()
		return nil, nil, 0, errno
	}
	n.setTimeouts(out, 0)
	child := n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG})
	return child, &workHandle{node: node, f: f}, fuse.FOPEN_DIRECT_IO, 0
}

// workChild returns the node of the work file at path, reusing the known one.
func (n *dirNode) workChild(ctx context.Context, name, path string, fi os.FileInfo, out *fuse.EntryOut) *gofs.Inode {
	n.fsys.workAttrOf(&out.Attr, fi)
	n.setTimeouts(out, 0)
	if c := n.GetChild(name); c != nil {
		if fn, ok := c.Operations().(*fileNode); ok && fn.workPath() == path {
			return c
		}
	}
	return n.NewInode(ctx, &fileNode{fsys: n.fsys, work: path}, gofs.StableAttr{Mode: syscall.S_IFREG})
}

func (n *fileNode) openWork(path string, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	f, err := n.fsys.st.OpenWork(path, int(flags))
	if err != nil {
		return nil, 0, n.fsys.fail("open", path, err)
	}
	n.addOpen(1)
	return &workHandle{node: n, f: f}, fuse.FOPEN_DIRECT_IO, 0
}

func (n *fileNode) addOpen(k int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.opens += k
	return n.opens
}

// checkout turns the archived .partial back into a work file.
func (n *fileNode) checkout(info store.FileInfo) error {
	n.moving.Lock()
	defer n.moving.Unlock()
	if n.workPath() != "" {
		return nil // checked out by another handle
	}
	if err := n.fsys.st.CheckoutWork(info.Path, int(n.fsys.opts.UID), int(n.fsys.opts.GID)); err != nil {
		return err
	}
	n.fsys.log.Info("fuse: archived .partial written again: it is a work file until its last close", "path", info.Path)
	n.mu.Lock()
	n.work, n.info, n.pending = info.Path, store.FileInfo{}, true
	n.mu.Unlock()
	return nil
}

// continueHandle is an archived .partial opened for writing. Until the
// first write it is the archived file (reads come from the store, fsync
// has nothing to do: PostgreSQL's fsync_fname opens files O_RDWR just to
// fsync them). The open's O_TRUNC (cp over it) makes it an ordinary
// rewrite (a writeHandle: identical content only); else the first write
// checks the file out and it goes on as a workHandle (pg_receivewal
// continuing its .partial after a restart).
type continueHandle struct {
	node  *fileNode
	info  store.FileInfo
	flags uint32

	mu      sync.Mutex   // guards work and rewrite
	work    *workHandle  // checked out
	rewrite *writeHandle // truncated at open
}

func (h *continueHandle) truncateAtOpen() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.work != nil || h.rewrite != nil {
		return false
	}
	h.rewrite = h.node.rewriteHandle(h.info)
	return h.rewrite.d.truncate(0) == nil
}

// delegate returns the handle that took over, if any.
func (h *continueHandle) delegate() fileHandle {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rewrite != nil {
		return h.rewrite
	}
	if h.work != nil {
		return h.work
	}
	return nil
}

// fileHandle is what continueHandle delegates to.
type fileHandle interface {
	gofs.FileReader
	gofs.FileWriter
	gofs.FileFlusher
	gofs.FileFsyncer
	gofs.FileReleaser
}

var (
	_ = (gofs.FileReader)((*continueHandle)(nil))
	_ = (gofs.FileWriter)((*continueHandle)(nil))
	_ = (gofs.FileFlusher)((*continueHandle)(nil))
	_ = (gofs.FileFsyncer)((*continueHandle)(nil))
	_ = (gofs.FileReleaser)((*continueHandle)(nil))
)

func (h *continueHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if w := h.delegate(); w != nil {
		return w.Read(ctx, dest, off)
	}
	r, err := h.node.fsys.st.Open(h.info.Path)
	if err != nil {
		return nil, h.node.fsys.fail("read", h.info.Path, err)
	}
	defer r.Close()
	k, err := r.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, h.node.fsys.fail("read", h.info.Path, err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (h *continueHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.mu.Lock()
	if h.rewrite != nil {
		h.mu.Unlock()
		return h.rewrite.Write(ctx, data, off)
	}
	if h.work == nil {
		if err := h.node.checkout(h.info); err != nil {
			h.mu.Unlock()
			return 0, h.node.fsys.fail("write", h.info.Path, err)
		}
		f, _, errno := h.node.openWork(h.info.Path, h.flags&^syscall.O_TRUNC)
		if errno != 0 {
			h.mu.Unlock()
			return 0, errno
		}
		h.work = f.(*workHandle)
	}
	w := h.work
	h.mu.Unlock()
	return w.Write(ctx, data, off)
}

func (h *continueHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if w := h.delegate(); w != nil {
		return w.Fsync(ctx, flags)
	}
	return 0 // archived: durable already
}

func (h *continueHandle) Flush(ctx context.Context) syscall.Errno {
	if w := h.delegate(); w != nil {
		return w.Flush(ctx)
	}
	return 0
}

func (h *continueHandle) Release(ctx context.Context) syscall.Errno {
	if w := h.delegate(); w != nil {
		return w.Release(ctx)
	}
	return 0
}

// checkIn archives a written .partial work file under its own name once
// no handle has it open (see above): at the close of its only handle, or
// at the release of the last one. A file that is not a valid segment stays
// a work file.
func (n *fileNode) checkIn(closing int) {
	n.moving.Lock()
	defer n.moving.Unlock()
	n.mu.Lock()
	path, due := n.work, n.pending && n.opens == closing
	n.mu.Unlock()
	if path == "" || !due {
		return
	}
	if _, name, _ := store.SplitPath(path); wal.ParseName(name).Kind != wal.KindPartial {
		return
	}
	fi, err := n.fsys.st.StatWork(path)
	if err != nil {
		return
	}
	meta := store.FileMeta{Mode: fi.Mode().Perm(), MTime: fi.ModTime(), Origin: store.Origin{Interface: "fuse"}}
	info, err := n.fsys.st.CommitWork(path, path, meta)
	n.mu.Lock()
	n.pending = false // until it is written again
	n.mu.Unlock()
	if err != nil {
		n.fsys.log.Info("fuse: .partial stays a work file", "path", path, "reason", err)
		return
	}
	n.setCommitted(info)
}

func (n *fileNode) workGetattr(path string, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.SetTimeout(0) // the file changes
	if h, ok := f.(*workHandle); ok {
		return n.fsys.workAttr(&out.Attr, h.f)
	}
	fi, err := n.fsys.st.StatWork(path)
	if err != nil {
		return n.fsys.fail("getattr", path, err)
	}
	n.fsys.workAttrOf(&out.Attr, fi)
	return 0
}

// workSetattr truncates, chowns, chmods and sets times of the work file
// (the kernel has checked the caller may: default_permissions).
func (n *fileNode) workSetattr(path string, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	p, err := n.fsys.st.WorkPath(path)
	if err != nil {
		return n.fsys.fail("setattr", path, err)
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		if err := os.Lchown(p, u, g); err != nil {
			return n.fsys.fail("chown", path, err)
		}
	}
	if size, ok := in.GetSize(); ok {
		if err := n.fsys.checkWorkSize(path, int64(size)); err != nil {
			return n.fsys.fail("truncate", path, err)
		}
		if h, ok := f.(*workHandle); ok {
			err = h.f.Truncate(int64(size))
		} else {
			err = os.Truncate(p, int64(size))
		}
		if err != nil {
			return n.fsys.fail("truncate", path, err)
		}
	}
	if m, ok := in.GetMode(); ok {
		if err := os.Chmod(p, os.FileMode(m).Perm()); err != nil {
			return n.fsys.fail("chmod", path, err)
		}
	}
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok {
		if err := os.Chtimes(p, atime, mtime); err != nil { // a zero time leaves that time as it is
			return n.fsys.fail("utimens", path, err)
		}
	}
	return n.workGetattr(path, f, out)
}

func (fsys *fileSystem) checkWorkSize(path string, end int64) error {
	if max := fsys.st.Config().MaxFileSize; end > max {
		return fmt.Errorf("%w: %s: beyond %d bytes", store.ErrTooLarge, path, max)
	}
	return nil
}

// workAttr fills out from the open work file.
func (fsys *fileSystem) workAttr(out *fuse.Attr, f *os.File) syscall.Errno {
	fi, err := f.Stat()
	if err != nil {
		return fsys.fail("fstat", f.Name(), err)
	}
	fsys.workAttrOf(out, fi)
	return 0
}

func (fsys *fileSystem) workAttrOf(out *fuse.Attr, fi os.FileInfo) {
	out.Mode = syscall.S_IFREG | uint32(fi.Mode().Perm())
	out.Size = uint64(fi.Size())
	out.Nlink = 1
	out.Uid, out.Gid = fsys.opts.UID, fsys.opts.GID
	out.Blksize = maxWrite
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		out.Uid, out.Gid = st.Uid, st.Gid
		out.Blocks = uint64(st.Blocks)
		atime := time.Unix(st.Atim.Sec, st.Atim.Nsec)
		ctime := time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
		mtime := fi.ModTime()
		out.SetTimes(&atime, &mtime, &ctime)
		return
	}
	mtime := fi.ModTime()
	out.SetTimes(&mtime, &mtime, &mtime)
}

func (h *workHandle) path() string { return h.node.workPath() }

func (h *workHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := h.f.ReadAt(dest, off)
	if err != nil && k == 0 && !errors.Is(err, io.EOF) {
		return nil, h.node.fsys.fail("read", h.path(), err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (h *workHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if err := h.node.fsys.checkWorkSize(h.path(), off+int64(len(data))); err != nil {
		return 0, h.node.fsys.fail("write", h.path(), err)
	}
	k, err := h.f.WriteAt(data, off)
	if k > 0 {
		h.mu.Lock()
		h.dirty, h.wrote = true, true
		h.mu.Unlock()
		h.node.mu.Lock()
		h.node.pending = true
		h.node.mu.Unlock()
	}
	if err != nil {
		return uint32(k), h.node.fsys.fail("write", h.path(), err)
	}
	return uint32(k), 0
}

func (h *workHandle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	out.SetTimeout(0)
	return h.node.fsys.workAttr(&out.Attr, h.f)
}

// Allocate is fallocate(2) (posix_fallocate reserves space with it).
func (h *workHandle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if err := h.node.fsys.checkWorkSize(h.path(), int64(off+size)); err != nil {
		return h.node.fsys.fail("fallocate", h.path(), err)
	}
	if err := syscall.Fallocate(int(h.f.Fd()), mode, int64(off), int64(size)); err != nil {
		return h.node.fsys.fail("fallocate", h.path(), err)
	}
	return 0
}

func (h *workHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.sync("fsync")
}

// Flush (close) makes a written .partial durable, and checks it in when
// this is its last open handle; other work files are durable when their
// writer fsyncs them, as on a local file system.
func (h *workHandle) Flush(ctx context.Context) syscall.Errno {
	path := h.path()
	_, name, _ := store.SplitPath(path)
	h.mu.Lock()
	dirty, wrote := h.dirty, h.wrote
	h.mu.Unlock()
	if !isPartial(name) || !wrote {
		return 0
	}
	if dirty {
		if errno := h.sync("close"); errno != 0 {
			return errno
		}
	}
	h.node.checkIn(1) // if this is its only handle
	return 0
}

func (h *workHandle) sync(op string) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.f.Sync(); err != nil {
		return h.node.fsys.fail(op, h.path(), err)
	}
	h.dirty = false
	return 0
}

// Release of the last handle checks in a .partial that a close could not
// (other handles were still open then).
func (h *workHandle) Release(ctx context.Context) syscall.Errno {
	h.f.Close()
	h.node.addOpen(-1)
	h.node.checkIn(0)
	return 0
}
