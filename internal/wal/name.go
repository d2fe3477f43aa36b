package wal

import (
	"fmt"
	"strings"
)

// Kind is the kind of file an archive name denotes.
type Kind int

// Kinds of archive file names.
const (
	KindOther   Kind = iota // not a WAL archive name
	KindSegment             // TTTTTTTTXXXXXXXXYYYYYYYY
	KindPartial             // TTTTTTTTXXXXXXXXYYYYYYYY.partial
	KindHistory             // TTTTTTTT.history
	KindBackup              // TTTTTTTTXXXXXXXXYYYYYYYY.OOOOOOOO.backup
)

// String returns a lowercase word for k.
func (k Kind) String() string {
	switch k {
	case KindOther:
		return "other"
	case KindSegment:
		return "segment"
	case KindPartial:
		return "partial"
	case KindHistory:
		return "history"
	case KindBackup:
		return "backup"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Segment sizes. postgres: xlog_internal.h WalSegMinSize, WalSegMaxSize
const (
	MinSegmentSize = 1 << 20
	MaxSegmentSize = 1 << 30
)

// ValidSegmentSize reports whether n is a possible wal_segment_size: a power
// of two from 1 MiB to 1 GiB.
// postgres: xlog_internal.h IsValidWalSegSize
func ValidSegmentSize(n uint32) bool {
	return n >= MinSegmentSize && n <= MaxSegmentSize && n&(n-1) == 0
}

// Name is a parsed archive file name.
type Name struct {
	Kind   Kind
	TLI    uint32
	Log    uint32 // second 8 hex digits (segment or backup/partial base)
	Seg    uint32 // third 8 hex digits
	Offset uint32 // .backup only: the hex offset before ".backup"
}

// Name lengths. postgres: xlog_internal.h XLOG_FNAME_LEN
const (
	segNameLen = 24
	tliNameLen = 8
)

// ParseName parses an archive file name. It never fails: a name that is not
// exactly one of the WAL forms, in uppercase hex, with a nonzero timeline, is
// KindOther.
// postgres: xlog_internal.h IsXLogFileName, IsPartialXLogFileName,
// IsTLHistoryFileName, IsBackupHistoryFileName
func ParseName(s string) Name {
	var n Name
	switch {
	case len(s) == segNameLen:
		n, _ = parseSegName(s, KindSegment)
	case len(s) == segNameLen+len(".partial") && strings.HasSuffix(s, ".partial"):
		n, _ = parseSegName(s[:segNameLen], KindPartial)
	case len(s) == tliNameLen+len(".history") && strings.HasSuffix(s, ".history"):
		n = parseHistoryName(s[:tliNameLen])
	case len(s) == segNameLen+1+8+len(".backup") && strings.HasSuffix(s, ".backup"):
		n = parseBackupName(s)
	}
	if n.TLI == 0 {
		return Name{}
	}
	return n
}

func parseSegName(s string, k Kind) (Name, bool) {
	tli, ok1 := hex8(s[0:8])
	log, ok2 := hex8(s[8:16])
	seg, ok3 := hex8(s[16:24])
	if !ok1 || !ok2 || !ok3 {
		return Name{}, false
	}
	return Name{Kind: k, TLI: tli, Log: log, Seg: seg}, true
}

func parseHistoryName(s string) Name {
	tli, ok := hex8(s)
	if !ok {
		return Name{}
	}
	return Name{Kind: KindHistory, TLI: tli}
}

func parseBackupName(s string) Name {
	n, ok := parseSegName(s[:segNameLen], KindBackup)
	if !ok || s[segNameLen] != '.' {
		return Name{}
	}
	off, ok := hex8(s[segNameLen+1 : segNameLen+9])
	if !ok {
		return Name{}
	}
	n.Offset = off
	return n
}

// hex8 parses exactly 8 uppercase hex digits.
func hex8(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	var v uint32
	for i := 0; i < 8; i++ {
		d, ok := hexDigit(s[i], false)
		if !ok {
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// segsPerID is the number of segments per 4 GiB "log id".
// postgres: xlog_internal.h XLogSegmentsPerXLogId
func segsPerID(segSize uint32) uint64 {
	return (1 << 32) / uint64(segSize)
}

// SegNo returns the segment number of a segment, .partial or .backup name
// for segments of segSize bytes: Log * (2^32 / segSize) + Seg.
// postgres: xlog_internal.h XLogFromFileName
func (n Name) SegNo(segSize uint32) (uint64, error) {
	switch {
	case n.Kind != KindSegment && n.Kind != KindPartial && n.Kind != KindBackup:
		return 0, fmt.Errorf("%w: %s name %q has no segment number", ErrInvalidName, n.Kind, n)
	case !ValidSegmentSize(segSize):
		return 0, fmt.Errorf("%w: %q: segment size %d is not a power of two from 1 MiB to 1 GiB", ErrInvalidName, n, segSize)
	case uint64(n.Seg) >= segsPerID(segSize):
		return 0, fmt.Errorf("%w: %q: segment part %08X is out of range for %d MiB segments (max %08X)",
			ErrInvalidName, n, n.Seg, segSize>>20, segsPerID(segSize)-1)
	}
	return uint64(n.Log)*segsPerID(segSize) + uint64(n.Seg), nil
}

// String returns the file name n stands for, or "" for KindOther.
func (n Name) String() string {
	switch n.Kind {
	case KindSegment:
		return fmt.Sprintf("%08X%08X%08X", n.TLI, n.Log, n.Seg)
	case KindPartial:
		return fmt.Sprintf("%08X%08X%08X.partial", n.TLI, n.Log, n.Seg)
	case KindHistory:
		return HistoryFileName(n.TLI)
	case KindBackup:
		return fmt.Sprintf("%08X%08X%08X.%08X.backup", n.TLI, n.Log, n.Seg, n.Offset)
	}
	return ""
}

// SegmentFileName returns the name of segment segno on timeline tli.
// It panics if segSize is not a valid segment size.
// postgres: xlog_internal.h XLogFileName
func SegmentFileName(tli uint32, segno uint64, segSize uint32) string {
	mustSegSize(segSize)
	per := segsPerID(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, uint32(segno/per), uint32(segno%per))
}

// HistoryFileName returns the name of the history file of timeline tli.
// postgres: xlog_internal.h TLHistoryFileName
func HistoryFileName(tli uint32) string {
	return fmt.Sprintf("%08X.history", tli)
}

// SegmentStart returns the LSN of the first byte of segment segno.
// It panics if segSize is not a valid segment size.
// postgres: xlog_internal.h XLogSegNoOffsetToRecPtr
func SegmentStart(segno uint64, segSize uint32) LSN {
	mustSegSize(segSize)
	return LSN(segno * uint64(segSize))
}

// SegNoOf returns the number of the segment holding lsn.
// It panics if segSize is not a valid segment size.
// postgres: xlog_internal.h XLByteToSeg
func SegNoOf(lsn LSN, segSize uint32) uint64 {
	mustSegSize(segSize)
	return uint64(lsn) / uint64(segSize)
}

func mustSegSize(segSize uint32) {
	if !ValidSegmentSize(segSize) {
		panic(fmt.Sprintf("wal: segment size %d is not a power of two from 1 MiB to 1 GiB", segSize))
	}
}
