package fs

import (
	"context"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/store"
)

// fileNode is a regular file in one of three states: committed (in the
// store, immutable), a draft (an archive name being written through the
// mount, see draft.go), or a work file (see work.go). A draft becomes
// committed when it commits; a work file becomes committed when it is
// renamed onto an archive name.
type fileNode struct {
	gofs.Inode
	fsys *fileSystem

	mu    sync.Mutex     // guards info, draft, work, rewrite, opens and pending
	info  store.FileInfo // the committed file, when draft is nil and work is ""
	draft *draft         // the content being written, until committed
	work  string         // path of the work file this node is, until archived
	// rewrite is the newest draft opened for writing over the committed
	// file (cp over an archived file). A SETATTR without a file handle
	// (utimensat, chmod by path: cp -p before its close) goes to it.
	rewrite *draft
	// opening holds, per process, the newest handle it opened for writing
	// over the committed file: O_TRUNC of that open arrives as a SETATTR
	// without a handle from the same process (truncateAtOpen). Per
	// process, so that concurrent cps over one file each find their own.
	opening map[uint32]openTruncater
	opens   int  // open work-file handles
	pending bool // a .partial work file written since it was last checked in

	// moving serialises what moves the node between work area and store:
	// check-in, checkout and rename. Taken before mu, never while holding it.
	moving sync.Mutex
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

// workPath returns the work file's path, or "" if the node is not one.
func (n *fileNode) workPath() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.work
}

func (n *fileNode) setWork(path string) {
	n.mu.Lock()
	n.work = path
	n.mu.Unlock()
}

func (n *fileNode) setCommitted(info store.FileInfo) {
	n.mu.Lock()
	n.info, n.draft, n.work = info, nil, ""
	n.mu.Unlock()
}

func (n *fileNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if p := n.workPath(); p != "" {
		return n.workGetattr(p, f, out)
	}
	info, d := n.state()
	if d != nil {
		mode, size, mtime := d.attrs()
		n.fsys.fileAttr(&out.Attr, mode, size, size, mtime, mtime)
		out.SetTimeout(0) // changes with every write
		return 0
	}
	n.fsys.fileAttr(&out.Attr, info.Mode, info.Size, info.Stored, info.MTime, info.Archived)
	out.SetTimeout(n.fsys.opts.AttrTimeout)
	return 0
}

// Setattr changes drafts and work files. On an archived file, chmod and
// the mtime take effect (store.SetMeta: rsync -a re-pushing a file sets
// what it preserves, and must not fail for it); its content and owner
// cannot change: a truncate to another size or a chown to someone other
// than the mount's owner fails with EPERM.
func (n *fileNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	// go-fuse fills the inode number into GETATTR replies, not SETATTR
	// ones, and the kernel takes a 0 as the file's new st_ino (cp then
	// says the file "was replaced while being copied").
	defer func() { out.Ino = n.StableAttr().Ino }()
	if p := n.workPath(); p != "" {
		return n.workSetattr(p, f, in, out)
	}
	info, d := n.state()
	if d == nil && f == nil && n.truncateAtOpen(ctx, in) {
		return n.Getattr(ctx, nil, out) // the archived attributes: see truncateAtOpen
	}
	rewriting := false
	if h, ok := f.(*writeHandle); ok && h.d.replacing() {
		d, rewriting = h.d, h.d.rewrite
	} else if d == nil {
		d = n.openRewrite()
		rewriting = d != nil
	}
	if d == nil {
		return n.setArchivedAttr(ctx, info, in, out)
	}
	if size, ok := in.GetSize(); ok {
		if err := d.truncate(int64(size)); err != nil {
			return n.fsys.fail("truncate", d.path, err)
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
	if rewriting {
		// Other readers share this inode: the kernel must keep the
		// archived size, not the rewrite's.
		return n.Getattr(ctx, nil, out)
	}
	mo, size, mt := d.attrs()
	n.fsys.fileAttr(&out.Attr, mo, size, size, mt, mt)
	return 0
}

// An openTruncater is a handle opened for writing over an archived file,
// to which the O_TRUNC of its open may still arrive.
type openTruncater interface {
	// truncateAtOpen applies the open's O_TRUNC; false if the handle has
	// been written to since (then the SETATTR is something else).
	truncateAtOpen() bool
}

func (n *fileNode) setOpening(ctx context.Context, h openTruncater) {
	var pid uint32
	if c, ok := fuse.FromContext(ctx); ok {
		pid = c.Pid
	}
	n.mu.Lock()
	if n.opening == nil {
		n.opening = map[uint32]openTruncater{}
	}
	n.opening[pid] = h
	n.mu.Unlock()
}

// truncateAtOpen recognises the SETATTR that carries O_TRUNC of an open
// for writing over an archived file: size 0, no handle, from the process
// that just opened it. The truncation applies to that handle's rewrite
// only; the reply (the caller answers with the archived attributes) keeps
// the kernel's size of the shared inode, so concurrent readers still see
// the whole committed file.
func (n *fileNode) truncateAtOpen(ctx context.Context, in *fuse.SetAttrIn) bool {
	size, ok := in.GetSize()
	if !ok || size != 0 {
		return false
	}
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return false
	}
	n.mu.Lock()
	h := n.opening[c.Pid]
	delete(n.opening, c.Pid) // one O_TRUNC per open
	n.mu.Unlock()
	if h == nil {
		return false
	}
	return h.truncateAtOpen()
}

// openRewrite returns the rewrite draft while it is open and has new
// content.
func (n *fileNode) openRewrite() *draft {
	n.mu.Lock()
	d := n.rewrite
	n.mu.Unlock()
	if d == nil || !d.replacing() {
		return nil
	}
	return d
}

// setArchivedAttr applies a SETATTR to an archived file.
func (n *fileNode) setArchivedAttr(ctx context.Context, info store.FileInfo, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok && int64(size) != info.Size {
		return n.fsys.fail("truncate", info.Path, errImmutable)
	}
	if uid, ok := in.GetUID(); ok && uid != n.fsys.opts.UID {
		return n.fsys.fail("chown", info.Path, errImmutableOwner)
	}
	if gid, ok := in.GetGID(); ok && gid != n.fsys.opts.GID {
		return n.fsys.fail("chown", info.Path, errImmutableOwner)
	}
	var mode *os.FileMode
	if m, ok := in.GetMode(); ok && os.FileMode(m).Perm() != info.Mode {
		pm := os.FileMode(m).Perm()
		mode = &pm
	}
	var mtime *time.Time
	if t, ok := in.GetMTime(); ok && !t.Equal(info.MTime) {
		mtime = &t
	}
	if mode != nil || mtime != nil {
		changed, err := n.fsys.st.SetMeta(info.Path, mode, mtime)
		if err != nil {
			return n.fsys.fail("setattr", info.Path, err)
		}
		n.setCommitted(changed)
	}
	return n.Getattr(ctx, nil, out)
}

// Open returns a reader of the committed file, a write handle, or a handle
// of the work file. Opening a committed file for writing starts a draft of
// the same name: the store accepts it at close only if the content is
// identical (cp over an archived file), and the committed file stays
// readable meanwhile.
func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if write && n.fsys.opts.ReadOnly {
		return nil, 0, syscall.EROFS
	}
	if p := n.workPath(); p != "" {
		return n.openWork(p, flags)
	}
	info, d := n.state()
	switch {
	case d != nil:
		return nil, 0, syscall.ENOENT // not committed yet: only its creator's handle reaches it
	case write && info.Kind == wal.KindPartial:
		h := &continueHandle{node: n, info: info, flags: flags}
		n.setOpening(ctx, h)
		return h, fuse.FOPEN_DIRECT_IO, 0
	case write:
		h := n.rewriteHandle(info)
		n.setOpening(ctx, h)
		return h, fuse.FOPEN_DIRECT_IO, 0
	}
	r, err := n.fsys.st.OpenFrom(info.Path, store.Origin{Interface: "fuse"})
	if err != nil {
		return nil, 0, n.fsys.fail("open", info.Path, err)
	}
	// KEEP_CACHE: the content never changes, so the kernel's page cache
	// stays valid across opens. NOFLUSH: close(2) of a read handle has
	// nothing to commit, so the kernel skips the FLUSH round trip (one
	// per restore_command's cp).
	return &readHandle{fsys: n.fsys, r: r}, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH, 0
}

// Lseek answers ENOSYS, so the kernel stops sending LSEEK (for the whole
// mount, at the first one) and answers SEEK_DATA and SEEK_HOLE itself from
// the size it has: the whole file is data, as go-fuse's default answer said
// after a round trip (cp asks three times per file, because st_blocks shows
// the compressed size and so the file looks sparse). For SEEK_END,
// SEEK_DATA and SEEK_HOLE the kernel still refreshes the size first where
// its attributes have expired (drafts and work files: always).
func (n *fileNode) Lseek(ctx context.Context, f gofs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// rewriteHandle starts a draft over the archived file (cp over it): it
// commits only if its content is identical.
func (n *fileNode) rewriteHandle(info store.FileInfo) *writeHandle {
	d := n.fsys.newDraft(info.Path, uint32(info.Mode))
	d.rewrite = true
	n.mu.Lock()
	n.rewrite = d
	n.mu.Unlock()
	return &writeHandle{node: n, d: d, write: true}
}

func (h *writeHandle) truncateAtOpen() bool {
	if h.d.replacing() {
		return false // written already: a later truncate(2)
	}
	return h.d.truncate(0) == nil
}

// readHandle reads a committed file.
type readHandle struct {
	fsys     *fileSystem
	r        *store.Reader
	read     atomic.Int64 // bytes the kernel asked this handle for
	prefetch sync.Once
}

// streamingRead is how many bytes a handle's READs must have asked for
// before they count as a restore streaming the file (which prefetches). A
// streaming cp sends 128 KiB READs and more from offset 0 on; the kernel
// also re-reads the odd range it dropped from a cached file (make
// compare's warm pass, 98 segments: 16 files got READs of 8–128 KiB, at
// any offset, and each prefetched the next 8 segments, 563 blocks
// decoded for nothing, 6–13 ms of server CPU per segment restored).
const streamingRead = 256 << 10

// Read serves the kernel's READs. Prefetch of the segments after this one
// starts once the handle's READs look like a restore streaming the file
// (streamingRead), not at open: a file the kernel still has in its page
// cache (FOPEN_KEEP_CACHE) is opened and read without any READ reaching
// walrus, or with a few for pages it dropped, and loading its successors
// then would cost CPU (~20 ms a segment, measured) for blocks that are
// likely cached too.
func (h *readHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if k := h.fsys.opts.Prefetch; k > 0 && h.read.Add(int64(len(dest))) >= streamingRead {
		h.prefetch.Do(func() { h.fsys.st.Prefetch(h.r.Info().Path, k) })
	}
	bufs, release, ok, err := h.r.Slices(off, len(dest))
	if !ok {
		k, err := h.r.ReadAt(dest, off)
		if err != nil && err != io.EOF {
			return nil, h.fsys.fail("read", h.r.Info().Path, err)
		}
		return fuse.ReadResultData(dest[:k]), 0
	}
	if err != nil && err != io.EOF {
		release()
		return nil, h.fsys.fail("read", h.r.Info().Path, err)
	}
	return &blockResult{bufs: bufs, release: release}, 0
}

// blockResult is a READ reply made of cached blocks, pinned until go-fuse
// has written the reply (Done), so no copy into the request's buffer: a
// restore's READ of 1 MiB is one block. go-fuse writes a result with
// Slices by writev(2) and calls Done after the write; Bytes copies into
// buf, so a go-fuse that called Done before writing what Bytes returned
// would still send the right bytes.
type blockResult struct {
	bufs    [][]byte
	release func()
	once    sync.Once
}

func (r *blockResult) Size() int {
	n := 0
	for _, b := range r.bufs {
		n += len(b)
	}
	return n
}

func (r *blockResult) Slices() ([][]byte, fuse.Status) { return r.bufs, fuse.OK }

func (r *blockResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	if n := r.Size(); cap(buf) < n {
		buf = make([]byte, 0, n)
	}
	buf = buf[:0]
	for _, b := range r.bufs {
		buf = append(buf, b...)
	}
	return buf, fuse.OK
}

func (r *blockResult) Done() { r.once.Do(r.release) }

func (h *readHandle) Release(ctx context.Context) syscall.Errno {
	h.r.Close()
	return 0
}

// writeHandle writes a draft. Flush (close) commits it and returns the
// outcome; Release only discards what did not commit.
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
		return 0, h.node.fsys.fail("write", h.d.path, err)
	}
	return uint32(len(data)), 0
}

// Read of a draft by its writer: staged bytes are readable, streamed ones
// are in the store already (ESPIPE).
func (h *writeHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := h.d.readAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, h.node.fsys.fail("read", h.d.path, err)
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
	if err := h.d.commit(false); err != nil {
		return h.node.fsys.fail(op, h.d.path, err)
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
	if !h.write {
		return 0
	}
	if err := h.d.commit(true); err != nil {
		h.node.fsys.fail("release", h.d.path, err)
	} else if info, ok := h.d.committed(); ok {
		h.node.setCommitted(info)
	}
	h.d.discard() // frees what did not commit
	return 0
}
