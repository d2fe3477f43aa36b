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
// # Locks
//
// packWriter.mu serialises appends to the active pack; packFiles.mu guards
// the table of open pack files; Store.pendingMu guards the map of written,
// uncommitted blocks; blockCache.mu guards the cache. All index mutations run
// on the committer goroutine, so index transactions never conflict. No lock
// is held while waiting for the committer.
package store
