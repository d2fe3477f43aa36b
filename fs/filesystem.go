package fs

import (
	"errors"
	"log/slog"
	"sort"
	"strings"
	"sync"
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

	mu    sync.Mutex        // guards temps
	temps map[string]*draft // dot-name drafts by path, until renamed or unlinked
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
		errors.Is(err, errSequential), errors.Is(err, errCommitted):
		fsys.log.Warn("fuse: refused", "op", op, "path", path, "errno", errno.Error(), "reason", err)
	case errno != syscall.ENOENT:
		fsys.log.Debug("fuse: failed", "op", op, "path", path, "errno", errno.Error(), "err", err)
	}
	return errno
}

func (fsys *fileSystem) temp(path string) *draft {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return fsys.temps[path]
}

// addTemp registers d unless its path is taken.
func (fsys *fileSystem) addTemp(d *draft) bool {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.temps[d.path] != nil {
		return false
	}
	fsys.temps[d.path] = d
	return true
}

// removeTemp unregisters the draft at path if it is d (any draft if d is nil).
func (fsys *fileSystem) removeTemp(path string, d *draft) *draft {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	cur := fsys.temps[path]
	if cur == nil || (d != nil && cur != d) {
		return nil
	}
	delete(fsys.temps, path)
	return cur
}

// moveTemp renames a temp draft to another temp name, replacing what is
// there; it returns the replaced draft.
func (fsys *fileSystem) moveTemp(d *draft, to string) *draft {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	from := d.currentPath()
	old := fsys.temps[to]
	delete(fsys.temps, from)
	d.mu.Lock()
	d.path = to
	d.mu.Unlock()
	fsys.temps[to] = d
	if old == d {
		return nil
	}
	return old
}

// tempNames returns the names of the temp drafts in dir, sorted.
func (fsys *fileSystem) tempNames(dir string) []string {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	var out []string
	for p := range fsys.temps {
		d, name, _ := store.SplitPath(p)
		if d == dir {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (fsys *fileSystem) hasTemps(dir string) bool { return len(fsys.tempNames(dir)) > 0 }

// discardTemps drops every temp draft (unmount).
func (fsys *fileSystem) discardTemps() {
	fsys.mu.Lock()
	temps := fsys.temps
	fsys.temps = map[string]*draft{}
	fsys.mu.Unlock()
	for _, d := range temps {
		d.discard()
	}
}

// fileAttr fills out for a regular file.
func (fsys *fileSystem) fileAttr(out *fuse.Attr, size int64, mtime, ctime time.Time) {
	out.Mode = syscall.S_IFREG | uint32(fsys.opts.FileMode)
	out.Size = uint64(size)
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

// checkName validates a new name in dir the way the store will.
func checkName(dir, name string) syscall.Errno {
	if len(name) > 255 {
		return syscall.ENAMETOOLONG
	}
	if _, _, err := store.SplitPath(joinPath(dir, name)); err != nil || strings.Contains(name, "/") {
		return syscall.EINVAL
	}
	return 0
}
