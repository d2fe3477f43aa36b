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
	// Empty DEFLATED_DATA chunks (found by FuzzTokenStreams: the
	// inflater's byte reader indexed an empty chunk) end in an error or
	// the file's end, never a panic.
	for _, name := range codecs[1:] {
		r := newTokenReader(compression{name: name}, bufio.NewReader(bytes.NewReader([]byte{flagData, 0, flagData, 0, flagEnd})))
		r.next()
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

// TestCapturedStreams decodes the compressed token streams a stock rsync
// 3.5.0 sent (testdata/capture.sh: pull and push of a text file and an
// incompressible one, one session each) and checks each file against
// the whole-file checksum the sender appended.
func TestCapturedStreams(t *testing.T) {
	for _, c := range []struct {
		name     string
		comp     string
		vstrings int // negotiation strings the server sent before the seed
	}{
		{"pullzlib", "zlib", 1}, {"pullzlibx", "zlibx", 1}, {"pullzstd", "zstd", 1}, {"pulllz4", "lz4", 1},
		{"pullz", "zstd", 2},
		{"pushzlib", "zlib", 0}, {"pushzlibx", "zlibx", 0}, {"pushzstd", "zstd", 0}, {"pushlz4", "lz4", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := loadTranscript(t, c.name)
			var stream []byte
			if c.vstrings > 0 {
				stream = afterSetup(tr.s2c, c.vstrings)
			} else {
				stream = clientMux(tr.c2s)
			}
			files, _ := walkCapturedFiles(t, demux(t, stream), compressionLevel(c.comp, levelUnset))
			if len(files) != 2 {
				t.Fatalf("decoded %d files, want 2", len(files))
			}
		})
	}
}

// afterSetup returns a server stream after `@RSYNCD: OK`, the compat
// flags, n negotiation strings and the seed.
func afterSetup(b []byte, n int) []byte {
	i := bytes.Index(b, []byte("@RSYNCD: OK\n"))
	r := bytes.NewReader(b[i+12:])
	readVarint(r)
	for range n {
		readVstring(r, maxVstringLen)
	}
	readInt32(r)
	rest, _ := readAllBytes(r)
	return rest
}

// walkCapturedFiles reads a file list (-rt, protocol 31, varint flags)
// and then every file the sender sent, up to the first NDX_DONE, and
// returns their contents after checking them against the sender's
// xxh128, and the token streams' bytes.
func walkCapturedFiles(t testing.TB, mux *muxReader, comp compression) (map[string][]byte, []byte) {
	t.Helper()
	in := &recordingReader{r: mux}
	fl := &flistCodec{protocol: 31, varint: true}
	var list []*fileEntry
	for {
		e, _, err := fl.readEntry(in)
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			break
		}
		list = append(list, e)
	}
	if _, err := readVarint(in); err != nil { // io_error
		t.Fatal(err)
	}
	list = sortEntries(list)
	tokens := newTokenReader(comp, in)
	ndx := newNdxCodec()
	files := map[string][]byte{}
	for {
		n, err := ndx.read(in)
		if err != nil {
			t.Fatal(err)
		}
		if n == ndxDone {
			return files, in.rec
		}
		iflags, err := readUint16(in)
		if err != nil {
			t.Fatal(err)
		}
		if iflags&itemTransfer == 0 {
			continue // "." itemized
		}
		var head [4]int32
		for i := range head {
			if head[i], err = readInt32(in); err != nil {
				t.Fatal(err)
			}
		}
		var data []byte
		in.on = true
		for {
			k, p, err := tokens.next()
			if err != nil {
				t.Fatalf("%s: %v", list[n].name, err)
			}
			if k == 0 {
				break
			}
			if k < 0 {
				t.Fatalf("%s: block reference %d", list[n].name, -(k + 1))
			}
			data = append(data, p...)
		}
		in.on = false
		want := make([]byte, 16)
		if err := readFull(in, want); err != nil {
			t.Fatal(err)
		}
		sum := newFileSum("xxh128")
		sum.Write(data)
		if e := list[n]; int64(len(data)) != e.size || !bytes.Equal(sum.Sum(), want) {
			t.Fatalf("%s: decoded %d bytes (size %d), checksum %x, sender's %x", e.name, len(data), e.size, sum.Sum(), want)
		}
		files[list[n].name] = data
	}
}

// recordingReader keeps the bytes read while on.
type recordingReader struct {
	r   byteReader
	on  bool
	rec []byte
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if r.on {
		r.rec = append(r.rec, p[:n]...)
	}
	return n, err
}

func (r *recordingReader) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if r.on && err == nil {
		r.rec = append(r.rec, b)
	}
	return b, err
}

// capturedTokenStreams returns the token streams of the captured
// compressed sessions, by codec, for fuzz seeds.
func capturedTokenStreams(t testing.TB) map[string][][]byte {
	out := map[string][][]byte{}
	for _, c := range []struct{ name, comp string }{{"pullzlib", "zlib"}, {"pullzstd", "zstd"}, {"pulllz4", "lz4"}} {
		tr := loadTranscript(t, c.name)
		_, rec := walkCapturedFiles(t, demux(t, afterSetup(tr.s2c, 1)), compressionLevel(c.comp, levelUnset))
		out[c.comp] = append(out[c.comp], rec)
	}
	return out
}
