package wal

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BackupLabel is the content of a backup history file,
// TTTTTTTTXXXXXXXXYYYYYYYY.OOOOOOOO.backup, which PostgreSQL archives when a
// base backup ends: the backup_label lines plus the stop location and time.
// postgres: xlogbackup.c build_backup_content (xlog.c do_pg_backup_stop
// before 16)
type BackupLabel struct {
	StartLSN, StopLSN, CheckpointLSN LSN
	StartSegment, StopSegment        string // the "(file NAME)" parts
	Method, From, Label              string // BACKUP METHOD, BACKUP FROM, LABEL
	StartTime, StopTime              time.Time
	StartTLI, StopTLI                uint32
}

// backupTimeLayout is the part of the time before the zone.
// postgres: "%Y-%m-%d %H:%M:%S %Z" in log_timezone
const backupTimeLayout = "2006-01-02 15:04:05"

// ParseBackup parses a backup history file. Lines are "KEY: value"; blank
// lines and keys this package does not know (such as PostgreSQL 17's
// INCREMENTAL FROM LSN) are ignored, a known key may appear only once, and
// START WAL LOCATION and STOP WAL LOCATION are required.
//
// Times are "YYYY-MM-DD HH:MM:SS ZONE". ZONE "UTC", "GMT" or a numeric offset
// ("+03", "-0330", "+05:30") gives the exact instant; any other abbreviation
// (such as "CET") is kept as the name of a zone with offset 0, so the wall
// clock and zone name are preserved but the instant may be off by the zone's
// real offset.
//
// Errors wrap ErrInvalidBackup and give the line number.
func ParseBackup(data []byte) (BackupLabel, error) {
	var b BackupLabel
	seen := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ": ")
		if !ok && strings.HasSuffix(line, ":") { // "LABEL: " with the space trimmed
			key, ok = line[:len(line)-1], true
		}
		if !ok {
			return BackupLabel{}, fmt.Errorf("%w: line %d: %q is not \"KEY: value\"", ErrInvalidBackup, i+1, line)
		}
		f, known := backupFields[key]
		if !known {
			continue
		}
		if seen[key] {
			return BackupLabel{}, fmt.Errorf("%w: line %d: %s appears twice", ErrInvalidBackup, i+1, key)
		}
		seen[key] = true
		if err := f(&b, value); err != nil {
			return BackupLabel{}, fmt.Errorf("%w: line %d: %s: %w", ErrInvalidBackup, i+1, key, err)
		}
	}
	return b, checkBackup(b, seen)
}

// checkBackup checks the fields that must be present and consistent.
func checkBackup(b BackupLabel, seen map[string]bool) error {
	for _, key := range []string{"START WAL LOCATION", "STOP WAL LOCATION"} {
		if !seen[key] {
			return fmt.Errorf("%w: no %s line", ErrInvalidBackup, key)
		}
	}
	if b.StopLSN < b.StartLSN {
		return fmt.Errorf("%w: STOP WAL LOCATION %s is before START WAL LOCATION %s", ErrInvalidBackup, b.StopLSN, b.StartLSN)
	}
	return nil
}

// backupFields maps each known key to the function that stores its value.
var backupFields = map[string]func(*BackupLabel, string) error{
	"START WAL LOCATION": func(b *BackupLabel, v string) (err error) {
		b.StartLSN, b.StartSegment, err = parseLocation(v)
		return err
	},
	"STOP WAL LOCATION": func(b *BackupLabel, v string) (err error) {
		b.StopLSN, b.StopSegment, err = parseLocation(v)
		return err
	},
	"CHECKPOINT LOCATION": func(b *BackupLabel, v string) (err error) {
		b.CheckpointLSN, err = ParseLSN(v)
		return err
	},
	"BACKUP METHOD":  func(b *BackupLabel, v string) error { b.Method = v; return nil },
	"BACKUP FROM":    func(b *BackupLabel, v string) error { b.From = v; return nil },
	"LABEL":          func(b *BackupLabel, v string) error { b.Label = v; return nil },
	"START TIME":     func(b *BackupLabel, v string) (err error) { b.StartTime, err = parseBackupTime(v); return err },
	"STOP TIME":      func(b *BackupLabel, v string) (err error) { b.StopTime, err = parseBackupTime(v); return err },
	"START TIMELINE": func(b *BackupLabel, v string) (err error) { b.StartTLI, err = parseTLI(v); return err },
	"STOP TIMELINE":  func(b *BackupLabel, v string) (err error) { b.StopTLI, err = parseTLI(v); return err },
}

// parseLocation parses "0/2000028 (file 000000010000000000000002)".
func parseLocation(v string) (LSN, string, error) {
	lsnText, rest, ok := strings.Cut(v, " (file ")
	file, closed := strings.CutSuffix(rest, ")")
	if !ok || !closed {
		return 0, "", fmt.Errorf("%q is not \"LSN (file SEGMENT)\"", v)
	}
	lsn, err := ParseLSN(lsnText)
	if err != nil {
		return 0, "", err
	}
	if ParseName(file).Kind != KindSegment {
		return 0, "", fmt.Errorf("%q is not a segment file name", file)
	}
	return lsn, file, nil
}

// parseTLI parses a decimal timeline ID, which is never 0.
func parseTLI(v string) (uint32, error) {
	tli, err := strconv.ParseUint(v, 10, 32)
	if err != nil || tli == 0 {
		return 0, fmt.Errorf("timeline %q is not a number from 1 to %d", v, uint32(1<<32-1))
	}
	return uint32(tli), nil
}

// parseBackupTime parses "YYYY-MM-DD HH:MM:SS ZONE"; see ParseBackup.
func parseBackupTime(v string) (time.Time, error) {
	n := len(backupTimeLayout)
	if len(v) < n+2 || v[n] != ' ' {
		return time.Time{}, fmt.Errorf("time %q is not \"YYYY-MM-DD HH:MM:SS ZONE\"", v)
	}
	t, err := time.Parse(backupTimeLayout, v[:n])
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is not \"YYYY-MM-DD HH:MM:SS ZONE\"", v)
	}
	loc, err := backupZone(v[n+1:])
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", v, err)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, loc), nil
}

// backupZone returns the location for a zone abbreviation or offset.
func backupZone(zone string) (*time.Location, error) {
	switch {
	case zone == "UTC" || zone == "GMT":
		return time.UTC, nil
	case zone[0] == '+' || zone[0] == '-':
		return offsetZone(zone)
	case strings.ContainsAny(zone, " \t"):
		return nil, fmt.Errorf("zone %q has white space", zone)
	}
	return time.FixedZone(zone, 0), nil
}

// offsetZone parses "+03", "-0330" or "+05:30" as a fixed zone.
func offsetZone(zone string) (*time.Location, error) {
	digits := strings.Replace(zone[1:], ":", "", 1)
	if (len(digits) != 2 && len(digits) != 4) || strings.Trim(digits, "0123456789") != "" {
		return nil, fmt.Errorf("zone offset %q is not +HH, +HHMM or +HH:MM", zone)
	}
	h, _ := strconv.Atoi(digits[:2])
	m := 0
	if len(digits) == 4 {
		m, _ = strconv.Atoi(digits[2:])
	}
	if h > 15 || m > 59 {
		return nil, fmt.Errorf("zone offset %q is out of range", zone)
	}
	secs := (h*60 + m) * 60
	if zone[0] == '-' {
		secs = -secs
	}
	return time.FixedZone(zone, secs), nil
}

// CheckName checks that the backup history file named n holds b: the name
// is START WAL LOCATION's segment followed by the start offset within it.
// postgres: xlog_internal.h BackupHistoryFileName
func (b BackupLabel) CheckName(n Name) error {
	start := ParseName(b.StartSegment)
	if n.Kind != KindBackup || start.Kind != KindSegment ||
		start.TLI != n.TLI || start.Log != n.Log || start.Seg != n.Seg {
		return fmt.Errorf("%w: %q does not name START WAL LOCATION's segment %s", ErrInvalidBackup, n, b.StartSegment)
	}
	for size := uint32(MinSegmentSize); size <= MaxSegmentSize; size <<= 1 {
		segno, err := n.SegNo(size)
		if err == nil && SegmentStart(segno, size)+LSN(n.Offset) == b.StartLSN && n.Offset < size {
			return nil
		}
	}
	return fmt.Errorf("%w: %q does not match START WAL LOCATION %s", ErrInvalidBackup, n, b.StartLSN)
}
