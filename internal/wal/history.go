package wal

import (
	"fmt"
	"strings"
)

// HistoryEntry is one line of a timeline history file: timeline ParentTLI
// ended, and its child began, at SwitchLSN.
type HistoryEntry struct {
	ParentTLI uint32
	SwitchLSN LSN
	Reason    string // free text, e.g. "no recovery target specified"
}

// historyLineMax is the size of the buffer PostgreSQL reads history lines
// into (fline[MAXPGPATH]): fgets returns at most historyLineMax-1 bytes at a
// time, so a longer line is read as several.
const historyLineMax = 1024

// ParseHistory parses a timeline history file and accepts exactly what
// PostgreSQL's reader does (postgres: timeline.c readTimeLineHistory):
//
//   - the file is read line by line as fgets(fline, MAXPGPATH) reads it: a
//     line longer than 1023 bytes is read as several, and a NUL byte ends
//     the text of its line;
//   - a line that is blank (C isspace) or whose first non-blank byte is '#'
//     is skipped;
//   - every other line must begin as sscanf(line, "%u\t%X/%X") reads it: a
//     timeline ID, white space (any amount, even none), and a switch point
//     HI/LO in hexadecimal, with C's number syntax (leading blanks, a sign,
//     a 0x prefix, values wrapped to 32 bits as glibc does); the rest of the
//     line is the reason;
//   - each line's timeline ID must be greater than the one on the line
//     before. Switch points need not increase: a recovery that stops before
//     the newest timeline's switch point writes a child whose last switch
//     point is lower than the one before it.
//
// PostgreSQL's one further rule, that every timeline ID is below the
// file's own, is CheckHistory. Where walrus refuses more: a file with no
// timeline line at all. PostgreSQL would read it as "no parents", but it
// never writes one (writeTimeLineHistory always appends a line), so such a
// file can only be a failed copy, and archiving it would pin that wrong
// content under an immutable name.
//
// Errors wrap ErrInvalidHistory and give the line number.
func ParseHistory(data []byte) ([]HistoryEntry, error) {
	var entries []HistoryEntry
	lineNo := 1
	for len(data) > 0 {
		n := min(len(data), historyLineMax-1)
		if i := indexByte(data[:n], '\n'); i >= 0 {
			n = i + 1
		}
		chunk := data[:n]
		data = data[n:]
		no := lineNo
		if chunk[len(chunk)-1] == '\n' {
			lineNo++
		}
		if i := indexByte(chunk, 0); i >= 0 {
			chunk = chunk[:i] // C string functions stop at NUL
		}
		line := string(chunk)
		if rest := strings.TrimLeft(line, cSpace); rest == "" || rest[0] == '#' {
			continue
		}
		e, err := parseHistoryLine(line)
		if err == nil && len(entries) > 0 && e.ParentTLI <= entries[len(entries)-1].ParentTLI {
			err = fmt.Errorf("timeline IDs must increase: %d follows %d", e.ParentTLI, entries[len(entries)-1].ParentTLI)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrInvalidHistory, no, err)
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: no timeline entries", ErrInvalidHistory)
	}
	return entries, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// cSpace is what C's isspace accepts in the C locale.
const cSpace = " \t\n\v\f\r"

// parseHistoryLine reads one line as sscanf(line, "%u\t%X/%X", ...) does;
// what follows the switch point, trimmed, is the reason.
func parseHistoryLine(line string) (HistoryEntry, error) {
	s := scanner{s: line}
	tli, ok := s.number(10)
	if !ok {
		return HistoryEntry{}, fmt.Errorf("syntax error: expected a numeric timeline ID: %s", quoteLine(line))
	}
	s.skipSpace() // the format's "\t" matches any white space, or none
	hi, ok := s.number(16)
	if ok {
		ok = s.literal('/')
	}
	var lo uint32
	if ok {
		lo, ok = s.number(16)
	}
	if !ok {
		return HistoryEntry{}, fmt.Errorf("syntax error: expected a write-ahead log switch point location: %s", quoteLine(line))
	}
	return HistoryEntry{ParentTLI: tli, SwitchLSN: LSN(uint64(hi)<<32 | uint64(lo)), Reason: strings.Trim(s.s[s.i:], cSpace)}, nil
}

// quoteLine quotes a line for an error message, shortened.
func quoteLine(line string) string {
	line = strings.TrimRight(line, "\n")
	if len(line) > 80 {
		return fmt.Sprintf("%q...", line[:80])
	}
	return fmt.Sprintf("%q", line)
}

// scanner reads numbers the way glibc's sscanf does.
type scanner struct {
	s string
	i int
}

func (s *scanner) skipSpace() {
	for s.i < len(s.s) && strings.IndexByte(cSpace, s.s[s.i]) >= 0 {
		s.i++
	}
}

func (s *scanner) literal(c byte) bool {
	if s.i < len(s.s) && s.s[s.i] == c {
		s.i++
		return true
	}
	return false
}

// number reads a %u (base 10) or %X (base 16) conversion into a 32-bit
// unsigned int: leading white space, an optional sign, for base 16 an
// optional 0x or 0X (which alone reads as 0), then digits. As with glibc,
// the value is strtoul's (saturated at 2^64-1 on overflow, negated modulo
// 2^64 after a '-') cut to its low 32 bits. It fails when no digit is read.
func (s *scanner) number(base uint64) (uint32, bool) {
	s.skipSpace()
	neg := false
	if s.i < len(s.s) && (s.s[s.i] == '+' || s.s[s.i] == '-') {
		neg = s.s[s.i] == '-'
		s.i++
	}
	digits := 0
	if base == 16 && s.i+1 < len(s.s) && s.s[s.i] == '0' && (s.s[s.i+1] == 'x' || s.s[s.i+1] == 'X') {
		s.i += 2
		digits = 1 // the '0' of the prefix
	}
	var v uint64
	overflow := false
	for ; s.i < len(s.s); s.i++ {
		d, ok := digitValue(s.s[s.i], base)
		if !ok {
			break
		}
		digits++
		if v > (1<<64-1-d)/base {
			overflow = true
		}
		v = v*base + d
	}
	if digits == 0 {
		return 0, false
	}
	switch {
	case overflow:
		v = 1<<64 - 1
	case neg:
		v = -v
	}
	return uint32(v), true
}

func digitValue(c byte, base uint64) (uint64, bool) {
	var d uint64
	switch {
	case c >= '0' && c <= '9':
		d = uint64(c - '0')
	case c >= 'a' && c <= 'f':
		d = uint64(c-'a') + 10
	case c >= 'A' && c <= 'F':
		d = uint64(c-'A') + 10
	default:
		return 0, false
	}
	return d, d < base
}

// CheckHistory checks that entries parsed from the history file of timeline
// tli only name timelines lower than tli.
// postgres: timeline.c readTimeLineHistory "Timeline IDs must be less than
// child timeline's ID."
func CheckHistory(tli uint32, entries []HistoryEntry) error {
	if len(entries) == 0 {
		return fmt.Errorf("%w: %s: no timeline entries", ErrInvalidHistory, HistoryFileName(tli))
	}
	if last := entries[len(entries)-1].ParentTLI; last >= tli {
		return fmt.Errorf("%w: %s: parent timeline %d is not lower than the file's timeline %d",
			ErrInvalidHistory, HistoryFileName(tli), last, tli)
	}
	return nil
}
