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
// holding blocks of uploads in progress (Store.pending). A pack with no live
// bytes is retired; any other pack below the live-fraction threshold is
// rewritten:
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
// committed may find its pack closed or unlinked (packFiles.remove unlinks
// first, then closes); Store.loadBlock then looks the block up once more
// and reads the new location.
//
// # Locks
//
// packWriter.mu serialises appends to the active pack; packFiles.mu guards
// the table of open pack files; Store.pendingMu guards the map of written,
// uncommitted blocks; blockCache.mu guards the cache; Store.gcMu lets one GC
// run at a time (Close takes it to wait for a running GC). All index
// mutations run on the committer goroutine, so index transactions never
// conflict; gcMoveOp takes pendingMu there, and nobody holding pendingMu
// waits for the committer. No lock is held while waiting for the committer.
package store
