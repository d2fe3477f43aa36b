package rsyncgw

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
)

// zlib and zlibx (rsync: token.c send_deflated_token,
// recv_deflated_token). Each file is one raw deflate stream (window 2^15,
// no zlib header), restarted for every file. The sender ends each run of
// literal data with Z_SYNC_FLUSH and cuts the flush's last four bytes,
// the empty stored block 00 00 ff ff, which the receiver puts back
// before it reads the next flag. zlib also feeds the data of matched
// blocks into both sides' history (see_deflate_token); zlibx does not.
// The gateway never offers or sends block matches, so on its wire the
// two are the same stream.

// syncTrailer is what Z_SYNC_FLUSH ends with and rsync cuts off.
var syncTrailer = []byte{0, 0, 0xff, 0xff}

const deflateWindow = 32 << 10

// deflateTokenReader decodes a zlib/zlibx token stream.
type deflateTokenReader struct {
	in   byteReader
	run  tokenRun
	seg  deflateRun
	fr   io.ReadCloser // inflating the current run; nil between runs
	hist []byte        // the file's last output, the next run's dictionary
	out  []byte
}

func newDeflateTokenReader(in byteReader) *deflateTokenReader {
	return &deflateTokenReader{in: in, seg: deflateRun{in: in}, out: make([]byte, chunkSize)}
}

func (t *deflateTokenReader) next() (int32, []byte, error) {
	for {
		if t.run.running() {
			return t.run.nextInRun(), nil, nil
		}
		if t.fr != nil {
			n, err := t.inflate()
			if n > 0 || err != nil {
				return int32(n), t.out[:n], err
			}
			continue
		}
		flag, err := t.flag()
		if err != nil {
			return 0, nil, err
		}
		switch {
		case isDataFlag(flag):
			if err := t.startRun(flag); err != nil {
				return 0, nil, err
			}
		case flag == flagEnd:
			t.run.reset()
			t.hist = t.hist[:0]
			return 0, nil, nil
		default:
			n, err := t.run.decode(t.in, flag)
			return n, nil, err
		}
	}
}

// flag returns the flag byte the last run read ahead, or the next one.
func (t *deflateTokenReader) flag() (byte, error) {
	if t.seg.ended {
		t.seg.ended = false
		return t.seg.next, nil
	}
	b, err := t.in.ReadByte()
	return b, eofIsUnexpected(err)
}

// startRun begins inflating a run of DEFLATED_DATA chunks, continuing
// the file's history (rsync: recv_deflated_token keeps one z_stream per
// file).
func (t *deflateTokenReader) startRun(flag byte) error {
	if err := t.seg.start(flag); err != nil {
		return err
	}
	if t.fr == nil {
		t.fr = flate.NewReaderDict(&t.seg, t.hist)
		return nil
	}
	return t.fr.(flate.Resetter).Reset(&t.seg, t.hist)
}

// inflate returns the next output of the current run. The run's stream
// ends after the restored sync trailer without a final block, so the
// inflater reports an unexpected EOF exactly when it has consumed the
// whole run; anything else is a corrupt stream.
func (t *deflateTokenReader) inflate() (int, error) {
	n, err := t.fr.Read(t.out)
	if n > 0 {
		t.remember(t.out[:n])
	}
	switch {
	case err == nil:
		return n, nil
	case (errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF) && t.seg.ended && t.seg.trailer == 0:
		t.fr.Close()
		t.fr = nil
		return n, nil
	case n > 0:
		return n, nil // the error comes back on the next read
	}
	if t.seg.err != nil {
		return 0, t.seg.err
	}
	return 0, fmt.Errorf("%w: inflate: %v", ErrProtocol, err)
}

// remember keeps the last deflateWindow bytes of output.
func (t *deflateTokenReader) remember(p []byte) {
	if len(p) >= deflateWindow {
		t.hist = append(t.hist[:0], p[len(p)-deflateWindow:]...)
		return
	}
	if len(t.hist)+len(p) > 2*deflateWindow {
		t.hist = append(t.hist[:0], t.hist[len(t.hist)-(deflateWindow-len(p)):]...)
	}
	t.hist = append(t.hist, p...)
}

// deflateRun is the compressed bytes of one run of DEFLATED_DATA chunks
// as the inflater reads them: chunk after chunk until a flag byte that
// is not data, then the cut sync trailer, then EOF. It keeps that flag
// for the token reader.
type deflateRun struct {
	in      byteReader
	buf     [maxDataCount]byte
	chunk   []byte
	ended   bool // a non-data flag ended the run; next holds it
	next    byte
	trailer int // trailer bytes still to give
	err     error
}

func (r *deflateRun) start(flag byte) error {
	r.ended, r.err = false, nil
	var err error
	r.chunk, err = readDataChunk(r.in, flag, r.buf[:])
	return err
}

func (r *deflateRun) ReadByte() (byte, error) {
	for len(r.chunk) == 0 {
		if err := r.refill(); err != nil {
			return 0, err
		}
	}
	b := r.chunk[0]
	r.chunk = r.chunk[1:]
	return b, nil
}

func (r *deflateRun) Read(p []byte) (int, error) {
	for len(r.chunk) == 0 {
		if err := r.refill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.chunk)
	r.chunk = r.chunk[n:]
	return n, nil
}

// refill reads the next chunk of the run (which may be empty), or ends
// it.
func (r *deflateRun) refill() error {
	switch {
	case r.err != nil:
		return r.err
	case r.ended && r.trailer > 0:
		r.chunk = syncTrailer[len(syncTrailer)-r.trailer:]
		r.trailer = 0
		return nil
	case r.ended:
		return io.EOF
	}
	flag, err := r.in.ReadByte()
	if err != nil {
		r.err = eofIsUnexpected(err)
		return r.err
	}
	if !isDataFlag(flag) {
		r.ended, r.next, r.trailer = true, flag, len(syncTrailer)
		return r.refill()
	}
	if r.chunk, err = readDataChunk(r.in, flag, r.buf[:]); err != nil {
		r.err = err
	}
	return err
}

// deflateTokenWriter encodes a zlib/zlibx token stream: one deflate
// stream per file, flushed with a sync flush whose trailer is cut. Files
// that `dont compress` names get level 0 (stored blocks), which is
// rsync's skip_compression_level for zlib.
type deflateTokenWriter struct {
	out    io.Writer
	chunks *dataChunker
	level  int
	dont   *compressFilter
	fw     [2]*flate.Writer // [0] at level, [1] at level 0
	cur    *flate.Writer
	wrote  bool
}

func newDeflateTokenWriter(out io.Writer, level int, dont *compressFilter) *deflateTokenWriter {
	return &deflateTokenWriter{out: out, chunks: newDataChunker(out, len(syncTrailer)), level: level, dont: dont}
}

func (t *deflateTokenWriter) begin(name string) {
	i, level := 0, t.level
	if t.dont.matches(name) {
		i, level = 1, flate.NoCompression
	}
	if t.fw[i] == nil {
		t.fw[i], _ = flate.NewWriter(t.chunks, level) // level is validated by compressionLevel
	} else {
		t.fw[i].Reset(t.chunks)
	}
	t.cur, t.wrote = t.fw[i], false
}

func (t *deflateTokenWriter) literal(p []byte) error {
	t.wrote = t.wrote || len(p) > 0
	_, err := t.cur.Write(p)
	return err
}

// end flushes the file's data and ends its token stream. A file without
// data sends no DEFLATED_DATA at all, as rsync does.
func (t *deflateTokenWriter) end() error {
	if t.wrote {
		if err := t.cur.Flush(); err != nil {
			return err
		}
		if !bytes.HasSuffix(t.chunks.pending(), syncTrailer) {
			return fmt.Errorf("rsyncgw: deflate flush did not end with a sync trailer")
		}
		if err := t.chunks.flush(len(syncTrailer)); err != nil {
			return err
		}
	}
	_, err := t.out.Write([]byte{flagEnd})
	return err
}
