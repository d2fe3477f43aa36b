// Package store is walrus's segment store: the one place that writes and
// reads archived files. The FUSE filesystem (package fs) and the rsync
// gateway (package rsyncgw) are thin adapters over it.
//
// # Write path and the durability contract
//
// An Upload receives a file's bytes in pieces. Every full block (fixed size,
// aligned to file offsets, Config.BlockSize) is handed to a worker that
//
//  1. hashes it (SHA-256); an all-zero block becomes a hole and is not stored;
//  2. looks the hash up in the index and in the blocks written but not yet
//     committed (dedup); a known block is only referenced;
//  3. compresses it with zstd (one shared encoder, bounded concurrency) and
//     appends a self-describing record to the active pack.
//
// Upload.Commit then validates the file (WAL page header, size, cluster) and
// hands a commit request to the committer goroutine, which gathers every
// request that is waiting (group commit) and, in this order:
//
//  1. fsyncs every pack that received records since the last batch (a new
//     pack's directory entry was fsynced when the pack was created);
//  2. commits all file records, block references, pack lengths and totals
//     in one badger transaction written with SyncWrites;
//  3. only then answers the requests: Commit returns nil, which the adapters
//     turn into close() returning 0 or rsync exiting 0.
//
// A crash before step 2 leaves at most unreferenced bytes at the end of a
// pack; Open truncates every pack to the length the index last committed for
// it (torn-tail repair), so nothing acknowledged is lost and nothing half
// written is ever referenced.
//
// # Immutability
//
// A committed name never changes content. Committing the same name with the
// same whole-file hash succeeds without storing anything (when the name
// exists at Create time, blocks are only hashed and compared, never
// written); different content fails with ErrExists and leaves the original
// untouched. A WAL segment whose system identifier differs from the
// directory's fails with ErrClusterMismatch.
//
// # Read path
//
// Readers map offsets to blocks; a block is read from its pack, CRC-checked,
// decompressed and its SHA-256 compared with the index before any byte is
// returned: a mismatch is ErrCorrupt, never wrong data. Decompressed blocks
// are kept in a byte-bounded LRU cache (Config.CacheBytes) shared by all
// readers; concurrent misses on the same block are loaded once.
//
// # WAL status, retention
//
// Timelines, gaps and backups are derived on demand (walstatus.go) from a
// key-only scan of a directory's names plus its few .history and .backup
// files, so they are always consistent with the files present. Retention
// (retain.go, policy math in internal/retention) removes files in batches,
// each one committer transaction; blocks are reference-counted, and a block
// whose last reference goes is deleted from the index and its bytes leave
// its pack's live count.
//
// # Garbage collection
//
// GC (gc.go) never touches the active pack, packs newer than it, or packs
// holding blocks of uploads in progress (Store.pending). When the active pack
// is itself below the live-fraction threshold, GC seals it first
// (packWriter.sealActive: the next append starts a new pack), so the dead
// bytes of files that never filled a pack can be reclaimed too. A pack with
// no live bytes is retired; any other pack below the threshold, and every
// small sealed pack when there are several (they merge into the active
// pack), is rewritten, fewest live bytes first, and only if its live bytes
// fit in the free space the index does not need (GC never starts a rewrite
// it cannot finish; see "Full disk"):
//
//  1. its records that a block record still points at are appended, CRC
//     checked and byte for byte, to the active pack (packWriter.append);
//  2. the moves go to the committer as a gcMoveOp, so the commit order above
//     applies: the pack the copies went to is fsynced before the index
//     transaction that repoints each block still at its old location, moves
//     its bytes to the new pack's live count and, in the last batch, marks
//     the old pack Retired if its live count reached zero and no upload in
//     progress wrote to it;
//  3. only after that transaction is durable is the old file unlinked
//     (and the pack directory fsynced at the end of the run).
//
// Crash points, and why nothing live is lost:
//   - during 1, or before 2 committed: the index still points every block at
//     the old pack, which is intact; the copies lie past the active pack's
//     committed length (truncated by Open) or, if an upload's commit
//     covered them, are dead bytes for a later GC;
//   - 2 is one badger transaction: all of a batch's moves happen or none;
//     a batch without the retirement leaves blocks split between old and new
//     pack, each block record pointing at a valid, fsynced copy;
//   - after 2, before or during 3: the old pack's record says Retired, so
//     Open deletes the file (repairPacks). No block record points into it:
//     its live count was zero in the same transaction;
//   - a retired record is kept as a tombstone: pack ids are never reused
//     (Open starts above every record), and a commit whose upload wrote a
//     block into a pack that was retired meanwhile is refused with ErrRetry
//     (commitFileOp.checkLocated) instead of referencing deleted bytes.
//
// Open also deletes a pack file no index record names: nothing committed
// refers to it.
//
// Readers racing with GC hold block hashes, not locations; a cache miss
// looks the location up in the index. A read that started before a move
// committed may find its pack unlinked (packFiles.remove unlinks first; a
// reader that holds the file open reads on, and it is closed at its last
// release); a read that fails looks the block up once more
// (Store.loadBlock) and reads the new location.
//
// # Packs
//
// Open resumes the newest pack when a block still fits in it and it is
// exactly as long as its committed length, carrying this version's header
// (packWriter.resume): appending past the committed length is what
// appending to a fresh pack is, and a crash is repaired the same way, by
// truncation to the committed length. So a store opened once per `walrus
// put` fills one pack instead of creating one per call. Pack files are
// opened on demand and at most maxIdlePacks of them stay open while idle
// (packFiles, an LRU with a pin per reader), so descriptors stay bounded
// however many packs a store has.
//
// # Full disk
//
// Badger writes all its files through shared mappings of files extended
// with ftruncate; the page fault of the first store into a page the
// filesystem cannot allocate is SIGBUS, which kills the process (see
// index.SpaceNeeded for where badger writes and how much). Pack writes get
// ENOSPC, which a process survives. So the rule is: never let badger write
// into a full filesystem, and keep removals possible. spaceGuard (space.go)
// compares statfs of the data directory with three levels before writes:
//
//   - the index's need N = index.SpaceNeeded (3 memtables, the index's own
//     size for a compaction, slack), re-measured once a second. Every index
//     transaction (commitBatch), every pack append (uploads and GC copies)
//     and Open and Close check free-n >= N; below it they fail with
//     ErrNoSpace instead of letting badger fault. One transaction is at most
//     15% of a memtable, so checks made this way leave badger's background
//     flushes and compactions the room N counts for them;
//   - uploads (Create, each block, new work files) stop at N + MinFree +
//     whatever the reserve file lacks. Removals and GC commit between that
//     floor and N: rm, retain and gc work when uploads are refused, and the
//     refusal (ErrNoSpace, which also matches syscall.ENOSPC: ENOSPC through
//     FUSE, exit 8 from the CLI, the message in rsync's error) says what to
//     do. An identical re-push is never refused: it stores nothing;
//   - the reserve file (ReserveFileName, about 1.25 N, fallocated): when the
//     filesystem fills anyway (another program, work files), the first index
//     write that finds less than N free deletes it and goes on, so removals
//     and GC still commit on a filesystem filled to the last block. It is
//     allocated again before uploads resume.
//
// No failure sticks: the writer cuts a pack back after a failed write, and
// the next push after space returns succeeds without a restart (see
// packWriter). A failed fsync poisons only that pack's uncommitted bytes:
// the batch raises each pack's committed length before its ops run, so a
// commit naming a block past it (written before a failed fsync) is refused
// with ErrRetry, and the writer retries into a new pack.
//
// What this does not cover: another program taking the last N bytes in the
// moment between a check and badger's write (the reserve file makes this
// need two full-disk events in a row), a filesystem whose statfs does not
// reflect what writes can allocate (some network and thin-provisioned
// filesystems; statfs failing turns the checks off), and filesystems that
// cannot preallocate (no reserve file; a warning is logged).
//
// # Locks
//
// packWriter.mu serialises appends to the active pack; packFiles.mu guards
// the table of open pack files and their pins; spaceGuard.mu guards its
// measurement and the reserve file's state (statfs takes no lock; the
// writer calls into spaceGuard under packWriter.mu, never the other way
// round); Store.pendingMu guards the map of written,
// uncommitted blocks; blockCache.mu guards the cache; Store.gcMu lets one GC
// run at a time (Close takes it to wait for a running GC). All index
// mutations run on the committer goroutine, so index transactions never
// conflict; gcMoveOp takes pendingMu there, and nobody holding pendingMu
// waits for the committer. No lock is held while waiting for the committer.
package store
