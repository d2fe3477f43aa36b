package rsyncgw

import (
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"
)

// lz4 (rsync: token.c send_compressed_token, recv_compressed_token):
// every DEFLATED_DATA chunk is one independent LZ4 block of at most
// maxDataCount literal bytes' worth; the sender halves its input until
// the block fits a chunk. No state carries between chunks or files.

// lz4OutSize is rsync's receive buffer: MAX(LZ4_compressBound(CHUNK_SIZE),
// MAX_DATA_COUNT+2).
var lz4OutSize = max(lz4.CompressBlockBound(chunkSize), maxDataCount+2)

// lz4TokenReader decodes an lz4 token stream.
type lz4TokenReader struct {
	in  byteReader
	run tokenRun
	buf [maxDataCount]byte
	out []byte
}

func newLz4TokenReader(in byteReader) *lz4TokenReader {
	return &lz4TokenReader{in: in, out: make([]byte, lz4OutSize)}
}

func (t *lz4TokenReader) next() (int32, []byte, error) {
	for {
		if t.run.running() {
			return t.run.nextInRun(), nil, nil
		}
		flag, err := t.in.ReadByte()
		if err != nil {
			return 0, nil, eofIsUnexpected(err)
		}
		switch {
		case isDataFlag(flag):
			chunk, err := readDataChunk(t.in, flag, t.buf[:])
			if err != nil {
				return 0, nil, err
			}
			n, err := lz4.UncompressBlock(chunk, t.out)
			if err != nil {
				return 0, nil, fmt.Errorf("%w: lz4: %v", ErrProtocol, err)
			}
			if n > 0 {
				return int32(n), t.out[:n], nil
			}
		case flag == flagEnd:
			t.run.reset()
			return 0, nil, nil
		default:
			n, err := t.run.decode(t.in, flag)
			return n, nil, err
		}
	}
}

// lz4TokenWriter encodes an lz4 token stream. It gathers up to
// maxDataCount bytes per block whatever the writes' sizes. Files `dont
// compress` names are sent as literal-only blocks: valid LZ4 that costs
// no compression work.
type lz4TokenWriter struct {
	out  io.Writer
	dont *compressFilter
	c    lz4.Compressor
	raw  bool
	in   []byte // gathered input
	buf  []byte // frame header + block
}

func newLz4TokenWriter(out io.Writer, dont *compressFilter) *lz4TokenWriter {
	return &lz4TokenWriter{out: out, dont: dont, in: make([]byte, 0, maxDataCount),
		buf: make([]byte, 2+lz4.CompressBlockBound(maxDataCount))}
}

func (t *lz4TokenWriter) begin(name string) { t.raw, t.in = t.dont.matches(name), t.in[:0] }

func (t *lz4TokenWriter) literal(p []byte) error {
	for len(p) > 0 {
		k := copy(t.in[len(t.in):cap(t.in)], p)
		t.in, p = t.in[:len(t.in)+k], p[k:]
		if len(t.in) == cap(t.in) {
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush sends the gathered input as blocks that fit a chunk; rsync
// halves its input until the block fits.
func (t *lz4TokenWriter) flush() error {
	p := t.in
	for len(p) > 0 {
		k := len(p)
		for {
			n, err := t.block(p[:k])
			if err != nil {
				return err
			}
			if n <= maxDataCount {
				if err := t.emit(n); err != nil {
					return err
				}
				break
			}
			k /= 2
		}
		p = p[k:]
	}
	t.in = t.in[:0]
	return nil
}

// block compresses src into t.buf[2:] and returns its length.
func (t *lz4TokenWriter) block(src []byte) (int, error) {
	if t.raw {
		return literalBlock(t.buf[2:], src), nil
	}
	n, err := t.c.CompressBlock(src, t.buf[2:])
	if err == nil && n == 0 {
		n = literalBlock(t.buf[2:], src)
	}
	return n, err
}

func (t *lz4TokenWriter) emit(n int) error {
	t.buf[0] = flagData | byte(n>>8)
	t.buf[1] = byte(n)
	_, err := t.out.Write(t.buf[:2+n])
	return err
}

func (t *lz4TokenWriter) end() error {
	if err := t.flush(); err != nil {
		return err
	}
	_, err := t.out.Write([]byte{flagEnd})
	return err
}

// literalBlock writes src as an LZ4 block of one literal-only sequence:
// a token with the literal length (15 meaning "more follows" in bytes of
// 255 and a final byte below 255), then the bytes. dst must hold
// lz4.CompressBlockBound(len(src)).
func literalBlock(dst, src []byte) int {
	n := len(src)
	i := 1
	if n < 15 {
		dst[0] = byte(n << 4)
	} else {
		dst[0] = 15 << 4
		for rest := n - 15; ; rest -= 255 {
			if rest < 255 {
				dst[i] = byte(rest)
				i++
				break
			}
			dst[i] = 255
			i++
		}
	}
	return i + copy(dst[i:], src)
}
