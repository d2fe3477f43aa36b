package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/walrus-archive/walrus/index"
)

// Reader reads one committed file at any offset. It is safe for concurrent
// ReadAt calls. Every byte returned was verified against its block hash.
type Reader struct {
	s *Store
	f *index.File
	// internal: walrus reads for itself (history and backup files for
	// status and the settler's cold horizon); not a client's restore, so
	// the settler is not paused for it.
	internal bool
	located  map[index.Hash]index.Block // uncommitted blocks (validation of uploads)
	noCache  bool
	// strict checks every block's SHA-256 against the file's block list
	// (verify), also where the read path trusts zstd's frame checksum.
	// checked is the block index last checked (reads are sequential).
	strict  bool
	checked int
	readStats
	landed *os.File // a landed file (landing.go): read from it
}

// Open returns a reader for path.
func (s *Store) Open(path string) (*Reader, error) {
	f, err := s.lookup(path)
	if errors.Is(err, ErrNotFound) {
		r, err := s.openLanded(path)
		if !errors.Is(err, ErrNotFound) {
			return r, err
		}
		if f, err = s.elsewhere(path); f == nil {
			if err == nil {
				err = fmt.Errorf("%w: %s", ErrNotFound, path)
			}
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	// An open is a read for the settler too: a restore's cp of a segment
	// the kernel still caches opens it and sends no READ.
	s.readActivity()
	return &Reader{s: s, f: f}, nil
}

// openInternal is Open for walrus's own reads (Reader.internal).
func (s *Store) openInternal(path string) (*Reader, error) {
	f, err := s.lookup(path)
	if errors.Is(err, ErrNotFound) {
		r, err := s.openLanded(path)
		if err == nil {
			r.internal = true
		}
		return r, err
	}
	if err != nil {
		return nil, err
	}
	return &Reader{s: s, f: f, internal: true}, nil
}

// Size is the file's logical size.
func (r *Reader) Size() int64 { return r.f.Size }

// Info describes the file.
func (r *Reader) Info() FileInfo { return infoOf(r.f) }

// Close releases the reader (the landed file it reads, if any) and
// reports its reads to Config.Observer (OpenFrom).
func (r *Reader) Close() error {
	r.report()
	if r.landed != nil {
		return r.landed.Close()
	}
	return nil
}

// ReadAt implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("store: negative offset %d", off)
	}
	if off >= r.f.Size {
		return 0, io.EOF
	}
	if r.landed != nil {
		n, err := r.landed.ReadAt(p[:min(int64(len(p)), r.f.Size-off)], off)
		r.bytes.Add(int64(n))
		return n, err
	}
	want := len(p)
	if rest := r.f.Size - off; int64(want) > rest {
		p = p[:rest]
	}
	n := 0
	bs := int64(r.f.BlockSize)
	for n < len(p) {
		pos := off + int64(n)
		i := int(pos / bs)
		in := int(pos % bs)
		if i >= len(r.f.Blocks) {
			return n, fmt.Errorf("%w: %s: block list shorter than size", ErrCorrupt, r.f.Path())
		}
		k, err := r.copyBlock(p[n:], i, in)
		n += k
		if err != nil {
			return n, err
		}
	}
	r.bytes.Add(int64(n))
	if !r.internal {
		r.s.readActivity()
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

func (r *Reader) copyBlock(dst []byte, i, in int) (int, error) {
	h := r.f.Blocks[i]
	blockLen := int(min(int64(r.f.BlockSize), r.f.Size-int64(i)*int64(r.f.BlockSize)))
	if h.IsZero() {
		k := min(len(dst), blockLen-in)
		clear(dst[:k])
		return k, nil
	}
	var hint *index.Block
	if loc, ok := r.located[h]; ok {
		hint = &loc
	}
	var b []byte
	var err error
	if r.noCache {
		b, err = r.s.block(h, hint, false)
	} else {
		var release func()
		b, release, err = r.s.pinnedBlock(h, hint) // b may be recycled after release
		defer release()
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", r.f.Path(), err)
	}
	if len(b) != blockLen {
		return 0, fmt.Errorf("%w: %s: block %d is %d bytes, expected %d", ErrCorrupt, r.f.Path(), i, len(b), blockLen)
	}
	if r.strict && r.checked != i {
		if sha256.Sum256(b) != h {
			return 0, fmt.Errorf("%w: %s: block %d does not match its hash", ErrCorrupt, r.f.Path(), i)
		}
		r.checked = i
	}
	return copy(dst, b[in:]), nil
}

// WriteTo streams the whole file to w (used by `walrus get` and the rsync
// sender); it prefers block-sized reads.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	buf := make([]byte, r.f.BlockSize)
	for total < r.f.Size {
		n, err := r.ReadAt(buf, total)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Slices returns the bytes [off, off+n) of the file (fewer at the end of
// the file; none and io.EOF at or past it) as slices of the cached blocks
// themselves, so the caller can write them out without copying (the FUSE
// read reply). The blocks stay pinned, so unchanged, until release is
// called, which the caller must do exactly once, also after an error; a
// pin holds an evicted block's memory beyond the cache's bound until then
// (see "Recycling" in cache.go), so callers hold few and briefly. ok is
// false where the reader cannot lend its blocks (a landed file, an uncached
// or strict reader): use ReadAt then.
func (r *Reader) Slices(off int64, n int) (bufs [][]byte, release func(), ok bool, err error) {
	if r.landed != nil || r.noCache || r.strict || int(r.f.BlockSize) > len(r.s.zero) {
		return nil, func() {}, false, nil
	}
	var pins []func()
	release = func() {
		for _, p := range pins {
			p()
		}
	}
	if off < 0 {
		return nil, release, true, fmt.Errorf("store: negative offset %d", off)
	}
	if off >= r.f.Size {
		return nil, release, true, io.EOF
	}
	end := min(off+int64(n), r.f.Size)
	bs := int64(r.f.BlockSize)
	for pos := off; pos < end; {
		i := int(pos / bs)
		in := pos % bs
		if i >= len(r.f.Blocks) {
			return bufs, release, true, fmt.Errorf("%w: %s: block list shorter than size", ErrCorrupt, r.f.Path())
		}
		blockLen := min(bs, r.f.Size-int64(i)*bs)
		take := min(end-pos, blockLen-in)
		h := r.f.Blocks[i]
		if h.IsZero() {
			bufs = append(bufs, r.s.zero[in:in+take]) // read-only zeros
			pos += take
			continue
		}
		var hint *index.Block
		if loc, ok := r.located[h]; ok {
			hint = &loc
		}
		b, unpin, err := r.s.pinnedBlock(h, hint)
		pins = append(pins, unpin)
		if err != nil {
			return bufs, release, true, fmt.Errorf("%s: %w", r.f.Path(), err)
		}
		if int64(len(b)) != blockLen {
			return bufs, release, true, fmt.Errorf("%w: %s: block %d is %d bytes, expected %d", ErrCorrupt, r.f.Path(), i, len(b), blockLen)
		}
		bufs = append(bufs, b[in:in+take])
		pos += take
	}
	r.bytes.Add(end - off)
	if !r.internal {
		r.s.readActivity()
	}
	if end-off < int64(n) {
		return bufs, release, true, io.EOF
	}
	return bufs, release, true, nil
}
