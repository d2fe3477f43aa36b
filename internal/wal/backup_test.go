package wal

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// backupFixture returns the name and content of the .backup fixture.
func backupFixture(t *testing.T) (Name, []byte) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.backup"))
	if len(paths) != 1 {
		t.Fatalf("want one .backup fixture, got %v", paths)
	}
	n := ParseName(filepath.Base(paths[0]))
	if n.Kind != KindBackup {
		t.Fatalf("%s is not a backup name", paths[0])
	}
	return n, fixture(t, filepath.Base(paths[0]))
}

func TestParseBackupFixture(t *testing.T) {
	n, data := backupFixture(t)
	b, err := ParseBackup(data)
	if err != nil {
		t.Fatal(err)
	}
	start := ParseName(b.StartSegment)
	if start.Kind != KindSegment || start.TLI != n.TLI || start.Seg != n.Seg || b.StartLSN%(16<<20) != LSN(n.Offset) {
		t.Errorf("START WAL LOCATION %s (file %s) does not match name %s", b.StartLSN, b.StartSegment, n)
	}
	if b.StopLSN < b.StartLSN || b.CheckpointLSN < b.StartLSN || ParseName(b.StopSegment).Kind != KindSegment {
		t.Errorf("locations: %+v", b)
	}
	if b.Method != "streamed" || b.From != "primary" || b.Label != "mkwal" || b.StartTLI != 1 || b.StopTLI != 1 {
		t.Errorf("fields: %+v", b)
	}
	if b.StartTime.IsZero() || b.StopTime.Before(b.StartTime) || b.StartTime.Location() != time.UTC {
		t.Errorf("times: %v, %v", b.StartTime, b.StopTime)
	}
	if err := b.CheckName(n); err != nil {
		t.Errorf("CheckName(%s): %v", n, err)
	}
	other := n
	other.Offset += 8
	if err := b.CheckName(other); !errors.Is(err, ErrInvalidBackup) || !strings.Contains(err.Error(), "does not match START WAL LOCATION") {
		t.Errorf("CheckName(%s) = %v", other, err)
	}
	other = n
	other.TLI++
	if err := b.CheckName(other); !errors.Is(err, ErrInvalidBackup) || !strings.Contains(err.Error(), "does not name START WAL LOCATION's segment") {
		t.Errorf("CheckName(%s) = %v", other, err)
	}
}

const backupText = `START WAL LOCATION: 16/B374D848 (file 0000000300000016000000B3)
STOP WAL LOCATION: 16/B5000130 (file 0000000300000016000000B5)
CHECKPOINT LOCATION: 16/B374D880
BACKUP METHOD: pg_start_backup
BACKUP FROM: standby
START TIME: 2026-11-25 12:00:00 CET
LABEL: nightly: full
INCREMENTAL FROM LSN: 16/00000028
START TIMELINE: 3
STOP TIME: 2026-11-25 13:30:05 +0530
STOP TIMELINE: 3
`

func TestParseBackup(t *testing.T) {
	b, err := ParseBackup([]byte(strings.ReplaceAll(backupText, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	want := BackupLabel{
		StartLSN: 0x16B374D848, StopLSN: 0x16B5000130, CheckpointLSN: 0x16B374D880,
		StartSegment: "0000000300000016000000B3", StopSegment: "0000000300000016000000B5",
		Method: "pg_start_backup", From: "standby", Label: "nightly: full",
		StartTLI: 3, StopTLI: 3,
	}
	start, stop := b.StartTime, b.StopTime
	b.StartTime, b.StopTime = time.Time{}, time.Time{}
	if b != want {
		t.Errorf("ParseBackup = %+v\nwant %+v", b, want)
	}
	if name, off := start.Zone(); name != "CET" || off != 0 || start.Format(time.DateTime) != "2026-11-25 12:00:00" {
		t.Errorf("START TIME = %v", start)
	}
	if name, off := stop.Zone(); name != "+0530" || off != 19800 || !stop.Equal(time.Date(2026, 11, 25, 8, 0, 5, 0, time.UTC)) {
		t.Errorf("STOP TIME = %v", stop)
	}
	n := ParseName("0000000300000016000000B3.0074D848.backup")
	if err := b.CheckName(n); err != nil {
		t.Errorf("CheckName: %v", err)
	}
}

func TestParseBackupEmptyLabel(t *testing.T) {
	for _, label := range []string{"LABEL: \n", "LABEL:\n"} {
		b, err := ParseBackup([]byte(strings.Replace(backupText, "LABEL: nightly: full\n", label, 1)))
		if err != nil || b.Label != "" || b.StartTLI != 3 {
			t.Errorf("ParseBackup with %q = %+v, %v", label, b, err)
		}
	}
}

func TestParseBackupTimes(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		zone string
	}{
		{"2026-11-25 12:00:00 UTC", time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), "UTC"},
		{"2026-11-25 12:00:00 GMT", time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), "UTC"},
		{"2026-11-25 12:00:00 +03", time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), "+03"},
		{"2026-11-25 12:00:00 -03:30", time.Date(2026, 11, 25, 15, 30, 0, 0, time.UTC), "-03:30"},
		{"2026-11-25 12:00:00 PST", time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), "PST"},
	}
	for _, tt := range tests {
		got, err := parseBackupTime(tt.in)
		if name, _ := got.Zone(); err != nil || !got.Equal(tt.want) || name != tt.zone {
			t.Errorf("parseBackupTime(%q) = %v, %v; want %v in %s", tt.in, got, err, tt.want, tt.zone)
		}
	}
	for _, in := range []string{
		"", "2026-11-25 12:00:00", "2026-11-25 12:00:00 ", "2026-11-25T12:00:00 UTC",
		"2026-11-25 12:00:00.5 UTC", "2026-13-25 12:00:00 UTC", "2026-11-25 12:00:00 +3",
		"2026-11-25 12:00:00 +99", "2026-11-25 12:00:00 +0099", "2026-11-25 12:00:00 A B",
	} {
		if got, err := parseBackupTime(in); err == nil {
			t.Errorf("parseBackupTime(%q) = %v, want error", in, got)
		}
	}
}

func TestParseBackupErrors(t *testing.T) {
	start := "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
	stop := "STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n"
	tests := []struct {
		in     string
		errHas string
	}{
		{"", "no START WAL LOCATION line"},
		{start, "no STOP WAL LOCATION line"},
		{stop, "no START WAL LOCATION line"},
		{start + stop + start, "line 3: START WAL LOCATION appears twice"},
		{start + "garbage\n" + stop, `line 2: "garbage" is not "KEY: value"`},
		{start + stop + "LABEL:\nSTART TIMELINE:\n", `line 4: START TIMELINE: timeline "" is not a number`},
		{"START WAL LOCATION: 0/2000028\n" + stop, `line 1: START WAL LOCATION: "0/2000028" is not "LSN (file SEGMENT)"`},
		{"START WAL LOCATION: 0/2000028 (file 000000010000000000000002\n" + stop, `is not "LSN (file SEGMENT)"`},
		{"START WAL LOCATION: 0/2000028 (file foo)\n" + stop, `"foo" is not a segment file name`},
		{"START WAL LOCATION: x/2000028 (file 000000010000000000000002)\n" + stop, "wal: invalid LSN"},
		{start + "STOP WAL LOCATION: 0/1000000 (file 000000010000000000000001)\n",
			"STOP WAL LOCATION 0/01000000 is before START WAL LOCATION 0/02000028"},
		{start + stop + "CHECKPOINT LOCATION: nope\n", "line 3: CHECKPOINT LOCATION: wal: invalid LSN"},
		{start + stop + "START TIMELINE: 0\n", `line 3: START TIMELINE: timeline "0" is not a number`},
		{start + stop + "STOP TIMELINE: -1\n", `timeline "-1"`},
		{start + stop + "START TIME: yesterday\n", `line 3: START TIME: time "yesterday"`},
		{start + stop + "STOP TIME: 2026-11-25 12:00:00 +7\n", `zone offset "+7"`},
	}
	for _, tt := range tests {
		_, err := ParseBackup([]byte(tt.in))
		if !errors.Is(err, ErrInvalidBackup) || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("ParseBackup(%q) error = %v\nwant ErrInvalidBackup containing %q", tt.in, err, tt.errHas)
		}
	}
}
