package wal

import (
	"fmt"
	"strings"
)

// LSN is a log sequence number, a byte position in the WAL stream.
// postgres: xlogdefs.h XLogRecPtr
type LSN uint64

// ParseLSN parses the textual form "HI/LO" of an LSN, where HI and LO are one
// to eight hexadecimal digits of either case, as pg_lsn_in accepts them.
// postgres: utils/adt/pg_lsn.c pg_lsn_in_internal
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("%w: %q has no '/'", ErrInvalidLSN, s)
	}
	h, okh := parseHex32(hi)
	l, okl := parseHex32(lo)
	if !okh || !okl {
		return 0, fmt.Errorf("%w: %q is not HI/LO with 1-8 hex digits each", ErrInvalidLSN, s)
	}
	return LSN(uint64(h)<<32 | uint64(l)), nil
}

// String formats l as "%X/%08X", the form PostgreSQL 18 prints.
// postgres: xlogdefs.h LSN_FORMAT_ARGS
func (l LSN) String() string {
	return fmt.Sprintf("%X/%08X", uint32(l>>32), uint32(l))
}

// parseHex32 parses 1 to 8 hex digits of either case.
func parseHex32(s string) (uint32, bool) {
	if len(s) == 0 || len(s) > 8 {
		return 0, false
	}
	var v uint32
	for i := 0; i < len(s); i++ {
		d, ok := hexDigit(s[i], true)
		if !ok {
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// hexDigit returns the value of hex digit c; lowercase only if lower.
func hexDigit(c byte, lower bool) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case lower && c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
