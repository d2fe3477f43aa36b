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
//  3. compresses it with zstd at the ingest level (Config.Level, fastest by
//     default; one shared encoder, bounded concurrency) and appends a
//     self-describing record to the active pack. The settler re-encodes
//     such records later at the settle level, and the WAL behind each
//     directory's newest restorable backup with LZMA2, moving them like
//     GC does (settle.go, codec.go). Records it will re-encode
//     (CodecZstdIngest) are written without entropy-coded literals, the
//     cheaper encoding; the last block of a file is compressed while it is
//     hashed, not after. Each record appended is handed to the kernel's
//     write-back at once (sync_file_range, SYNC_FILE_RANGE_WRITE: advice
//     that neither waits nor consumes an error), so that the fsync below
//     finds little left to write; that fsync stays the durability point.
//
// Upload.Commit then validates the file (WAL page header, size, cluster) and
// hands a commit request to the committer goroutine, which gathers every
// request that is waiting (group commit) and, in one badger transaction
// written with SyncWrites (commitBatch):
//
//  1. applies every op: file records, block references, pack lengths and
//     totals, removals, metadata and namespace changes;
//  2. appends the journal records of what the ops changed to the active
//     pack (commitJournal; see "The journal"), then fsyncs every pack that
//     received records since the last batch, journal and blocks alike (a new
//     pack's directory entry was fsynced, and the pack recorded in the index,
//     when it was created);
//  3. commits the transaction, and only then answers the requests: Commit
//     returns nil, which the adapters turn into close() returning 0 or rsync
//     exiting 0.
//
// With Config.AckRemote (remote-ack, remoteack.go) Upload.Commit waits
// after step 3 until every pack holding a committed record is in the
// bucket, an identical re-push too, and fails with ErrBucket after
// Config.AckTimeout; the local commit stays.
//
// With Config.Claims (claims.go) Upload.Commit first claims the name for
// the file's identity in the claims prefix a group of front-ends shares,
// before anything is submitted to the committer, an identical re-push too:
// a name claimed for other content fails with ErrExists, an unanswered
// claim with ErrClaims, and either way nothing is committed.
//
// So every change the index acknowledges is in the packs first, in the same
// fsync as the blocks it names: the index is a cache of the packs. A crash
// before step 3 leaves at most records no committed state refers to at the
// end of a pack; Open truncates every pack to the length the index last
// committed for it (torn-tail repair), so nothing acknowledged is lost and
// nothing half written is ever referenced.
//
// # Immutability
//
// A committed name never changes content. A file's identity (index.File.Hash)
// is SHA-256 over its size, block size and block hashes (index.RootHash;
// records from before it hold a whole-file SHA-256, HashWhole, and are
// compared by that). Committing the same name with the same identity
// succeeds without storing anything (when the name exists at Create time,
// blocks are only hashed and compared, at the record's block size, never
// written); different content fails with ErrExists and leaves the original
// untouched. A WAL segment whose system identifier differs from the
// directory's fails with ErrClusterMismatch.
//
// # Landed files
//
// A WAL segment written through the FUSE mount lands (landing.go): the
// kernel writes it, through FUSE passthrough, straight into a plain file
// landing/tmp/N (CreateLanding), and the store ingests it into the packs
// in the background. LandingFile.Commit, which close() returns, does in
// this order:
//
//  1. fsync of the file, after setting its mode and mtime (what the file
//     record would hold);
//  2. the checks of Upload.Commit (WAL page header, size, another
//     cluster's system identifier; the same errors);
//  3. under the name's lock (landing.locks, also taken by an upload's
//     commit of a new name, by ingest and by Remove): if the index holds
//     the name, the file goes through an ordinary upload, which compares
//     (identical: success; different: ErrExists); if the name is landed,
//     the bytes are compared (the same outcomes); else the file is renamed
//     to landing/files/NAME (landing/dirs/NS/NAME) and that directory is
//     fsynced: the durable "landed" record. Only then does close return 0.
//
// In remote-ack mode nothing lands: LandingFile.Commit uploads every file
// at once, and the upload waits for the bucket (remoteack.go).
//
// The first segment of a namespace without a cluster identity is uploaded
// at once instead (it sets the identity in the index, so a segment of
// another cluster is refused before it lands). A landed file is a store
// file in every way but its storage: Stat, Open (reads from the landed
// file), Names, Walk, Status, DirStatus and retention see it, Remove
// removes it (and so cancels its ingest), Rmdir counts it, and Create,
// Rename and SetMeta of its name ingest it first, so an upload compares
// against it as against any archived file.
//
// Ingest (landing.ingest, one at a time, oldest first, on a thread of
// nice 10) uploads the landed file and commits it, then unlinks it and
// fsyncs its directory. A crash before the commit leaves it landed; after
// the commit, before the unlink, the next ingest finds the index holding
// the name and the upload only compares (identical: success), then
// unlinks. The unlink is fsynced so that a later removal of the file is not
// undone by a crash. Open deletes landing/tmp/ (never acknowledged) and
// takes up every landed file again. Close stops the ingester first; what
// is landed stays landed.
//
// Bounds: CreateLanding asks the space guard for a segment's room (statfs
// counts landed bytes as used, like every file); past Config.LandingBytes
// of landed, not ingested bytes, a close ingests its own file before it
// returns (back-pressure). Not covered: a writer that keeps writing through
// a duplicate of the descriptor after its close (the kernel keeps the
// landed file as the backing file until the last release) changes a
// landed file; cp and PostgreSQL never do.
//
// # Read path
//
// Readers map offsets to blocks; a block is read from its pack, its record
// header compared with the block wanted and CRC-checked, and decompressed
// with zstd's content checksum (XXH64) verified, before any byte is
// returned: a mismatch is ErrCorrupt, never wrong data. SHA-256 of the
// decoded block is computed only for frames written without the checksum
// (before it was enabled) and by verify (decodedChecked, Reader.strict). Decompressed blocks
// are kept in a byte-bounded LRU cache (Config.CacheBytes) shared by all
// readers; concurrent misses on the same block are loaded once. Readers
// pin the blocks they copy from (or lend: Reader.Slices), and an evicted
// block's buffer is reused by a later decode once unpinned (cache.go,
// "Recycling").
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
// Open never deletes a pack file the index does not know (see "The
// journal"); a pack GC retired is deleted as above. GC never retires a pack
// the journal still needs (journalPinned; gcMoveOp checks it in the
// retiring transaction, so every retirement path must go through it).
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
// however many packs a store has. With Config.Remote, sealed packs are
// copied to a bucket in the background and marked Uploaded (remote.go:
// the order, the age roll, the backlog, rebuilding from the bucket); a
// pack marked Uploaded is never resumed, and GC neither rewrites nor
// retires a pack that is not yet uploaded (nor does it when the store, with
// a DATA/bucket.id, is opened without its bucket). A retired pack's object
// is deleted once the bucket holds its copies and a checkpoint covering its
// journal (remotegc.go: the order and its crash points). With
// Config.PackCacheBytes an uploaded, sealed pack may lose its local file
// (Pack.Evicted, committed before the unlink) and its records are then read
// by range from the bucket, checked as local ones (packcache.go).
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
//     do. An identical re-push is never refused: it stores nothing. A
//     landing file (written by the kernel, never checked per write) claims
//     a whole segment at CreateLanding; until it is closed every check
//     counts what it may still write as taken (spaceGuard.claimLanding);
//   - the reserve file (ReserveFileName, about 1.25 N, fallocated): when the
//     filesystem fills anyway (another program, work files), the first
//     removal or GC write that finds less than N free deletes it and goes
//     on, so removals and GC still commit on a filesystem filled to the last
//     block. Nothing else may delete it (spaceGuard.forData: pack appends,
//     upload commits, background rewrites fail with ErrNoSpace instead):
//     the space it gives back goes to whoever writes next, usually the
//     program that filled the disk, and a reserve spent on an upload is not
//     there for the rm that follows. It is allocated again before uploads
//     resume.
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
// # The journal
//
// The packs carry everything the index holds, so the whole index can be
// rebuilt from them (Repair, walrus repair). Besides block records a pack
// holds journal records (format in journal.go): framed like block records
// (so every scanner steps over them), CRC-checked, versioned, each decoder
// bounded by the bytes it is given.
//
//   - Each group commit that changed a file or namespace record writes one
//     batch record (split past journalChunk): the whole file record for a
//     commit and for a metadata change (SetMeta), a removal for rm and
//     retention (a rename is a commit and a removal), namespace creation
//     with its WAL identity (system id, segment size, version, set by the
//     first segment), namespace removal. Counters (files, bytes, segments,
//     stored bytes, block references, live bytes) are derived, not journaled.
//   - Batches are numbered (seq); each names the last batch the index had
//     committed when it was written (prev). The committed batches form a
//     chain back from the newest; a batch whose transaction failed after its
//     record reached the pack is on no chain, so replaying the chain gives
//     exactly the committed records. A seq is never reused (the counter
//     starts above the index's last at Open, and a failed batch consumes its
//     number). The index keeps the last seq (index.Journal) and each pack's
//     newest batch (Pack.MaxSeq).
//   - A checkpoint (checkpoint.go) is a snapshot of every file and
//     namespace record, taken in one index read snapshot at the last
//     committed seq C and written as chunk records plus an end record while
//     commits go on; checkpointOp records it (C, its id, its packs) once
//     the batch fsync made it durable. Replaying the newest complete
//     checkpoint and then the chain after C rebuilds the index. Open
//     checkpoints a store written before packs carried a journal, so that
//     from then on its old files can be named too.
//
// GC and the journal: a GC rewrite copies block records only, so retiring a
// pack drops its journal records. That is safe exactly when the newest
// durable checkpoint covers them: a pack is pinned while its MaxSeq is
// above the checkpoint's C, or while it holds the checkpoint itself
// (journalPinned). GC leaves pinned candidates out, and when they are worth
// it (together at least twice as long as a checkpoint would be) it first
// writes a new checkpoint, which unpins them (unpinForGC): one checkpoint
// per retention window or so, since GC mostly collects old packs. A
// checkpoint that cannot be written (full disk) only leaves pinned packs
// for a later run. Crash points: a checkpoint without its end record, or
// not yet recorded in the index, is not used by GC; repair uses the newest
// complete one found, which is at least as new as the index's, and every
// batch after it is still in the packs because no pack holding one was
// retired.
//
// Open and the packs:
//
//   - packWriter.announce records a new pack in the index (a creation
//     marker, written outside the committer; nothing else reads or writes
//     those keys, so it conflicts with no committer transaction) before any
//     record goes into it. So after any crash every pack holding records is
//     known to the index, and one the index does not know means the index
//     lost something: Open keeps it (never deletes it), logs it, walrus
//     verify reports it and Repair accounts for it. An unknown pack holding
//     no record (crash between creating and recording it) is adopted empty.
//   - Open refuses (ErrIndexMissing, ErrIndexDamaged; the CLI names walrus
//     repair and exits 201) an index directory that is missing, has no
//     MANIFEST (badger would start over empty and delete its tables), does
//     not open, knows no pack while packs hold records, or is older than
//     the packs: a crash leaves past a pack's committed length only batches
//     written on top of the index's last seq, so a batch there whose prev
//     is newer, or a checkpoint newer than the last seq, means the index
//     lost commits, and truncating the tail would delete them (checkTail).
//   - Verify checks every pack header, that the index knows every pack
//     file, and replays the journal the index names (its checkpoint and the
//     chain to its last seq) against the index's file and namespace records.
//
// Repair (repair.go) holds the packs directory's lock and badger's lock on
// the old index; scans every pack (every record CRC-checked; damaged
// records are skipped up to the next valid one and reported; a tail longer
// than one record that holds none is damage, kept, not truncated); picks
// the newest complete checkpoint and the chain from the newest complete
// batch down to it; replays them; derives block reference counts (the
// latest copy of each block), pack live bytes and committed lengths,
// namespace and archive totals; bulk-loads them into index.repair; renames
// the old index to index.old-TIME and index.repair to index; fsyncs the
// data directory; then opens the store, checkpoints it and verifies it. It
// deletes nothing in packs/. A crash anywhere leaves either the old state
// or no index/ (Open refuses), and running repair again completes it. It
// refuses (ErrUnnamed) to build an index without files it cannot name: a
// store whose packs were written before the journal and never checkpointed
// since (version 1 packs with blocks, or batches written while the index
// held unjournaled records); and (ErrJournalBroken) when a batch of the
// chain is missing. Force builds it anyway, without them.
//
// # Locks
//
// packWriter.mu serialises appends to the active pack; packFiles.mu guards
// the table of open pack files and their pins; spaceGuard.mu guards its
// measurement and the reserve file's state (statfs takes no lock; the
// writer calls into spaceGuard under packWriter.mu, never the other way
// round); Store.pendingMu guards the map of written,
// uncommitted blocks; blockCache.mu guards the cache; Store.gcMu lets one GC
// run at a time (Close takes it to wait for a running GC; verify's journal
// check takes it so that no pack it reads is retired meanwhile);
// Store.ckptMu serialises checkpoints (GC's and Open's), which append to
// packs outside the committer and then wait for it, holding no other lock;
// Store.seq is the committer's alone. All index
// mutations run on the committer goroutine, so index transactions never
// conflict (the one exception, packWriter.announce, writes keys no
// transaction reads); gcMoveOp takes pendingMu there, and nobody holding pendingMu
// waits for the committer. No lock is held while waiting for the committer.
package store
