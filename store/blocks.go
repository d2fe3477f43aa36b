package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/walrus-archive/walrus/index"
)

func (s *Store) getBuf() []byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, s.cfg.BlockSize)
}

func (s *Store) putBuf(b []byte) {
	if cap(b) != s.cfg.BlockSize {
		return
	}
	b = b[:0]
	s.bufs.Put(&b)
}

// isZero reports whether b is all zero bytes (a hole).
func (s *Store) isZero(b []byte) bool {
	return bytes.Equal(b, s.zero[:len(b)])
}

// find reports whether block h is already stored. A block that is written
// but not committed yet comes with its location, which the caller's commit
// must carry (the index does not know it yet).
func (s *Store) find(h index.Hash) (bool, *index.Block) {
	s.pendingMu.Lock()
	loc, ok := s.pending[h]
	s.pendingMu.Unlock()
	if ok {
		return true, &loc
	}
	err := s.idx.View(func(x *index.Txn) error {
		_, err := x.Block(h)
		return err
	})
	return err == nil, nil
}

// encoded is a block's payload as an upload stores it.
type encoded struct {
	payload []byte
	codec   index.Codec
	buf     []byte // from getBuf: put back once payload is written
}

// encode compresses raw at the ingest level; a block that does not shrink
// is stored raw.
func (s *Store) encode(raw []byte) encoded {
	dst := s.getBuf()
	// EncodeAll grows dst if the block does not compress into BlockSize;
	// such a block is stored raw anyway.
	payload := s.enc.EncodeAll(raw, dst)
	codec := s.ingestCodec
	if len(payload) >= len(raw) {
		payload, codec = raw, index.CodecRaw
	}
	return encoded{payload: payload, codec: codec, buf: dst}
}

// writeBlock appends raw, compressed (enc, or now when enc is nil), to the
// active pack. The caller holds a semaphore slot.
func (s *Store) writeBlock(h index.Hash, raw []byte, enc *encoded) (index.Block, error) {
	if enc != nil {
		defer s.putBuf(enc.buf)
	}
	if err := s.space.forUpload(int64(recordHeaderLen + len(raw))); err != nil {
		return index.Block{}, err
	}
	if enc == nil {
		e := s.encode(raw)
		enc = &e
		defer s.putBuf(enc.buf)
	}
	payload, codec := enc.payload, enc.codec
	id, off, err := s.pw.append(h, len(raw), codec, payload)
	if err != nil {
		return index.Block{}, err
	}
	s.writeback(id, off, int64(recordHeaderLen+len(payload)))
	loc := index.Block{Pack: id, Offset: off, RawLen: uint32(len(raw)), StoredLen: uint32(len(payload)), Codec: codec}
	s.pendingMu.Lock()
	s.pending[h] = loc
	s.pendingMu.Unlock()
	return loc, nil
}

// writeback starts writing a record an upload just appended to the disk
// (startWriteback: advice; the commit's fsync is what makes it durable).
func (s *Store) writeback(id uint32, off, n int64) {
	pf, err := s.packs.get(id)
	if err != nil {
		return
	}
	defer s.packs.release(pf)
	startWriteback(pf.f, off, n)
}

// block returns the decompressed, verified content of block h. It is shared
// with the cache: callers must not modify it.
func (s *Store) block(h index.Hash, hint *index.Block, useCache bool) ([]byte, error) {
	if useCache {
		if b := s.cache.get(h); b != nil {
			return b, nil
		}
	}
	v, err, _ := s.loads.Do(string(h[:]), func() (any, error) {
		b, err := s.loadBlock(h, hint)
		if err == nil && useCache {
			s.cache.put(h, b)
		}
		return b, err
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// loadBlock reads block h from the location hint gives, or the index says.
// GC may move the block and delete its old pack between the look-up and the
// read; the read then fails (the file is closed or gone), so on a failure
// the location is looked up once more and, if it changed, read again.
func (s *Store) loadBlock(h index.Hash, hint *index.Block) ([]byte, error) {
	loc := hint
	if loc == nil {
		var err error
		if loc, err = s.locate(h); err != nil {
			return nil, err
		}
	}
	raw, err := s.readBlock(h, loc)
	if err == nil {
		return raw, nil
	}
	again, lerr := s.locate(h)
	if lerr != nil || (again.Pack == loc.Pack && again.Offset == loc.Offset) {
		return nil, err
	}
	return s.readBlock(h, again)
}

// locate returns where block h is stored: the index, else the blocks
// written but not yet committed.
func (s *Store) locate(h index.Hash) (*index.Block, error) {
	var loc *index.Block
	err := s.idx.View(func(x *index.Txn) error {
		b, err := x.Block(h)
		loc = b
		return err
	})
	if errors.Is(err, index.ErrNotFound) {
		s.pendingMu.Lock()
		p, ok := s.pending[h]
		s.pendingMu.Unlock()
		if !ok {
			return nil, fmt.Errorf("%w: block %s is missing from the index", ErrCorrupt, h)
		}
		return &p, nil
	}
	return loc, err
}

func (s *Store) readBlock(h index.Hash, loc *index.Block) ([]byte, error) {
	pf, err := s.packs.get(loc.Pack)
	if err != nil {
		if s.rc != nil && errors.Is(err, os.ErrNotExist) {
			return s.rc.readBlock(h, loc, err) // evicted: from the bucket (packcache.go)
		}
		return nil, fmt.Errorf("%w: block %s: %w", ErrCorrupt, h, err)
	}
	defer s.packs.release(pf)
	s.rc.touch(loc.Pack)
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	rec, payload, err := readRecord(pf.f, loc.Offset, loc)
	if err != nil {
		return nil, fmt.Errorf("%w: block %s in pack %d: %w", ErrCorrupt, h, loc.Pack, err)
	}
	return s.decodeRecord(h, loc, rec, payload, false)
}

// decodedChecked reports whether a record's decoded bytes are already
// proven to be the bytes that were stored, so that the read path can skip
// SHA-256 (a third of a cold read's CPU): the record header names the block
// wanted (rec.Hash == h), its CRC-32C covers header and payload, and
//   - a raw payload is the block itself, under that CRC;
//   - a zstd frame written with its content checksum (every frame since
//     frames carry it: see Store.init) was checked by the decoder against
//     the XXH64 of what it decoded (zstd's Content_Checksum_flag, bit 2 of
//     the frame header descriptor after the 4-byte magic); ingest-level
//     frames (CodecZstdIngest) alike;
//   - an LZMA2 payload (the cold tier) has no check of its own: SHA-256.
//
// Older zstd frames without the checksum are hashed as before. verify
// (Reader.strict) always checks SHA-256.
func decodedChecked(codec index.Codec, payload []byte) bool {
	switch codec {
	case index.CodecRaw:
		return true
	case index.CodecZstd, index.CodecZstdIngest:
		return len(payload) > 4 && payload[4]&(1<<2) != 0
	}
	return false
}
