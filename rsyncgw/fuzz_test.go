package rsyncgw

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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

// FuzzTokenStreams feeds arbitrary bytes to each token decoder (the
// first byte picks it): no panic, no data beyond what a token may carry,
// and no unbounded output. Seeds: stock rsync's streams from the
// captured sessions and our encoders' output.
func FuzzTokenStreams(f *testing.F) {
	// Small seeds keep the fuzzer fast: the head of each captured stream
	// (a first chunk and more) and short encoded files.
	for name, streams := range capturedTokenStreams(f) {
		for _, s := range streams {
			f.Add(byte(slices.Index(codecs, name)), s[:min(len(s), 6000)])
		}
	}
	names := []string{"a", "b.gz"}
	files := [][]byte{[]byte("hello hello hello hello"), bytes.Repeat([]byte{0, 1, 2}, 2000)}
	for i, name := range codecs {
		f.Add(byte(i), encodeFiles(f, compressionLevel(name, levelUnset), nil, names, files))
	}
	f.Fuzz(func(t *testing.T, codec byte, b []byte) {
		c := compression{name: codecs[int(codec)%len(codecs)]}
		r := newTokenReader(c, bufio.NewReader(bytes.NewReader(b)))
		if z, ok := r.(*zstdTokenReader); ok {
			z.maxWindow = 1 << 20 // a 128 MiB window per input would starve the fuzzer
		}
		defer func() {
			if cl, ok := r.(interface{ close() }); ok {
				cl.close()
			}
		}()
		total := 0
		for i := 0; i < 100000 && total < 64<<20; i++ {
			n, data, err := r.next()
			if err != nil {
				return
			}
			if n > 0 && int(n) != len(data) {
				t.Fatalf("token of %d bytes returned %d", n, len(data))
			}
			if n > zstdMaxBlock {
				t.Fatalf("one token of %d bytes", n)
			}
			total += len(data)
		}
	})
}

// FuzzTokenRoundTrip encodes arbitrary files with each codec and
// decodes them back.
func FuzzTokenRoundTrip(f *testing.F) {
	f.Add(byte(0), []byte(""), []byte("x"))
	f.Add(byte(3), bytes.Repeat([]byte("wal"), 30000), []byte{0xff, 0})
	f.Fuzz(func(t *testing.T, codec byte, a, b []byte) {
		c := compressionLevel(codecs[int(codec)%len(codecs)], levelUnset)
		files := [][]byte{a, b}
		stream := encodeFiles(t, c, newCompressFilter([]string{"*.z"}, ""), []string{"one", "two.z"}, files)
		got, err := decodeFiles(c, stream, 2)
		if err != nil {
			t.Fatal(err)
		}
		for i := range files {
			if !bytes.Equal(got[i], files[i]) {
				t.Fatalf("%v: file %d differs", c, i)
			}
		}
	})
}
