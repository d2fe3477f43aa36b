//go:build !unix

package rsyncgw

import "io/fs"

// fileUID cannot tell the owner here; strict modes check permissions only.
func fileUID(fs.FileInfo) uint32 { return 0 }
