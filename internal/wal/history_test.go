package wal

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseHistoryFixture(t *testing.T) {
	data := fixture(t, "00000002.history")
	entries, err := ParseHistory(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].ParentTLI != 1 || entries[0].Reason != "no recovery target specified" {
		t.Fatalf("ParseHistory = %+v", entries)
	}
	if entries[0].SwitchLSN == 0 || entries[0].SwitchLSN%(16<<20) == 0 {
		t.Errorf("switch point %s should be inside a segment", entries[0].SwitchLSN)
	}
	if err := CheckHistory(2, entries); err != nil {
		t.Errorf("CheckHistory(2): %v", err)
	}
	if err := CheckHistory(1, entries); !errors.Is(err, ErrInvalidHistory) ||
		!strings.Contains(err.Error(), "00000001.history: parent timeline 1 is not lower than the file's timeline 1") {
		t.Errorf("CheckHistory(1) = %v", err)
	}
	if err := CheckHistory(2, nil); !errors.Is(err, ErrInvalidHistory) {
		t.Errorf("CheckHistory(2, nil) = %v", err)
	}
}

func TestParseHistory(t *testing.T) {
	in := "# comment\n" +
		"\n" +
		"1\t0/4C0000A0\tno recovery target specified\n" +
		"   # indented comment\n" +
		"2\t1/A0\tbefore 2026-11-25 12:00:00+00\n" +
		"3 1/A0   at restore point \"x y\"\r\n" +
		"  7\t2/0\n" +
		"9\t2/10\t\n" +
		"10\tFFFFFFFF/FFFFFFFF\treason\twith\ttabs"
	want := []HistoryEntry{
		{1, 0x4C0000A0, "no recovery target specified"},
		{2, 0x1000000A0, "before 2026-11-25 12:00:00+00"},
		{3, 0x1000000A0, "at restore point \"x y\""},
		{7, 0x200000000, ""},
		{9, 0x200000010, ""},
		{10, 1<<64 - 1, "reason\twith\ttabs"},
	}
	got, err := ParseHistory([]byte(in))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseHistory = %+v, %v\nwant %+v", got, err, want)
	}
}

func TestParseHistoryErrors(t *testing.T) {
	tests := []struct {
		in     string
		errHas string
	}{
		{"", "no timeline entries"},
		{"# only a comment\n\n", "no timeline entries"},
		{"x\t0/1\tr\n", `line 1: timeline ID "x" is not a number`},
		{"0\t0/1\tr\n", `line 1: timeline ID "0" is not a number from 1`},
		{"-1\t0/1\tr\n", `timeline ID "-1"`},
		{"+1\t0/1\tr\n", `timeline ID "+1"`},
		{"4294967296\t0/1\n", `timeline ID "4294967296"`},
		{"1\n", `line 1: switch point "" is not an LSN`},
		{"1\t0/1\n#\n2\tzz\n", `line 3: switch point "zz" is not an LSN`},
		{"1\t0/1\tr\n1\t0/2\tr\n", "line 2: timeline 1 does not increase from 1 on the line before"},
		{"2\t0/1\tr\n1\t0/2\tr\n", "line 2: timeline 1 does not increase from 2"},
		{"1\t0/2\tr\n2\t0/1\tr\n", "line 2: switch point 0/00000001 is before 0/00000002 on the line before"},
		{"1,0/2\n", `timeline ID "1,0/2"`},
	}
	for _, tt := range tests {
		_, err := ParseHistory([]byte(tt.in))
		if !errors.Is(err, ErrInvalidHistory) || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("ParseHistory(%q) error = %v\nwant ErrInvalidHistory containing %q", tt.in, err, tt.errHas)
		}
	}
}
