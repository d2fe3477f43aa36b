//go:build !linux

package store

import "os"

// startWriteback is a no-op where sync_file_range does not exist: the
// committer's fsync writes everything (see writeback_linux.go).
func startWriteback(*os.File, int64, int64) {}
