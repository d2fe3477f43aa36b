package fs

import (
	"errors"
	"syscall"

	"github.com/walrus-archive/walrus/store"
)

// Errors of the fs layer itself, mapped by errnoOf like the store's.
var (
	// errSequential: a file streamed into the store cannot be rewritten
	// behind its end (see doc.go, "Writes").
	errSequential = errors.New("fs: write before the end of a file streamed into the store (write it sequentially, or under a temp name and rename it onto the archive name)")
	// errCommitted: the file was committed by fsync or an earlier close.
	errCommitted = errors.New("fs: file already committed; archived files are immutable")
	errImmutable = errors.New("fs: archived files are immutable")
	// errImmutableOwner: chown of an archived file.
	errImmutableOwner = errors.New("fs: archived files belong to the mount's owner (serve --uid/--gid); chown cannot change that")
)

// errnoOf maps an error to the errno the caller sees. It is the only place
// that does: go-fuse's fs.ToErrno does not unwrap %w chains. Callers log
// the cause of every EIO (see fileSystem.fail).
func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, store.ErrElsewhere), errors.Is(err, store.ErrClaims):
		// Another front-end holds the name (or its claim is unreadable):
		// never ENOENT, which would end a PostgreSQL recovery early.
		return syscall.EIO
	case errors.Is(err, store.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, store.ErrExists):
		return syscall.EEXIST
	case errors.Is(err, store.ErrInvalidWAL), errors.Is(err, store.ErrInvalidName):
		return syscall.EINVAL
	case errors.Is(err, store.ErrClusterMismatch), errors.Is(err, errImmutable), errors.Is(err, errCommitted),
		errors.Is(err, errImmutableOwner):
		return syscall.EPERM
	case errors.Is(err, store.ErrNotEmpty):
		return syscall.ENOTEMPTY
	case errors.Is(err, store.ErrTooLarge):
		return syscall.EFBIG
	case errors.Is(err, store.ErrIsDir):
		return syscall.EISDIR
	case errors.Is(err, errSequential):
		return syscall.ESPIPE
	case errors.As(err, &errno):
		return errno // from the staging file system: ENOSPC, EDQUOT, ...
	}
	return syscall.EIO // store.ErrCorrupt, store.ErrClosed, I/O errors
}
