package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"

	"github.com/walrus-archive/walrus/index"
)

// Block codecs (index.Codec; the record header's codec byte says the same):
//
//   - CodecRaw: the block as is (it did not compress).
//   - CodecZstd: a zstd frame at the settle level. Every zstd record written
//     before settling existed is one, so old stores count as settled.
//   - CodecZstdIngest: a zstd frame written at the ingest level (Config.Level)
//     when that is below the settle level; the settler (settle.go) re-encodes
//     it. It decodes exactly as CodecZstd.
//   - CodecLZMA2: the cold tier (settle.go): byte 0 is the xz LZMA2 filter's
//     dictionary-size property, the rest a raw LZMA2 stream (no container,
//     no check of its own). Written only by builds with cgo (liblzma,
//     codec_lzma_cgo.go); every build reads it (without cgo: the pure-Go
//     decoder below). A raw LZMA2 stream carries no checksum, so the record
//     CRC-32C covers the stored bytes and the decoded block is checked
//     against its SHA-256 as every block is (readBlock); the decoder is
//     also bounded: it must produce exactly RawLen bytes and end its stream
//     exactly at the payload's end.

// validCodec reports whether c is a block codec this version reads.
func validCodec(c index.Codec) bool {
	switch c {
	case index.CodecRaw, index.CodecZstd, index.CodecZstdIngest, index.CodecLZMA2:
		return true
	}
	return false
}

// decodePayload returns the rawLen bytes a record's payload encodes.
func (s *Store) decodePayload(codec index.Codec, payload []byte, rawLen uint32) ([]byte, error) {
	switch codec {
	case index.CodecRaw:
		return payload, nil
	case index.CodecZstd, index.CodecZstdIngest:
		// A pooled buffer (blockCache.buffer): see "Recycling" in cache.go.
		return s.dec.DecodeAll(payload, s.cache.buffer(int(rawLen)))
	case index.CodecLZMA2:
		return decodeLZMA2(payload, rawLen)
	}
	return nil, fmt.Errorf("unknown codec %d", codec)
}

// lzmaDictProp is the xz LZMA2 dictionary-size property of the smallest
// encodable dictionary (2 or 3 times a power of two) of at least n bytes.
func lzmaDictProp(n int) byte {
	for p := byte(0); p < 40; p++ {
		if lzmaDictSize(p) >= uint32(n) {
			return p
		}
	}
	return 40
}

func lzmaDictSize(p byte) uint32 {
	if p >= 40 {
		return 0xFFFFFFFF
	}
	return (2 | uint32(p)&1) << (p/2 + 11)
}

var errLZMA2 = errors.New("lzma2: stream does not decode to the block")

// decodeLZMA2Go decodes a CodecLZMA2 payload in pure Go
// (github.com/ulikunitz/xz/lzma).
func decodeLZMA2Go(payload []byte, rawLen uint32) ([]byte, error) {
	if len(payload) < 2 || payload[0] > 40 {
		return nil, errLZMA2
	}
	dict := lzmaDictSize(payload[0])
	if dict > maxBlockSize*2 {
		return nil, fmt.Errorf("%w: dictionary of %d bytes", errLZMA2, dict)
	}
	in := bytes.NewReader(payload[1:])
	r, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(in)
	if err != nil {
		return nil, fmt.Errorf("lzma2: %w", err)
	}
	out := make([]byte, rawLen)
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, fmt.Errorf("lzma2: %w", err)
	}
	var one [1]byte
	if n, err := r.Read(one[:]); n != 0 || err != io.EOF || in.Len() != 0 {
		return nil, errLZMA2
	}
	return out, nil
}

// CanWriteCold reports whether this build writes the cold tier (it was
// built with cgo and liblzma). Every build reads it.
const CanWriteCold = canEncodeCold
