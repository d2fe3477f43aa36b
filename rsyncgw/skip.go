package rsyncgw

import (
	"errors"
	"fmt"
	"time"

	"github.com/walrus-archive/walrus/store"
)

// Push decisions (rsync: generator.c recv_generator). Stock rsync skips
// files by name, size and time; a skipped file is not transferred and
// the push still exits 0. For an archive that rule would let a push
// report success for content that is not archived, which PostgreSQL's
// archive_command contract forbids. So here a push exits 0 only when
// every regular file it names is in the archive with exactly the pushed
// content:
//
//   - an existing name is always transferred and compared (-u,
//     --ignore-existing and --size-only skip nothing): identical content
//     succeeds, different content is refused (exit 23); a size that
//     differs is refused before any data is sent;
//   - --existing never creates a name, --max-size and --min-size never
//     transfer a file outside their range: such a file is reported as not
//     archived (exit 23).
//
// A dry run makes the same decisions and stores nothing.

// decide returns the targets to request, with their item flags, and
// reports the others.
func (s *session) decide(targets []target) []target {
	out := targets[:0]
	for _, t := range targets {
		iflags, ok := s.decideOne(&t)
		if ok {
			t.iflags = iflags
			out = append(out, t)
		}
	}
	return out
}

func (s *session) decideOne(t *target) (uint16, bool) {
	e := t.entry
	if why := s.sizeFilter(e.size); why != "" {
		s.notArchived(t, why)
		return 0, false
	}
	fi, err := s.srv.st.StatHere(t.path) // a push: not the other front-ends' (peers)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if s.args.existing {
			s.notArchived(t, "it is not in the archive and --existing creates no files")
			return 0, false
		}
		return itemTransfer | itemIsNew, true
	case err != nil:
		s.reportStoreError(t, err)
		return 0, false
	case fi.Size != e.size:
		s.reportStoreError(t, fmt.Errorf("%w: %s (archived %s, %d bytes; the new copy of %d bytes differs)",
			store.ErrExists, t.path, fi.Archived.UTC().Format(time.RFC3339), fi.Size, e.size))
		return 0, false
	}
	iflags := uint16(itemTransfer)
	if fi.MTime.Unix() != e.mtime {
		iflags |= itemReportTime
	}
	if uint32(fi.Mode.Perm()) != e.mode&0o777 {
		iflags |= itemReportPerms
	}
	return iflags, true
}

// sizeFilter says why --max-size or --min-size keeps a file of size from
// being transferred, or "".
func (s *session) sizeFilter(size int64) string {
	switch a := s.args; {
	case a.maxSize >= 0 && size > a.maxSize:
		return fmt.Sprintf("it is larger than --max-size=%d", a.maxSize)
	case a.minSize >= 0 && size < a.minSize:
		return fmt.Sprintf("it is smaller than --min-size=%d", a.minSize)
	}
	return ""
}

// notArchived reports a file the client's options keep from being
// archived; the client exits 23.
func (s *session) notArchived(t *target, why string) {
	s.errorXfer(fmt.Sprintf(`rsync: [receiver] not archived "%s" (in %s): %s`, t.rel, s.mod.Name, why))
}
