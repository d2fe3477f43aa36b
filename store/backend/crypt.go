package backend

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// The encrypted object format (version 1) is written down in doc.go.
const (
	cryptMagic      = "WALRUSE1"
	cryptVersion    = 1
	cryptHeaderSize = 32
	chunkShift      = 16 // 64 KiB plaintext per chunk
	chunkSize       = 1 << chunkShift
	tagSize         = chacha20poly1305.Overhead // 16
	sealedChunk     = chunkSize + tagSize
	objectIDSize    = 16
	keyIDSize       = 4
	// headerCacheSize bounds the per-object headers Encrypted remembers.
	headerCacheSize = 4096
)

// Key is a 256-bit XChaCha20-Poly1305 key.
type Key [chacha20poly1305.KeySize]byte

// LoadKeyFile reads a key file: 64 hexadecimal digits (32 random bytes;
// make one with `openssl rand -hex 32 > walrus.key; chmod 600 walrus.key`),
// surrounding white space ignored. The file must not be readable by group
// or others. The key is never written to the backend.
func LoadKeyFile(path string) (Key, error) {
	var k Key
	fi, err := os.Stat(path)
	if err != nil {
		return k, fmt.Errorf("backend: key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return k, fmt.Errorf("backend: key file %s is readable by group or others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return k, fmt.Errorf("backend: key file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) != 2*len(k) {
		return k, fmt.Errorf("backend: key file %s holds %d characters, not 64 hex digits: make it with `openssl rand -hex 32`", path, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("backend: key file %s is not hexadecimal: make it with `openssl rand -hex 32`", path)
	}
	return k, nil
}

// Encrypted is a Backend decorator that encrypts and authenticates every
// object it writes to the backend below and authenticates every byte it
// reads back (format in doc.go). Names and plaintext sizes are not
// secret; contents are. A modified, truncated, extended, swapped or
// renamed object, or one written with another key, fails with ErrTampered
// and no byte of it is returned.
//
// Reads need the object's header and stored size; Encrypted remembers
// them per name (a bounded cache), so the first ReadAt of an object costs
// a Stat and a header read more. A header that no longer authenticates
// (the object was replaced by a Put) is dropped and read once again.
type Encrypted struct {
	b     Backend
	aead  cipher.AEAD
	keyID [keyIDSize]byte

	mu      sync.Mutex
	headers map[string]objectHeader // guarded by mu
}

var _ Backend = (*Encrypted)(nil)

// NewEncrypted returns b with encryption at rest under key.
func NewEncrypted(b Backend, key Key) *Encrypted {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic(err) // only a wrong key length fails, and Key has the right one
	}
	e := &Encrypted{b: b, aead: aead, headers: map[string]objectHeader{}}
	sum := sha256.Sum256(append([]byte("walrus backend key id\x00"), key[:]...))
	copy(e.keyID[:], sum[:])
	return e
}

// Location implements Backend.
func (e *Encrypted) Location() string { return "encrypted:" + e.b.Location() }

// objectHeader is a parsed header with the object's sizes.
type objectHeader struct {
	raw       [cryptHeaderSize]byte
	stored    int64 // size below
	plain     int64
	numChunks int64
}

func (h *objectHeader) objectID() []byte { return h.raw[16:32] }

// sizes computes the stored size and chunk count of a plaintext size.
func sizes(plain int64) (stored, chunks int64) {
	chunks = max(1, (plain+chunkSize-1)/chunkSize)
	return cryptHeaderSize + plain + chunks*tagSize, chunks
}

// plainSize inverts sizes; it fails for a stored size no object has.
func plainSize(stored int64) (plain, chunks int64, err error) {
	body := stored - cryptHeaderSize
	if body < tagSize {
		return 0, 0, fmt.Errorf("stored size %d is too small for an encrypted object", stored)
	}
	chunks = (body + sealedChunk - 1) / sealedChunk
	if last := body - (chunks-1)*sealedChunk; last < tagSize || last == tagSize && chunks > 1 {
		return 0, 0, fmt.Errorf("stored size %d ends inside a chunk tag", stored)
	}
	return body - chunks*tagSize, chunks, nil
}

func (e *Encrypted) newHeader(plain int64) objectHeader {
	var h objectHeader
	copy(h.raw[:8], cryptMagic)
	h.raw[8] = cryptVersion
	h.raw[9] = chunkShift
	copy(h.raw[12:16], e.keyID[:])
	rand.Read(h.raw[16:32])
	h.plain = plain
	h.stored, h.numChunks = sizes(plain)
	return h
}

// nonce is the object id followed by the chunk index: unique per chunk
// of every object as long as object ids do not repeat (128 random bits).
func (h *objectHeader) nonce(i int64) []byte {
	n := make([]byte, chacha20poly1305.NonceSizeX)
	copy(n, h.objectID())
	binary.BigEndian.PutUint64(n[16:], uint64(i))
	return n
}

// ad is the additional data of chunk i: the whole header, the chunk
// index, whether it is the last chunk, and the object name.
func (h *objectHeader) ad(name string, i int64) []byte {
	ad := make([]byte, 0, cryptHeaderSize+9+len(name))
	ad = append(ad, h.raw[:]...)
	ad = binary.BigEndian.AppendUint64(ad, uint64(i))
	last := byte(0)
	if i == h.numChunks-1 {
		last = 1
	}
	return append(append(ad, last), name...)
}

// chunkPlain is the plaintext length of chunk i.
func (h *objectHeader) chunkPlain(i int64) int64 {
	if i < h.numChunks-1 {
		return chunkSize
	}
	return h.plain - (h.numChunks-1)*chunkSize
}

// Put implements Backend.
func (e *Encrypted) Put(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	return e.put(ctx, name, r, size, false)
}

// PutIfAbsent implements Backend.
func (e *Encrypted) PutIfAbsent(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	return e.put(ctx, name, r, size, true)
}

func (e *Encrypted) put(ctx context.Context, name string, r io.ReaderAt, size int64, exclusive bool) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("backend: put %q: negative size %d", name, size)
	}
	h := e.newHeader(size)
	sr := &sealingReader{e: e, h: &h, name: name, src: r, cached: -1}
	var err error
	if exclusive {
		err = e.b.PutIfAbsent(ctx, name, sr, h.stored)
	} else {
		err = e.b.Put(ctx, name, sr, h.stored)
	}
	if err == nil {
		e.remember(name, h)
	} else {
		e.forget(name)
	}
	return err
}

// sealingReader is the ciphertext of an object as an io.ReaderAt, sealed
// chunk by chunk as it is read (the one last sealed chunk is kept, since
// backends read sequentially). Re-reading yields the same bytes, so a
// retried Put sends the same object.
type sealingReader struct {
	e    *Encrypted
	h    *objectHeader
	name string
	src  io.ReaderAt

	mu     sync.Mutex
	cached int64  // index of the chunk in sealed, -1 if none; guarded by mu
	sealed []byte // guarded by mu
}

func (s *sealingReader) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= s.h.stored {
			return n, io.EOF
		}
		if pos < cryptHeaderSize {
			n += copy(p[n:], s.h.raw[pos:])
			continue
		}
		i := (pos - cryptHeaderSize) / sealedChunk
		if err := s.seal(i); err != nil {
			return n, err
		}
		n += copy(p[n:], s.sealed[pos-cryptHeaderSize-i*sealedChunk:])
	}
	return n, nil
}

func (s *sealingReader) seal(i int64) error {
	if s.cached == i {
		return nil
	}
	plain := make([]byte, s.h.chunkPlain(i))
	if m, err := s.src.ReadAt(plain, i*chunkSize); m < len(plain) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading the object's source at %d: %w", i*chunkSize+int64(m), err)
	}
	s.sealed = s.e.aead.Seal(s.sealed[:0], s.h.nonce(i), plain, s.h.ad(s.name, i))
	s.cached = i
	return nil
}

// ReadAt implements Backend: it reads and opens the chunks the range
// touches, in one read below, and copies out the part asked for.
func (e *Encrypted) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	err := e.readAt(ctx, name, p, off, true)
	if errors.Is(err, errStaleHeader) {
		e.forget(name)
		err = e.readAt(ctx, name, p, off, false)
	}
	if errors.Is(err, errStaleHeader) {
		err = fmt.Errorf("%w: %q: a chunk does not authenticate", ErrTampered, name)
	}
	return err
}

// errStaleHeader: a chunk failed to open; with a cached header it may be
// that the object was replaced, so ReadAt retries once with a fresh one.
var errStaleHeader = errors.New("chunk failed authentication")

func (e *Encrypted) readAt(ctx context.Context, name string, p []byte, off int64, cached bool) error {
	h, err := e.header(ctx, name, cached)
	if err != nil {
		return err
	}
	if off < 0 || off+int64(len(p)) > h.plain {
		return shortError(name, off, int64(len(p)), h.plain)
	}
	first, last := off/chunkSize, (off+int64(len(p))-1)/chunkSize
	if len(p) == 0 {
		// Nothing to copy, but success must still mean authentic: open
		// the chunk off is in (an empty object's one empty chunk).
		first = min(off/chunkSize, h.numChunks-1)
		last = first
	}
	start := cryptHeaderSize + first*sealedChunk
	end := min(cryptHeaderSize+(last+1)*sealedChunk, h.stored)
	buf := make([]byte, end-start)
	if err := e.b.ReadAt(ctx, name, buf, start); err != nil {
		if errors.Is(err, ErrShort) {
			return fmt.Errorf("%w: %q is shorter than its header says: %v", ErrTampered, name, err)
		}
		return err
	}
	// Open every chunk (in place) before copying any byte out: a range
	// with one bad chunk returns nothing.
	plains := make([][]byte, 0, last-first+1)
	for i := first; i <= last; i++ {
		sealed := buf[(i-first)*sealedChunk : min(int64(len(buf)), (i-first+1)*sealedChunk)]
		plain, err := e.aead.Open(sealed[:0], h.nonce(i), sealed, h.ad(name, i))
		if err != nil {
			return errStaleHeader
		}
		plains = append(plains, plain)
	}
	if len(p) == 0 {
		return nil
	}
	n := copy(p, plains[0][off-first*chunkSize:])
	for _, plain := range plains[1:] {
		n += copy(p[n:], plain)
	}
	return nil
}

// header returns name's header and sizes, from the cache if allowed.
// Reading one authenticates nothing yet (chunks do, with the header in
// their additional data); it only checks the format.
func (e *Encrypted) header(ctx context.Context, name string, cached bool) (objectHeader, error) {
	if cached {
		e.mu.Lock()
		h, ok := e.headers[name]
		e.mu.Unlock()
		if ok {
			return h, nil
		}
	}
	info, err := e.b.Stat(ctx, name)
	if err != nil {
		return objectHeader{}, err
	}
	var h objectHeader
	h.stored = info.Size
	if h.plain, h.numChunks, err = plainSize(info.Size); err != nil {
		return h, fmt.Errorf("%w: %q: %v", ErrTampered, name, err)
	}
	if err := e.b.ReadAt(ctx, name, h.raw[:], 0); err != nil {
		if errors.Is(err, ErrShort) {
			err = fmt.Errorf("%w: %q: %v", ErrTampered, name, err)
		}
		return h, err
	}
	switch {
	case !bytes.Equal(h.raw[:8], []byte(cryptMagic)):
		return h, fmt.Errorf("%w: %q is not a walrus encrypted object (no %s header)", ErrTampered, name, cryptMagic)
	case h.raw[8] != cryptVersion || h.raw[9] != chunkShift || h.raw[10] != 0 || h.raw[11] != 0:
		return h, fmt.Errorf("%w: %q has encryption format version %d, chunk shift %d: this walrus reads version %d, shift %d", ErrTampered, name, h.raw[8], h.raw[9], cryptVersion, chunkShift)
	case !bytes.Equal(h.raw[12:16], e.keyID[:]):
		return h, fmt.Errorf("%w: %q was written with another key (key id %x, this key's is %x): use the key file it was written with", ErrTampered, name, h.raw[12:16], e.keyID)
	}
	e.remember(name, h)
	return h, nil
}

func (e *Encrypted) remember(name string, h objectHeader) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.headers) >= headerCacheSize {
		for k := range e.headers { // evict an arbitrary one
			delete(e.headers, k)
			break
		}
	}
	e.headers[name] = h
}

func (e *Encrypted) forget(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.headers, name)
}

// Stat implements Backend: the plaintext size, computed from the stored
// size (not authenticated until the object is read).
func (e *Encrypted) Stat(ctx context.Context, name string) (Info, error) {
	info, err := e.b.Stat(ctx, name)
	if err != nil {
		return info, err
	}
	plain, _, err := plainSize(info.Size)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %q: %v", ErrTampered, name, err)
	}
	return Info{Name: name, Size: plain}, nil
}

// List implements Backend, reporting plaintext sizes. An object whose
// stored size no encrypted object has stops the listing with ErrTampered.
func (e *Encrypted) List(ctx context.Context, prefix string, fn func(Info) error) error {
	return e.b.List(ctx, prefix, plainInfos(fn))
}

// ListAfter implements Backend like List: names are stored as they are
// (only contents are encrypted), so the order and after pass through.
func (e *Encrypted) ListAfter(ctx context.Context, prefix, after string, fn func(Info) error) error {
	return e.b.ListAfter(ctx, prefix, after, plainInfos(fn))
}

// plainInfos wraps a listing's fn to report plaintext sizes.
func plainInfos(fn func(Info) error) func(Info) error {
	return func(info Info) error {
		plain, _, err := plainSize(info.Size)
		if err != nil {
			return fmt.Errorf("%w: %q: %v", ErrTampered, info.Name, err)
		}
		return fn(Info{Name: info.Name, Size: plain})
	}
}

// Delete implements Backend.
func (e *Encrypted) Delete(ctx context.Context, name string) error {
	e.forget(name)
	return e.b.Delete(ctx, name)
}
