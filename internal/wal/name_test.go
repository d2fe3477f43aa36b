package wal

import (
	"errors"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in   string
		want Name
	}{
		{"000000010000000000000002", Name{Kind: KindSegment, TLI: 1, Log: 0, Seg: 2}},
		{"0000000A00000016000000B3", Name{Kind: KindSegment, TLI: 10, Log: 0x16, Seg: 0xB3}},
		{"FFFFFFFFFFFFFFFFFFFFFFFF", Name{Kind: KindSegment, TLI: 0xFFFFFFFF, Log: 0xFFFFFFFF, Seg: 0xFFFFFFFF}},
		{"00000001000000000000004C.partial", Name{Kind: KindPartial, TLI: 1, Seg: 0x4C}},
		{"00000002.history", Name{Kind: KindHistory, TLI: 2}},
		{"0000001F.history", Name{Kind: KindHistory, TLI: 0x1F}},
		{"000000010000000000000002.00000028.backup", Name{Kind: KindBackup, TLI: 1, Seg: 2, Offset: 0x28}},
		{"00000003000000A1000000FF.00FFE0A8.backup", Name{Kind: KindBackup, TLI: 3, Log: 0xA1, Seg: 0xFF, Offset: 0xFFE0A8}},

		// Not WAL archive names.
		{"", Name{}},
		{"RECOVERYXLOG", Name{}},
		{"archive_status", Name{}},
		{"000000000000000000000002", Name{}},                         // timeline 0
		{"00000000.history", Name{}},                                 // timeline 0
		{"00000000000000000000004C.partial", Name{}},                 // timeline 0
		{"000000000000000000000002.00000028.backup", Name{}},         // timeline 0
		{"00000001000000000000000a", Name{}},                         // lowercase hex
		{"0000000a.history", Name{}},                                 // lowercase hex
		{"00000001000000000000004c.partial", Name{}},                 // lowercase hex
		{"000000010000000000000002.0000002a.backup", Name{}},         // lowercase offset
		{"00000001000000000000002", Name{}},                          // 23 digits
		{"0000000100000000000000020", Name{}},                        // 25 digits
		{"00000001000000000000000G", Name{}},                         // not hex
		{" 00000001000000000000002", Name{}},                         // space
		{"000000010000000000000002.PARTIAL", Name{}},                 // case of suffix
		{"000000010000000000000002.partial.gz", Name{}},              // extra suffix
		{"000000010000000000000002.gz", Name{}},                      // compressed
		{"0000002.history", Name{}},                                  // 7 digits
		{"000000002.history", Name{}},                                // 9 digits
		{"00000002.histor", Name{}},                                  // suffix
		{"00000002xhistory", Name{}},                                 // separator
		{"000000010000000000000002.0000028.backup", Name{}},          // 7-digit offset
		{"000000010000000000000002.000000028.backup", Name{}},        // 9-digit offset
		{"000000010000000000000002x00000028.backup", Name{}},         // separator
		{"000000010000000000000002.00000028.BACKUP", Name{}},         // case of suffix
		{"000000010000000000000002.00000028xbackup", Name{}},         // separator
		{"00000001000000000000000200000028.backup", Name{}},          // no dot
		{"000000010000000000000002.history", Name{}},                 // segment.history
		{"00000002.partial", Name{}},                                 // tli.partial
		{"000000010000000000000002.00000028.backup.partial", Name{}}, // stacked
	}
	for _, tt := range tests {
		got := ParseName(tt.in)
		if got != tt.want {
			t.Errorf("ParseName(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if got.Kind != KindOther && got.String() != tt.in {
			t.Errorf("ParseName(%q).String() = %q", tt.in, got.String())
		}
	}
}

func TestKindString(t *testing.T) {
	want := map[Kind]string{
		KindOther: "other", KindSegment: "segment", KindPartial: "partial",
		KindHistory: "history", KindBackup: "backup", Kind(42): "Kind(42)",
	}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), k.String(), s)
		}
	}
	if (Name{}).String() != "" {
		t.Errorf("Name{}.String() = %q, want empty", Name{}.String())
	}
}

func TestValidSegmentSize(t *testing.T) {
	for shift := 0; shift < 32; shift++ {
		n := uint32(1) << shift
		want := shift >= 20 && shift <= 30
		if got := ValidSegmentSize(n); got != want {
			t.Errorf("ValidSegmentSize(1<<%d) = %v, want %v", shift, got, want)
		}
	}
	for _, n := range []uint32{0, 3 << 20, 16<<20 + 1, 16<<20 - 1, 0xFFFFFFFF} {
		if ValidSegmentSize(n) {
			t.Errorf("ValidSegmentSize(%d) = true", n)
		}
	}
}

func TestSegNo(t *testing.T) {
	const (
		mib = 1 << 20
		gib = 1 << 30
	)
	tests := []struct {
		name    string
		segSize uint32
		want    uint64
		wantErr string // substring; "" for success
	}{
		{"000000010000000000000002", 16 * mib, 2, ""},
		{"0000000100000016000000B3", 16 * mib, 0x16*256 + 0xB3, ""},
		{"0000000100000001000000FF", 16 * mib, 0x1FF, ""},
		{"000000010000000100000100", 16 * mib, 0, "out of range for 16 MiB segments (max 000000FF)"},
		{"000000010000000000000FFF", 1 * mib, 0xFFF, ""},
		{"000000010000000200000FFF", 1 * mib, 2*4096 + 0xFFF, ""},
		{"000000010000000000001000", 1 * mib, 0, "out of range for 1 MiB segments (max 00000FFF)"},
		{"000000010000000500000003", 1 * gib, 5*4 + 3, ""},
		{"000000010000000500000004", 1 * gib, 0, "out of range for 1024 MiB segments (max 00000003)"},
		{"0000000100000000000000FF.partial", 16 * mib, 0xFF, ""},
		{"000000010000000000000002.00000028.backup", 16 * mib, 2, ""},
		{"000000010000000000000002", 3 * mib, 0, "segment size 3145728 is not a power of two"},
		{"000000010000000000000002", 0, 0, "segment size 0 is not a power of two"},
		{"000000010000000000000002", 2 * gib, 0, "segment size 2147483648 is not a power of two"},
		{"00000002.history", 16 * mib, 0, "history name \"00000002.history\" has no segment number"},
		{"foo", 16 * mib, 0, "other name \"\" has no segment number"},
	}
	for _, tt := range tests {
		got, err := ParseName(tt.name).SegNo(tt.segSize)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("SegNo(%s, %d) = %d, %v; want %d", tt.name, tt.segSize, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("SegNo(%s, %d) error = %v; want ErrInvalidName containing %q", tt.name, tt.segSize, err, tt.wantErr)
		}
	}
}

func TestSegmentFileNameRoundTrip(t *testing.T) {
	for shift := 20; shift <= 30; shift++ {
		segSize := uint32(1) << shift
		maxSegNo := (1<<64-1)/uint64(segSize) - 0
		for _, segno := range []uint64{0, 1, 2, 255, 256, 4095, 4096, 1 << 20, maxSegNo - 1, maxSegNo} {
			for _, tli := range []uint32{1, 2, 0xFFFFFFFF} {
				s := SegmentFileName(tli, segno, segSize)
				n := ParseName(s)
				if n.Kind != KindSegment || n.TLI != tli || n.String() != s {
					t.Fatalf("ParseName(SegmentFileName(%d, %d, %d) = %q) = %+v", tli, segno, segSize, s, n)
				}
				got, err := n.SegNo(segSize)
				if err != nil || got != segno {
					t.Fatalf("%q.SegNo(%d) = %d, %v; want %d", s, segSize, got, err, segno)
				}
				start := SegmentStart(segno, segSize)
				if SegNoOf(start, segSize) != segno || SegNoOf(start+LSN(segSize-1), segSize) != segno {
					t.Fatalf("SegNoOf(SegmentStart(%d, %d)) != segno", segno, segSize)
				}
			}
		}
	}
}

func TestSegmentFileNameExamples(t *testing.T) {
	tests := []struct {
		tli     uint32
		segno   uint64
		segSize uint32
		want    string
	}{
		{1, 2, 16 << 20, "000000010000000000000002"},
		{1, 0x1FF, 16 << 20, "0000000100000001000000FF"},
		{2, 0x1000, 1 << 20, "000000020000000100000000"},
		{3, 5, 1 << 30, "000000030000000100000001"},
	}
	for _, tt := range tests {
		if got := SegmentFileName(tt.tli, tt.segno, tt.segSize); got != tt.want {
			t.Errorf("SegmentFileName(%d, %#x, %d) = %s, want %s", tt.tli, tt.segno, tt.segSize, got, tt.want)
		}
	}
	if got := HistoryFileName(0x1F); got != "0000001F.history" {
		t.Errorf("HistoryFileName(0x1F) = %s", got)
	}
	if got := SegmentStart(0x4C, 16<<20); got != 0x4C000000 {
		t.Errorf("SegmentStart(0x4C) = %s", got)
	}
	if got := SegNoOf(0x16B374D848, 16<<20); got != 0x16B3 {
		t.Errorf("SegNoOf(16/B374D848) = %#x, want 0x16B3", got)
	}
}

func TestSegmentSizePanics(t *testing.T) {
	for name, f := range map[string]func(){
		"SegmentFileName": func() { SegmentFileName(1, 1, 0) },
		"SegmentStart":    func() { SegmentStart(1, 3<<20) },
		"SegNoOf":         func() { SegNoOf(1, 0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with an invalid segment size did not panic", name)
				}
			}()
			f()
		}()
	}
}
