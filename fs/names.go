package fs

import (
	"regexp"
	"strings"

	"github.com/walrus-archive/walrus/internal/wal"
)

// Names through the mount are of two kinds (see doc.go, "Writes"):
//
//   - archive names — WAL segments, .history and .backup files, and
//     segments compressed by pg_receivewal (NAME.gz, NAME.lz4, NAME.zst):
//     what PostgreSQL's archivers produce as their final result. Written
//     through the mount they stream into the store and are committed when
//     the writer closes (or renames onto) them; archived, they are
//     immutable.
//   - everything else is a work file: temp names with or without a leading
//     dot (rsync's .NAME.XXXXXX, basic_archive's archtemp.NAME.PID.MS),
//     .partial segments being written by pg_receivewal, and any other
//     name. A work file behaves like a file in a local directory until it
//     is renamed onto an archive name, which archives it.
var compressedSegment = regexp.MustCompile(`^[0-9A-F]{24}\.(gz|lz4|zst)$`)

func isArchiveName(name string) bool {
	switch wal.ParseName(name).Kind {
	case wal.KindSegment, wal.KindHistory, wal.KindBackup:
		return true
	}
	return compressedSegment.MatchString(name)
}

// isPartial reports a name whose close must be durable although it is a
// work file: a .partial segment (PostgreSQL's archive_command copies the
// old timeline's last segment as NAME.partial at promotion, and expects
// the copy to be on stable storage when cp exits 0).
func isPartial(name string) bool {
	return strings.HasSuffix(name, ".partial") && name != ".partial"
}
