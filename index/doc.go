// Package index is walrus's metadata index: typed records for files, blocks,
// packs and per-directory WAL metadata, kept in badger/v4.
//
// Keys (all under one badger DB):
//
//	f/<dir>\x00<name>  File       one archived file; dir "" is the archive root
//	d/<dir>             Dir        a namespace (one PostgreSQL cluster) and its WAL metadata
//	b/<sha256>          Block      where a block's bytes live and how many files use it
//	p/<u32 big-endian>  Pack       committed length, live bytes and retired flag of a pack file
//	n/<u32 big-endian>  (empty)    a pack file was created (before its first record is written)
//	s/stats             Stats      running totals, so status never scans every file
//	s/journal           Journal    last committed journal batch and newest durable checkpoint
//
// The index never talks to pack files itself: the store decides what to write
// and calls Update with one function per group commit. Every Update is a
// single badger transaction written with SyncWrites, so when Update returns nil
// the records are on stable storage.
//
// Badger is tuned for a small metadata index (see Open): small memtables,
// bounded block and index caches, small value-log files, logger routed to slog.
package index
