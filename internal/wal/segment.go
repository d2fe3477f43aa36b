package wal

import (
	"bytes"
	"fmt"
)

// CheckSegment validates the first page of a segment or .partial file named n
// whose full size is fileSize, and returns its long page header. It checks,
// in this order:
//
//   - n is a segment or .partial name;
//   - xlp_magic is one of a known major version, or, if allowUnknownMagic,
//     any value of the 0xD0xx/0xD1xx family;
//   - xlp_info has only known bits, including XLP_LONG_HEADER;
//   - xlp_xlog_blcksz is a power of two from 1 to 64 KiB;
//   - xlp_seg_size is a valid segment size and equals fileSize;
//   - n's segment part is in range for that segment size;
//   - xlp_pageaddr is the start of the segment n names;
//   - xlp_tli is not zero and not greater than n's timeline.
//
// xlp_tli may be lower than the name's timeline: at promotion the first
// segment of the new timeline is a copy of the parent timeline's segment up to
// the switch point, so its first page still carries the parent's timeline
// (postgres: xlog.c XLogInitNewTimeline, XLogFileCopy).
//
// Every error wraps ErrInvalidSegment and names the file, the field, and the
// expected and found values.
// postgres: xlogreader.c XLogReaderValidatePageHeader
func CheckSegment(n Name, firstPage []byte, fileSize int64, allowUnknownMagic bool) (LongPageHeader, error) {
	if n.Kind != KindSegment && n.Kind != KindPartial {
		return LongPageHeader{}, fmt.Errorf("%w: %q is not a segment or .partial name (kind %s)", ErrInvalidSegment, n, n.Kind)
	}
	h, err := ParseLongPageHeader(firstPage)
	if err != nil {
		return h, segErr(n, "first page has %d bytes, need %d for the long page header", len(firstPage), LongPageHeaderSize)
	}
	if p := checkLongHeader(h, allowUnknownMagic); p != "" {
		return h, segErr(n, "%s", p)
	}
	if fileSize != int64(h.SegSize) {
		return h, segErr(n, "file size %d does not match xlp_seg_size %d", fileSize, h.SegSize)
	}
	segno, err := n.SegNo(h.SegSize)
	if err != nil {
		return h, segErr(n, "segment part %08X is out of range for xlp_seg_size %d", n.Seg, h.SegSize)
	}
	if want := SegmentStart(segno, h.SegSize); h.PageAddr != want {
		return h, segErr(n, "pageaddr %s does not match name (expected %s)", h.PageAddr, want)
	}
	if h.TLI == 0 {
		return h, segErr(n, "xlp_tli is 0 (expected 1..%d)", n.TLI)
	}
	if h.TLI > n.TLI {
		return h, segErr(n, "xlp_tli %d is greater than the name's timeline %d", h.TLI, n.TLI)
	}
	return h, nil
}

// checkLongHeader checks the fields of a first page that do not depend on
// the file's name or size, and describes the first problem found.
func checkLongHeader(h LongPageHeader, allowUnknownMagic bool) string {
	if _, ok := MajorVersion(h.Magic); !ok && !(allowUnknownMagic && plausibleMagic(h.Magic)) {
		return fmt.Sprintf("xlp_magic 0x%04X is not a known PostgreSQL version (expected 0xD093 for 9.6 ... 0xD118 for 18)", h.Magic)
	}
	if p := checkInfo(h.Info, true); p != "" {
		return p
	}
	if !validBlockSize(h.BlockSize) {
		return fmt.Sprintf("xlp_xlog_blcksz %d is not a power of two from %d to %d", h.BlockSize, MinBlockSize, MaxBlockSize)
	}
	if !ValidSegmentSize(h.SegSize) {
		return fmt.Sprintf("xlp_seg_size %d is not a power of two from 1 MiB to 1 GiB", h.SegSize)
	}
	return ""
}

// checkInfo checks the xlp_info bits of a first (long) or later page.
func checkInfo(info uint16, long bool) string {
	switch {
	case info&^infoAllFlags != 0:
		return fmt.Sprintf("xlp_info 0x%04X has unknown bits 0x%04X", info, info&^infoAllFlags)
	case long && info&InfoLongHeader == 0:
		return fmt.Sprintf("xlp_info 0x%04X lacks the long-header bit 0x%04X on the first page", info, InfoLongHeader)
	case !long && info&InfoLongHeader != 0:
		return fmt.Sprintf("xlp_info 0x%04X has the long-header bit 0x%04X on a page other than the first", info, InfoLongHeader)
	}
	return ""
}

// CheckPage validates the page at byte offset off of the segment starting at
// segStart whose first page carries magic: the page header must carry the
// same magic, known xlp_info bits (the long-header bit only at offset 0), a
// nonzero xlp_tli, and xlp_pageaddr segStart+off. An all-zero page, such as
// the zero-filled tail of a switched segment, returns (false, nil).
// Errors wrap ErrInvalidSegment.
// postgres: xlogreader.c XLogReaderValidatePageHeader
func CheckPage(page []byte, magic uint16, segStart LSN, off int64) (nonZero bool, err error) {
	nonZero, p := pageProblem(page, magic, segStart, off)
	if p != "" {
		return nonZero, fmt.Errorf("%w: %s", ErrInvalidSegment, p)
	}
	return nonZero, nil
}

// pageProblem does the work of CheckPage; it describes the problem found,
// or returns "".
func pageProblem(page []byte, magic uint16, segStart LSN, off int64) (nonZero bool, problem string) {
	if isZero(page) {
		return false, ""
	}
	at := fmt.Sprintf("page at offset %d", off)
	h, err := ParsePageHeader(page)
	switch {
	case err != nil:
		return true, fmt.Sprintf("%s has %d bytes, need %d for a page header", at, len(page), PageHeaderSize)
	case off < 0:
		return true, fmt.Sprintf("%s: negative offset", at)
	case h.Magic != magic:
		return true, fmt.Sprintf("%s: xlp_magic 0x%04X differs from the first page's 0x%04X", at, h.Magic, magic)
	}
	if p := checkInfo(h.Info, off == 0); p != "" {
		return true, at + ": " + p
	}
	if want := segStart + LSN(off); h.PageAddr != want {
		return true, fmt.Sprintf("%s: pageaddr %s does not match its position (expected %s)", at, h.PageAddr, want)
	}
	if h.TLI == 0 {
		return true, at + ": xlp_tli is 0"
	}
	return true, ""
}

// zeroPage is compared against to find all-zero pages quickly.
var zeroPage [MaxBlockSize]byte

// isZero reports whether b holds only zero bytes.
func isZero(b []byte) bool {
	for len(b) > len(zeroPage) {
		if !bytes.Equal(b[:len(zeroPage)], zeroPage[:]) {
			return false
		}
		b = b[len(zeroPage):]
	}
	return bytes.Equal(b, zeroPage[:len(b)])
}

// segErr returns an ErrInvalidSegment error about the file named n.
func segErr(n Name, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidSegment, n, fmt.Sprintf(format, args...))
}
