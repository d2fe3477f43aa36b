package fs

import (
	"context"
	"errors"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/walrus-archive/walrus/store"
)

// dirNode is the archive root (dir "") or a namespace (one level below).
type dirNode struct {
	gofs.Inode
	fsys *fileSystem
	dir  string // immutable
}

func (n *dirNode) isRoot() bool { return n.dir == "" }

func (n *dirNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.dirAttr(&out.Attr)
	out.SetTimeout(n.fsys.opts.AttrTimeout)
	return 0
}

// Setattr accepts and ignores mode, owner and time changes (rsync -a sets
// the directory's mtime at the end).
func (n *dirNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	defer func() { out.Ino = n.StableAttr().Ino }() // see fileNode.Setattr
	return n.Getattr(ctx, f, out)
}

// Lookup finds, in this order: a work file (names that are not archive
// names only), a namespace (root only), a committed file. Files being
// written under an archive name are not found until they are committed
// (see doc.go).
func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if len(name) > maxName {
		return nil, syscall.ENAMETOOLONG
	}
	path := joinPath(n.dir, name)
	if !isArchiveName(name) {
		fi, err := n.fsys.st.StatWork(path)
		if err == nil {
			return n.workChild(ctx, name, path, fi, out), 0
		}
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalidName) {
			return nil, n.fsys.fail("lookup", path, err)
		}
	}
	if n.isRoot() {
		ok, err := n.fsys.st.IsDir(name)
		if err != nil {
			return nil, n.fsys.fail("lookup", path, err)
		}
		if ok {
			return n.dirChild(ctx, name, out), 0
		}
	}
	info, err := n.fsys.st.Stat(path)
	if err != nil {
		return nil, n.fsys.fail("lookup", path, err)
	}
	return n.fileChild(ctx, name, info, out), 0
}

// dirChild returns the namespace node, reusing the known one.
func (n *dirNode) dirChild(ctx context.Context, name string, out *fuse.EntryOut) *gofs.Inode {
	n.fsys.dirAttr(&out.Attr)
	n.setTimeouts(out, n.fsys.opts.AttrTimeout)
	if c := n.GetChild(name); c != nil {
		if _, ok := c.Operations().(*dirNode); ok {
			return c
		}
	}
	return n.NewInode(ctx, &dirNode{fsys: n.fsys, dir: name}, gofs.StableAttr{Mode: syscall.S_IFDIR})
}

// fileChild returns the node of a committed file, reusing the known one
// (and so the kernel's page cache) when it holds the same content.
func (n *dirNode) fileChild(ctx context.Context, name string, info store.FileInfo, out *fuse.EntryOut) *gofs.Inode {
	n.fsys.fileAttr(&out.Attr, info.Mode, info.Size, info.Stored, info.MTime, info.Archived)
	n.setTimeouts(out, n.fsys.opts.AttrTimeout)
	if c := n.GetChild(name); c != nil {
		if fn, ok := c.Operations().(*fileNode); ok && fn.workPath() == "" {
			if cur, d := fn.state(); d == nil && cur.Hash == info.Hash {
				return c
			}
		}
	}
	return n.NewInode(ctx, &fileNode{fsys: n.fsys, info: info}, gofs.StableAttr{Mode: syscall.S_IFREG})
}

func (n *dirNode) setTimeouts(out *fuse.EntryOut, attr time.Duration) {
	out.SetEntryTimeout(n.fsys.opts.EntryTimeout)
	out.SetAttrTimeout(attr)
}

// Readdir lists namespaces (root only), committed files by key only (fast
// for 100 000 names; READDIRPLUS is off so no per-entry stat follows) and
// work files.
func (n *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	var list []fuse.DirEntry
	dirs := map[string]bool{}
	if n.isRoot() {
		ds, err := n.fsys.st.Dirs()
		if err != nil {
			return nil, n.fsys.fail("readdir", "/", err)
		}
		for _, d := range ds {
			dirs[d.Name] = true
			list = append(list, fuse.DirEntry{Name: d.Name, Mode: syscall.S_IFDIR})
		}
	}
	err := n.fsys.st.Names(n.dir, func(name string) error {
		if !dirs[name] { // a namespace hides a root file of the same name
			list = append(list, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG})
		}
		return nil
	})
	if err != nil {
		return nil, n.fsys.fail("readdir", n.dir, err)
	}
	work, err := n.fsys.st.WorkNames(n.dir)
	if err != nil {
		return nil, n.fsys.fail("readdir", n.dir, err)
	}
	for _, name := range work {
		list = append(list, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG})
	}
	return gofs.NewListDirStream(list), 0
}

// Create starts a file. An archive name streams into the store and stays
// invisible until close commits it (entry and attribute timeouts 0, so the
// kernel asks again); any other name is a work file (work.go).
func (n *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if n.fsys.opts.ReadOnly {
		return nil, nil, 0, syscall.EROFS
	}
	if errno := checkName(n.dir, name); errno != 0 {
		return nil, nil, 0, errno
	}
	path := joinPath(n.dir, name)
	if errno := n.taken(path, name); errno != 0 {
		return nil, nil, 0, errno
	}
	if !isArchiveName(name) {
		return n.createWork(ctx, path, flags, mode, out)
	}
	if n.fsys.lands(name) {
		return n.createLanding(ctx, path, mode, out)
	}
	d := n.fsys.newDraft(path, mode)
	node := &fileNode{fsys: n.fsys, draft: d}
	n.fsys.fileAttr(&out.Attr, d.meta.Mode, 0, 0, d.meta.MTime, d.meta.MTime)
	out.SetAttrTimeout(0)
	out.SetEntryTimeout(0)
	child := n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG})
	return child, &writeHandle{node: node, d: d, write: true}, fuse.FOPEN_DIRECT_IO, 0
}

// taken reports EEXIST when path names a namespace or a committed file.
// (The kernel looked the name up before CREATE; this catches races.)
func (n *dirNode) taken(path, name string) syscall.Errno {
	if n.isRoot() {
		if ok, err := n.fsys.st.IsDir(name); err != nil || ok {
			return n.fsys.fail("create", path, orExists(err))
		}
	}
	if _, err := n.fsys.st.StatHere(path); err == nil {
		return syscall.EEXIST
	} else if errnoOf(err) != syscall.ENOENT {
		return n.fsys.fail("create", path, err)
	}
	return 0
}

func orExists(err error) error {
	if err == nil {
		return store.ErrExists
	}
	return err
}

// Mkdir creates a namespace; there is one level only.
func (n *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	switch {
	case n.fsys.opts.ReadOnly:
		return nil, syscall.EROFS
	case !n.isRoot():
		return nil, syscall.EPERM // namespaces do not nest
	}
	if errno := checkName("", name); errno != 0 {
		return nil, errno
	}
	if errno := n.taken(name, name); errno != 0 {
		return nil, errno
	}
	if err := n.fsys.st.Mkdir(name); err != nil {
		return nil, n.fsys.fail("mkdir", name, err)
	}
	n.fsys.dirAttr(&out.Attr)
	n.setTimeouts(out, n.fsys.opts.AttrTimeout)
	return n.NewInode(ctx, &dirNode{fsys: n.fsys, dir: name}, gofs.StableAttr{Mode: syscall.S_IFDIR}), 0
}

func (n *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	switch {
	case n.fsys.opts.ReadOnly:
		return syscall.EROFS
	case !n.isRoot():
		return syscall.ENOENT
	}
	if work, err := n.fsys.st.WorkNames(name); err != nil || len(work) > 0 {
		return n.fsys.fail("rmdir", name, orNotEmpty(err))
	}
	if err := n.fsys.st.Rmdir(name); err != nil {
		return n.fsys.fail("rmdir", name, err)
	}
	return n.fsys.fail("rmdir", name, n.fsys.st.RemoveWorkDir(name))
}

func orNotEmpty(err error) error {
	if err == nil {
		return store.ErrNotEmpty
	}
	return err
}

// Unlink removes a work file, or a committed file from the store.
func (n *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	path := joinPath(n.dir, name)
	if !isArchiveName(name) {
		err := n.fsys.st.RemoveWork(path)
		if !errors.Is(err, store.ErrNotFound) {
			return n.fsys.fail("unlink", path, err)
		}
	}
	return n.fsys.fail("unlink", path, n.fsys.st.Remove(path))
}

// Rename of a work file onto an archive name, or onto a name the store
// holds, archives it (store.CommitWork): when Rename returns 0 the file is
// durable under the new name and the work file is gone; a refused commit
// fails the rename (EEXIST: different content exists; EINVAL: invalid
// WAL; EPERM: another cluster) and keeps the work file. Onto another work
// name it is rename(2) in the work area, replacing what is there. An
// archived file moves within the store (renameCommitted).
func (n *dirNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*dirNode)
	switch {
	case n.fsys.opts.ReadOnly:
		return syscall.EROFS
	case !ok || flags&gofs.RENAME_EXCHANGE != 0:
		return syscall.EINVAL
	}
	if errno := checkName(np.dir, newName); errno != 0 {
		return errno
	}
	from, to := joinPath(n.dir, name), joinPath(np.dir, newName)
	if flags&renameNoReplace != 0 && np.exists(newName) {
		return syscall.EEXIST
	}
	if np.isRoot() && np.isDir(newName) {
		return syscall.EISDIR
	}
	node := n.childNode(name)
	if node != nil {
		node.moving.Lock() // not while it is checked in or out
		defer node.moving.Unlock()
	}
	fi, err := n.fsys.st.StatWork(from)
	if isArchiveName(name) || err != nil {
		return n.renameCommitted(node, from, to)
	}
	if !isArchiveName(newName) && !np.committed(newName) {
		if err := n.fsys.st.RenameWork(from, to); err != nil {
			return n.fsys.fail("rename", from+" -> "+to, err)
		}
		if node != nil {
			node.setWork(to)
		}
		return 0
	}
	meta := store.FileMeta{Mode: fi.Mode().Perm(), MTime: fi.ModTime(), Origin: store.Origin{Interface: "fuse"}}
	info, err := n.fsys.st.CommitWork(from, to, meta)
	if err != nil {
		return n.fsys.fail("rename", from+" -> "+to, err)
	}
	if node != nil {
		node.setCommitted(info)
	}
	return 0
}

// renameCommitted moves an archived file within the store (store.Rename:
// validated for the new name, no bytes copied). A namespace does not move
// (EXDEV), and a file still being written under an archive name is not
// there yet (ENOENT).
func (n *dirNode) renameCommitted(node *fileNode, from, to string) syscall.Errno {
	if _, name, _ := store.SplitPath(from); n.isRoot() && n.isDir(name) {
		return syscall.EXDEV
	}
	info, err := n.fsys.st.Rename(from, to)
	if err != nil {
		return n.fsys.fail("rename", from+" -> "+to, err)
	}
	// rename(2) replaces the target: a work file of that name goes.
	if err := n.fsys.st.RemoveWork(to); err != nil && !errors.Is(err, store.ErrNotFound) {
		n.fsys.log.Warn("fuse: renamed onto a work file but could not remove it", "path", to, "err", err)
	}
	if node != nil {
		node.setCommitted(info)
	}
	return 0
}

// childNode returns the file node the kernel knows under name, if any.
func (n *dirNode) childNode(name string) *fileNode {
	if c := n.GetChild(name); c != nil {
		if fn, ok := c.Operations().(*fileNode); ok {
			return fn
		}
	}
	return nil
}

// committed reports whether the store holds a file under name.
func (n *dirNode) committed(name string) bool {
	_, err := n.fsys.st.StatHere(joinPath(n.dir, name))
	return err == nil
}

const renameNoReplace = 0x1 // linux/fs.h RENAME_NOREPLACE

func (n *dirNode) isDir(name string) bool {
	ok, _ := n.fsys.st.IsDir(name)
	return ok
}

func (n *dirNode) exists(name string) bool {
	path := joinPath(n.dir, name)
	if _, err := n.fsys.st.StatWork(path); err == nil || (n.isRoot() && n.isDir(name)) {
		return true
	}
	return n.committed(name)
}

// Fsync of a directory makes the names of its work files durable (fsync of
// the work directory). Archived files are durable when their commit
// returns, so there is nothing else to do; PostgreSQL's fsync_fname on a
// directory tolerates only EBADF and EINVAL, so this never fails for lack
// of work files.
func (n *dirNode) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	return n.fsys.fail("fsyncdir", n.dir, n.fsys.st.SyncWorkDir(n.dir))
}

// Statfs reports the file system that holds the data directory.
func (n *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var s syscall.Statfs_t
	if err := syscall.Statfs(n.fsys.st.Config().Dir, &s); err != nil {
		return n.fsys.fail("statfs", "/", err)
	}
	out.FromStatfsT(&s)
	return 0
}
