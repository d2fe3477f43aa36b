package rsyncgw

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Seeds come from the real rsync exchanges in testdata/transcripts
// (captured by testdata/capture.sh).

func transcriptNames(t testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join("testdata", "transcripts", "*.c2s"))
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".c2s"))
	}
	if len(names) == 0 {
		t.Fatal("no transcripts in testdata/transcripts")
	}
	return names
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// FuzzMuxReader feeds arbitrary bytes to the frame reader: it must never
// panic or allocate beyond its limits.
func FuzzMuxReader(f *testing.F) {
	for _, n := range transcriptNames(f) {
		tr := loadTranscript(f, n)
		f.Add(clientMux(tr.c2s))
		f.Add(serverMux(tr.s2c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := &muxReader{r: bufio.NewReader(bytes.NewReader(b)), log: quiet}
		m.start()
		for i := 0; i < 1000; i++ {
			if _, err := m.ReadByte(); err != nil {
				break
			}
			if _, err := m.Read(make([]byte, 7)); err != nil {
				break
			}
		}
	})
}

// FuzzVarints decodes varints, varlongs and indexes, and checks that what
// decodes re-encodes to the same value.
func FuzzVarints(f *testing.F) {
	for _, s := range [][]byte{{0}, {0x80, 0x80}, {0x81, 0xff}, {0xff, 0x01}, {0xfe, 0x80, 1, 2, 3}, {0xfe, 0x01, 0x00}, {0xf8, 1, 2, 3, 4, 5}} {
		f.Add(s)
	}
	for _, n := range transcriptNames(f) {
		f.Add(clientMux(loadTranscript(f, n).c2s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := readVarint(bytes.NewReader(b)); err == nil {
			if back, err := readVarint(bytes.NewReader(appendVarint(nil, v))); err != nil || back != v {
				t.Fatalf("varint %d re-read as %d, %v", v, back, err)
			}
		}
		for _, m := range []int{3, 4} {
			if v, err := readVarlong(bytes.NewReader(b), m); err == nil && v >= 0 {
				if back, err := readVarlong(bytes.NewReader(appendVarlong(nil, v, m)), m); err != nil || back != v {
					t.Fatalf("varlong %d re-read as %d, %v", v, back, err)
				}
			}
		}
		c := newNdxCodec()
		r := bytes.NewReader(b)
		for i := 0; i < 100; i++ {
			if _, err := c.read(r); err != nil {
				break
			}
		}
	})
}

// FuzzFileList decodes file lists under every option combination the
// first byte selects.
func FuzzFileList(f *testing.F) {
	for _, n := range []string{"pushnoinc", "push30", "push"} {
		mux := clientMux(loadTranscript(f, n).c2s)
		m := &muxReader{r: bufio.NewReader(bytes.NewReader(mux)), log: quiet}
		m.start()
		payload, _ := io.ReadAll(io.LimitReader(m, 4096))
		f.Add(byte(0xff), payload)
		f.Add(byte(0x7f), payload)
	}
	f.Fuzz(func(t *testing.T, opts byte, b []byte) {
		c := &flistCodec{
			protocol: 30 + int(opts&1), varint: opts&2 != 0, owner: opts&4 != 0, group: opts&8 != 0,
			links: opts&16 != 0, devices: opts&32 != 0,
		}
		if opts&64 != 0 {
			c.csumLen = 16
		}
		r := bytes.NewReader(b)
		var list []*fileEntry
		for len(list) < 10000 {
			e, _, err := c.readEntry(r)
			if err != nil || e == nil {
				break
			}
			list = append(list, e)
		}
		sortEntries(list)
	})
}

// FuzzServerArgs parses NUL-separated argument lists.
func FuzzServerArgs(f *testing.F) {
	for _, n := range transcriptNames(f) {
		c2s := loadTranscript(f, n).c2s
		if i := bytes.Index(c2s, []byte("--server")); i >= 0 {
			f.Add(c2s[i:])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		args := strings.Split(string(b), "\x00")
		a, err := parseServerArgs(args)
		if err == nil {
			a.refusal([]string{"delete*", "!delete-after", "z", "[a-"})
		}
	})
}

// FuzzConfig parses arbitrary rsyncd.conf text: errors are fine, panics
// are not.
func FuzzConfig(f *testing.F) {
	f.Add(fieldConf)
	f.Add(baseConf)
	f.Add("[m]\npath=/x\\\n/y\nhosts allow = ::1/128 10.0.0.0/255.0.0.0 *.example.com @grp\n")
	if b, err := os.ReadFile(filepath.Join("testdata", "rsyncd.conf")); err == nil {
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := ReadConfig(strings.NewReader(s), "fuzz.conf")
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
	})
}
