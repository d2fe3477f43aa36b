package rsyncgw

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVarintVectors(t *testing.T) {
	for _, c := range []struct {
		v    int32
		want string
	}{{0, "00"}, {0x7f, "7f"}, {0x80, "8080"}, {0x1ff, "81ff"}, {0x2c00, "ac00"}, {-1, "f0ffffffff"}} {
		got := hex.EncodeToString(appendVarint(nil, c.v))
		if got != c.want {
			t.Errorf("varint(%#x) = %s, want %s", c.v, got, c.want)
		}
		back, err := readVarint(bytes.NewReader(appendVarint(nil, c.v)))
		if err != nil || back != c.v {
			t.Errorf("read back %#x: %#x, %v", c.v, back, err)
		}
	}
	if got := hex.EncodeToString(appendVarlong(nil, 100000, 3)); got != "01a086" {
		t.Errorf("varlong(100000, 3) = %s, want 01a086", got)
	}
	if got := hex.EncodeToString(appendVarlong(nil, 1700000000, 4)); got != "6500f153" {
		t.Errorf("varlong(1700000000, 4) = %s, want 6500f153", got)
	}
	for _, v := range []int64{0, 1, 255, 1 << 24, 1<<32 + 5, 16 << 30, math.MaxInt64} {
		for _, m := range []int{3, 4} {
			back, err := readVarlong(bytes.NewReader(appendVarlong(nil, v, m)), m)
			if err != nil || back != v {
				t.Errorf("varlong(%d,%d) round trip: %d, %v", v, m, back, err)
			}
		}
	}
}

func TestNdxRoundTrip(t *testing.T) {
	seq := []int32{ndxFlistEOF, 0, 1, 2, 300, 301, 100000, 5, ndxDone, -101, -3, 0x7fffffff, 0}
	w := newNdxCodec()
	var b []byte
	for _, n := range seq {
		b = w.append(b, n)
	}
	if !bytes.HasPrefix(b, []byte{0xff, 0x01, 0x01}) {
		t.Errorf("NDX_FLIST_EOF then 0 encoded as % x", b[:3])
	}
	r := newNdxCodec()
	in := bytes.NewReader(b)
	for _, want := range seq {
		got, err := r.read(in)
		if err != nil || got != want {
			t.Fatalf("read %d, %v; want %d", got, err, want)
		}
	}
}

func TestVstring(t *testing.T) {
	for _, s := range []string{"", "md5", strings.Repeat("x", 200), strings.Repeat("y", 0x7fff)} {
		got, err := readVstring(bytes.NewReader(appendVstring(nil, s)), maxVstringLen)
		if err != nil || got != s {
			t.Errorf("vstring of %d bytes: %d bytes, %v", len(s), len(got), err)
		}
	}
	if _, err := readVstring(bytes.NewReader([]byte{0x81, 0}), 10); err == nil {
		t.Error("a vstring over its limit was accepted")
	}
}

// transcript holds one captured exchange (testdata/capture.sh).
type transcript struct{ c2s, s2c []byte }

func loadTranscript(t testing.TB, name string) transcript {
	t.Helper()
	c2s, err := os.ReadFile(filepath.Join("testdata", "transcripts", name+".c2s"))
	if err != nil {
		t.Fatal(err)
	}
	s2c, err := os.ReadFile(filepath.Join("testdata", "transcripts", name+".s2c"))
	if err != nil {
		t.Fatal(err)
	}
	return transcript{c2s, s2c}
}

// clientMux returns the multiplexed part of a client stream: after the
// text lines, the argument list and the checksum vstring.
func clientMux(b []byte) []byte {
	i := bytes.Index(b, []byte("\x00\x00"))
	if i < 0 {
		return nil
	}
	b = b[i+2:]
	if len(b) > 0 {
		b = b[1+int(b[0]):] // the checksum list
	}
	return b
}

// serverMux returns the multiplexed part of a server stream: after
// `@RSYNCD: OK`, the compat flags, the checksum vstring and the seed.
func serverMux(b []byte) []byte {
	i := bytes.Index(b, []byte("@RSYNCD: OK\n"))
	if i < 0 {
		return nil
	}
	r := bytes.NewReader(b[i+12:])
	readVarint(r)
	readVstring(r, maxVstringLen)
	readInt32(r)
	rest, _ := readAllBytes(r)
	return rest
}

func readAllBytes(r *bytes.Reader) ([]byte, error) {
	b := make([]byte, r.Len())
	_, err := r.Read(b)
	return b, err
}

func demux(t testing.TB, b []byte) *muxReader {
	m := &muxReader{r: bufio.NewReader(bytes.NewReader(b)), log: testLogger(t)}
	m.start()
	return m
}

func TestDecodeCapturedPushFileList(t *testing.T) {
	tr := loadTranscript(t, "pushnoinc")
	in := demux(t, clientMux(tr.c2s))
	c := &flistCodec{protocol: 31, varint: true, owner: true, group: true, links: true, devices: true}
	e, _, err := c.readEntry(in)
	if err != nil {
		t.Fatal(err)
	}
	if e.name != "000000010000000000000002" || e.size != 700 || e.mtime != 1700000000 || e.mode != 0o100644 {
		t.Errorf("decoded %+v", e)
	}
	if end, _, err := c.readEntry(in); end != nil || err != nil {
		t.Errorf("expected the end of the list, got %+v, %v", end, err)
	}
}

func TestEncodeMatchesCapturedPullFileList(t *testing.T) {
	tr := loadTranscript(t, "pullnoinc")
	stock := serverMux(tr.s2c)[4:] // the first DATA frame's payload
	c := &flistCodec{protocol: 31, varint: true, owner: true, group: true}
	e := &fileEntry{name: "000000010000000000000001", size: 1000, mtime: 1700000000, mode: 0o100644}
	ours := c.appendEnd(c.appendEntry(nil, e, false), 0)
	if !bytes.HasPrefix(stock, ours) {
		t.Errorf("our entry\n% x\nstock\n% x", ours, stock[:len(ours)])
	}
}

// TestAuthResponseMatchesCapturedClient checks our digest against the
// response a real client computed (password "secret", see capture.sh).
func TestAuthResponseMatchesCapturedClient(t *testing.T) {
	tr := loadTranscript(t, "auth")
	_, rest, _ := bytes.Cut(tr.s2c, []byte("@RSYNCD: AUTHREQD "))
	challenge, _, _ := bytes.Cut(rest, []byte("\n"))
	_, rest, _ = bytes.Cut(tr.c2s, []byte("secure\n"))
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	user, response, _ := strings.Cut(string(line), " ")
	digest := chooseAuthDigest(strings.Fields("sha512 sha256 sha1 md5 md4"))
	if user != "alice" || digest != "sha512" {
		t.Fatalf("user %q digest %q", user, digest)
	}
	if !checkResponse(digest, string(challenge), response, []string{"nope", "secret"}) {
		t.Errorf("response %q to challenge %q not accepted", response, challenge)
	}
	if checkResponse(digest, string(challenge), response, []string{"nope"}) {
		t.Error("a wrong password was accepted")
	}
}
