package index

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// tableMappings names the index's table files, whose read-only mappings
// release gives back to the kernel.
type tableMappings string

// tableMappingsOf resolves dir as /proc/self/maps shows it.
func tableMappingsOf(dir string) tableMappings {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return tableMappings(abs + string(filepath.Separator))
}

// release drops this process's page table entries for the shared
// mappings of the index's .sst files (madvise MADV_DONTNEED). For a shared
// file mapping this discards nothing: the pages stay in the page cache
// (a page written through the mapping is marked dirty there first) and
// the next access faults them back in, so badger, which keeps using its
// tables meanwhile, sees the same bytes (madvise(2): "repopulating the
// memory contents from the up-to-date contents of the underlying mapped
// file"). Badger maps its tables read-write unless the DB is read-only;
// memtables and value logs are left alone. Errors are ignored: the release
// only trims the resident set.
func (m tableMappings) release() {
	if m == "" {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 7f39236000-7f39274950 r--s 00000000 08:01 1234  /data/index/000086.sst
		line := sc.Bytes()
		fields := bytes.Fields(line)
		i := bytes.IndexByte(line, '/')
		if len(fields) < 6 || len(fields[1]) != 4 || fields[1][3] != 's' || i < 0 {
			continue
		}
		path := line[i:] // may hold spaces
		if !bytes.HasPrefix(path, []byte(m)) || !bytes.HasSuffix(path, []byte(".sst")) {
			continue
		}
		lo, hi, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED)
	}
}
