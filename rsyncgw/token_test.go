package rsyncgw

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// testFiles are contents that exercise the codecs: empty, tiny, one
// chunk exactly, compressible text over several chunks, incompressible
// bytes, and a zero-filled WAL-like tail.
func testFiles() [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 70000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var text bytes.Buffer
	for i := 0; text.Len() < 300000; i++ {
		fmt.Fprintf(&text, "line %d of a compressible file with lsn 0/%X\n", i, i*40)
	}
	wal := append(bytes.Repeat([]byte("\x00"), 1<<20), random[:5000]...)
	return [][]byte{{}, []byte("x"), bytes.Repeat([]byte("a"), chunkSize), text.Bytes(), random, wal, []byte("tail")}
}

var codecs = []string{"", "zlib", "zlibx", "zstd", "lz4"}

// encodeFiles writes files as one session's token streams.
func encodeFiles(t testing.TB, c compression, dont *compressFilter, names []string, files [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := newTokenWriter(c, &buf, dont)
	for i, f := range files {
		w.begin(names[i])
		for p := f; len(p) > 0; {
			n := min(len(p), 1+(i+1)*7919%(3*chunkSize)) // uneven writes
			if err := w.literal(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		if err := w.end(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// decodeFiles reads count files' token streams; block references are
// an error here.
func decodeFiles(c compression, stream []byte, count int) ([][]byte, error) {
	r := newTokenReader(c, bufio.NewReader(bytes.NewReader(stream)))
	var out [][]byte
	for range count {
		var f []byte
		for {
			n, data, err := r.next()
			if err != nil {
				return out, err
			}
			if n < 0 {
				return out, fmt.Errorf("block reference %d", -(n + 1))
			}
			if n == 0 {
				break
			}
			f = append(f, data...)
		}
		out = append(out, f)
	}
	return out, nil
}

func TestTokenRoundTrip(t *testing.T) {
	files := testFiles()
	names := make([]string, len(files))
	for i := range names {
		names[i] = fmt.Sprintf("%024X", i)
	}
	for _, name := range codecs {
		for _, level := range []int{levelUnset, 1, 9} {
			c := compressionLevel(name, level)
			if name != "" && c.name == "" {
				t.Fatalf("%s level %d turned compression off", name, level)
			}
			stream := encodeFiles(t, c, nil, names, files)
			got, err := decodeFiles(c, stream, len(files))
			if err != nil {
				t.Fatalf("%v: %v", c, err)
			}
			for i := range files {
				if !bytes.Equal(got[i], files[i]) {
					t.Fatalf("%v: file %d: got %d bytes, want %d", c, i, len(got[i]), len(files[i]))
				}
			}
			var total int
			for _, f := range files {
				total += len(f)
			}
			t.Logf("%-22v %8d -> %8d bytes", c, total, len(stream))
		}
	}
}

// TestTokenDontCompress checks that files `dont compress` names are sent
// without compression work and still decode.
func TestTokenDontCompress(t *testing.T) {
	text := testFiles()[3]
	dont := newCompressFilter(DefaultDontCompress, "wal")
	for _, name := range []string{"zlib", "lz4"} {
		c := compressionLevel(name, levelUnset)
		plain := encodeFiles(t, c, dont, []string{"000000010000000000000001"}, [][]byte{text})
		skipped := encodeFiles(t, c, dont, []string{"000000010000000000000001.GZ"}, [][]byte{text})
		skipped2 := encodeFiles(t, c, dont, []string{"a/base.WAL"}, [][]byte{text})
		if len(skipped) <= len(text) || len(skipped2) <= len(text) || len(plain) >= len(text)/2 {
			t.Errorf("%s: compressed %d, dont-compress %d and %d, of %d bytes", name, len(plain), len(skipped), len(skipped2), len(text))
		}
		for _, s := range [][]byte{plain, skipped, skipped2} {
			if got, err := decodeFiles(c, s, 1); err != nil || !bytes.Equal(got[0], text) {
				t.Errorf("%s: decode: %v", name, err)
			}
		}
	}
}

func TestCompressionLevel(t *testing.T) {
	for _, c := range []struct {
		name  string
		level int
		want  compression
	}{
		{"zlib", levelUnset, compression{"zlib", 6}},
		{"zlibx", 0, compression{}},
		{"zlib", -1, compression{"zlib", 6}},
		{"zlib", 12, compression{"zlib", 9}},
		{"zstd", levelUnset, compression{"zstd", 3}},
		{"zstd", 0, compression{"zstd", 3}},
		{"zstd", -5, compression{"zstd", -5}},
		{"zstd", 99, compression{"zstd", 22}},
		{"lz4", 7, compression{"lz4", 0}},
		{"none", 5, compression{}},
	} {
		if got := compressionLevel(c.name, c.level); got != c.want {
			t.Errorf("%s %d: %v, want %v", c.name, c.level, got, c.want)
		}
	}
}

// TestTokenReferences decodes block references in every form a
// compressed stream carries them (rsync: token.c send_deflated_token
// writes them): relative, long, runs of both.
func TestTokenReferences(t *testing.T) {
	stream := []byte{
		flagTokenRel | 3,          // block 3
		flagTokenRunRel | 1, 2, 0, // block 4, then a run of 2: 5, 6
		flagTokenLong, 0x10, 0x27, 0, 0, // block 10000
		flagTokenRunLng, 0x20, 0x4e, 0, 0, 1, 0, // block 20000, run of 1: 20001
		flagEnd,
	}
	want := []int32{3, 4, 5, 6, 10000, 20000, 20001}
	for _, name := range codecs[1:] {
		r := newTokenReader(compression{name: name}, bufio.NewReader(bytes.NewReader(stream)))
		for _, b := range want {
			n, _, err := r.next()
			if err != nil || n != -(b+1) {
				t.Fatalf("%s: got %d, %v; want block %d", name, n, err, b)
			}
		}
		if n, _, err := r.next(); n != 0 || err != nil {
			t.Errorf("%s: end: %d %v", name, n, err)
		}
	}
	bad := [][]byte{{flagTokenLong, 0xff, 0xff, 0xff, 0xff}, {flagTokenRunRel, 0, 0}, {0x13}, {flagData | 0x3f}}
	for _, name := range codecs[1:] {
		for _, b := range bad {
			r := newTokenReader(compression{name: name}, bufio.NewReader(bytes.NewReader(b)))
			if _, _, err := r.next(); err == nil {
				t.Errorf("%s: % x accepted", name, b)
			}
		}
	}
}
