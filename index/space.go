package index

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// spaceSlack covers what SpaceNeeded does not count one by one: a new
// value-log or memtable file's header page, the 1 MiB discard-stats file,
// a MANIFEST rewrite, and one transaction (at most 15% of a memtable) that
// passed a caller's check just before the space ran out.
const spaceSlack = 8 << 20

// defaultMemTableSize is the memtable size Open gives badger by default.
const defaultMemTableSize = 8 << 20

// SpaceNeeded returns how much free space the filesystem holding the index
// in dir must keep so that badger can go on writing it without faulting.
//
// Badger writes every file through a shared mapping of a file first
// extended with ftruncate (z.OpenMmapFile): the memtable write-ahead log
// (.mem, 2×MemTableSize), each table a memtable flush or a compaction
// writes (table.CreateTable copies the table into the mapping), the value
// log and the discard-stats file. Extending a file that way allocates no
// blocks; the first store into each page does, and when the filesystem has
// none left the kernel answers the page fault with SIGBUS, which kills a Go
// program (badger issues #1682 and #1801, closed unfixed; v4 has no option
// for plain writes). So the only defence is to never let badger write into
// a full filesystem. What it may still allocate at any moment:
//   - write-ahead log data of the active and of one immutable memtable
//     (NumMemtables is 2), each up to MemTableSize, and the L0 table a flush
//     of the immutable one writes before its log is deleted: 3×MemTableSize
//     (what the .mem files already hold is part of it, so they are not
//     counted again: the result stays steady as they fill and go);
//   - a compaction's output tables, written before its inputs are deleted:
//     never more than the tables that exist, the allocated size of the
//     other files in dir;
//   - spaceSlack.
//
// The result is conservative; a caller compares it with the free space
// before every write (the store's committer does) and refuses the write
// instead of risking the fault.
func SpaceNeeded(dir string, o Options) (int64, error) {
	used, err := allocatedBytes(dir)
	if err != nil {
		return 0, err
	}
	return 3*orDefault(o.MemTableSize, defaultMemTableSize) + used + spaceSlack, nil
}

// allocatedBytes sums the blocks the files in dir but the memtable logs
// occupy (badger's files are sparse: their apparent size says little). A
// missing dir is empty.
func allocatedBytes(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("index: %w", err)
	}
	var n int64
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // deleted by a compaction meanwhile
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
	}
	return n, nil
}
