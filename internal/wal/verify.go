package wal

import (
	"errors"
	"fmt"
	"io"
)

// SegmentInfo describes a segment checked by VerifySegment.
type SegmentInfo struct {
	Header LongPageHeader
	Pages  int   // pages in the file
	End    int64 // offset just after the last page carrying this segment's WAL
	// ZeroPages counts the all-zero pages after End: the zero-filled tail of
	// a switched segment (PostgreSQL 11+) or of a .partial file.
	ZeroPages int
	// StalePages counts pages after End left over from the recycled segment
	// the file was made from: the tail of a switched segment before
	// PostgreSQL 11, or of a .partial file of any version.
	StalePages int
}

// VerifySegment reads a whole segment or .partial file named n, of size
// bytes, from r: it checks the first page with CheckSegment and every other
// page with CheckPage, and that xlp_tli never decreases from page to page.
//
// A segment may end early, after an XLOG_SWITCH record. After the last WAL
// page, PostgreSQL 11 and later fill a switched segment with zeros (release
// 11 notes: "Fill the unused portion of force-switched WAL segment files with
// zeros"), so any nonzero page after a zero page is an error.
// Before 11, and in .partial files (renamed from pg_wal at promotion), the
// tail may instead hold stale pages of the recycled segment the file was made
// from: pages with the right magic whose pageaddr is the same offset in an
// older segment. Those are counted, not rejected.
//
// Errors that describe the file wrap ErrInvalidSegment; read errors from r
// are returned wrapped as they are.
func VerifySegment(n Name, r io.Reader, size int64, allowUnknownMagic bool) (SegmentInfo, error) {
	first := make([]byte, LongPageHeaderSize)
	if err := readFull(n, r, first, 0, size); err != nil {
		return SegmentInfo{}, err
	}
	h, err := CheckSegment(n, first, size, allowUnknownMagic)
	if err != nil {
		return SegmentInfo{Header: h}, err
	}
	v := newVerifier(n, h)
	page := make([]byte, h.BlockSize)
	copy(page, first)
	if err := readFull(n, r, page[len(first):], int64(len(first)), size); err != nil {
		return v.info, err
	}
	for off := int64(0); ; off += int64(h.BlockSize) {
		if err := v.page(page, off); err != nil {
			return v.info, err
		}
		if off+int64(h.BlockSize) >= size {
			break
		}
		if err := readFull(n, r, page, off+int64(h.BlockSize), size); err != nil {
			return v.info, err
		}
	}
	return v.info, checkEOF(n, r, size)
}

// readFull fills b from r, which is at offset off of a file of size bytes.
func readFull(n Name, r io.Reader, b []byte, off, size int64) error {
	got, err := io.ReadFull(r, b)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return segErr(n, "file ends at offset %d, expected %d bytes", off+int64(got), size)
	case err != nil:
		return fmt.Errorf("wal: reading %s at offset %d: %w", n, off, err)
	}
	return nil
}

// checkEOF checks that r has nothing after size bytes.
func checkEOF(n Name, r io.Reader, size int64) error {
	var b [1]byte
	got, err := io.ReadFull(r, b[:])
	switch {
	case got > 0:
		return segErr(n, "file is longer than xlp_seg_size %d", size)
	case err != nil && !errors.Is(err, io.EOF):
		return fmt.Errorf("wal: reading %s at offset %d: %w", n, size, err)
	}
	return nil
}

// verifier holds the state of VerifySegment between pages.
type verifier struct {
	n        Name
	h        LongPageHeader
	start    LSN
	tolerant bool // stale pages may follow the end of WAL
	ended    bool // a zero or stale page has been seen
	lastTLI  uint32
	info     SegmentInfo
}

func newVerifier(n Name, h LongPageHeader) *verifier {
	segno, _ := n.SegNo(h.SegSize) // checked by CheckSegment
	major, known := MajorVersion(h.Magic)
	return &verifier{
		n:        n,
		h:        h,
		start:    SegmentStart(segno, h.SegSize),
		tolerant: n.Kind == KindPartial || (known && (major == 96 || major < 11)),
		lastTLI:  h.TLI,
		info:     SegmentInfo{Header: h},
	}
}

// page checks the page at offset off.
func (v *verifier) page(p []byte, off int64) error {
	v.info.Pages++
	nonZero, problem := pageProblem(p, v.h.Magic, v.start, off)
	switch {
	case !nonZero:
		v.ended = true
		v.info.ZeroPages++
		return nil
	case v.tolerant && v.stale(p, off):
		v.ended = true
		v.info.StalePages++
		return nil
	case problem != "":
		return segErr(v.n, "%s", problem)
	case v.ended:
		return segErr(v.n, "page at offset %d carries WAL after the end of WAL at offset %d", off, v.info.End)
	}
	return v.walPage(p, off)
}

// walPage checks the timeline of a valid nonzero page and extends End.
func (v *verifier) walPage(p []byte, off int64) error {
	h, _ := ParsePageHeader(p)
	if h.TLI < v.lastTLI {
		return segErr(v.n, "page at offset %d: xlp_tli %d is lower than %d on the page before", off, h.TLI, v.lastTLI)
	}
	if h.TLI > v.n.TLI {
		return segErr(v.n, "page at offset %d: xlp_tli %d is greater than the name's timeline %d", off, h.TLI, v.n.TLI)
	}
	v.lastTLI = h.TLI
	v.info.End = off + int64(len(p))
	return nil
}

// stale reports whether p is a page left from an older use of the file: same
// magic, and the pageaddr of the same offset in an earlier segment.
func (v *verifier) stale(p []byte, off int64) bool {
	h, err := ParsePageHeader(p)
	return err == nil && off > 0 && h.Magic == v.h.Magic &&
		h.PageAddr < v.start && uint64(h.PageAddr)%uint64(v.h.SegSize) == uint64(off)
}
