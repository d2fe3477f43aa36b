package rsyncgw

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Limits on lengths read from the wire. Every length a peer sends is
// checked against one of these before anything is allocated.
const (
	maxLineLen     = 4096    // text-phase lines (greeting, module, auth)
	maxArgLen      = 4096    // one server argument
	maxArgs        = 1024    // server arguments in one list
	maxNameLen     = 4096    // a path in a file list (rsync MAXPATHLEN)
	maxVstringLen  = 0x7fff  // rsync vstrings carry at most 15 bits of length
	maxFilterRule  = 4096    // one filter rule
	maxFilterRules = 10000   // rules in one filter list
	maxFlistFiles  = 1 << 20 // entries in one received file list
	maxMessageLen  = 1 << 16 // text and control messages (non-DATA frames)
	maxDigestLen   = 64      // longest checksum we may have to read (sha512)
)

// byteReader is what the decoders read from: the multiplexed input during a
// session, a bytes.Reader in tests and fuzz targets.
type byteReader interface {
	io.Reader
	io.ByteReader
}

func readFull(r io.Reader, p []byte) error {
	_, err := io.ReadFull(r, p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readInt32 reads a little-endian int32 (rsync: io.c read_int).
func readInt32(r io.Reader) (int32, error) {
	var b [4]byte
	if err := readFull(r, b[:]); err != nil {
		return 0, err
	}
	return int32(binary.LittleEndian.Uint32(b[:])), nil
}

// readUint16 reads a little-endian 16-bit value (rsync: io.c read_shortint).
func readUint16(r io.Reader) (uint16, error) {
	var b [2]byte
	if err := readFull(r, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b[:]), nil
}

// extraBytes is how many bytes follow a varint's first byte: its count of
// leading one bits (rsync: io.c int_byte_extra).
func extraBytes(first byte) int {
	n := 0
	for b := first; b&0x80 != 0 && n < 8; b <<= 1 {
		n++
	}
	return n
}

// readVarint decodes rsync's variable-length int32 (rsync: io.c read_varint).
func readVarint(r byteReader) (int32, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, eofIsUnexpected(err)
	}
	extra := extraBytes(first)
	if extra == 0 {
		return int32(first), nil
	}
	if extra > 4 {
		return 0, fmt.Errorf("%w: varint with %d extra bytes", ErrProtocol, extra)
	}
	var b [5]byte
	if err := readFull(r, b[:extra]); err != nil {
		return 0, err
	}
	b[extra] = first & (byte(1)<<(8-extra) - 1)
	return int32(binary.LittleEndian.Uint32(b[:4])), nil
}

// readVarlong decodes rsync's variable-length int64 with at least minBytes
// bytes (rsync: io.c read_varlong).
func readVarlong(r byteReader, minBytes int) (int64, error) {
	var head [8]byte
	if err := readFull(r, head[:minBytes]); err != nil {
		return 0, err
	}
	var b [9]byte
	copy(b[:], head[1:minBytes])
	first := head[0]
	extra := extraBytes(first)
	if minBytes+extra > 9 {
		return 0, fmt.Errorf("%w: varlong with %d extra bytes", ErrProtocol, extra)
	}
	if extra == 0 {
		b[minBytes-1] = first
	} else {
		if err := readFull(r, b[minBytes-1:minBytes-1+extra]); err != nil {
			return 0, err
		}
		b[minBytes+extra-1] = first & (byte(1)<<(8-extra) - 1)
	}
	return int64(binary.LittleEndian.Uint64(b[:8])), nil
}

// readVstring reads a length-prefixed string of at most max bytes
// (rsync: io.c read_vstring).
func readVstring(r byteReader, max int) (string, error) {
	n, err := r.ReadByte()
	if err != nil {
		return "", eofIsUnexpected(err)
	}
	size := int(n)
	if n&0x80 != 0 {
		lo, err := r.ReadByte()
		if err != nil {
			return "", eofIsUnexpected(err)
		}
		size = int(n&0x7f)<<8 | int(lo)
	}
	if size > max {
		return "", fmt.Errorf("%w: string of %d bytes (limit %d)", ErrProtocol, size, max)
	}
	b := make([]byte, size)
	if err := readFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func appendInt32(b []byte, v int32) []byte {
	return binary.LittleEndian.AppendUint32(b, uint32(v))
}

func appendUint16(b []byte, v uint16) []byte {
	return binary.LittleEndian.AppendUint16(b, v)
}

// appendVarint encodes v like rsync: io.c write_varint.
func appendVarint(b []byte, v int32) []byte {
	var x [5]byte
	binary.LittleEndian.PutUint32(x[1:], uint32(v))
	cnt := 4
	for cnt > 1 && x[cnt] == 0 {
		cnt--
	}
	bit := byte(1) << (7 - cnt + 1)
	switch {
	case x[cnt] >= bit:
		cnt++
		x[0] = ^(bit - 1)
	case cnt > 1:
		x[0] = x[cnt] | ^(bit*2 - 1)
	default:
		x[0] = x[cnt]
	}
	return append(b, x[:cnt]...)
}

// appendVarlong encodes v like rsync: io.c write_varlong.
func appendVarlong(b []byte, v int64, minBytes int) []byte {
	var x [9]byte
	binary.LittleEndian.PutUint64(x[1:], uint64(v))
	cnt := 8
	for cnt > minBytes && x[cnt] == 0 {
		cnt--
	}
	bit := byte(1) << (7 - cnt + minBytes)
	switch {
	case x[cnt] >= bit:
		cnt++
		x[0] = ^(bit - 1)
	case cnt > minBytes:
		x[0] = x[cnt] | ^(bit*2 - 1)
	default:
		x[0] = x[cnt]
	}
	return append(b, x[:cnt]...)
}

// appendVstring encodes s like rsync: io.c write_vstring; s must be shorter
// than 32 KiB.
func appendVstring(b []byte, s string) []byte {
	if len(s) > 0x7f {
		b = append(b, byte(len(s)>>8)|0x80)
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// File-list indexes (rsync: rsync.h NDX_*).
const (
	ndxDone     = -1
	ndxFlistEOF = -2
	ndxDelStats = -3
)

// ndxCodec is one direction's state of the protocol-30 index encoding
// (rsync: io.c read_ndx / write_ndx). Reading and writing keep separate
// state.
type ndxCodec struct {
	prevPos, prevNeg int32
}

func newNdxCodec() ndxCodec { return ndxCodec{prevPos: -1, prevNeg: 1} }

func (c *ndxCodec) read(r byteReader) (int32, error) {
	b, err := r.ReadByte()
	if err != nil {
		return 0, eofIsUnexpected(err)
	}
	prev := &c.prevPos
	switch b {
	case 0:
		return ndxDone, nil
	case 0xff:
		prev = &c.prevNeg
		if b, err = r.ReadByte(); err != nil {
			return 0, eofIsUnexpected(err)
		}
	}
	num, err := c.readNum(r, b, *prev)
	if err != nil {
		return 0, err
	}
	*prev = num
	if prev == &c.prevNeg {
		num = -num
	}
	return num, nil
}

func (c *ndxCodec) readNum(r byteReader, b byte, prev int32) (int32, error) {
	if b != 0xfe {
		return int32(b) + prev, nil
	}
	var x [4]byte
	if err := readFull(r, x[:2]); err != nil {
		return 0, err
	}
	if x[0]&0x80 == 0 {
		return int32(x[0])<<8 + int32(x[1]) + prev, nil
	}
	hi := x[0] &^ 0x80
	x[0] = x[1]
	if err := readFull(r, x[1:3]); err != nil {
		return 0, err
	}
	x[3] = hi
	return int32(binary.LittleEndian.Uint32(x[:])), nil
}

func (c *ndxCodec) append(b []byte, ndx int32) []byte {
	var diff int32
	switch {
	case ndx == ndxDone:
		return append(b, 0)
	case ndx >= 0:
		diff = ndx - c.prevPos
		c.prevPos = ndx
	default:
		b = append(b, 0xff)
		ndx = -ndx
		diff = ndx - c.prevNeg
		c.prevNeg = ndx
	}
	switch {
	case diff > 0 && diff < 0xfe:
		return append(b, byte(diff))
	case diff < 0 || diff > 0x7fff:
		return append(b, 0xfe, byte(ndx>>24)|0x80, byte(ndx), byte(ndx>>8), byte(ndx>>16))
	default:
		return append(b, 0xfe, byte(diff>>8), byte(diff))
	}
}
