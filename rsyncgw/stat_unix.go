//go:build unix

package rsyncgw

import (
	"io/fs"
	"syscall"
)

// fileUID is the owner of a file, or 0 when the platform does not say.
func fileUID(st fs.FileInfo) uint32 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Uid
	}
	return 0
}
