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
// # Writes: the write model
//
// Every name is of one of two kinds (names.go):
//
//   - Archive names: WAL segments, .history, .backup, and segments
//     compressed by pg_receivewal (NAME.gz, .lz4, .zst). What PostgreSQL's
//     archivers deliver as final.
//   - Work files: every other name — temp names with or without a leading
//     dot (rsync's .NAME.XXXXXX, basic_archive's archtemp.NAME.PID.MS),
//     pg_receivewal's NAME.partial and NAME.gz.partial, anything else.
//
// A work file (work.go) is an ordinary file in the store's work area, and
// behaves like one: random writes, seeking back, truncate, reopen by the
// same or another process, flock/fcntl locks (kept by the kernel), fsync
// (durable: it survives a crash of walrus and is visible again after a
// restart), directory fsync (makes its name durable), chmod, chown, utimes.
// Closing a written .partial fsyncs it, because archive_command copies
// NAME.partial with cp at promotion and exit 0 must mean durable. Work
// files are never compressed, validated or retained; they are not in the
// store's index, so the rsync gateway and walrus status do not see them.
//
// Rename of a work file onto an archive name (or onto any name the store
// holds) commits it: its content is validated for the new name then — not
// at the first write — and archived; when rename returns 0 the file is
// durable under the new name and the work file is gone. A refused commit
// fails the rename with the errno (EEXIST: different content exists;
// EINVAL: invalid WAL; EPERM: another cluster) and keeps the source.
// Rename between work names is rename(2) in the work area.
//
// An archive name written directly (cp, cat >, dd) is a draft (draft.go):
//
//   - the first write at offset 0 streams the bytes into a store.Upload as
//     they arrive (the fast path: no staging); close (FLUSH) or fsync
//     commits, and close returns the outcome: 0 only when the file is
//     durable. A later write before the end fails with ESPIPE (the bytes
//     are already in the upload);
//   - a first write elsewhere (or a truncate) stages in memory, then an
//     unlinked spill file in Options.StageDir, and commits at close.
//
// A WAL segment created through the mount where the kernel takes FUSE
// passthrough is a landing draft (landing.go): the kernel writes it into
// a store landing file directly, and close returns the landing commit's
// outcome (store.LandingFile.Commit: fsynced, validated, durably recorded;
// the store ingests it in the background). Same visibility and errnos;
// being a plain file, it takes writes in any order (no ESPIPE).
//
// Visibility: a draft is invisible (lookup ENOENT, absent from readdir) to
// everyone until it is committed; the writer keeps using its descriptor.
// CREATE answers it with entry and attribute timeouts of 0 so the kernel
// asks again on the next lookup. So a second process never observes a
// partial file under an archive name. Work files are visible at once.
//
// Archived files are immutable in content. Opening one for writing (cp
// over it, with O_TRUNC) starts a draft of the same name; the store
// accepts it at close only if the content is identical (PostgreSQL
// re-archiving), else close fails with EEXIST and the original stays
// intact and readable throughout: the kernel's view of the shared inode
// never changes meanwhile (no atomic O_TRUNC: the O_TRUNC arrives as a
// SETATTR that truncates only the rewrite, answered with the archived
// size), so a concurrent reader always gets the whole committed file. Write handles use direct I/O so refused
// bytes never enter the kernel's page cache. chmod and the mtime of an
// archived file take effect (store.SetMeta: rsync -a re-pushing a file
// sets what it preserves); chown to anyone but the mount's owner and a
// truncate fail with EPERM. An archived file renames within the store
// (store.Rename: validated for the new name, no bytes copied). stat shows
// st_blocks from the stored (compressed) bytes, so du shows real use.
// Names over 255 bytes get ENAMETOOLONG.
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
// times out; opening it then fails with ENOENT. Once a segment's handle
// has been asked for 256 KiB (a restore streaming it, not the few pages
// the kernel re-reads of a cached file), it asks the store to prefetch the
// rest of it and the next Options.Prefetch segments (store.Prefetch); a
// segment the kernel serves from its page cache prefetches nothing. A restore's
// cp of a cached segment costs one round trip, OPEN (RELEASE is
// asynchronous): read handles take FOPEN_NOFLUSH, and LSEEK answers ENOSYS
// so the kernel answers SEEK_DATA/SEEK_HOLE itself.
// ls uses READDIR (READDIRPLUS is off) over the store's key-only listing.
//
// # Memory
//
// Staging holds at most Options.StageMemory bytes per draft and
// Options.StageMemoryTotal bytes over all drafts in memory; the rest
// spills to disk. go-fuse's request buffers are bounded by maxInflight
// (32 MiB). A READ reply is written from the store's cached blocks, pinned
// until it is sent (store.Reader.Slices); a block evicted meanwhile stays
// in memory until then, so in-flight READs (bounded by maxInflight) can
// hold up to that much beyond the cache's bound. A streaming upload holds
// one block buffer, and the store bounds blocks in flight (Concurrency ×
// BlockSize). So serve's memory is about
// store CacheBytes + StageMemoryTotal + 32 MiB + (Concurrency + open
// writes) × BlockSize, plus the index.
//
// # Locks
//
// fileNode.mu guards a node's state (committed info, draft, work path,
// rewrite draft); draft.mu guards a draft's content and state and is held
// across its store upload and commit, which serialises writes, truncation
// and commit of one draft; workHandle.mu guards its dirty flag. Order:
// fileNode.mu may be held while taking draft.mu (fileNode.state); never the
// reverse. No lock is held
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
