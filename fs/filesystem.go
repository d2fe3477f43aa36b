package fs

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/walrus-archive/walrus/store"
)

// fileSystem is the state shared by every node of one mount.
type fileSystem struct {
	st     *store.Store
	opts   Options
	log    *slog.Logger
	budget memBudget
	// passthrough: the kernel takes FUSE passthrough, so WAL segments
	// created through the mount land (landing.go). Set once after mount.
	passthrough atomic.Bool
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// fail maps err to an errno and logs it: every EIO with its cause, and every
// refusal of content (invalid WAL, another cluster, different content) with
// the reason, since the client only sees the errno.
func (fsys *fileSystem) fail(op, path string, err error) syscall.Errno {
	errno := errnoOf(err)
	switch {
	case errno == 0:
	case errno == syscall.EIO:
		fsys.log.Error("fuse: I/O error", "op", op, "path", path, "err", err)
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrInvalidWAL),
		errors.Is(err, store.ErrClusterMismatch), errors.Is(err, store.ErrTooLarge),
		errors.Is(err, errSequential), errors.Is(err, errCommitted), errors.Is(err, errImmutable),
		errors.Is(err, errImmutableOwner):
		fsys.log.Warn("fuse: refused", "op", op, "path", path, "errno", errno.Error(), "reason", err)
	case errno != syscall.ENOENT:
		fsys.log.Debug("fuse: failed", "op", op, "path", path, "errno", errno.Error(), "err", err)
	}
	return errno
}

// fileAttr fills out for an archived file or a draft: mode is the one its
// writer gave (Options.FileMode where it gave none); stored is what it
// takes on disk (st_blocks, so du shows real use).
func (fsys *fileSystem) fileAttr(out *fuse.Attr, mode os.FileMode, size, stored int64, mtime, ctime time.Time) {
	if mode.Perm() == 0 {
		mode = fsys.opts.FileMode
	}
	out.Mode = syscall.S_IFREG | uint32(mode.Perm())
	out.Size = uint64(size)
	out.Blocks = uint64((stored + 511) / 512)
	out.Nlink = 1
	out.Uid, out.Gid = fsys.opts.UID, fsys.opts.GID
	out.Blksize = maxWrite
	out.SetTimes(&mtime, &mtime, &ctime)
}

func (fsys *fileSystem) dirAttr(out *fuse.Attr) {
	out.Mode = syscall.S_IFDIR | uint32(fsys.opts.DirMode)
	out.Nlink = 2
	out.Uid, out.Gid = fsys.opts.UID, fsys.opts.GID
	out.Blksize = maxWrite
}

// maxName is NAME_MAX: longer names get ENAMETOOLONG, as on a local file
// system (the kernel leaves that check to FUSE servers).
const maxName = 255

// checkName validates a new name in dir the way the store will.
func checkName(dir, name string) syscall.Errno {
	if len(name) > maxName {
		return syscall.ENAMETOOLONG
	}
	if _, _, err := store.SplitPath(joinPath(dir, name)); err != nil || strings.Contains(name, "/") {
		return syscall.EINVAL
	}
	return 0
}
