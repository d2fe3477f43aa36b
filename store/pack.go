package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/walrus-archive/walrus/index"
)

// Pack files are append-only and self-describing, so the index could be
// rebuilt from them alone:
//
//	pack header   "WALRUSPK" | u32 version | u32 pack id              (16 bytes)
//	record        "WBLK" | sha256 of raw block (32) | u32 raw length |
//	              u32 stored length | u8 codec | 3 bytes zero |
//	              u32 CRC-32C of the preceding 48 header bytes and the payload |
//	              payload                                              (52 + stored bytes)
//
// All integers little-endian.

const (
	packMagic       = "WALRUSPK"
	packVersion     = 1
	packHeaderLen   = 16
	recordMagic     = "WBLK"
	recordHeaderLen = index.RecordHeaderLen
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func packFileName(dir string, id uint32) string {
	return filepath.Join(dir, fmt.Sprintf("%08d.pack", id))
}

// encodeRecordHeader fills the header of a record for payload.
func encodeRecordHeader(hdr []byte, h index.Hash, rawLen int, codec index.Codec, payload []byte) {
	copy(hdr[0:4], recordMagic)
	copy(hdr[4:36], h[:])
	binary.LittleEndian.PutUint32(hdr[36:40], uint32(rawLen))
	binary.LittleEndian.PutUint32(hdr[40:44], uint32(len(payload)))
	hdr[44] = byte(codec)
	hdr[45], hdr[46], hdr[47] = 0, 0, 0
	crc := crc32.Update(crc32.Checksum(hdr[:48], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(hdr[48:52], crc)
}

// recordHeader is a decoded record header.
type recordHeader struct {
	Hash      index.Hash
	RawLen    uint32
	StoredLen uint32
	Codec     index.Codec
	CRC       uint32
}

func decodeRecordHeader(hdr []byte, maxStored uint32) (recordHeader, error) {
	var r recordHeader
	if len(hdr) < recordHeaderLen || string(hdr[0:4]) != recordMagic {
		return r, errors.New("bad record magic")
	}
	copy(r.Hash[:], hdr[4:36])
	r.RawLen = binary.LittleEndian.Uint32(hdr[36:40])
	r.StoredLen = binary.LittleEndian.Uint32(hdr[40:44])
	r.Codec = index.Codec(hdr[44])
	r.CRC = binary.LittleEndian.Uint32(hdr[48:52])
	if r.StoredLen > maxStored || r.RawLen > maxStored*2+maxBlockSize {
		return r, fmt.Errorf("record length %d out of range", r.StoredLen)
	}
	if r.Codec != index.CodecRaw && r.Codec != index.CodecZstd {
		return r, fmt.Errorf("unknown codec %d", r.Codec)
	}
	return r, nil
}

func (r recordHeader) check(hdr, payload []byte) bool {
	crc := crc32.Update(crc32.Checksum(hdr[:48], castagnoli), castagnoli, payload)
	return crc == r.CRC
}

// packWriter appends records to the active pack. Locking: mu guards every
// field; appends from concurrent uploads are serialised by it, fsync is not
// (see Store.commitBatch).
type packWriter struct {
	mu      sync.Mutex
	dir     string
	maxSize int64
	id      uint32
	f       *os.File
	size    int64
	broken  error // first write failure; the pack is not used after it
	files   *packFiles
	nextID  uint32
	dirty   map[uint32]int64 // packs appended to since the last takeDirty, with their end
}

// takeDirty returns the packs written since the last call and their ends.
// Every byte below an end was written before the call returned, so an
// fsync of that pack after this call makes it durable.
func (w *packWriter) takeDirty() map[uint32]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.dirty
	w.dirty = map[uint32]int64{}
	return d
}

// append writes one record and returns its location. The bytes are not yet
// durable: the committer fsyncs the packs a batch touched before it commits
// the index.
func (w *packWriter) append(h index.Hash, rawLen int, codec index.Codec, payload []byte) (id uint32, off int64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken != nil {
		return 0, 0, w.broken
	}
	if w.f == nil || w.size+int64(recordHeaderLen+len(payload)) > w.maxSize && w.size > packHeaderLen {
		if err := w.roll(); err != nil {
			w.broken = err
			return 0, 0, err
		}
	}
	var hdr [recordHeaderLen]byte
	encodeRecordHeader(hdr[:], h, rawLen, codec, payload)
	off = w.size
	if _, err := w.f.WriteAt(hdr[:], off); err != nil {
		w.broken = fmt.Errorf("store: write pack %d: %w", w.id, err)
		return 0, 0, w.broken
	}
	if _, err := w.f.WriteAt(payload, off+recordHeaderLen); err != nil {
		w.broken = fmt.Errorf("store: write pack %d: %w", w.id, err)
		return 0, 0, w.broken
	}
	w.size = off + int64(recordHeaderLen+len(payload))
	w.dirty[w.id] = w.size
	return w.id, off, nil
}

// roll starts a new pack: create, write header, fsync file and directory,
// so that a pack that any index record may name always exists after a crash.
func (w *packWriter) roll() error {
	id := w.nextID
	name := packFileName(w.dir, id)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("store: create pack: %w", err)
	}
	var hdr [packHeaderLen]byte
	copy(hdr[:8], packMagic)
	binary.LittleEndian.PutUint32(hdr[8:12], packVersion)
	binary.LittleEndian.PutUint32(hdr[12:16], id)
	if _, err := f.Write(hdr[:]); err != nil {
		f.Close()
		return fmt.Errorf("store: write pack header: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("store: fsync pack: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	w.files.add(id, f)
	w.id, w.f, w.size, w.nextID = id, f, packHeaderLen, id+1
	return nil
}

// fail marks the writer broken after a failed fsync: pages that failed to
// reach the disk may be dropped by the kernel, so the pack must not be
// trusted for new commits (restic pack.ErrBroken; PostgreSQL's fsync panic).
func (w *packWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken == nil {
		w.broken = err
	}
}

// restoreDirty puts back packs that still need an index commit.
func (w *packWriter) restoreDirty(d map[uint32]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, end := range d {
		if end > w.dirty[id] {
			w.dirty[id] = end
		}
	}
}

// sealedBelow returns the lowest pack id that may still be appended to:
// every pack below it is sealed (GC may collect it).
func (w *packWriter) sealedBelow() uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		return w.id
	}
	return w.nextID
}

// position returns the active pack and its current end.
func (w *packWriter) position() (uint32, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.id, w.size
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: open dir for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: fsync dir %s: %w", dir, err)
	}
	return nil
}

// packFiles keeps every pack open for reading. Locking: mu guards m.
type packFiles struct {
	mu  sync.RWMutex
	dir string
	m   map[uint32]*os.File
}

func (p *packFiles) add(id uint32, f *os.File) {
	p.mu.Lock()
	p.m[id] = f
	p.mu.Unlock()
}

func (p *packFiles) get(id uint32) (*os.File, error) {
	p.mu.RLock()
	f := p.m[id]
	p.mu.RUnlock()
	if f != nil {
		return f, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.m[id]; f != nil {
		return f, nil
	}
	f, err := os.OpenFile(packFileName(p.dir, id), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("store: open pack %d: %w", id, err)
	}
	p.m[id] = f
	return f, nil
}

// remove deletes pack id's file and closes it. The unlink comes first: a
// get that misses the table afterwards cannot reopen the file, and one that
// reopened it before is in the table when it is closed here, so no
// descriptor keeps a deleted pack's blocks allocated. A reader still holding
// the old *os.File gets an error and looks the block up again
// (Store.loadBlock).
func (p *packFiles) remove(id uint32) error {
	err := os.Remove(packFileName(p.dir, id))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: delete pack %d: %w", id, err)
	}
	p.mu.Lock()
	f := p.m[id]
	delete(p.m, id)
	p.mu.Unlock()
	if f != nil {
		f.Close()
	}
	return nil
}

func (p *packFiles) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, f := range p.m {
		f.Close()
		delete(p.m, id)
	}
}

// readRecord reads and checks one record: magic, lengths, CRC. It does not
// decompress or verify the block hash (the caller does).
func readRecord(f io.ReaderAt, off int64, want *index.Block) (recordHeader, []byte, error) {
	buf := make([]byte, recordHeaderLen+int(want.StoredLen))
	if _, err := f.ReadAt(buf, off); err != nil {
		return recordHeader{}, nil, fmt.Errorf("read record at %d: %w", off, err)
	}
	r, err := decodeRecordHeader(buf, maxStoredLen)
	if err != nil {
		return r, nil, fmt.Errorf("record at %d: %w", off, err)
	}
	if r.StoredLen != want.StoredLen || r.RawLen != want.RawLen || r.Codec != want.Codec {
		return r, nil, fmt.Errorf("record at %d does not match the index", off)
	}
	payload := buf[recordHeaderLen:]
	if !r.check(buf, payload) {
		return r, nil, fmt.Errorf("record at %d: CRC mismatch", off)
	}
	return r, payload, nil
}
