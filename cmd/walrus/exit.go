package main

import (
	"errors"

	"github.com/walrus-archive/walrus/store"
)

// Exit codes, documented in the README. A shell archive_command can use
// `walrus put` directly: 0 only when the file is durable.
const (
	exitOK       = 0
	exitError    = 1
	exitNotFound = 3
	exitExists   = 4
	exitInvalid  = 5
	exitProblems = 6
	exitLocked   = 7
)

// errProblems is returned by verify when it found something wrong.
var errProblems = errors.New("verify found problems")

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
	case errors.Is(err, store.ErrLocked):
		return exitLocked
	}
	return exitError
}
