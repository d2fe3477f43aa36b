package fs

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/walrus-archive/walrus/internal/wal"
)

// Landing: a WAL segment created through the mount (cp, the common
// archive_command) is written by the kernel straight into a landing file
// of the store (store.CreateLanding) through FUSE passthrough: the server
// sees CREATE, FLUSH and RELEASE, not the 16 WRITEs of 1 MiB. Close
// commits it as any draft does (store.LandingFile.Commit: fsync, the
// checks of an upload, the durable landed record), and the store ingests
// it in the background. Everything else in doc.go's write model holds:
// the draft is invisible until close, close returns the outcome, an
// archived name opened for writing is an ordinary rewrite (never landed:
// the kernel refuses passthrough on an inode that readers hold cached).
//
// Passthrough needs CONFIG_FUSE_PASSTHROUGH, CAP_SYS_ADMIN of the server,
// and a data directory on a file system that is not itself stacked
// (overlayfs: ELOOP). Mount probes it once (initLanding) and logs the
// outcome; where it is refused, segments stream into the store as before.
// Should the kernel refuse a later registration, go-fuse stops asking for
// passthrough and the kernel sends WRITEs, which go into the landing file
// (landWrite): still landed, only slower.
//
// Landing handles are opened without FOPEN_DIRECT_IO: the kernel lets
// direct I/O override passthrough. The inode is new (CREATE), so no
// cached reader shares it.

// initLanding probes FUSE passthrough with a scratch file in the staging
// directory and enables landing if the kernel takes it.
func (fsys *fileSystem) initLanding(srv *fuse.Server) {
	if fsys.opts.NoLanding || fsys.opts.ReadOnly {
		return
	}
	f, err := os.CreateTemp(fsys.opts.StageDir, "passthrough-probe-")
	if err != nil {
		fsys.log.Warn("fuse: passthrough not probed; WAL segments stream into the store", "err", err)
		return
	}
	os.Remove(f.Name())
	defer f.Close()
	id, errno := srv.RegisterBackingFd(&fuse.BackingMap{Fd: int32(f.Fd())})
	if errno != 0 {
		fsys.log.Warn("fuse: kernel refuses passthrough (needs CONFIG_FUSE_PASSTHROUGH, root, a data directory not on overlayfs); WAL segments stream into the store",
			"errno", errno.Error())
		return
	}
	if errno := srv.UnregisterBackingFd(id); errno != 0 {
		fsys.log.Warn("fuse: passthrough probe: unregister", "errno", errno.Error())
	}
	fsys.passthrough.Store(true)
}

// lands reports whether a file created under name lands.
func (fsys *fileSystem) lands(name string) bool {
	return fsys.passthrough.Load() && wal.ParseName(name).Kind == wal.KindSegment
}

// createLanding is Create of a landing draft.
func (n *dirNode) createLanding(ctx context.Context, path string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	lf, err := n.fsys.st.CreateLanding(path, os.FileMode(mode))
	if err != nil {
		return nil, nil, 0, n.fsys.fail("create", path, err)
	}
	d := n.fsys.newDraft(path, mode)
	d.land = lf
	node := &fileNode{fsys: n.fsys, draft: d}
	n.fsys.fileAttr(&out.Attr, d.meta.Mode, 0, 0, d.meta.MTime, d.meta.MTime)
	out.SetAttrTimeout(0)
	out.SetEntryTimeout(0)
	child := n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG})
	return child, &writeHandle{node: node, d: d, write: true}, 0, 0
}

var _ = (gofs.FilePassthroughFder)((*writeHandle)(nil))

// PassthroughFd hands the landing file to the kernel (go-fuse asks once,
// at CREATE or OPEN).
func (h *writeHandle) PassthroughFd() (int, bool) {
	if h.d.land == nil {
		return 0, false
	}
	return int(h.d.land.File().Fd()), true
}

// landWrite writes a WRITE the kernel sent after all (no passthrough).
func (d *draft) landWrite(p []byte, off int64) error {
	if _, err := d.land.File().WriteAt(p, off); err != nil {
		return d.setErr(fmt.Errorf("fs: landing file %s: %w", d.path, err))
	}
	return nil
}

func (d *draft) landTruncate(n int64) error {
	if err := d.land.File().Truncate(n); err != nil {
		return d.setErr(fmt.Errorf("fs: landing file %s: %w", d.path, err))
	}
	return nil
}

func (d *draft) landReadAt(p []byte, off int64) (int, error) {
	n, err := d.land.File().ReadAt(p, off)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// landSize is the draft's size: a landing file's is on disk (the kernel
// writes it).
func (d *draft) landSize() int64 {
	if d.land == nil || d.done {
		return d.size
	}
	if n, err := d.land.Size(); err == nil {
		d.size = n
	}
	return d.size
}
