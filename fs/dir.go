package fs

import (
	"context"
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
	return n.Getattr(ctx, f, out)
}

// Lookup finds, in this order: a temp draft, a namespace (root only), a
// committed file. Files being written under their final name are not
// found until they are committed (see doc.go).
func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	path := joinPath(n.dir, name)
	if isTemp(name) {
		if d := n.fsys.temp(path); d != nil {
			return n.draftChild(ctx, name, d, out), 0
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
	n.fsys.fileAttr(&out.Attr, info.Size, info.MTime, info.Archived)
	n.setTimeouts(out, n.fsys.opts.AttrTimeout)
	if c := n.GetChild(name); c != nil {
		if fn, ok := c.Operations().(*fileNode); ok {
			if cur, d := fn.state(); d == nil && cur.Hash == info.Hash {
				return c
			}
		}
	}
	return n.NewInode(ctx, &fileNode{fsys: n.fsys, info: info}, gofs.StableAttr{Mode: syscall.S_IFREG})
}

// draftChild returns the node of a temp draft.
func (n *dirNode) draftChild(ctx context.Context, name string, d *draft, out *fuse.EntryOut) *gofs.Inode {
	size, mtime := d.attrs()
	n.fsys.fileAttr(&out.Attr, size, mtime, mtime)
	n.setTimeouts(out, 0)
	if c := n.GetChild(name); c != nil {
		if fn, ok := c.Operations().(*fileNode); ok {
			if _, cur := fn.state(); cur == d {
				return c
			}
		}
	}
	return n.NewInode(ctx, &fileNode{fsys: n.fsys, draft: d}, gofs.StableAttr{Mode: syscall.S_IFREG})
}

func (n *dirNode) setTimeouts(out *fuse.EntryOut, attr time.Duration) {
	out.SetEntryTimeout(n.fsys.opts.EntryTimeout)
	out.SetAttrTimeout(attr)
}

// Readdir lists namespaces (root only), committed files by key only (fast
// for 100 000 names; READDIRPLUS is off so no per-entry stat follows) and
// temp drafts.
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
	for _, name := range n.fsys.tempNames(n.dir) {
		list = append(list, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG})
	}
	return gofs.NewListDirStream(list), 0
}

// Create starts a draft. A temp name (leading dot) is staged and visible
// to lookups; any other name streams into the store and stays invisible
// until close commits it (entry and attribute timeouts 0, so the kernel
// asks again).
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
	d := n.fsys.newDraft(path, mode)
	if d.temp && !n.fsys.addTemp(d) {
		return nil, nil, 0, syscall.EEXIST
	}
	node := &fileNode{fsys: n.fsys, draft: d}
	n.fsys.fileAttr(&out.Attr, 0, d.meta.MTime, d.meta.MTime)
	out.SetAttrTimeout(0)
	if d.temp {
		out.SetEntryTimeout(n.fsys.opts.EntryTimeout)
	} else {
		out.SetEntryTimeout(0)
	}
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
	if _, err := n.fsys.st.Stat(path); err == nil {
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
	case n.fsys.hasTemps(name):
		return syscall.ENOTEMPTY
	}
	return n.fsys.fail("rmdir", name, n.fsys.st.Rmdir(name))
}

// Unlink removes a committed file from the store, or drops a temp draft.
func (n *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	path := joinPath(n.dir, name)
	if isTemp(name) {
		if d := n.fsys.removeTemp(path, nil); d != nil {
			d.discard()
			return 0
		}
	}
	return n.fsys.fail("unlink", path, n.fsys.st.Remove(path))
}

// Rename of a temp draft onto a final name commits it: when Rename returns
// 0 the file is durable and the name shows the complete content. A failed
// commit fails the rename and keeps the temp file. Committed files and
// namespaces do not move (EXDEV: mv falls back to copy and unlink).
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
	d := n.fsys.temp(from)
	if d == nil || !isTemp(name) {
		if _, err := n.fsys.st.Stat(from); err == nil || (n.isRoot() && n.isDir(name)) {
			return syscall.EXDEV
		}
		return syscall.ENOENT
	}
	if flags&renameNoReplace != 0 && np.exists(newName) {
		return syscall.EEXIST
	}
	if isTemp(newName) {
		if old := n.fsys.moveTemp(d, to); old != nil {
			old.discard()
		}
		return 0
	}
	if np.isRoot() && np.isDir(newName) {
		return syscall.EISDIR
	}
	info, err := d.commitTo(to)
	if err != nil {
		return n.fsys.fail("rename", from+" -> "+to, err)
	}
	n.fsys.removeTemp(from, d)
	if c := n.GetChild(name); c != nil {
		if fn, ok := c.Operations().(*fileNode); ok {
			fn.setCommitted(info)
		}
	}
	return 0
}

const renameNoReplace = 0x1 // linux/fs.h RENAME_NOREPLACE

func (n *dirNode) isDir(name string) bool {
	ok, _ := n.fsys.st.IsDir(name)
	return ok
}

func (n *dirNode) exists(name string) bool {
	path := joinPath(n.dir, name)
	if n.fsys.temp(path) != nil || (n.isRoot() && n.isDir(name)) {
		return true
	}
	_, err := n.fsys.st.Stat(path)
	return err == nil
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
