package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

const seg16 = 16 << 20

// fixture returns the content of testdata/name.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// firstPages returns the first-page-NAME.bin fixtures by NAME.
func firstPages(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "first-page-*.bin"))
	if err != nil || len(paths) < 4 {
		t.Fatalf("want at least 4 first-page fixtures, got %v (%v)", paths, err)
	}
	m := map[string][]byte{}
	for _, p := range paths {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "first-page-"), ".bin")
		m[name] = fixture(t, filepath.Base(p))
	}
	return m
}

// basePage returns the name and first page of the full pgbench segment
// that has a second-page fixture.
func basePage(t testing.TB) (Name, []byte) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join("testdata", "second-page-*.bin"))
	if len(paths) != 1 {
		t.Fatalf("want one second-page fixture, got %v", paths)
	}
	name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(paths[0]), "second-page-"), ".bin")
	return ParseName(name), fixture(t, "first-page-"+name+".bin")
}

func TestCheckSegmentFixtures(t *testing.T) {
	var sysid uint64
	for name, page := range firstPages(t) {
		n := ParseName(name)
		h, err := CheckSegment(n, page, seg16, false)
		if err != nil {
			t.Errorf("CheckSegment(%s): %v", name, err)
			continue
		}
		if major, ok := MajorVersion(h.Magic); !ok || major != 15 || VersionString(h.Magic) != "15" {
			t.Errorf("%s: magic %#x is version %d, %v; want 15", name, h.Magic, major, ok)
		}
		if h.BlockSize != DefaultBlockSize || h.SegSize != seg16 || h.Info&InfoLongHeader == 0 {
			t.Errorf("%s: header %+v", name, h)
		}
		if sysid != 0 && h.SysID != sysid {
			t.Errorf("%s: sysid %d differs from %d", name, h.SysID, sysid)
		}
		sysid = h.SysID
		// The first segment of timeline 2 is copied from timeline 1's.
		if n.TLI == 2 && h.TLI != 1 {
			t.Errorf("%s: first page tli %d, want the parent's 1", name, h.TLI)
		}
	}
}

func TestCheckPageFixture(t *testing.T) {
	n, first := basePage(t)
	h, err := CheckSegment(n, first, seg16, false)
	if err != nil {
		t.Fatal(err)
	}
	second := fixture(t, "second-page-"+n.String()+".bin")
	start := SegmentStart(uint64(n.Seg), seg16)
	if nonZero, err := CheckPage(second, h.Magic, start, DefaultBlockSize); !nonZero || err != nil {
		t.Errorf("CheckPage(second page) = %v, %v; want true, nil", nonZero, err)
	}
	if nonZero, err := CheckPage(first, h.Magic, start, 0); !nonZero || err != nil {
		t.Errorf("CheckPage(first page, 0) = %v, %v; want true, nil", nonZero, err)
	}
	if nonZero, err := CheckPage(make([]byte, DefaultBlockSize), h.Magic, start, 2*DefaultBlockSize); nonZero || err != nil {
		t.Errorf("CheckPage(zero page) = %v, %v; want false, nil", nonZero, err)
	}
}

func TestCheckPageErrors(t *testing.T) {
	n, first := basePage(t)
	second := fixture(t, "second-page-"+n.String()+".bin")
	start := SegmentStart(uint64(n.Seg), seg16)
	tests := []struct {
		name   string
		page   []byte
		magic  uint16
		off    int64
		errHas string
	}{
		{"wrong offset", second, 0xD110, 2 * DefaultBlockSize,
			fmt.Sprintf("page at offset 16384: pageaddr %s does not match its position (expected %s)", start+0x2000, start+0x4000)},
		{"other magic", second, 0xD113, DefaultBlockSize, "xlp_magic 0xD110 differs from the first page's 0xD113"},
		{"long header later", first, 0xD110, DefaultBlockSize, "has the long-header bit 0x0002 on a page other than the first"},
		{"unknown info", setU16(second, 2, 0x0010), 0xD110, DefaultBlockSize, "xlp_info 0x0010 has unknown bits 0x0010"},
		{"tli 0", setU32(second, 4, 0), 0xD110, DefaultBlockSize, "xlp_tli is 0"},
		{"short", []byte{1, 2, 3}, 0xD110, DefaultBlockSize, "has 3 bytes, need 24"},
		{"negative", second, 0xD110, -8192, "negative offset"},
	}
	for _, tt := range tests {
		nonZero, err := CheckPage(tt.page, tt.magic, start, tt.off)
		if !nonZero || !errors.Is(err, ErrInvalidSegment) || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("%s: CheckPage = %v, %v; want error containing %q", tt.name, nonZero, err, tt.errHas)
		}
	}
}

// setU16 returns a copy of b with the little-endian uint16 at off set to v.
func setU16(b []byte, off int, v uint16) []byte {
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint16(c[off:], v)
	return c
}

func setU32(b []byte, off int, v uint32) []byte {
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint32(c[off:], v)
	return c
}

func setU64(b []byte, off int, v uint64) []byte {
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint64(c[off:], v)
	return c
}

func TestCheckSegmentErrors(t *testing.T) {
	n, page := basePage(t) // tli 1, magic 0xD110, info 0x0002
	name := n.String()
	start := SegmentStart(uint64(n.Seg), seg16)
	next := n
	next.Seg++
	tests := []struct {
		name   string
		n      Name
		page   []byte
		size   int64
		allow  bool
		errHas string
	}{
		{"corrupt magic", n, setU16(page, 0, 0x1234), seg16, true,
			"xlp_magic 0x1234 is not a known PostgreSQL version"},
		{"unknown magic", n, setU16(page, 0, 0xD1FF), seg16, false,
			"xlp_magic 0xD1FF is not a known PostgreSQL version"},
		{"wrong pageaddr", next, page, seg16, false,
			fmt.Sprintf("%s: pageaddr %s does not match name (expected %s)", next, start, start+seg16)},
		{"pageaddr in page", n, setU64(page, 8, uint64(start)+0x2000), seg16, false,
			fmt.Sprintf("pageaddr %s does not match name (expected %s)", start+0x2000, start)},
		{"tli greater than name", n, setU32(page, 4, 2), seg16, false,
			name + ": xlp_tli 2 is greater than the name's timeline 1"},
		{"tli 0", n, setU32(page, 4, 0), seg16, false, "xlp_tli is 0 (expected 1..1)"},
		{"size mismatch", n, page, seg16 - 1, false, "file size 16777215 does not match xlp_seg_size 16777216"},
		{"partial size mismatch", ParseName(name + ".partial"), page, 8192, false, "file size 8192 does not match"},
		{"no long header", n, setU16(page, 2, 0x0000), seg16, false,
			"xlp_info 0x0000 lacks the long-header bit 0x0002 on the first page"},
		{"unknown info bits", n, setU16(page, 2, 0x0102), seg16, false, "xlp_info 0x0102 has unknown bits 0x0100"},
		{"bad block size", n, setU32(page, 36, 3000), seg16, false, "xlp_xlog_blcksz 3000 is not a power of two from 1024 to 65536"},
		{"huge block size", n, setU32(page, 36, 128<<10), seg16, false, "xlp_xlog_blcksz 131072"},
		{"bad seg size", n, setU32(page, 32, 3<<20), 3 << 20, false, "xlp_seg_size 3145728 is not a power of two"},
		{"short page", n, page[:39], seg16, false, "first page has 39 bytes, need 40"},
		{"history name", ParseName("00000002.history"), page, seg16, false, `"00000002.history" is not a segment or .partial name (kind history)`},
		{"other name", ParseName("foo"), page, seg16, false, `"" is not a segment or .partial name (kind other)`},
		{"backup name", ParseName(name + ".00000028.backup"), page, seg16, false, "(kind backup)"},
		{"segment out of range", ParseName("000000010000000000000100"), page, seg16, false,
			"segment part 00000100 is out of range for xlp_seg_size 16777216"},
	}
	for _, tt := range tests {
		_, err := CheckSegment(tt.n, tt.page, tt.size, tt.allow)
		if !errors.Is(err, ErrInvalidSegment) || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("%s: CheckSegment error = %v\nwant ErrInvalidSegment containing %q", tt.name, err, tt.errHas)
			continue
		}
		if !strings.HasPrefix(err.Error(), "wal: invalid segment: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q is not one line with the package prefix", tt.name, err)
		}
	}
}

func TestCheckSegmentAllowUnknownMagic(t *testing.T) {
	n, page := basePage(t)
	for _, magic := range []uint16{0xD0FF, 0xD1FF, 0xD120} {
		if _, err := CheckSegment(n, setU16(page, 0, magic), seg16, true); err != nil {
			t.Errorf("magic %#x with allowUnknownMagic: %v", magic, err)
		}
		if _, err := CheckSegment(n, setU16(page, 0, magic), seg16, false); err == nil {
			t.Errorf("magic %#x without allowUnknownMagic: no error", magic)
		}
	}
	if VersionString(0xD1FF) != "unknown (magic 0xD1FF)" || VersionString(0xD093) != "9.6" {
		t.Errorf("VersionString: %q, %q", VersionString(0xD1FF), VersionString(0xD093))
	}
}

func TestCheckSegmentParentTLI(t *testing.T) {
	// A first page with timeline 1 under a timeline 3 name is accepted:
	// it may be the copied start of a new timeline's first segment.
	n, page := basePage(t)
	n.TLI = 3
	if _, err := CheckSegment(n, page, seg16, false); err != nil {
		t.Errorf("tli 1 page under tli 3 name: %v", err)
	}
}

func TestMajorVersion(t *testing.T) {
	want := map[uint16]int{0xD093: 96, 0xD097: 10, 0xD098: 11, 0xD101: 12, 0xD106: 13,
		0xD10D: 14, 0xD110: 15, 0xD113: 16, 0xD116: 17, 0xD118: 18}
	for magic, major := range want {
		if got, ok := MajorVersion(magic); !ok || got != major {
			t.Errorf("MajorVersion(%#x) = %d, %v; want %d", magic, got, ok, major)
		}
	}
	if _, ok := MajorVersion(0xD111); ok {
		t.Error("MajorVersion(0xD111) ok")
	}
}

func TestParsePageHeaders(t *testing.T) {
	n, page := basePage(t)
	h, err := ParseLongPageHeader(page)
	if err != nil || h.PageAddr != SegmentStart(uint64(n.Seg), seg16) || h.TLI != 1 || h.Magic != 0xD110 || h.SegSize != seg16 {
		t.Errorf("ParseLongPageHeader = %+v, %v", h, err)
	}
	ph, err := ParsePageHeader(page)
	if err != nil || ph != h.PageHeader {
		t.Errorf("ParsePageHeader = %+v, %v; want %+v", ph, err, h.PageHeader)
	}
	if _, err := ParsePageHeader(page[:23]); !errors.Is(err, ErrInvalidSegment) {
		t.Errorf("ParsePageHeader(23 bytes) error = %v", err)
	}
	if _, err := ParseLongPageHeader(page[:39]); !errors.Is(err, ErrInvalidSegment) {
		t.Errorf("ParseLongPageHeader(39 bytes) error = %v", err)
	}
}

// zeroPadded rebuilds a whole segment from a first-page fixture whose other
// pages are zero (see testdata/README).
func zeroPadded(page []byte, size int) []byte {
	b := make([]byte, size)
	copy(b, page)
	return b
}

func TestVerifySegmentFixtures(t *testing.T) {
	full, _ := basePage(t)
	for name, page := range firstPages(t) {
		n := ParseName(name)
		pages := 1
		if n == full {
			// Not zero after the first page: check the first two pages.
			page = append(bytes.Clone(page), fixture(t, "second-page-"+name+".bin")...)
			pages = 2
		}
		info, err := VerifySegment(n, bytes.NewReader(zeroPadded(page, seg16)), seg16, false)
		if err != nil {
			t.Errorf("VerifySegment(%s): %v", name, err)
			continue
		}
		if info.Pages != 2048 || info.End != int64(pages)*8192 || info.ZeroPages != 2048-pages || info.StalePages != 0 {
			t.Errorf("VerifySegment(%s) = %+v", name, info)
		}
	}
}

// synth builds a segment of segSize bytes with blockSize pages whose first
// used pages carry valid headers and some payload, and zeros after.
type synth struct {
	tli     uint32
	segno   uint64
	segSize uint32
	block   uint32
	magic   uint16
	used    int
}

func (s synth) build() []byte {
	b := make([]byte, s.segSize)
	start := SegmentStart(s.segno, s.segSize)
	for i := 0; i < s.used; i++ {
		s.putPage(b[i*int(s.block):(i+1)*int(s.block)], start+LSN(i)*LSN(s.block), s.tli)
	}
	return b
}

// putPage writes a page header for pageaddr and a little payload into p.
func (s synth) putPage(p []byte, pageaddr LSN, tli uint32) {
	le := binary.LittleEndian
	info := uint16(0)
	if uint64(pageaddr)%uint64(s.segSize) == 0 {
		info = InfoLongHeader
		le.PutUint64(p[24:], 7000000000000000001)
		le.PutUint32(p[32:], s.segSize)
		le.PutUint32(p[36:], s.block)
	}
	le.PutUint16(p[0:], s.magic)
	le.PutUint16(p[2:], info)
	le.PutUint32(p[4:], tli)
	le.PutUint64(p[8:], uint64(pageaddr))
	for i := 64; i < len(p); i += 97 {
		p[i] = byte(i)
	}
}

func (s synth) name(kind Kind) Name {
	n := ParseName(SegmentFileName(s.tli, s.segno, s.segSize))
	n.Kind = kind
	return n
}

func TestVerifySegmentSynthetic(t *testing.T) {
	base := synth{tli: 2, segno: 0x123, segSize: 1 << 20, block: 8192, magic: 0xD110, used: 10}
	pageOff := func(i int) int { return i * 8192 }

	type tc struct {
		name   string
		s      synth
		kind   Kind
		mutate func(s synth, b []byte) []byte
		want   SegmentInfo // Header not compared
		errHas string
	}
	tests := []tc{
		{name: "switched", s: base, want: SegmentInfo{Pages: 128, End: 10 * 8192, ZeroPages: 118}},
		{name: "full", s: synth{tli: 1, segno: 5, segSize: 1 << 20, block: 8192, magic: 0xD118, used: 128},
			want: SegmentInfo{Pages: 128, End: 1 << 20}},
		{name: "1k blocks", s: synth{tli: 1, segno: 5, segSize: 1 << 20, block: 1024, magic: 0xD093, used: 1024},
			want: SegmentInfo{Pages: 1024, End: 1 << 20}},
		{name: "64k blocks", s: synth{tli: 1, segno: 5, segSize: 1 << 20, block: 65536, magic: 0xD101, used: 3},
			want: SegmentInfo{Pages: 16, End: 3 * 65536, ZeroPages: 13}},
		{name: "parent tli then own", s: base, mutate: func(s synth, b []byte) []byte {
			binary.LittleEndian.PutUint32(b[4:], 1)
			return b
		}, want: SegmentInfo{Pages: 128, End: 10 * 8192, ZeroPages: 118}},
		{name: "tli decreases", s: base, mutate: func(s synth, b []byte) []byte {
			binary.LittleEndian.PutUint32(b[pageOff(5)+4:], 1)
			return b
		}, errHas: "page at offset 40960: xlp_tli 1 is lower than 2 on the page before"},
		{name: "tli above name", s: base, mutate: func(s synth, b []byte) []byte {
			binary.LittleEndian.PutUint32(b[pageOff(5)+4:], 3)
			return b
		}, errHas: "page at offset 40960: xlp_tli 3 is greater than the name's timeline 2"},
		{name: "WAL after zero page", s: base, mutate: func(s synth, b []byte) []byte {
			s.putPage(b[pageOff(20):pageOff(21)], SegmentStart(s.segno, s.segSize)+LSN(pageOff(20)), s.tli)
			return b
		}, errHas: "page at offset 163840 carries WAL after the end of WAL at offset 81920"},
		{name: "garbage after zero page", s: base, mutate: func(s synth, b []byte) []byte {
			b[pageOff(20)+100] = 1
			return b
		}, errHas: "page at offset 163840: xlp_magic 0x0000 differs from the first page's 0xD110"},
		{name: "wrong pageaddr in the middle", s: base, mutate: func(s synth, b []byte) []byte {
			binary.LittleEndian.PutUint64(b[pageOff(3)+8:], 0)
			return b
		}, errHas: "page at offset 24576: pageaddr 0/00000000 does not match its position (expected 0/12306000)"},
		{name: "stale tail rejected in 11+ segment", s: base, mutate: stale, errHas: "page at offset 81920: pageaddr 0/10014000"},
		{name: "stale tail in .partial", s: base, kind: KindPartial, mutate: stale,
			want: SegmentInfo{Pages: 128, End: 10 * 8192, StalePages: 10, ZeroPages: 108}},
		{name: "stale tail before 11", s: synth{tli: 2, segno: 0x123, segSize: 1 << 20, block: 8192, magic: 0xD097, used: 10},
			mutate: stale, want: SegmentInfo{Pages: 128, End: 10 * 8192, StalePages: 10, ZeroPages: 108}},
		{name: "stale tail in 9.6", s: synth{tli: 2, segno: 0x123, segSize: 1 << 20, block: 8192, magic: 0xD093, used: 10},
			mutate: stale, want: SegmentInfo{Pages: 128, End: 10 * 8192, StalePages: 10, ZeroPages: 108}},
		{name: "newer page in stale tail", s: base, kind: KindPartial, mutate: func(s synth, b []byte) []byte {
			b = stale(s, b)
			s.putPage(b[pageOff(30):pageOff(31)], SegmentStart(s.segno, s.segSize)+LSN(pageOff(30)), s.tli)
			return b
		}, errHas: "page at offset 245760 carries WAL after the end of WAL at offset 81920"},
	}
	for _, tt := range tests {
		kind := tt.kind
		if kind == KindOther {
			kind = KindSegment
		}
		n := tt.s.name(kind)
		b := tt.s.build()
		if tt.mutate != nil {
			b = tt.mutate(tt.s, b)
		}
		info, err := VerifySegment(n, bytes.NewReader(b), int64(len(b)), false)
		if tt.errHas != "" {
			if !errors.Is(err, ErrInvalidSegment) || !strings.Contains(err.Error(), tt.errHas) ||
				!strings.Contains(err.Error(), n.String()) {
				t.Errorf("%s: VerifySegment error = %v\nwant ErrInvalidSegment naming %s, containing %q", tt.name, err, n, tt.errHas)
			}
			continue
		}
		info.Header = LongPageHeader{}
		if err != nil || info != tt.want {
			t.Errorf("%s: VerifySegment = %+v, %v; want %+v", tt.name, info, err, tt.want)
		}
	}
}

// stale writes pages 10-19 as left over from segment 0x100 (0/10000000).
func stale(s synth, b []byte) []byte {
	old := SegmentStart(0x100, s.segSize)
	for i := 10; i < 20; i++ {
		s.putPage(b[i*8192:(i+1)*8192], old+LSN(i*8192), 1)
	}
	return b
}

func TestVerifySegmentReadErrors(t *testing.T) {
	s := synth{tli: 1, segno: 7, segSize: 1 << 20, block: 8192, magic: 0xD110, used: 2}
	n := s.name(KindSegment)
	b := s.build()

	_, err := VerifySegment(n, bytes.NewReader(b[:500000]), int64(len(b)), false)
	if !errors.Is(err, ErrInvalidSegment) || !strings.Contains(err.Error(), "file ends at offset 500000, expected 1048576 bytes") {
		t.Errorf("short file: %v", err)
	}
	_, err = VerifySegment(n, bytes.NewReader(b[:20]), int64(len(b)), false)
	if !errors.Is(err, ErrInvalidSegment) || !strings.Contains(err.Error(), "file ends at offset 20") {
		t.Errorf("tiny file: %v", err)
	}
	_, err = VerifySegment(n, bytes.NewReader(append(b, 0)), int64(len(b)), false)
	if !errors.Is(err, ErrInvalidSegment) || !strings.Contains(err.Error(), "file is longer than xlp_seg_size 1048576") {
		t.Errorf("long file: %v", err)
	}
	boom := errors.New("boom")
	_, err = VerifySegment(n, io.MultiReader(bytes.NewReader(b[:9000]), iotest.ErrReader(boom)), int64(len(b)), false)
	if !errors.Is(err, boom) || errors.Is(err, ErrInvalidSegment) {
		t.Errorf("read error: %v", err)
	}
	_, err = VerifySegment(n, bytes.NewReader(b), int64(len(b))*2, false)
	if !errors.Is(err, ErrInvalidSegment) || !strings.Contains(err.Error(), "file size 2097152 does not match xlp_seg_size 1048576") {
		t.Errorf("size mismatch: %v", err)
	}
}
