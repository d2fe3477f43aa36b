//go:build cgo

package store

/*
#cgo LDFLAGS: -llzma
#include <lzma.h>
#include <string.h>

static int walrus_lzma2_encode(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len,
		uint32_t preset, uint32_t dict, uint32_t lc, uint32_t lp, uint32_t pb) {
	lzma_options_lzma opt;
	if (lzma_lzma_preset(&opt, preset)) return -1;
	opt.dict_size = dict;
	opt.lc = lc;
	opt.lp = lp;
	opt.pb = pb;
	lzma_filter f[2] = {{LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, NULL}};
	*out_len = 0;
	return (int)lzma_raw_buffer_encode(f, NULL, in, in_len, out, out_len, out_cap);
}

static int walrus_lzma2_decode(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len, uint32_t dict) {
	lzma_options_lzma opt;
	memset(&opt, 0, sizeof opt);
	if (lzma_lzma_preset(&opt, 0)) return -1;
	opt.dict_size = dict;
	lzma_filter f[2] = {{LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, NULL}};
	size_t in_pos = 0;
	*out_len = 0;
	int r = (int)lzma_raw_buffer_decode(f, NULL, in, &in_pos, in_len, out, out_len, out_cap);
	if (r == LZMA_OK && in_pos != in_len) return -2;
	return r;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// canEncodeCold: this build links liblzma and writes the cold tier.
const canEncodeCold = true

// lzma2Params are the encoder settings of the cold tier: liblzma preset 0
// with lc=0 lp=3 pb=3 (WAL records are 8-byte aligned; literal context
// does not help on WAL). Measured on the last 40 real pgbench segments
// (TestColdParams, 1 MiB blocks, against zstd best of the same blocks):
// preset 0 0.704x at ~360 ms CPU per segment to encode, ~100 ms to
// decode; preset 1 0.708x at ~610 ms; preset 2 0.707x at ~520 ms; preset
// 1 with lc=3 lp=0 pb=2 0.749x; preset 6 0.637x at ~4.8 s.
type lzma2Params struct{ preset, lc, lp, pb uint32 }

var coldParams = lzma2Params{preset: 0, lc: 0, lp: 3, pb: 3}

// encodeLZMA2 encodes raw as a CodecLZMA2 payload into dst (reused when
// large enough). It reports false when the result would not be smaller
// than raw.
func encodeLZMA2(raw, dst []byte, p lzma2Params) ([]byte, bool, error) {
	if len(raw) == 0 {
		return nil, false, nil
	}
	prop := lzmaDictProp(len(raw))
	if cap(dst) < len(raw) {
		dst = make([]byte, len(raw))
	}
	dst = dst[:len(raw)]
	dst[0] = prop
	var n C.size_t
	r := C.walrus_lzma2_encode((*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(raw))), C.size_t(len(raw)),
		(*C.uint8_t)(unsafe.Pointer(&dst[1])), C.size_t(len(dst)-1), &n,
		C.uint32_t(p.preset), C.uint32_t(lzmaDictSize(prop)), C.uint32_t(p.lc), C.uint32_t(p.lp), C.uint32_t(p.pb))
	switch r {
	case C.LZMA_OK:
		return dst[:1+int(n)], true, nil
	case C.LZMA_BUF_ERROR:
		return nil, false, nil // does not compress
	}
	return nil, false, fmt.Errorf("lzma2: encoder error %d", int(r))
}

// decodeLZMA2 decodes a CodecLZMA2 payload with liblzma (about twice as
// fast as the pure-Go decoder).
func decodeLZMA2(payload []byte, rawLen uint32) ([]byte, error) {
	if len(payload) < 2 || payload[0] > 40 {
		return nil, errLZMA2
	}
	dict := lzmaDictSize(payload[0])
	if dict > maxBlockSize*2 {
		return nil, fmt.Errorf("%w: dictionary of %d bytes", errLZMA2, dict)
	}
	out := make([]byte, int(rawLen)+1) // one spare byte: a stream that decodes to more is an error
	var n C.size_t
	r := C.walrus_lzma2_decode((*C.uint8_t)(unsafe.Pointer(&payload[1])), C.size_t(len(payload)-1),
		(*C.uint8_t)(unsafe.Pointer(&out[0])), C.size_t(len(out)), &n, C.uint32_t(dict))
	if r != C.LZMA_OK || int(n) != int(rawLen) {
		return nil, fmt.Errorf("%w (liblzma %d, %d bytes)", errLZMA2, int(r), int(n))
	}
	return out[:rawLen], nil
}
