package fs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/walrus-archive/walrus/store"
)

// Server is a mounted archive. Unmount it before closing the store.
type Server struct {
	fsys  *fileSystem
	srv   *fuse.Server
	mount string

	once      sync.Once
	unmountEr error
}

// Mount mounts st at opts.Mount and returns once the kernel has answered
// the first request (the mount is usable). It mounts directly when running
// as root and through fusermount otherwise.
func Mount(st *store.Store, opts Options) (*Server, error) {
	opts, err := opts.withDefaults(st.Config().Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.StageDir, 0o700); err != nil {
		return nil, fmt.Errorf("fs: staging directory: %w", err)
	}
	fsys := &fileSystem{
		st: st, opts: opts, log: opts.Logger,
		budget: memBudget{max: opts.StageMemoryTotal},
	}
	root := &dirNode{fsys: fsys}
	srv, err := gofs.Mount(opts.Mount, root, fsys.mountOptions())
	if err != nil {
		return nil, fmt.Errorf("fs: mount %s: %w", opts.Mount, err)
	}
	fsys.initLanding(srv)
	opts.Logger.Info("mounted", "mount", opts.Mount, "read_only", opts.ReadOnly, "allow_other", opts.AllowOther,
		"landing", fsys.passthrough.Load())
	if opts.ReadAhead > 0 {
		if err := setReadAhead(opts.Mount, opts.ReadAhead>>10); err != nil {
			opts.Logger.Warn("read-ahead of the mount left at the kernel default", "mount", opts.Mount, "err", err)
		}
	}
	return &Server{fsys: fsys, srv: srv, mount: opts.Mount}, nil
}

func (fsys *fileSystem) mountOptions() *gofs.Options {
	o := fsys.opts
	mo := fuse.MountOptions{
		FsName:             "walrus",
		Name:               "walrus",
		DirectMount:        os.Geteuid() == 0,
		AllowOther:         o.AllowOther,
		DisableReadDirPlus: true, // ls of 100 000 names: no per-entry lookup
		DisableXAttrs:      true, // ENOTSUP: cp --preserve=all and rsync -a go on
		MaxWrite:           maxWrite,
		// Bounds go-fuse's request buffers (memory of serve, see doc.go).
		MaxInflightRequestBytes: maxInflight,
		Debug:                   o.Debug,
		DisableSplice:           true, // replies come from Go memory; 1 MiB + header exceeds a pipe
		// No CAP_ATOMIC_O_TRUNC: with it the kernel sets the inode's size
		// to 0 itself when anyone opens an archived file with O_TRUNC (cp
		// re-archiving it), and concurrent readers of the same inode see a
		// prefix and EOF. Without it O_TRUNC arrives as a SETATTR, answered
		// with the archived size (fileNode.truncateAtOpen).
		Options: []string{"default_permissions"},
	}
	if o.ReadOnly {
		mo.Options = append(mo.Options, "ro")
	}
	return &gofs.Options{
		MountOptions: mo,
		// Timeouts are set per reply (see Lookup and Create); leaving
		// these nil keeps go-fuse from replacing the zero ones, and
		// ENOENT is never cached.
		UID:             o.UID,
		GID:             o.GID,
		NullPermissions: true,
	}
}

// Unmount unmounts the file system; if it is busy it detaches it lazily
// (the kernel finishes the unmount when the last user goes). Work files
// stay in the store's work area. It is idempotent.
func (s *Server) Unmount() error {
	s.once.Do(func() {
		err := s.srv.Unmount()
		if err != nil {
			s.fsys.log.Warn("unmount failed, detaching lazily", "mount", s.mount, "err", err)
			err = lazyUnmount(s.mount)
		}
		s.unmountEr = err
	})
	return s.unmountEr
}

// Wait blocks until the file system is unmounted and every request is done.
func (s *Server) Wait() { s.srv.Wait() }

func lazyUnmount(path string) error {
	if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("fs: lazy unmount %s: %w", path, err)
	}
	return nil
}

// RecoverStaleMount detaches a mount at path whose server died ("transport
// endpoint is not connected"), so a new server can mount there. It does
// nothing when path is not such a mount.
func RecoverStaleMount(path string) error {
	if !isStale(path) {
		return nil
	}
	return lazyUnmount(path)
}

// isStale reports whether path is a FUSE mount whose server is gone. stat
// alone can be answered from attributes the kernel cached; statfs always
// asks the server.
func isStale(path string) bool {
	var s syscall.Statfs_t
	_, err := os.Stat(path)
	if err == nil {
		err = syscall.Statfs(path, &s)
	}
	return errors.Is(err, syscall.ENOTCONN)
}
