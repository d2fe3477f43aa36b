package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to the
// disk now, without waiting (sync_file_range with SYNC_FILE_RANGE_WRITE
// only, as PostgreSQL's pg_flush_data does). It is advice and changes
// nothing about durability: the committer's fsync of the pack is still the
// only point after which the bytes count as written, and it returns any
// write-back error (SYNC_FILE_RANGE_WRITE without the WAIT flags neither
// waits for nor consumes one). What it saves is time on the critical path:
// the blocks of an upload are on their way to the disk while the rest of
// the file is still being received, so the fsync before the commit finds
// little left to write. Errors are ignored for the same reason.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
