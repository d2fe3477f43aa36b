// Package fs serves the segment store as a FUSE file system (go-fuse/v2
// fs API) that looks like the classic archive directory /db/pg_archived:
// archive_command 'cp %p /db/pg_archived/%f', restore_command
// 'cp /db/pg_archived/%f %p', rsync into it, ls, rm and pg_archivecleanup.
// It holds no storage logic: every change goes through package store.
//
// # Tree
//
// The root holds files and namespaces (store directories); a namespace
// holds files only. Files are owned by Options.UID/GID with
// Options.FileMode; stat shows the logical size, the mtime the writer gave
// (cp: the time of the copy; rsync -a: the source's) and the archive time as
// ctime. mkdir creates a namespace, rmdir removes an empty one, unlink
// removes a file (all EROFS with ReadOnly). Extended attributes are off
// (ENOTSUP), so cp --preserve=all and rsync -a carry on without them.
//
// # Writes
//
// A file written through the mount is a draft (draft.go) until the store
// has committed it:
//
//   - Under its final name (cp, cat >): the first write at offset 0
//     streams the bytes into a store.Upload as they arrive; close (FLUSH)
//     or fsync commits, and close returns the outcome: 0 only when the file
//     is durable. A later write before the end fails with ESPIPE (the bytes
//     are already in the upload); a first write elsewhere stages instead.
//   - Under a temp name (leading dot: rsync's .NAME.XXXXXX): the bytes are
//     staged (memory, then an unlinked spill file in Options.StageDir) and
//     never reach the store under the temp name. rename onto the final name
//     commits; when rename returns 0 the file is durable and the final name
//     shows the complete content at once. A failed commit fails the rename
//     (EEXIST: different content exists; EINVAL: invalid WAL; EPERM:
//     another cluster) and keeps the temp file until it is unlinked.
//     Unmounting discards temp files that were never renamed.
//
// Visibility: a file being written under its final name is invisible
// (lookup ENOENT, absent from readdir) to everyone until it is committed;
// the writer keeps using its descriptor. CREATE answers it with entry and
// attribute timeouts of 0 so the kernel asks again on the next lookup. So a
// second process never observes a partial file under a final name. Temp
// files are visible with their staged size.
//
// Archived files are immutable. Opening one for writing (cp over it, with
// O_TRUNC) starts a draft of the same name; the store accepts it at close
// only if the content is identical, else close fails with EEXIST and the
// original stays intact and readable throughout. Write handles use direct
// I/O so refused bytes never enter the kernel's page cache. Committed
// files do not rename (EXDEV: mv falls back to copy and unlink).
//
// Errors: errnoOf is the one mapping from store errors to errno. Refusals
// (different content, invalid WAL, other cluster) are logged with the
// reason, and the cause of every EIO is logged.
//
// # Caching
//
// Reads return FOPEN_KEEP_CACHE and committed files get long entry and
// attribute timeouts (Options.EntryTimeout, AttrTimeout): their content
// never changes. Names that do not exist are never cached, because files
// also arrive by other paths (the rsync gateway). A file removed by other
// means (retention) may stay listed in the kernel's cache until its entry
// times out; opening it then fails with ENOENT. Opening a segment for
// reading asks the store to prefetch the rest of it and the next
// Options.Prefetch segments (store.Prefetch).
// ls uses READDIR (READDIRPLUS is off) over the store's key-only listing.
//
// # Memory
//
// Staging holds at most Options.StageMemory bytes per draft and
// Options.StageMemoryTotal bytes over all drafts in memory; the rest
// spills to disk. go-fuse's request buffers are bounded by maxInflight
// (32 MiB). A streaming upload holds one block buffer, and the store bounds
// blocks in flight (Concurrency × BlockSize). So serve's memory is about
// store CacheBytes + StageMemoryTotal + 32 MiB + (Concurrency + open
// writes) × BlockSize, plus the index.
//
// # Locks
//
// fileSystem.mu guards the temp-draft table; fileNode.mu guards a node's
// committed info and draft pointer; draft.mu guards a draft's content and
// state and is held across its store upload and commit, which serialises
// writes, truncation and commit of one draft. Order: fileSystem.mu may be
// held while taking draft.mu (moveTemp); fileNode.mu may be held while
// taking draft.mu (fileNode.state); never the reverse. No lock is held
// while calling into go-fuse.
//
// # Deadlocks
//
// Never touch the mount from the process that serves it (no stat, open or
// exec of files under it; that includes the store's data or staging
// directories being placed inside the mount): the request would wait for a
// server goroutine that may be blocked behind it. See the notes in go-fuse
// fs/api.go. Tests that use the mount run cp, dd, rsync and friends as
// child processes and never chdir into it.
package fs
