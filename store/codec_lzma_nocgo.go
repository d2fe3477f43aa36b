//go:build !cgo

package store

import "errors"

// canEncodeCold: without cgo there is no LZMA2 encoder worth running (the
// pure-Go one measured no better than zstd); such a build reads the cold
// tier and never writes it.
const canEncodeCold = false

type lzma2Params struct{ preset, lc, lp, pb uint32 }

var coldParams lzma2Params

func encodeLZMA2(raw, dst []byte, p lzma2Params) ([]byte, bool, error) {
	return nil, false, errors.New("lzma2: this walrus was built without cgo and cannot write the cold tier")
}

func decodeLZMA2(payload []byte, rawLen uint32) ([]byte, error) {
	return decodeLZMA2Go(payload, rawLen)
}
