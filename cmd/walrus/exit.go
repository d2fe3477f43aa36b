package main

import (
	"errors"
	"strings"

	"github.com/walrus-archive/walrus/store"
)

// Exit codes, documented in the README. A shell archive_command can use
// `walrus put` directly: 0 only when the file is durable.
//
// exitNoStore and exitIndexMissing are above 125 on purpose: PostgreSQL
// reads a restore_command exit status above 125 as "the command itself is
// broken" and aborts recovery, where any lower non-zero status means "not in
// the archive" and ends recovery early, as if the archive were complete. A
// mistyped --data is such a broken command. (archive_command: the archiver
// logs FATAL and is restarted, and retries, about every 30 s.)
const (
	exitOK           = 0
	exitError        = 1
	exitUnhealthy    = 2 // Nagios' CRITICAL
	exitNotFound     = 3
	exitExists       = 4
	exitInvalid      = 5
	exitProblems     = 6
	exitLocked       = 7
	exitNoSpace      = 8
	exitNoStore      = 200
	exitIndexMissing = 201
	exitGetFailed    = 202
)

// getExit is the exit code of `walrus get` for err. get is the
// restore_command: every status from 1 to 125 tells PostgreSQL "not in the
// archive", which ends an archive recovery as if the archive were complete
// and promotes, without the WAL after the gap. So only "not found" (3) may
// say that; any other failure (a block that reads back corrupt, an I/O
// error, the data directory locked by an offline command, a usage error)
// is exitGetFailed, above 125, and aborts the recovery instead: the DBA
// fixes the cause and starts the server again, and recovery goes on where it
// stopped.
func getExit(code int) int {
	switch code {
	case exitOK, exitNotFound, exitNoStore, exitIndexMissing:
		return code
	}
	return exitGetFailed
}

// isGet reports whether args name the get command (also when they fail to
// parse: a mistyped restore_command must not read as "not found" either).
func isGet(args []string) bool {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--data" || a == "--log-level" || a == "--log-format" || a == "--config":
			i++ // its value (the global flags that take one)
		case strings.HasPrefix(a, "-"):
		default:
			return a == "get"
		}
	}
	return false
}

var (
	// errProblems is returned by verify when it found something wrong.
	errProblems = errors.New("verify found problems")
	// errUnhealthy is returned by status --check when it found something wrong.
	errUnhealthy = errors.New("status --check found problems")
)

// exitCode is the one table from errors to exit codes.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, store.ErrNotFound):
		return exitNotFound
	case errors.Is(err, store.ErrExists):
		return exitExists
	case errors.Is(err, store.ErrInvalidWAL), errors.Is(err, store.ErrClusterMismatch):
		return exitInvalid
	case errors.Is(err, errProblems):
		return exitProblems
	case errors.Is(err, errUnhealthy):
		return exitUnhealthy
	case errors.Is(err, store.ErrLocked):
		return exitLocked
	case errors.Is(err, store.ErrNoSpace):
		return exitNoSpace
	case errors.Is(err, store.ErrNoStore):
		return exitNoStore
	case errors.Is(err, store.ErrIndexMissing), errors.Is(err, store.ErrIndexDamaged):
		return exitIndexMissing
	}
	return exitError
}
