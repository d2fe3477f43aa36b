package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"sync"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
)

// FileMeta is what a writer says about a file besides its bytes.
type FileMeta struct {
	Mode  fs.FileMode
	MTime time.Time
	// Origin says where the file came from, for Config.Observer; only
	// Create's is used.
	Origin Origin
}

// Origin names the interface a file came through or went out by ("fuse",
// "rsync", "cli") and, where known, the peer (a client address).
type Origin struct {
	Interface string
	Peer      string
}

// Upload streams one file into the store. Write the bytes in order, then
// Commit (or Abort). An Upload is used by one goroutine at a time.
type Upload struct {
	s        *Store
	dir      string
	name     string
	walName  wal.Name
	meta     FileMeta
	whole    hash.Hash // whole-file SHA-256, only to compare with a HashWhole record
	bs       int       // block size: the store's, or an existing record's to compare with
	size     int64
	buf      []byte // the block being filled
	first    []byte // the first WAL page, for validation
	header   *wal.LongPageHeader
	existing *index.File // set when the name exists: compare, don't store

	wg      sync.WaitGroup
	mu      sync.Mutex // guards blocks, located, err, differs (written by workers)
	blocks  []index.Hash
	located map[index.Hash]index.Block
	err     error
	differs bool
	done    bool
	landing bool // an ingest of a landed file: the name's lock is held
	serial  bool // store blocks in the writing goroutine (background ingest)
}

// create starts an upload of path (Create, in landing.go, settles a
// landed file of that name first).
func (s *Store) create(path string, meta FileMeta) (*Upload, error) {
	dir, name, err := SplitPath(path)
	if err != nil {
		return nil, err
	}
	select {
	case <-s.closing:
		return nil, ErrClosed
	default:
	}
	u := &Upload{
		s: s, dir: dir, name: name, walName: wal.ParseName(name), meta: meta,
		bs: s.cfg.BlockSize, located: map[index.Hash]index.Block{},
	}
	err = s.idx.View(func(x *index.Txn) error {
		f, err := x.File(dir, name)
		if err == nil {
			// The name exists: the bytes are only compared with it, block
			// by block at its block size (and, for a record that predates
			// HashRoot, by a whole-file hash as well).
			u.existing = f
			if f.BlockSize > 0 && f.BlockSize <= maxBlockSize {
				u.bs = int(f.BlockSize)
			}
			if f.HashKind == index.HashWhole {
				u.whole = sha256.New()
			}
			return nil
		}
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if u.existing == nil {
		// Refuse at once rather than after the client sent every byte. An
		// identical re-push stores nothing and is never refused.
		if err := s.space.forUpload(0); err != nil {
			return nil, err
		}
	}
	s.uploadStarted()
	return u, nil
}

// SetMeta replaces the mode and mtime to commit with (cp -p and rsync set
// them after writing the bytes).
func (u *Upload) SetMeta(meta FileMeta) {
	meta.Origin = u.meta.Origin
	u.meta = meta
}

// Path returns the name the upload commits to.
func (u *Upload) Path() string { return joinPath(u.dir, u.name) }

// Size returns the bytes written so far.
func (u *Upload) Size() int64 { return u.size }

func (u *Upload) isSegment() bool {
	return u.walName.Kind == wal.KindSegment || u.walName.Kind == wal.KindPartial
}

// Write appends p. It fails early when the bytes already seen are known to
// be unacceptable (bad WAL header, another cluster, too large), so an
// adapter can stop reading from its client.
func (u *Upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, ErrClosed
	}
	if err := u.failure(); err != nil {
		return 0, err
	}
	if u.size+int64(len(p)) > u.s.cfg.MaxFileSize {
		return 0, fmt.Errorf("%w: %s exceeds %d bytes", ErrTooLarge, u.Path(), u.s.cfg.MaxFileSize)
	}
	n := len(p)
	for len(p) > 0 {
		k := copy(u.space(), p)
		if err := u.advance(k); err != nil {
			return 0, err
		}
		p = p[k:]
	}
	return n, nil
}

// Buffer returns where the next bytes of the file go, at most n of them:
// a caller that reads the file from a connection reads into a prefix of
// it and calls Advance with its length, instead of Write copying the bytes
// once more. The slice is valid until that call. It fails as Write does.
func (u *Upload) Buffer(n int) ([]byte, error) {
	if u.done {
		return nil, ErrClosed
	}
	if err := u.failure(); err != nil {
		return nil, err
	}
	b := u.space()
	return b[:min(n, len(b))], nil
}

// Advance appends the k bytes read into the start of the slice Buffer
// returned. Its checks and errors are Write's.
func (u *Upload) Advance(k int) error {
	if u.done {
		return ErrClosed
	}
	if err := u.failure(); err != nil {
		return err
	}
	if u.buf == nil || k > cap(u.buf)-len(u.buf) {
		return fmt.Errorf("store: %s: Advance(%d) past the buffer", u.Path(), k)
	}
	return u.advance(k)
}

// space is the free part of the block being filled (started if none is).
func (u *Upload) space() []byte {
	if u.buf == nil {
		u.buf = u.newBuf()
	}
	return u.buf[len(u.buf):cap(u.buf)]
}

// advance takes the k bytes written into space() into the file.
func (u *Upload) advance(k int) error {
	if u.size+int64(k) > u.s.cfg.MaxFileSize {
		return fmt.Errorf("%w: %s exceeds %d bytes", ErrTooLarge, u.Path(), u.s.cfg.MaxFileSize)
	}
	p := u.buf[len(u.buf) : len(u.buf)+k]
	if u.whole != nil {
		u.whole.Write(p)
	}
	if u.isSegment() && u.existing == nil && len(u.first) < wal.DefaultBlockSize {
		u.first = append(u.first, p[:min(k, wal.DefaultBlockSize-len(u.first))]...)
		if len(u.first) == wal.DefaultBlockSize {
			if err := u.checkHeader(-1); err != nil {
				return err
			}
		}
	}
	u.buf = u.buf[:len(u.buf)+k]
	u.size += int64(k)
	if len(u.buf) == cap(u.buf) {
		// A segment's size is known from its header: its last block is
		// the last of the file.
		u.dispatch(u.header != nil && u.size == int64(u.header.SegSize))
	}
	return nil
}

// newBuf returns an empty buffer for the next block.
func (u *Upload) newBuf() []byte {
	if u.bs == u.s.cfg.BlockSize {
		return u.s.getBuf()
	}
	return make([]byte, 0, u.bs)
}

// checkHeader validates the first page. With size < 0 (still streaming) the
// size check uses the header's own segment size.
func (u *Upload) checkHeader(size int64) error {
	if len(u.first) < wal.DefaultBlockSize {
		return fmt.Errorf("%w: %s is %d bytes, shorter than one WAL page", ErrInvalidWAL, u.Path(), u.size)
	}
	if size < 0 {
		h, err := wal.ParseLongPageHeader(u.first)
		if err != nil {
			return u.setErr(fmt.Errorf("%w: %s: %w", ErrInvalidWAL, u.Path(), err))
		}
		size = int64(h.SegSize)
	}
	h, err := wal.CheckSegment(u.walName, u.first, size, u.s.cfg.AllowUnknownMagic)
	if err != nil {
		return u.setErr(fmt.Errorf("%w: %w", ErrInvalidWAL, err))
	}
	u.header = &h
	if dir, err := u.s.DirMeta(u.dir); err == nil {
		if err := checkCluster(&dir, &h, u.Path()); err != nil {
			return u.setErr(err)
		}
	}
	return nil
}

func (u *Upload) setErr(err error) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
	}
	return u.err
}

func (u *Upload) failure() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// dispatch hands the full (or final) block to a worker. The semaphore bounds
// blocks in flight across all uploads, and so the memory they hold; last
// says no block follows (storeBlock).
func (u *Upload) dispatch(last bool) {
	buf := u.buf
	u.buf = nil
	u.mu.Lock()
	i := len(u.blocks)
	u.blocks = append(u.blocks, index.ZeroHash)
	u.mu.Unlock()
	var want *index.Hash
	if u.existing != nil {
		want = &index.ZeroHash
		if i < len(u.existing.Blocks) {
			want = &u.existing.Blocks[i]
		}
	}
	u.s.sem <- struct{}{}
	u.wg.Add(1)
	if u.serial { // the background ingester: on its own (low-priority) thread
		defer u.wg.Done()
		defer func() { <-u.s.sem }()
		defer u.s.putBuf(buf)
		u.storeBlock(i, buf, want, false)
		return
	}
	go func() {
		defer u.wg.Done()
		defer func() { <-u.s.sem }()
		defer u.s.putBuf(buf)
		u.storeBlock(i, buf, want, last)
	}()
}

// storeBlock hashes block i and stores it unless the store has it. For
// the last block of a file (last) nothing else of the upload can run any
// more and the client waits for the commit behind it: it is compressed in
// a second goroutine while it is hashed, instead of after (speculatively:
// a block the store already has throws the payload away).
func (u *Upload) storeBlock(i int, raw []byte, want *index.Hash, last bool) {
	var h index.Hash
	zero := u.s.isZero(raw)
	var ahead chan encoded
	if last && want == nil && !zero {
		ahead = make(chan encoded, 1)
		go func() { ahead <- u.s.encode(raw) }()
	}
	var enc *encoded
	defer func() {
		if ahead != nil && enc == nil { // raw must not go back to the pool under the encoder
			u.s.putBuf((<-ahead).buf)
		}
	}()
	if !zero {
		h = sha256.Sum256(raw)
	}
	if want != nil { // the name exists: only compare
		if h != *want {
			u.mu.Lock()
			u.differs = true
			u.mu.Unlock()
		}
		u.setBlock(i, h, nil)
		return
	}
	if h.IsZero() {
		return
	}
	if known, loc := u.s.find(h); known {
		u.setBlock(i, h, loc)
		return
	}
	if ahead != nil {
		e := <-ahead
		enc = &e
	}
	loc, err := u.s.writeBlock(h, raw, enc)
	if err != nil {
		u.setErr(err)
		return
	}
	u.setBlock(i, h, &loc)
}

func (u *Upload) setBlock(i int, h index.Hash, loc *index.Block) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.blocks[i] = h
	if loc != nil {
		u.located[h] = *loc
	}
}

// Commit finishes the upload and makes it durable (see the package doc for
// the order). It returns ErrExists, ErrInvalidWAL, ErrClusterMismatch or an
// I/O error; nil means the file is on stable storage and indexed.
func (u *Upload) Commit() (info FileInfo, err error) {
	if u.done {
		return FileInfo{}, ErrClosed
	}
	if o := u.s.cfg.Observer; o != nil && !u.landing { // a landed file was reported when it landed
		start := time.Now()
		defer func() {
			o.Committed(CommitEvent{Origin: u.meta.Origin, Dir: u.dir, Name: u.name, Size: u.size, Stored: info.Stored,
				Existed: err == nil && u.existing != nil, Err: err, Duration: time.Since(start)})
		}()
	}
	info, err = u.commit()
	if err == nil && !u.landing {
		// Remote-ack: also an identical re-push waits for the bucket
		// (remoteack.go); an ingest answers nobody.
		if err = u.s.ackRemote(u.Path()); err != nil {
			return FileInfo{}, err
		}
	}
	return info, err
}

func (u *Upload) commit() (FileInfo, error) {
	if len(u.buf) > 0 {
		u.dispatch(true)
	}
	u.wg.Wait()
	u.done = true
	defer u.forget()
	if err := u.failure(); err != nil {
		return FileInfo{}, err
	}
	// The identity is a root over the block hashes the workers computed
	// anyway (index.RootHash): no second pass over the bytes.
	f := &index.File{
		Dir: u.dir, Name: u.name, Size: u.size, Mode: uint32(u.meta.Mode.Perm()),
		MTime: u.meta.MTime.UnixNano(), BlockSize: uint32(u.bs), Blocks: u.blocks,
		HashKind: index.HashRoot, Hash: index.RootHash(u.size, uint32(u.bs), u.blocks),
	}
	if u.existing != nil && (u.differs || !u.sameAsExisting(f)) {
		return FileInfo{}, fmt.Errorf("%w: %s (archived %s, %d bytes; the new copy of %d bytes differs)",
			ErrExists, u.Path(), time.Unix(0, u.existing.Archived).UTC().Format(time.RFC3339), u.existing.Size, u.size)
	}
	if u.existing == nil {
		if err := u.validate(); err != nil {
			return FileInfo{}, err
		}
	}
	// Claims (claims.go): f's identity is final and nothing of it is
	// submitted yet; the name is claimed for it in the group's claims
	// prefix before the local commit, an identical re-push too. Refused
	// or unanswered: nothing is committed.
	from := ""
	if u.meta.Origin.Interface == peerOrigin {
		from = u.meta.Origin.Peer
	}
	if err := u.s.claim(f, from); err != nil {
		return FileInfo{}, err
	}
	if u.existing != nil {
		// Identical re-push (PostgreSQL re-archives after a crash): the
		// committed copy is already durable; nothing to write. Unless it was
		// removed meanwhile: then these bytes were only compared, not stored.
		cur, err := u.s.lookup(u.Path())
		if err != nil || cur.Hash != u.existing.Hash {
			return FileInfo{}, fmt.Errorf("store: %s was removed or replaced during the upload; retry", u.Path())
		}
		return infoOf(cur), nil
	}
	o := &commitFileOp{file: f, header: u.header, located: u.located}
	if !u.landing {
		unlock, err := u.s.gateNew(u.Path()) // a file landed under the name since Create
		if err != nil {
			return FileInfo{}, err
		}
		defer unlock()
	}
	if err := u.s.submit(o); err != nil {
		return FileInfo{}, err
	}
	if k := wal.ParseName(f.Name).Kind; k == wal.KindBackup || k == wal.KindHistory {
		u.s.horizonMoved(f.Dir) // the cold tier may move (settle.go)
	}
	if o.existed {
		old, err := u.s.lookup(u.Path())
		if err != nil {
			return FileInfo{}, err
		}
		return infoOf(old), nil
	}
	return infoOf(f), nil
}

// sameAsExisting compares the finished upload f with the record the name
// already has (the blocks were compared as they arrived: u.differs).
func (u *Upload) sameAsExisting(f *index.File) bool {
	e := u.existing
	if e.Size != f.Size {
		return false
	}
	if e.HashKind == index.HashWhole {
		var whole index.Hash
		u.whole.Sum(whole[:0])
		return whole == e.Hash
	}
	return index.SameContent(e, f)
}

func (u *Upload) validate() error {
	switch u.walName.Kind {
	case wal.KindSegment, wal.KindPartial:
		return u.checkHeader(u.size)
	case wal.KindHistory:
		entries, err := wal.ParseHistory(u.readSmall())
		if err == nil {
			// What recovery would refuse to read (timeline.c): a history
			// naming its own timeline or a later one is never written by
			// PostgreSQL and would lock wrong content under the name.
			err = wal.CheckHistory(u.walName.TLI, entries)
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidWAL, u.Path(), err)
		}
	case wal.KindBackup:
		if _, err := wal.ParseBackup(u.readSmall()); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidWAL, u.Path(), err)
		}
	}
	return nil
}

// readSmall returns the content of a small text file being uploaded
// (.history, .backup): its blocks were just written or are known.
func (u *Upload) readSmall() []byte {
	if u.size > 1<<20 {
		return nil // far larger than any real history or backup file
	}
	r := &Reader{s: u.s, f: &index.File{Size: u.size, BlockSize: uint32(u.s.cfg.BlockSize), Blocks: u.blocks}, located: u.located}
	b := make([]byte, u.size)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil
	}
	return b
}

// Abort discards the upload. Blocks already appended stay as dead bytes in
// the pack until GC; nothing refers to them.
func (u *Upload) Abort() {
	if u.done {
		return
	}
	u.done = true
	if u.buf != nil {
		u.s.putBuf(u.buf)
		u.buf = nil
	}
	u.wg.Wait()
	u.forget()
}

// forget drops this upload's entries from the store's pending map: after a
// commit they are in the index; after an abort nobody should newly refer to
// them (a concurrent upload that already did keeps its location).
func (u *Upload) forget() {
	defer u.s.uploadEnded()
	u.s.pendingMu.Lock()
	defer u.s.pendingMu.Unlock()
	for h := range u.located {
		delete(u.s.pending, h)
	}
}
