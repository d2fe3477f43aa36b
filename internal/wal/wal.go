// Package wal knows the PostgreSQL write-ahead log archive formats: the names
// of archived files (segments, .partial segments, timeline .history files and
// .backup history files), log sequence numbers, the page headers at the start
// of every WAL page, and the text of history and backup history files.
//
// It validates what an archive server can check without decoding WAL records:
// that a file's name, size and page headers agree with each other. Layouts
// follow src/include/access/xlog_internal.h; WAL is read as little-endian,
// which is the byte order of every platform PostgreSQL is commonly run on.
//
// The package uses only the standard library.
package wal

import "errors"

// DefaultBlockSize is the default WAL page size, XLOG_BLCKSZ.
// postgres: pg_config_manual.h XLOG_BLCKSZ
const DefaultBlockSize = 8192

// Sentinel errors. Every error returned by this package wraps one of them
// with a one-line description of what is wrong.
var (
	ErrInvalidName    = errors.New("wal: invalid file name")
	ErrInvalidLSN     = errors.New("wal: invalid LSN")
	ErrInvalidSegment = errors.New("wal: invalid segment")
	ErrInvalidHistory = errors.New("wal: invalid history file")
	ErrInvalidBackup  = errors.New("wal: invalid backup file")
)
