package wal

import (
	"fmt"
	"strconv"
	"strings"
)

// HistoryEntry is one line of a timeline history file: timeline ParentTLI
// ended, and its child began, at SwitchLSN.
type HistoryEntry struct {
	ParentTLI uint32
	SwitchLSN LSN
	Reason    string // free text, e.g. "no recovery target specified"
}

// ParseHistory parses a timeline history file. Each line is
// "parentTLI<TAB>switchpoint<TAB>reason"; blank lines and lines starting with
// '#' are skipped, as is leading white space, and any run of spaces or tabs
// separates the fields. The file must have at least one entry, parent
// timelines must increase and switch points must not decrease. Errors wrap
// ErrInvalidHistory and give the line number.
// postgres: timeline.c readTimeLineHistory
func ParseHistory(data []byte) ([]HistoryEntry, error) {
	var entries []HistoryEntry
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimLeft(line, " \t\r\v\f")
		if line == "" || line[0] == '#' {
			continue
		}
		e, err := parseHistoryLine(line)
		if err == nil {
			err = checkHistoryOrder(entries, e)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrInvalidHistory, i+1, err)
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: no timeline entries", ErrInvalidHistory)
	}
	return entries, nil
}

// parseHistoryLine parses one non-comment line.
func parseHistoryLine(line string) (HistoryEntry, error) {
	tliText, rest := cutField(line)
	tli, err := strconv.ParseUint(tliText, 10, 32)
	if err != nil || tli == 0 {
		return HistoryEntry{}, fmt.Errorf("timeline ID %q is not a number from 1 to %d", tliText, uint32(1<<32-1))
	}
	lsnText, rest := cutField(rest)
	lsn, err := ParseLSN(lsnText)
	if err != nil {
		return HistoryEntry{}, fmt.Errorf("switch point %q is not an LSN like 0/4C0000A0", lsnText)
	}
	reason := strings.TrimSpace(rest)
	return HistoryEntry{ParentTLI: uint32(tli), SwitchLSN: lsn, Reason: reason}, nil
}

// cutField splits s at its first run of spaces or tabs.
func cutField(s string) (field, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return strings.TrimRight(s, "\r"), ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// checkHistoryOrder checks e against the entries before it.
func checkHistoryOrder(entries []HistoryEntry, e HistoryEntry) error {
	if len(entries) == 0 {
		return nil
	}
	prev := entries[len(entries)-1]
	if e.ParentTLI <= prev.ParentTLI {
		return fmt.Errorf("timeline %d does not increase from %d on the line before", e.ParentTLI, prev.ParentTLI)
	}
	if e.SwitchLSN < prev.SwitchLSN {
		return fmt.Errorf("switch point %s is before %s on the line before", e.SwitchLSN, prev.SwitchLSN)
	}
	return nil
}

// CheckHistory checks that entries parsed from the history file of timeline
// tli only name parent timelines lower than tli.
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
