package wal

import (
	"errors"
	"testing"
)

func TestParseLSN(t *testing.T) {
	tests := []struct {
		in   string
		want LSN
		str  string
	}{
		{"16/B374D848", 0x16B374D848, "16/B374D848"},
		{"0/0", 0, "0/00000000"},
		{"0/2000028", 0x2000028, "0/02000028"},
		{"0/02000028", 0x2000028, "0/02000028"},
		{"FFFFFFFF/FFFFFFFF", 1<<64 - 1, "FFFFFFFF/FFFFFFFF"},
		{"a/bcdef012", 0xABCDEF012, "A/BCDEF012"},
		{"00000001/00000000", 1 << 32, "1/00000000"},
	}
	for _, tt := range tests {
		got, err := ParseLSN(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseLSN(%q) = %#x, %v; want %#x", tt.in, uint64(got), err, uint64(tt.want))
			continue
		}
		if got.String() != tt.str {
			t.Errorf("LSN(%#x).String() = %q, want %q", uint64(got), got.String(), tt.str)
		}
		if back, err := ParseLSN(got.String()); err != nil || back != got {
			t.Errorf("ParseLSN(%q) = %v, %v; want round trip", got.String(), back, err)
		}
	}
}

func TestParseLSNErrors(t *testing.T) {
	for _, in := range []string{
		"", "/", "0/", "/0", "0", "0x1/0", "1/2/3", "G/0", "0/G",
		"123456789/0", "0/123456789", " 0/0", "0/0 ", "-1/0", "+1/0", "0 /0",
	} {
		if l, err := ParseLSN(in); !errors.Is(err, ErrInvalidLSN) {
			t.Errorf("ParseLSN(%q) = %v, %v; want ErrInvalidLSN", in, l, err)
		}
	}
}

func TestLSNStringRoundTrip(t *testing.T) {
	for _, l := range []LSN{0, 1, 0xFFFFFFFF, 1 << 32, 0x16B374D848, 1<<64 - 1, 0x123456789ABCDEF0} {
		back, err := ParseLSN(l.String())
		if err != nil || back != l {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v", l.String(), back, err, l)
		}
	}
}
