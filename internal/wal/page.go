package wal

import (
	"encoding/binary"
	"fmt"
)

// Page header sizes. postgres: xlog_internal.h SizeOfXLogShortPHD, SizeOfXLogLongPHD
const (
	PageHeaderSize     = 24
	LongPageHeaderSize = 40
)

// xlp_info flag bits. postgres: xlog_internal.h XLP_*
const (
	InfoFirstIsContRecord          = 0x1
	InfoLongHeader                 = 0x2
	InfoBkpRemovable               = 0x4
	InfoFirstIsOverwriteContRecord = 0x8
	infoAllFlags                   = 0xF // XLP_ALL_FLAGS
)

// Block sizes PostgreSQL can be built with (--with-wal-blocksize, 1-64 kB).
// postgres: meson_options.txt wal_blocksize
const (
	MinBlockSize = 1 << 10
	MaxBlockSize = 64 << 10
)

// PageHeader is the header at the start of every WAL page.
// postgres: xlog_internal.h XLogPageHeaderData
type PageHeader struct {
	Magic    uint16 // xlp_magic, one value per major version
	Info     uint16 // xlp_info, Info* flag bits
	TLI      uint32 // xlp_tli, timeline of the first record on the page
	PageAddr LSN    // xlp_pageaddr, LSN of the page's first byte
	RemLen   uint32 // xlp_rem_len, bytes of a record continued from the previous page
}

// LongPageHeader is the header of the first page of a segment.
// postgres: xlog_internal.h XLogLongPageHeaderData
type LongPageHeader struct {
	PageHeader
	SysID     uint64 // xlp_sysid, the cluster's system identifier
	SegSize   uint32 // xlp_seg_size, wal_segment_size
	BlockSize uint32 // xlp_xlog_blcksz, XLOG_BLCKSZ
}

// ParsePageHeader decodes the 24-byte page header at the start of b.
func ParsePageHeader(b []byte) (PageHeader, error) {
	if len(b) < PageHeaderSize {
		return PageHeader{}, fmt.Errorf("%w: page header needs %d bytes, got %d", ErrInvalidSegment, PageHeaderSize, len(b))
	}
	le := binary.LittleEndian
	return PageHeader{
		Magic:    le.Uint16(b[0:]),
		Info:     le.Uint16(b[2:]),
		TLI:      le.Uint32(b[4:]),
		PageAddr: LSN(le.Uint64(b[8:])),
		RemLen:   le.Uint32(b[16:]),
	}, nil
}

// ParseLongPageHeader decodes the 40-byte long page header at the start of b.
// It does not check the fields; see CheckSegment.
func ParseLongPageHeader(b []byte) (LongPageHeader, error) {
	if len(b) < LongPageHeaderSize {
		return LongPageHeader{}, fmt.Errorf("%w: long page header needs %d bytes, got %d", ErrInvalidSegment, LongPageHeaderSize, len(b))
	}
	ph, _ := ParsePageHeader(b)
	le := binary.LittleEndian
	return LongPageHeader{
		PageHeader: ph,
		SysID:      le.Uint64(b[24:]),
		SegSize:    le.Uint32(b[32:]),
		BlockSize:  le.Uint32(b[36:]),
	}, nil
}

// magics maps xlp_magic to the major version that writes it (9.6 is 96).
// postgres: xlog_internal.h XLOG_PAGE_MAGIC in each release branch
var magics = map[uint16]int{
	0xD093: 96,
	0xD097: 10,
	0xD098: 11,
	0xD101: 12,
	0xD106: 13,
	0xD10D: 14,
	0xD110: 15,
	0xD113: 16,
	0xD116: 17,
	0xD118: 18,
}

// MajorVersion returns the PostgreSQL major version whose WAL carries magic:
// 96 for 9.6, else 10 to 18.
func MajorVersion(magic uint16) (major int, ok bool) {
	major, ok = magics[magic]
	return major, ok
}

// VersionString names the version of magic: "9.6", "15", or
// "unknown (magic 0xD1FF)".
func VersionString(magic uint16) string {
	major, ok := MajorVersion(magic)
	switch {
	case !ok:
		return fmt.Sprintf("unknown (magic 0x%04X)", magic)
	case major == 96:
		return "9.6"
	}
	return fmt.Sprint(major)
}

// plausibleMagic reports whether magic is in the 0xD0xx/0xD1xx family that
// development versions move through.
func plausibleMagic(magic uint16) bool {
	return magic&0xFE00 == 0xD000
}

// validBlockSize reports whether n is a power of two from 1 to 64 KiB.
func validBlockSize(n uint32) bool {
	return n >= MinBlockSize && n <= MaxBlockSize && n&(n-1) == 0
}
