package fs

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Defaults for Options fields left zero.
const (
	DefaultFileMode    = 0o600
	DefaultDirMode     = 0o700
	DefaultPrefetch    = 8
	DefaultStageMemory = 16 << 20
	// DefaultStageMemoryTotal bounds the staging memory of all open writes
	// together, as a multiple of StageMemory.
	DefaultStageMemoryTotal = 4 * DefaultStageMemory
	DefaultEntryTimeout     = time.Hour
	DefaultAttrTimeout      = time.Hour
	// maxWrite is the largest READ or WRITE request the kernel sends.
	maxWrite = 1 << 20
	// maxInflight bounds the bytes of requests being read or served.
	maxInflight = 32 << 20
)

// DefaultReadAhead is the kernel read-ahead of the mount, in bytes: the
// largest READ the mount takes (maxWrite), so a sequential restore costs
// one READ per 1 MiB block.
const DefaultReadAhead = maxWrite

// Options configures a mount. The zero value of every field but Mount means
// "the default".
type Options struct {
	Mount    string      // mount point (an existing, empty directory)
	UID, GID uint32      // owner of every file and directory
	FileMode os.FileMode // permission bits of files (default 0600)
	DirMode  os.FileMode // permission bits of directories (default 0700)
	ReadOnly bool        // refuse every change with EROFS
	// AllowOther lets users other than the mounting one use the mount;
	// the kernel then checks permissions (default_permissions).
	AllowOther bool
	// Prefetch is how many segments after the one being read are warmed
	// in the store's block cache. Negative disables prefetch.
	Prefetch int
	// ReadAhead sets the kernel read-ahead of the mount in bytes (the
	// bdi's read_ahead_kb; default DefaultReadAhead). Setting it needs
	// root; a failure is logged and the kernel default stays. Negative
	// leaves the kernel default.
	ReadAhead int
	// StageDir receives the spill files of writes that outgrow memory
	// (default <data dir>/staging). Spill files are unlinked right after
	// they are created, so a crash leaves nothing behind.
	StageDir string
	// StageMemory is how many bytes one staged write may hold in memory
	// before it spills to StageDir (default 16 MiB); StageMemoryTotal
	// bounds all of them together (default 4 × StageMemory).
	StageMemory      int64
	StageMemoryTotal int64
	Logger           *slog.Logger
	// EntryTimeout and AttrTimeout say how long the kernel may cache names
	// and attributes of committed files (default 1 h: archived files are
	// immutable and removals through the mount invalidate). Names that do
	// not exist are never cached, so files archived by other means (rsync
	// gateway) appear at once.
	EntryTimeout, AttrTimeout time.Duration
	Debug                     bool // log every FUSE request (go-fuse's debug output)
	// NoLanding writes WAL segments created through the mount through
	// the streaming upload even where the kernel takes FUSE passthrough
	// (see "Landing" in doc.go).
	NoLanding bool
}

func (o Options) withDefaults(dataDir string) (Options, error) {
	if o.Mount == "" {
		return o, fmt.Errorf("fs: no mount point given")
	}
	if o.FileMode == 0 {
		o.FileMode = DefaultFileMode
	}
	if o.DirMode == 0 {
		o.DirMode = DefaultDirMode
	}
	o.FileMode &= os.ModePerm
	o.DirMode &= os.ModePerm
	if o.Prefetch == 0 {
		o.Prefetch = DefaultPrefetch
	}
	if o.ReadAhead == 0 {
		o.ReadAhead = DefaultReadAhead
	}
	if o.StageDir == "" {
		o.StageDir = filepath.Join(dataDir, "staging")
	}
	if o.StageMemory <= 0 {
		o.StageMemory = DefaultStageMemory
	}
	if o.StageMemoryTotal <= 0 {
		o.StageMemoryTotal = 4 * o.StageMemory
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.EntryTimeout == 0 {
		o.EntryTimeout = DefaultEntryTimeout
	}
	if o.AttrTimeout == 0 {
		o.AttrTimeout = DefaultAttrTimeout
	}
	return o, nil
}
