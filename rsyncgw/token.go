package rsyncgw

import (
	"encoding/binary"
	"fmt"
	"io"
)

// A file's data travels as tokens: literal data, references to blocks of
// the receiver's basis file, and an end marker. Without compression they
// are int32s (rsync: token.c simple_send_token); with compression a byte
// of flags introduces each (token.c send_deflated_token and friends).

// tokenReader reads the token streams of one file after another
// (rsync: token.c recv_token). next returns n > 0 with n bytes of
// literal data, n < 0 for a reference to block -(n+1), and 0 at the end
// of the current file. The data is valid until the next call.
type tokenReader interface {
	next() (int32, []byte, error)
}

// tokenWriter writes the data of one file after another as literal
// tokens (rsync: token.c send_token). begin starts a file (the name
// decides `dont compress`), literal sends data, end ends the file.
type tokenWriter interface {
	begin(name string)
	literal(p []byte) error
	end() error
}

// chunkSize is rsync's CHUNK_SIZE: the largest literal an uncompressed
// token carries (larger ones break rsync 3.4 clients).
const chunkSize = 32 << 10

// simpleTokenReader reads uncompressed tokens (rsync: token.c
// simple_recv_token): a literal longer than chunkSize is returned in
// pieces.
type simpleTokenReader struct {
	in      byteReader
	buf     []byte
	residue int32
}

func newSimpleTokenReader(in byteReader) *simpleTokenReader {
	return &simpleTokenReader{in: in, buf: make([]byte, chunkSize)}
}

func (t *simpleTokenReader) next() (int32, []byte, error) {
	if t.residue == 0 {
		n, err := readInt32(t.in)
		if err != nil || n <= 0 {
			return n, nil, err
		}
		t.residue = n
	}
	n := min(t.residue, chunkSize)
	if err := readFull(t.in, t.buf[:n]); err != nil {
		return 0, nil, err
	}
	t.residue -= n
	return n, t.buf[:n], nil
}

// nextInto is next reading a literal's bytes into buf(max) when that
// returns a non-empty slice (of at most max bytes), else into the reader's
// own buffer. It returns the bytes read.
func (t *simpleTokenReader) nextInto(buf func(max int) []byte) (int32, []byte, error) {
	if t.residue == 0 {
		n, err := readInt32(t.in)
		if err != nil || n <= 0 {
			return n, nil, err
		}
		t.residue = n
	}
	dst := buf(int(t.residue))
	if len(dst) == 0 {
		dst = t.buf[:min(t.residue, chunkSize)]
	}
	if err := readFull(t.in, dst); err != nil {
		return 0, nil, err
	}
	t.residue -= int32(len(dst))
	return int32(len(dst)), dst, nil
}

// simpleTokenWriter writes uncompressed literal tokens of at most
// chunkSize bytes (rsync: token.c simple_send_token).
type simpleTokenWriter struct {
	out io.Writer
	hdr [4]byte
}

func (t *simpleTokenWriter) begin(string) {}

func (t *simpleTokenWriter) literal(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), chunkSize)
		binary.LittleEndian.PutUint32(t.hdr[:], uint32(n))
		if _, err := t.out.Write(t.hdr[:]); err != nil {
			return err
		}
		if _, err := t.out.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (t *simpleTokenWriter) end() error {
	_, err := t.out.Write(make([]byte, 4))
	return err
}

// Flag bytes of a compressed token stream (rsync: token.c).
const (
	flagEnd         = 0x00 // END_FLAG: the file ends
	flagTokenLong   = 0x20 // TOKEN_LONG: int32 block number follows
	flagTokenRunLng = 0x21 // TOKENRUN_LONG: int32 block, 16-bit run count
	flagData        = 0x40 // DEFLATED_DATA: 6 high bits of the length, a low byte, the data
	flagTokenRel    = 0x80 // TOKEN_REL: 6-bit block number relative to the last
	flagTokenRunRel = 0xc0 // TOKENRUN_REL: relative, with a 16-bit run count

	maxDataCount  = 16383      // MAX_DATA_COUNT: data bytes after one flag
	maxTokenIndex = 0x7ffffffe // MAX_TOKEN_INDEX
)

// isDataFlag reports whether flag starts a DEFLATED_DATA chunk.
func isDataFlag(flag byte) bool { return flag&0xc0 == flagData }

// readDataChunk reads the rest of a DEFLATED_DATA header and its bytes
// into buf (at least maxDataCount long).
func readDataChunk(in byteReader, flag byte, buf []byte) ([]byte, error) {
	lo, err := in.ReadByte()
	if err != nil {
		return nil, eofIsUnexpected(err)
	}
	n := int(flag&0x3f)<<8 | int(lo)
	if err := readFull(in, buf[:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// tokenRun decodes the block references of a compressed stream: single
// tokens and runs, absolute or relative to the last one (rsync: token.c
// recv_compressed_token_num, recv_compressed_token_run).
type tokenRun struct {
	token int32 // rx_token: the last block number returned
	run   int32 // blocks of the current run still to return
}

func (t *tokenRun) reset() { t.token, t.run = 0, 0 }

func (t *tokenRun) running() bool { return t.run > 0 }

// decode reads the rest of a token whose flag byte is flag and returns
// rsync's -(block+1).
func (t *tokenRun) decode(in byteReader, flag byte) (int32, error) {
	switch {
	case flag&flagTokenRel != 0:
		incr := int32(flag & 0x3f)
		if t.token > maxTokenIndex-incr {
			return 0, errBadToken
		}
		t.token += incr
	case flag == flagTokenLong || flag == flagTokenRunLng:
		n, err := readInt32(in)
		if err != nil {
			return 0, err
		}
		if n < 0 || n > maxTokenIndex {
			return 0, errBadToken
		}
		t.token = n
	default:
		return 0, fmt.Errorf("%w: flag %#02x in a compressed token stream", ErrProtocol, flag)
	}
	if flag == flagTokenRunLng || flag&0xc0 == flagTokenRunRel {
		run, err := readUint16(in)
		if err != nil {
			return 0, err
		}
		if run == 0 || t.token > maxTokenIndex-int32(run) {
			return 0, errBadToken
		}
		t.run = int32(run)
	}
	return -1 - t.token, nil
}

// nextInRun returns the next block of the current run.
func (t *tokenRun) nextInRun() int32 {
	t.token++
	t.run--
	return -1 - t.token
}

var errBadToken = fmt.Errorf("%w: invalid token number in compressed stream", ErrProtocol)

// dataChunker frames compressed bytes as DEFLATED_DATA: a flag byte
// carrying the high 6 bits of the length, the low byte, then at most
// maxDataCount bytes (rsync: token.c send_deflated_token obuf). It holds
// back the last keep bytes, so that a deflate stream's sync-flush
// trailer can be cut off.
type dataChunker struct {
	out  io.Writer
	keep int
	buf  []byte // frame header space + pending bytes
}

func newDataChunker(out io.Writer, keep int) *dataChunker {
	return &dataChunker{out: out, keep: keep, buf: make([]byte, 2, 2+2*maxDataCount)}
}

func (c *dataChunker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), cap(c.buf)-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		for len(c.buf)-2 > maxDataCount+c.keep {
			if err := c.emit(maxDataCount); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// flush sends every pending byte but the last drop ones, which are
// discarded.
func (c *dataChunker) flush(drop int) error {
	c.buf = c.buf[:len(c.buf)-drop]
	for len(c.buf) > 2 {
		if err := c.emit(min(len(c.buf)-2, maxDataCount)); err != nil {
			return err
		}
	}
	return nil
}

// pending returns the bytes not yet sent.
func (c *dataChunker) pending() []byte { return c.buf[2:] }

func (c *dataChunker) emit(n int) error {
	c.buf[0] = flagData | byte(n>>8)
	c.buf[1] = byte(n)
	if _, err := c.out.Write(c.buf[:2+n]); err != nil {
		return err
	}
	rest := copy(c.buf[2:], c.buf[2+n:])
	c.buf = c.buf[:2+rest]
	return nil
}
