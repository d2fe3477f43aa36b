package rsyncgw

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// zstd (rsync: token.c send_zstd_token, recv_zstd_token). Unlike zlib,
// the whole session is one zstd stream: one frame that never ends, whose
// history carries from file to file. The sender ends each file's data
// with ZSTD_e_flush, so every file ends on a block boundary; the
// DEFLATED_DATA chunks cut the stream at arbitrary bytes.

const (
	// zstdMaxBlock is the most a zstd block decompresses to
	// (ZSTD_BLOCKSIZE_MAX).
	zstdMaxBlock = 128 << 10
	// zstdMaxWindow is the largest window a client may ask the decoder
	// to keep, libzstd's default limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT),
	// which --compress-level=22 needs. The decoder allocates the window
	// at a frame's first block, so this bounds a push session's memory.
	zstdMaxWindow = 1 << 27
	// zstdSendWindow is the window the gateway's encoder uses: what
	// libzstd uses at its default level for a stream of unknown size.
	zstdSendWindow = 1 << 21
)

// zstdTokenReader decodes a zstd token stream. The decoder runs
// synchronously and reads its input exactly, block by block (klauspost's
// stream decoder with concurrency 1 reads a block only when it has no
// output left, and a Read returns one block's output at most); so when
// the input of the chunks read so far is used up, every byte of output
// it stands for has been returned, and the next flag byte can be read
// without the decoder asking for it.
type zstdTokenReader struct {
	in        byteReader
	run       tokenRun
	src       zstdChunks
	dec       *zstd.Decoder
	out       []byte
	maxWindow uint64 // the largest window a frame may ask for
}

func newZstdTokenReader(in byteReader) *zstdTokenReader {
	return &zstdTokenReader{in: in, src: zstdChunks{in: in}, out: make([]byte, zstdMaxBlock+1), maxWindow: zstdMaxWindow}
}

func (t *zstdTokenReader) next() (int32, []byte, error) {
	for {
		if t.run.running() {
			return t.run.nextInRun(), nil, nil
		}
		if len(t.src.chunk) > 0 {
			n, err := t.decode()
			if n > 0 || err != nil {
				return int32(n), t.out[:n], err
			}
			continue
		}
		flag, err := t.in.ReadByte()
		if err != nil {
			return 0, nil, eofIsUnexpected(err)
		}
		switch {
		case isDataFlag(flag):
			if err := t.src.load(flag); err != nil {
				return 0, nil, err
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

// decode returns the output of the next block.
func (t *zstdTokenReader) decode() (int, error) {
	if t.dec == nil {
		dec, err := zstd.NewReader(&t.src, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(t.maxWindow), zstd.WithDecoderMaxMemory(t.maxWindow))
		if err != nil {
			return 0, err
		}
		t.dec = dec
	}
	before := t.src.consumed
	n, err := t.dec.Read(t.out)
	switch {
	case t.src.err != nil:
		return 0, t.src.err
	case err != nil && err != io.EOF:
		return 0, fmt.Errorf("%w: zstd: %v", ErrProtocol, err)
	case n == len(t.out):
		return 0, fmt.Errorf("%w: zstd block larger than %d bytes", ErrProtocol, zstdMaxBlock)
	case n == 0 && t.src.consumed == before:
		return 0, fmt.Errorf("%w: zstd decoder made no progress", ErrProtocol)
	}
	return n, nil
}

// close releases the decoder.
func (t *zstdTokenReader) close() {
	if t.dec != nil {
		t.dec.Close()
	}
}

// zstdChunks feeds the decoder the DEFLATED_DATA chunks of the stream. A
// block may continue in the next chunk; a block cut off by a flag that is
// not data is a broken stream.
type zstdChunks struct {
	in       byteReader
	buf      [maxDataCount]byte
	chunk    []byte
	err      error
	consumed int64 // bytes handed to the decoder
}

func (c *zstdChunks) load(flag byte) error {
	var err error
	c.chunk, err = readDataChunk(c.in, flag, c.buf[:])
	return err
}

func (c *zstdChunks) Read(p []byte) (int, error) {
	if len(c.chunk) == 0 && c.err == nil {
		flag, err := c.in.ReadByte()
		switch {
		case err != nil:
			c.err = eofIsUnexpected(err)
		case !isDataFlag(flag):
			c.err = fmt.Errorf("%w: zstd block cut off by flag %#02x", ErrProtocol, flag)
		default:
			c.err = c.load(flag)
		}
	}
	if c.err != nil {
		return 0, c.err
	}
	n := copy(p, c.chunk)
	c.chunk = c.chunk[n:]
	c.consumed += int64(n)
	return n, nil
}

// zstdTokenWriter encodes a zstd token stream: one encoder for the
// session, flushed at the end of each file's data. `dont compress`
// cannot apply: a stream's level cannot change midway (rsync 3.5.0 does
// not apply it to zstd either).
type zstdTokenWriter struct {
	out    io.Writer
	chunks *dataChunker
	level  int
	enc    *zstd.Encoder
	wrote  bool
}

func newZstdTokenWriter(out io.Writer, level int) *zstdTokenWriter {
	return &zstdTokenWriter{out: out, chunks: newDataChunker(out, 0), level: level}
}

func (t *zstdTokenWriter) begin(string) { t.wrote = false }

func (t *zstdTokenWriter) literal(p []byte) error {
	if t.enc == nil {
		enc, err := zstd.NewWriter(t.chunks, zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(t.level)), zstd.WithWindowSize(zstdSendWindow),
			zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return err
		}
		t.enc = enc
	}
	t.wrote = t.wrote || len(p) > 0
	_, err := t.enc.Write(p)
	return err
}

func (t *zstdTokenWriter) end() error {
	if t.wrote {
		if err := t.enc.Flush(); err != nil {
			return err
		}
		if err := t.chunks.flush(0); err != nil {
			return err
		}
	}
	_, err := t.out.Write([]byte{flagEnd})
	return err
}

// close releases the encoder without ending the frame: the peer never
// sees a frame end in an rsync stream.
func (t *zstdTokenWriter) close() {
	if t.enc != nil {
		t.enc.Reset(io.Discard)
	}
}
