package store

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

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
//	journal       the same frame with magic "WJNL" and codec 0x80, payload the
//	              file and namespace changes of a commit (journal.go)
//
// All integers little-endian. Version 2 packs may hold journal records;
// version 1 packs (written before the journal existed) hold blocks only.

const (
	packMagic       = "WALRUSPK"
	packVersion     = 2
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
	if codec == codecJournal {
		copy(hdr[0:4], journalMagic)
	}
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
	if len(hdr) < recordHeaderLen || string(hdr[0:4]) != recordMagic && string(hdr[0:4]) != journalMagic {
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
	if (r.Codec == codecJournal) != (string(hdr[0:4]) == journalMagic) {
		return r, fmt.Errorf("codec %d in a %q record", r.Codec, hdr[0:4])
	}
	if !validCodec(r.Codec) && r.Codec != codecJournal {
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
//
// No failure sticks until a restart (see "Full disk" in doc.go). A failed
// write leaves the tail of the pack unknown, so the writer cuts the pack
// back to the end of the last record it wrote whole (size) and goes on; if
// even that fails it seals the pack and the next append starts a new one. A
// failed fsync poisons the pack instead: the kernel may have dropped pages
// that never reached the disk, and a later fsync can succeed without them
// (PostgreSQL's fsync lesson; restic's pack.ErrBroken), so nothing past the
// pack's committed length is ever committed (its dirty end is dropped and
// commits that name blocks past it are refused: see commitFileOp.checkLocated)
// and appends move to a new pack.
type packWriter struct {
	mu       sync.Mutex
	dir      string
	maxSize  int64
	space    *spaceGuard
	id       uint32
	pf       *packFile // the active pack, pinned in files; nil: the next append starts one
	size     int64
	files    *packFiles
	nextID   uint32
	dirty    map[uint32]int64 // packs appended to since the last takeDirty, with their end
	poisoned map[uint32]bool  // packs whose fsync failed
	// ends: the end of the last record written to each pack by this
	// process, committed or not (dirtyPast, remoteack.go); an entry goes
	// once the pack is uploaded.
	ends map[uint32]int64
	// first is when the active pack received its first record (zero:
	// none yet); the uploader seals it by age (sealIfOlder).
	first time.Time
	// created records a new pack in the index before its first record is
	// written (Store.announcePack).
	created func(id uint32) error
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
// the index. A record is refused when writing it would leave the index less
// than the free space it needs (spaceGuard.forData: an append never takes
// the reserve file; GC checks with forIndex before it copies).
func (w *packWriter) append(h index.Hash, rawLen int, codec index.Codec, payload []byte) (id uint32, off int64, err error) {
	return w.appendChecked(h, rawLen, codec, payload, w.space.forData)
}

// appendChecked is append with the space check given: journal records of
// a removal or GC batch may take the reserve file (spaceGuard.forIndex).
func (w *packWriter) appendChecked(h index.Hash, rawLen int, codec index.Codec, payload []byte, room func(int64) error) (id uint32, off int64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := int64(recordHeaderLen + len(payload))
	if err := room(n); err != nil {
		return 0, 0, err
	}
	if w.pf == nil || w.size+n > w.maxSize && w.size > packHeaderLen {
		if err := w.roll(); err != nil {
			return 0, 0, err
		}
	}
	var hdr [recordHeaderLen]byte
	encodeRecordHeader(hdr[:], h, rawLen, codec, payload)
	off = w.size
	if err := w.write(off, hdr[:], payload); err != nil {
		w.cutTail()
		return 0, 0, spaceErr(fmt.Errorf("store: write pack %d: %w", w.id, err))
	}
	if w.first.IsZero() {
		w.first = time.Now()
	}
	w.size = off + n
	w.dirty[w.id] = w.size
	if w.ends == nil {
		w.ends = map[uint32]int64{}
	}
	w.ends[w.id] = w.size
	return w.id, off, nil
}

func (w *packWriter) write(off int64, hdr, payload []byte) error {
	if _, err := w.pf.f.WriteAt(hdr, off); err != nil {
		return err
	}
	_, err := w.pf.f.WriteAt(payload, off+int64(len(hdr)))
	return err
}

// cutTail drops whatever a failed write left past the last whole record.
// If the pack cannot be cut it is sealed: its records up to size stay
// valid, nothing past size is ever committed, and Open truncates the rest.
func (w *packWriter) cutTail() {
	if err := w.pf.f.Truncate(w.size); err != nil {
		w.seal()
	}
}

// roll starts a new pack: create, write header, fsync file and directory,
// so that a pack that any index record may name always exists after a crash.
// On failure nothing is left behind and the next append tries again.
func (w *packWriter) roll() error {
	w.seal()
	id := w.nextID
	name := packFileName(w.dir, id)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return spaceErr(fmt.Errorf("store: create pack: %w", err))
	}
	w.nextID = id + 1 // the name is taken even if what follows fails
	if err := writePackHeader(f, w.dir, id); err != nil {
		f.Close()
		os.Remove(name) // no index record names it
		return spaceErr(err)
	}
	if err := w.announce(id); err != nil {
		f.Close()
		os.Remove(name) // the index does not know it, and it holds no record
		return spaceErr(err)
	}
	w.pf = w.files.add(id, f)
	w.id, w.size, w.first = id, packHeaderLen, time.Time{}
	return nil
}

func writePackHeader(f *os.File, dir string, id uint32) error {
	var hdr [packHeaderLen]byte
	copy(hdr[:8], packMagic)
	binary.LittleEndian.PutUint32(hdr[8:12], packVersion)
	binary.LittleEndian.PutUint32(hdr[12:16], id)
	if _, err := f.Write(hdr[:]); err != nil {
		return fmt.Errorf("store: write pack header: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: fsync pack: %w", err)
	}
	return syncDir(dir)
}

// resume makes pack id, committed bytes long, the active pack again, so
// that a store opened for every `walrus put` appends to one pack instead of
// starting a pack per call. Only a pack exactly as long as its committed
// length (Open has cut any torn tail) and carrying this version's header is
// resumed: appending past the committed length is then what appending to a
// pack this process created is, and a crash is repaired the same way, by
// truncating the pack to its committed length. Its header and directory
// entry were made durable when it was created.
func (w *packWriter) resume(id uint32, committed int64) error {
	pf, err := w.files.get(id)
	if err != nil {
		return err
	}
	if err := checkResumable(pf.f, id, committed); err != nil {
		w.files.release(pf)
		return fmt.Errorf("store: not resuming pack %d: %w", id, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seal()
	w.pf, w.id, w.size, w.first = pf, id, committed, time.Time{}
	if committed > packHeaderLen {
		w.first = time.Now() // its records' age is unknown: count from now
	}
	return nil
}

// resumePack resumes the newest pack if a full block still fits in it (see
// packWriter.resume); otherwise, or if it cannot, the first append starts a
// new pack.
func (s *Store) resumePack() {
	var last *index.Pack
	err := s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			if !p.Retired {
				last = p
			}
			return nil
		})
	})
	if err != nil || last == nil || last.Committed+int64(recordHeaderLen+s.cfg.BlockSize) > s.cfg.PackSize {
		return
	}
	if last.Uploaded {
		// Its bytes are in the bucket as they are: appending would make
		// the object stale (remote.go). With or without a bucket now.
		return
	}
	if err := s.pw.resume(last.ID, max(last.Committed, packHeaderLen)); err != nil {
		s.log.Warn("starting a new pack", "err", err)
	}
}

func checkResumable(f *os.File, id uint32, committed int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != committed {
		return fmt.Errorf("%d bytes on disk, %d committed", st.Size(), committed)
	}
	var hdr [packHeaderLen]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return err
	}
	if string(hdr[:8]) != packMagic || binary.LittleEndian.Uint32(hdr[8:12]) != packVersion ||
		binary.LittleEndian.Uint32(hdr[12:16]) != id {
		return errors.New("header is not this version's, or names another pack")
	}
	return nil
}

// seal stops appending to the active pack (w.mu held); the next append
// starts a new one.
func (w *packWriter) seal() {
	if w.pf != nil {
		w.files.release(w.pf)
		w.pf = nil
	}
}

// sealIfOlder seals the active pack if it holds a record older than age
// (the uploader's roll by age). It reports whether it sealed one.
func (w *packWriter) sealIfOlder(age time.Duration, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pf == nil || w.size <= packHeaderLen || w.first.IsZero() || now.Sub(w.first) < age {
		return false
	}
	w.seal()
	return true
}

// activeSince returns, in one snapshot, sealedBelow and the active pack's
// bytes and the time of its first record (size 0: no active pack holding
// records). Taken together, a pack sealed after the call is counted as
// active, never as neither active nor below the bound.
func (w *packWriter) activeSince() (bound uint32, size int64, first time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pf == nil {
		return w.nextID, 0, time.Time{}
	}
	if w.size <= packHeaderLen {
		return w.id, 0, time.Time{}
	}
	return w.id, w.size, w.first
}

// isDirty reports whether pack id was appended to since the last batch
// took the dirty set (its committed length may still grow).
func (w *packWriter) isDirty(id uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.dirty[id]
	return ok
}

// sealActive seals pack id if it is still the active pack (GC, to collect
// it).
func (w *packWriter) sealActive(id uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pf != nil && w.id == id {
		w.seal()
	}
}

// poison is called after an fsync of pack id failed: the pack is sealed and
// its uncommitted bytes are never committed (see packWriter).
func (w *packWriter) poison(id uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.poisoned[id] = true
	delete(w.dirty, id)
	if w.pf != nil && w.id == id {
		w.seal()
	}
}

// restoreDirty puts back packs that still need an index commit.
func (w *packWriter) restoreDirty(d map[uint32]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, end := range d {
		if end > w.dirty[id] && !w.poisoned[id] {
			w.dirty[id] = end
		}
	}
}

// sealedBelow returns the lowest pack id that may still be appended to:
// every pack below it is sealed (GC may collect it).
func (w *packWriter) sealedBelow() uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pf != nil {
		return w.id
	}
	return w.nextID
}

// active returns the active pack, if there is one.
func (w *packWriter) active() (uint32, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.id, w.pf != nil
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

// maxIdlePacks bounds the pack files kept open while nobody reads them.
const maxIdlePacks = 32

// packFiles opens pack files for reading and keeps the most recently used
// maxIdlePacks of them open while idle (an LRU), so that descriptors stay
// bounded however many packs there are. A file in use is never closed under
// its user: get pins it, release unpins it; the active pack stays pinned by
// the writer. Locking: mu guards m, idle and every packFile's refs, elem
// and gone.
type packFiles struct {
	mu   sync.Mutex
	dir  string
	m    map[uint32]*packFile
	idle list.List // of *packFile with refs == 0, least recently used first
}

// packFile is one open pack file.
type packFile struct {
	id   uint32
	f    *os.File
	refs int
	elem *list.Element // in packFiles.idle while refs == 0
	gone bool          // removed: close at the last release
}

// add registers f, just created by the writer, pinned once for it.
func (p *packFiles) add(id uint32, f *os.File) *packFile {
	p.mu.Lock()
	defer p.mu.Unlock()
	pf := &packFile{id: id, f: f, refs: 1}
	p.m[id] = pf
	return pf
}

// get returns pack id's file, opening it if needed, pinned until release.
func (p *packFiles) get(id uint32) (*packFile, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pf := p.m[id]; pf != nil {
		if pf.elem != nil {
			p.idle.Remove(pf.elem)
			pf.elem = nil
		}
		pf.refs++
		return pf, nil
	}
	f, err := os.OpenFile(packFileName(p.dir, id), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("store: open pack %d: %w", id, err)
	}
	pf := &packFile{id: id, f: f, refs: 1}
	p.m[id] = pf
	return pf, nil
}

// release unpins pf; an idle file beyond maxIdlePacks is closed, least
// recently used first.
func (p *packFiles) release(pf *packFile) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pf.refs--; pf.refs > 0 {
		return
	}
	if pf.gone {
		pf.f.Close()
		return
	}
	pf.elem = p.idle.PushBack(pf)
	for p.idle.Len() > maxIdlePacks {
		old := p.idle.Remove(p.idle.Front()).(*packFile)
		old.elem = nil
		delete(p.m, old.id)
		old.f.Close()
	}
}

// remove deletes pack id's file. The unlink comes first: a get that misses
// the table afterwards cannot reopen the file. A reader that holds it open
// reads on (the bytes stay valid until it releases them; Store.loadBlock
// looks a block up again when a read fails); the descriptor is closed at
// the last release, so no descriptor keeps a deleted pack allocated longer.
func (p *packFiles) remove(id uint32) error {
	err := os.Remove(packFileName(p.dir, id))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: delete pack %d: %w", id, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pf := p.m[id]
	if pf == nil {
		return nil
	}
	delete(p.m, id)
	if pf.refs > 0 {
		pf.gone = true
		return nil
	}
	p.idle.Remove(pf.elem)
	pf.elem = nil
	pf.f.Close()
	return nil
}

// closeAll closes every pack file; nothing may use them afterwards.
func (p *packFiles) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, pf := range p.m {
		pf.f.Close()
		delete(p.m, id)
	}
	p.idle.Init()
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
