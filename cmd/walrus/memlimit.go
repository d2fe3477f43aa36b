package main

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"

	wfs "github.com/walrus-archive/walrus/fs"
	"github.com/walrus-archive/walrus/store"
)

// Memory serve holds by design besides the block cache (README "Memory"):
// FUSE staging, go-fuse's request buffers, and the index with the runtime.
const (
	fuseRequestBytes = 32 << 20
	indexBytes       = 96 << 20
	// uploadSlack is how many open uploads the limit leaves a block
	// buffer for, on top of the compression workers.
	uploadSlack = 64
)

// memoryLimit is the bound the README documents, computed from this
// server's settings: block cache + staging + FUSE request buffers +
// (2 × cores + open uploads) block buffers + index and runtime.
func (c *serveCmd) memoryLimit() int64 {
	blocks := int64(2*runtime.GOMAXPROCS(0)+uploadSlack) * store.DefaultBlockSize
	return c.CacheSize + wfs.DefaultStageMemoryTotal + fuseRequestBytes + blocks + indexBytes
}

// applyMemoryLimit makes that bound the Go runtime's soft memory limit, so
// the garbage collector works harder as the heap nears it instead of
// letting garbage double the heap (64 concurrent rsync clients took serve
// to 769 MiB of RSS without it). GOMEMLIMIT in the environment wins; a
// negative --memory-limit turns it off.
func (c *serveCmd) applyMemoryLimit(log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" || c.MemoryLimit < 0 {
		return
	}
	limit := c.MemoryLimit
	if limit == 0 {
		limit = c.memoryLimit()
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "bytes", limit)
}
