package wal

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureNames returns the base names of testdata files matching pattern.
func fixtureNames(f *testing.F, pattern string) []string {
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no fixtures %s: %v", pattern, err)
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
	}
	return names
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"000000010000000000000002", "00000001000000000000004C.partial", "00000002.history",
		"000000010000000000000002.00000028.backup", "0000000100000000000000ff", "RECOVERYXLOG", "",
	} {
		f.Add(s)
	}
	for _, s := range fixtureNames(f, "*") {
		f.Add(s)
		f.Add(strings.TrimSuffix(strings.TrimPrefix(s, "first-page-"), ".bin"))
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := ParseName(s)
		if n.Kind == KindOther {
			if n != (Name{}) || n.String() != "" {
				t.Fatalf("ParseName(%q) = %+v for a non-WAL name", s, n)
			}
			return
		}
		if n.String() != s || ParseName(n.String()) != n || n.TLI == 0 {
			t.Fatalf("ParseName(%q) = %+v, String %q", s, n, n.String())
		}
		for shift := 20; shift <= 30; shift++ {
			segSize := uint32(1) << shift
			segno, err := n.SegNo(segSize)
			if n.Kind == KindHistory || err != nil {
				if err == nil || !errors.Is(err, ErrInvalidName) {
					t.Fatalf("%q.SegNo(%d) error = %v", s, segSize, err)
				}
				continue
			}
			if got := SegmentFileName(n.TLI, segno, segSize); got != s[:24] {
				t.Fatalf("SegmentFileName(SegNo(%q)) = %q", s, got)
			}
		}
	})
}

func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"16/B374D848", "0/0", "FFFFFFFF/FFFFFFFF", "a/b", "1/", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLSN(s)
		if err != nil {
			return
		}
		if back, err := ParseLSN(l.String()); err != nil || back != l {
			t.Fatalf("ParseLSN(%q) = %v; String %q parses to %v, %v", s, l, l.String(), back, err)
		}
		if !strings.EqualFold(fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)), trimZeros(s)) {
			t.Fatalf("ParseLSN(%q) = %v", s, l)
		}
	})
}

// trimZeros removes leading zeros from both halves of "HI/LO".
func trimZeros(s string) string {
	hi, lo, _ := strings.Cut(s, "/")
	trim := func(x string) string {
		if x = strings.TrimLeft(x, "0"); x == "" {
			return "0"
		}
		return x
	}
	return trim(hi) + "/" + trim(lo)
}

func FuzzCheckSegment(f *testing.F) {
	for _, file := range fixtureNames(f, "*-page-*.bin") {
		data := fixture(f, file)
		name := strings.TrimSuffix(file[strings.Index(file, "-page-")+len("-page-"):], ".bin")
		f.Add(name, data, int64(seg16), false)
		f.Add(name, data[:LongPageHeaderSize], int64(seg16), true)
		f.Add(name, data[:100], int64(1<<20), true)
	}
	f.Fuzz(func(t *testing.T, name string, page []byte, size int64, allow bool) {
		n := ParseName(name)
		h, err := CheckSegment(n, page, size, allow)
		if err != nil {
			if !errors.Is(err, ErrInvalidSegment) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("CheckSegment error %q", err)
			}
		} else {
			checkSegmentInvariants(t, n, h, size, allow)
		}
		// Neither may panic on any input; VerifySegment reads at most the
		// bytes given before failing.
		if h.BlockSize == 0 {
			h.BlockSize = DefaultBlockSize
		}
		for off := int64(0); off < int64(len(page)); off += int64(h.BlockSize) {
			CheckPage(page[off:], h.Magic, h.PageAddr, off)
		}
		if _, err := VerifySegment(n, bytes.NewReader(page), size, allow); err != nil && !errors.Is(err, ErrInvalidSegment) {
			t.Fatalf("VerifySegment error %q", err)
		}
	})
}

func checkSegmentInvariants(t *testing.T, n Name, h LongPageHeader, size int64, allow bool) {
	segno, err := n.SegNo(h.SegSize)
	_, known := MajorVersion(h.Magic)
	switch {
	case err != nil:
		t.Fatalf("CheckSegment accepted %s, SegNo: %v", n, err)
	case size != int64(h.SegSize) || h.PageAddr != SegmentStart(segno, h.SegSize):
		t.Fatalf("CheckSegment accepted %s with %+v, size %d", n, h, size)
	case h.TLI == 0 || h.TLI > n.TLI || h.Info&InfoLongHeader == 0:
		t.Fatalf("CheckSegment accepted %s with %+v", n, h)
	case !known && !allow:
		t.Fatalf("CheckSegment accepted unknown magic %#x", h.Magic)
	}
}

func FuzzParseHistory(f *testing.F) {
	for _, file := range fixtureNames(f, "*.history") {
		f.Add(fixture(f, file))
	}
	f.Add([]byte("# c\n1\t0/4C0000A0\tno recovery target specified\n2\t1/0\tbefore 2026-11-25\n"))
	f.Add([]byte("1 0/1\r\n"))
	f.Add([]byte(pitrHistory)) // switch points need not increase
	f.Add([]byte("+1\t0x10/-1\n4294967298\t0/ 2glued\n\x00\n"))
	f.Add([]byte("1\t0/1\t" + strings.Repeat("r", 1017) + "2\t0/2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseHistory(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidHistory) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseHistory error %q", err)
			}
			return
		}
		if len(entries) == 0 {
			t.Fatal("ParseHistory returned no entries and no error")
		}
		// Written back as PostgreSQL writes them (writeTimeLineHistory),
		// the entries parse the same, unless a line gets longer than one
		// fgets buffer.
		var b strings.Builder
		long := false
		for i, e := range entries {
			if i > 0 && e.ParentTLI <= entries[i-1].ParentTLI {
				t.Fatalf("ParseHistory returned timelines out of order %+v", entries)
			}
			line := fmt.Sprintf("%d\t%X/%X\t%s\n", e.ParentTLI, uint32(e.SwitchLSN>>32), uint32(e.SwitchLSN), e.Reason)
			long = long || len(line) >= historyLineMax
			b.WriteString(line)
		}
		if long {
			return
		}
		again, err := ParseHistory([]byte(b.String()))
		if err != nil || len(again) != len(entries) {
			t.Fatalf("reparse of %q: %v, %v", b.String(), again, err)
		}
		for i := range again {
			if again[i] != entries[i] {
				t.Fatalf("reparse of %q: %+v, want %+v", b.String(), again[i], entries[i])
			}
		}
	})
}

func FuzzParseBackup(f *testing.F) {
	for _, file := range fixtureNames(f, "*.backup") {
		f.Add(fixture(f, file))
	}
	f.Add([]byte(backupText))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBackup(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidBackup) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseBackup error %q", err)
			}
			return
		}
		if b.StopLSN < b.StartLSN || ParseName(b.StartSegment).Kind != KindSegment || ParseName(b.StopSegment).Kind != KindSegment {
			t.Fatalf("ParseBackup accepted %+v", b)
		}
		for _, n := range []Name{ParseName(b.StartSegment), {Kind: KindBackup, TLI: 1}} {
			if err := b.CheckName(n); err != nil && !errors.Is(err, ErrInvalidBackup) {
				t.Fatalf("CheckName error %q", err)
			}
		}
	})
}

// FuzzVerifySegment damages a synthetic 1 MiB segment and checks that
// VerifySegment's answer is consistent.
func FuzzVerifySegment(f *testing.F) {
	f.Add(uint32(8192*3+8), []byte{1}, uint8(10), uint16(0xD110), false)
	f.Add(uint32(8192*20), []byte{0x10, 0xD1}, uint8(10), uint16(0xD110), true)
	f.Add(uint32(0), []byte{}, uint8(128), uint16(0xD093), true)
	f.Add(uint32(8192*11+4), []byte{0, 0, 0, 0}, uint8(12), uint16(0xD097), false)
	f.Fuzz(func(t *testing.T, off uint32, patch []byte, used uint8, magic uint16, partial bool) {
		s := synth{tli: 2, segno: 0x42, segSize: 1 << 20, block: 8192, magic: magic, used: int(used)%128 + 1}
		b := s.build()
		copy(b[int(off)%len(b):], patch)
		kind := KindSegment
		if partial {
			kind = KindPartial
		}
		info, err := VerifySegment(s.name(kind), bytes.NewReader(b), int64(len(b)), true)
		if err != nil {
			if !errors.Is(err, ErrInvalidSegment) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("VerifySegment error %q", err)
			}
			return
		}
		bs := int64(info.Header.BlockSize) // the patch may have changed it
		walPages := int(info.End / bs)
		if int64(info.Pages) != (1<<20)/bs || info.End%bs != 0 || walPages+info.ZeroPages+info.StalePages != info.Pages {
			t.Fatalf("VerifySegment = %+v", info)
		}
		if !isZero(b[info.End:]) && info.StalePages == 0 {
			t.Fatalf("VerifySegment = %+v, but data after End is not zero", info)
		}
	})
}
