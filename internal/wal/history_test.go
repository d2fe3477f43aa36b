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

// pitrHistory is the history file of issue 9: timeline 3 made by a
// recovery along timeline 2 that stopped at a restore point before
// timeline 2's switch point (writeTimeLineHistory copies the parent's file,
// then appends "\n" and the new line).
const pitrHistory = "1\t0/3018CB0\tno recovery target specified\n\n2\t0/3018C48\tat restore point \"rp\"\n"

func TestParseHistory(t *testing.T) {
	e := func(tli uint32, lsn LSN, reason string) HistoryEntry { return HistoryEntry{tli, lsn, reason} }
	tests := []struct {
		name string
		in   string
		want []HistoryEntry
	}{
		{"issue 9: switch points need not increase", pitrHistory,
			[]HistoryEntry{e(1, 0x3018CB0, "no recovery target specified"), e(2, 0x3018C48, `at restore point "rp"`)}},
		{"switch points may fall and rise again", "1\t0/5000000\tx\n2\t0/3000000\ty\n3\t0/4000000\tz\n",
			[]HistoryEntry{e(1, 0x5000000, "x"), e(2, 0x3000000, "y"), e(3, 0x4000000, "z")}},
		{"equal switch points", "1\t1/A0\ta\n2\t1/A0\tb\n", []HistoryEntry{e(1, 0x1000000A0, "a"), e(2, 0x1000000A0, "b")}},
		{"comments, blank lines, indentation, CRLF, tabs in the reason",
			"# comment\n\n\t \r\n1\t0/4C0000A0\tno recovery target specified\n   # indented comment\n" +
				"3 1/A0   at restore point \"x y\"\r\n  7\t2/0\n9\t2/10\t\n10\tFFFFFFFF/FFFFFFFF\treason\twith\ttabs",
			[]HistoryEntry{e(1, 0x4C0000A0, "no recovery target specified"), e(3, 0x1000000A0, `at restore point "x y"`),
				e(7, 0x200000000, ""), e(9, 0x200000010, ""), e(10, 1<<64-1, "reason\twith\ttabs")}},
		// sscanf's "\t" matches any white space, even none, and %X reads
		// any hex digits that follow.
		{"no blank between timeline and switch point", "1A/0\n", []HistoryEntry{e(1, 0xA00000000, "")}},
		{"white space of every kind", "1\t\v\f\r 0/1\n", []HistoryEntry{e(1, 1, "")}},
		{"blank after the slash", "1\t0/ 1\n", []HistoryEntry{e(1, 1, "")}},
		{"reason glued to the switch point", "1\t0/4C0000A0garbage\n2\t0/1xyz\n",
			[]HistoryEntry{e(1, 0x4C0000A0, "garbage"), e(2, 1, "xyz")}},
		{"C number syntax", "+1\t0x10/0X20\n2\t+1/-1\n3\t0x/1\n4\t0X/0x\n5\t-0x1/00000000000000000000000001\n",
			[]HistoryEntry{e(1, 0x1000000020, ""), e(2, 0x1FFFFFFFF, ""), e(3, 1, ""), e(4, 0, ""), e(5, 0xFFFFFFFF00000001, "")}},
		// glibc stores strtoul's result, cut to 32 bits.
		{"timeline IDs wrap as glibc's %u does", "4294967296\t0/1\n4294967297\t0/2\n-4294967291\t0/3\n-1\t0/4\n",
			[]HistoryEntry{e(0, 1, ""), e(1, 2, ""), e(5, 3, ""), e(0xFFFFFFFF, 4, "")}},
		{"overflow saturates before the cut", "1\t10000000000000000/-10000000000000000\n",
			[]HistoryEntry{e(1, 0xFFFFFFFFFFFFFFFF, "")}},
		{"timeline 0 on the first line", "0\t0/1\n1\t0/2\n", []HistoryEntry{e(0, 1, ""), e(1, 2, "")}},
		{"a NUL ends the line's text", "1\t0/1\x00junk\n\x002\t0/1\n", []HistoryEntry{e(1, 1, "")}},
		{"a line of 1022 bytes is one line", "1\t0/1\t" + strings.Repeat("r", 1022-6) + "\n",
			[]HistoryEntry{e(1, 1, strings.Repeat("r", 1016))}},
		{"fgets reads a longer line in pieces", "1\t0/1\t" + strings.Repeat("r", 1023-6) + "2\t0/2\n",
			[]HistoryEntry{e(1, 1, strings.Repeat("r", 1017)), e(2, 2, "")}},
		{"a comment piece", "1\t0/1\t" + strings.Repeat("r", 1023-6) + "#x\n", []HistoryEntry{e(1, 1, strings.Repeat("r", 1017))}},
	}
	for _, tt := range tests {
		got, err := ParseHistory([]byte(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ParseHistory(%q) = %+v, %v\nwant %+v", tt.name, tt.in, got, err, tt.want)
		}
	}
}

func TestParseHistoryErrors(t *testing.T) {
	tests := []struct {
		in     string
		errHas string
	}{
		// walrus only: PostgreSQL never writes a history file without a line.
		{"", "no timeline entries"},
		{"# only a comment\n\n \t\n", "no timeline entries"},
		// postgres: "Expected a numeric timeline ID."
		{"x\t0/1\tr\n", `line 1: syntax error: expected a numeric timeline ID: "x\t0/1\tr"`},
		{"1\t0/1\n\n+\t0/2\n", "line 3: syntax error: expected a numeric timeline ID"},
		{"- 1\t0/1\n", "expected a numeric timeline ID"},
		{"\x01\t0/1\n", "expected a numeric timeline ID"},
		// postgres: "Expected a write-ahead log switchpoint location."
		{"1\n", `line 1: syntax error: expected a write-ahead log switch point location: "1"`},
		{"1\t0/1\n#\n2\tzz\n", "line 3: syntax error: expected a write-ahead log switch point"},
		{"1,0/2\n", "expected a write-ahead log switch point"},
		{"1x\t0/1\n", "expected a write-ahead log switch point"},
		{"0x1\t0/1\n", "expected a write-ahead log switch point"}, // %u reads the 0
		{"1\t0 /1\n", "expected a write-ahead log switch point"},
		{"1\t/1\n", "expected a write-ahead log switch point"},
		{"1\t0/\n", "expected a write-ahead log switch point"},
		{"1\t0/x\n", "expected a write-ahead log switch point"},
		{"1\t0/-\n", "expected a write-ahead log switch point"},
		{"1\t0xg/1\n", "expected a write-ahead log switch point"},
		{"1\t0x-1/1\n", "expected a write-ahead log switch point"},
		{"1\t00x1/1\n", "expected a write-ahead log switch point"},
		{"1\t0x 1/1\n", "expected a write-ahead log switch point"},
		{"1\t0/1\n2\x00\t0/2\n", "line 2: syntax error: expected a write-ahead log switch point"},
		// postgres: "Timeline IDs must be in increasing sequence."
		{"1\t0/1\tr\n1\t0/2\tr\n", "line 2: timeline IDs must increase: 1 follows 1"},
		{"2\t0/1\tr\n1\t0/2\tr\n", "line 2: timeline IDs must increase: 1 follows 2"},
		{"0\t0/1\n4294967296\t0/2\n", "line 2: timeline IDs must increase: 0 follows 0"},
		// A line longer than 1023 bytes: its second piece is a line of its own.
		{"1\t0/1\t" + strings.Repeat("r", 1023-6) + "reason\n", "line 1: syntax error: expected a numeric timeline ID: \"reason\""},
		{"1\t0/1\t" + strings.Repeat("r", 1023-6) + "1\t0/2\n", "line 1: timeline IDs must increase: 1 follows 1"},
	}
	for _, tt := range tests {
		_, err := ParseHistory([]byte(tt.in))
		if !errors.Is(err, ErrInvalidHistory) || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("ParseHistory(%q) error = %v\nwant ErrInvalidHistory containing %q", tt.in, err, tt.errHas)
		}
	}
}

func TestCheckHistory(t *testing.T) {
	entries, err := ParseHistory([]byte(pitrHistory))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckHistory(3, entries); err != nil {
		t.Errorf("CheckHistory(3, issue 9's file): %v", err)
	}
	// postgres: "Timeline IDs must be less than child timeline's ID."
	for _, tli := range []uint32{1, 2} {
		if err := CheckHistory(tli, entries); !errors.Is(err, ErrInvalidHistory) ||
			!strings.Contains(err.Error(), "parent timeline 2 is not lower than the file's timeline") {
			t.Errorf("CheckHistory(%d) = %v", tli, err)
		}
	}
}
