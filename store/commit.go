package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
)

// An op is one index mutation carried out by the committer. apply must do
// every check before its first write and return a *refusal for a check that
// fails, so a refused op leaves the shared transaction untouched; any other
// error aborts the whole batch.
type op interface {
	apply(x *index.Txn, now time.Time) error
}

// refusal is a per-request outcome that does not abort the batch.
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(err error) error { return &refusal{err: err} }

type commitReq struct {
	op   op
	done chan error
}

const maxBatch = 64

// submit hands op to the committer and waits for the durable outcome.
func (s *Store) submit(o op) error {
	req := &commitReq{op: o, done: make(chan error, 1)}
	select {
	case s.commits <- req:
	case <-s.closing:
		return ErrClosed
	}
	return <-req.done
}

// runCommitter is the only goroutine that mutates the index. It drains every
// waiting request into one batch (group commit: one pack fsync and one index
// sync for all of them). On Close it finishes what was queued.
func (s *Store) runCommitter() {
	defer s.committer.Done()
	for {
		var first *commitReq
		select {
		case first = <-s.commits:
		case <-s.closing:
			for {
				select {
				case req := <-s.commits:
					s.commitBatch([]*commitReq{req})
				default:
					return
				}
			}
		}
		batch := []*commitReq{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case req := <-s.commits:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		s.commitBatch(batch)
	}
}

// commitBatch is the durability point. Order matters:
//  1. one index transaction with SyncWrites holds every op and the new
//     committed length of each pack (torn-tail repair truncates to it);
//  2. before it commits, commitJournal appends the journal records of what
//     the ops did to the active pack and fsyncs each pack written since the
//     last batch, so every block and journal record a committed record
//     needs is on stable storage before the index is;
//  3. answer the requests.
func (s *Store) commitBatch(batch []*commitReq) {
	defer s.kickUpload() // a pack may be sealed, or its length final (remote.go)
	dirty := s.pw.takeDirty()
	mayRelease := frees(batch)
	// A batch with a removal or a GC move may take the reserve file; one
	// of uploads and background work may not (ErrNoSpace; retried).
	if err := s.space.check(0, mayRelease); err != nil {
		s.pw.restoreDirty(dirty)
		s.answer(batch, func(int) error { return err })
		return
	}
	results := make([]error, len(batch))
	now := time.Now()
	jb := &journalBatch{time: now, mayRelease: mayRelease}
	// Its journal records go to this pack or a later one (snapshot.go:
	// ScanFrom); set before they are appended, cleared once committed.
	s.journalFrom.Store(uint64(s.pw.sealedBelow()) + 1)
	err := s.idx.Update(func(x *index.Txn) error {
		// Pack ends first: the ops check the blocks they name against them.
		if err := recordPackEnds(x, dirty); err != nil {
			return err
		}
		for i, req := range batch {
			results[i] = nil
			err := req.op.apply(x, now)
			var r *refusal
			if errors.As(err, &r) {
				results[i] = r.err
				continue
			}
			if err != nil {
				return err
			}
			jb.add(req.op)
		}
		return s.commitJournal(x, jb, dirty)
	})
	s.journalFrom.Store(0)
	var se *packSyncError
	if errors.As(err, &se) {
		err = spaceErr(fmt.Errorf("store: fsync pack %d: %w", se.pack, se.err))
		s.log.Error("commit failed", "err", err)
		s.pw.poison(se.pack)
		delete(dirty, se.pack)
		s.pw.restoreDirty(dirty)
		s.answer(batch, func(int) error { return err })
		return
	}
	if index.IsTooBig(err) && len(batch) > 1 {
		// Put the dirty set back (already fsynced; harmless) and split.
		s.pw.restoreDirty(dirty)
		s.commitBatch(batch[:len(batch)/2])
		s.commitBatch(batch[len(batch)/2:])
		return
	}
	if err != nil {
		err = fmt.Errorf("store: index commit: %w", err)
		s.log.Error("commit failed", "err", err)
		s.pw.restoreDirty(dirty)
		s.answer(batch, func(int) error { return err })
		return
	}
	if len(dirty) > 0 {
		// A pack sealed before this batch committed its length (its first
		// record, maybe) is waiting now: the uploader's idle shortcut must
		// look again (remote.go, uploader.idleSealed).
		below := s.pw.sealedBelow()
		for id := range dirty {
			if id < below {
				s.sealedCommits.Add(1)
				break
			}
		}
	}
	s.changes.Add(1)
	s.answer(batch, func(i int) error { return results[i] })
}

// freesSpace marks the ops that may take the reserve file on a full disk
// (spaceGuard.forIndex): removals and GC (its moves and the checkpoint
// that unpins packs for it), which exist to get out of it.
type freesSpace interface{ freesSpace() }

func (*removeOp) freesSpace()      {}
func (*removeFilesOp) freesSpace() {}
func (*rmdirOp) freesSpace()       {}
func (*gcMoveOp) freesSpace()      {}
func (*checkpointOp) freesSpace()  {} // it unpins packs for GC

// frees reports whether batch holds an op that frees space.
func frees(batch []*commitReq) bool {
	for _, req := range batch {
		if _, ok := req.op.(freesSpace); ok {
			return true
		}
	}
	return false
}

// syncPack fsyncs pack id.
func (s *Store) syncPack(id uint32) error {
	pf, err := s.packs.get(id)
	if err != nil {
		return err
	}
	defer s.packs.release(pf)
	return pf.f.Sync()
}

func (s *Store) answer(batch []*commitReq, result func(int) error) {
	for i, req := range batch {
		req.done <- result(i)
	}
}

func recordPackEnds(x *index.Txn, dirty map[uint32]int64) error {
	for id, end := range dirty {
		p, err := packRecord(x, id)
		if err != nil {
			return err
		}
		if end > p.Committed {
			p.Committed = end
			// Never happens by design (an uploaded pack is sealed and
			// not resumed); if it did, the object would lack the new bytes.
			p.Uploaded = false
		}
		if err := x.PutPack(p); err != nil {
			return err
		}
	}
	return nil
}

func packRecord(x *index.Txn, id uint32) (*index.Pack, error) {
	p, err := x.Pack(id)
	if errors.Is(err, index.ErrNotFound) {
		return &index.Pack{ID: id, Committed: packHeaderLen}, nil
	}
	return p, err
}

// commitFileOp commits one uploaded file.
type commitFileOp struct {
	file   *index.File
	header *wal.LongPageHeader // set for segments and .partial files
	// located holds where this upload wrote blocks it could not find in the
	// index; a block that another commit indexed meanwhile is referenced
	// instead and these bytes stay dead.
	located    map[index.Hash]index.Block
	existed    bool       // out: identical content was already committed
	dirChanged *index.Dir // out: the namespace record, if this commit created it or set its cluster
	copied     bool       // adopted from another front-end (journaled jeCopied)
}

func (o *commitFileOp) apply(x *index.Txn, now time.Time) error {
	f := o.file
	o.existed, o.dirChanged = false, nil
	old, err := x.File(f.Dir, f.Name)
	switch {
	case err == nil && index.SameContent(old, f):
		o.existed = true
		return nil
	case err == nil:
		return refuse(fmt.Errorf("%w: %s (archived %s, %d bytes; the new copy differs)",
			ErrExists, f.Path(), time.Unix(0, old.Archived).UTC().Format(time.RFC3339), old.Size))
	case !errors.Is(err, index.ErrNotFound):
		return err
	}
	if f.Dir == "" {
		if _, err := x.Dir(f.Name); err == nil {
			return refuse(fmt.Errorf("%w: %s is a directory", ErrIsDir, f.Name))
		}
	}
	dir, err := o.checkDir(x, now)
	if err != nil {
		return err
	}
	indexed, err := o.checkLocated(x)
	if err != nil {
		return err
	}
	// All checks passed: from here on only writes.
	live := map[uint32]index.Pack{} // bytes newly made live, per pack (Live and the codec counters)
	for _, h := range f.Blocks {
		if !h.IsZero() {
			if err := o.reference(x, h, indexed, live); err != nil {
				return err
			}
		}
	}
	for id, n := range live {
		p, err := packRecord(x, id)
		if err != nil {
			return err
		}
		p.Live, p.Unsettled, p.Cold = p.Live+n.Live, p.Unsettled+n.Unsettled, p.Cold+n.Cold
		if err := x.PutPack(p); err != nil {
			return err
		}
		dir.StoredBytes += n.Live
	}
	f.Archived = now.UnixNano()
	for _, b := range indexed {
		f.Stored += b.RecordLen()
	}
	if err := x.PutFile(f); err != nil {
		return err
	}
	if o.header != nil {
		dir.Segments++
	}
	dir.Files++
	dir.LogicalBytes += f.Size
	if err := x.PutDir(dir); err != nil {
		return err
	}
	st, err := x.Stats()
	if err != nil {
		return err
	}
	st.Files++
	st.LogicalBytes += f.Size
	return x.PutStats(st)
}

// checkDir loads (or creates) the namespace and checks a segment against
// its cluster identity; the first segment sets it.
func (o *commitFileOp) checkDir(x *index.Txn, now time.Time) (*index.Dir, error) {
	dir, err := x.Dir(o.file.Dir)
	if errors.Is(err, index.ErrNotFound) {
		dir, err = &index.Dir{Name: o.file.Dir, Created: now.UnixNano()}, nil
		o.dirChanged = dir
	}
	if err != nil {
		return nil, err
	}
	h := o.header
	if h == nil {
		return dir, nil
	}
	if err := checkCluster(dir, h, o.file.Path()); err != nil {
		return nil, refuse(err)
	}
	if dir.SysID == 0 {
		dir.SysID, dir.SegSize, dir.Magic, dir.Version = h.SysID, h.SegSize, h.Magic, wal.VersionString(h.Magic)
		o.dirChanged = dir
	}
	return dir, nil
}

func checkCluster(dir *index.Dir, h *wal.LongPageHeader, path string) error {
	if dir.SysID == 0 {
		return nil
	}
	if h.SysID != dir.SysID {
		return fmt.Errorf("%w: %s has system identifier %d, directory %q holds cluster %d (archive each cluster into its own directory)",
			ErrClusterMismatch, path, h.SysID, "/"+dir.Name, dir.SysID)
	}
	if h.SegSize != dir.SegSize {
		return fmt.Errorf("%w: %s has segment size %d, directory %q holds %d-byte segments",
			ErrInvalidWAL, path, h.SegSize, "/"+dir.Name, dir.SegSize)
	}
	return nil
}

// checkLocated refuses the commit when a block this upload wrote (and the
// index does not know yet) lies in a pack GC has retired meanwhile: its bytes
// may already be gone. GC skips packs with pending blocks, so this only
// catches the narrow races around that check; the writer retries. It also
// refuses a block past its pack's committed length, which the batch has
// already raised to every end it fsynced: only a pack whose fsync failed
// (packWriter.poison) has written bytes past it, and those may be lost. It
// returns the block records already indexed, so reference need not read
// them again.
func (o *commitFileOp) checkLocated(x *index.Txn) (map[index.Hash]*index.Block, error) {
	indexed := map[index.Hash]*index.Block{}
	packs := map[uint32]*index.Pack{}
	for _, h := range o.file.Blocks {
		if h.IsZero() {
			continue
		}
		if _, seen := indexed[h]; seen {
			continue
		}
		b, err := x.Block(h)
		if err == nil {
			indexed[h] = b
			continue
		}
		if !errors.Is(err, index.ErrNotFound) {
			return nil, err
		}
		indexed[h] = nil
		loc, ok := o.located[h]
		if !ok {
			return nil, fmt.Errorf("store: block %s of %s is neither indexed nor written", h, o.file.Path())
		}
		p := packs[loc.Pack]
		if p == nil {
			if p, err = packRecord(x, loc.Pack); err != nil {
				return nil, err
			}
			packs[loc.Pack] = p
		}
		if err := checkDurable(p, &loc, o.file.Path()); err != nil {
			return nil, refuse(err)
		}
	}
	return indexed, nil
}

// checkDurable says why a block written at loc into pack p must not be
// committed, if it must not.
func checkDurable(p *index.Pack, loc *index.Block, path string) error {
	switch {
	case p.Retired:
		return fmt.Errorf("%w: %s: pack %d was garbage-collected during the upload", ErrRetry, path, loc.Pack)
	case loc.Offset+loc.RecordLen() > p.Committed:
		return fmt.Errorf("%w: %s: pack %d failed to fsync after this upload wrote to it", ErrRetry, path, loc.Pack)
	}
	return nil
}

// reference adds one reference to block h. indexed holds the block records
// read by checkLocated (nil: not indexed yet) and is updated, so a block
// that occurs twice in the file is created once and then counted; bytes a
// new block makes live are added to live for its pack.
func (o *commitFileOp) reference(x *index.Txn, h index.Hash, indexed map[index.Hash]*index.Block, live map[uint32]index.Pack) error {
	if b := indexed[h]; b != nil {
		b.Refs++
		return x.PutBlock(h, b)
	}
	loc := o.located[h] // present: checkLocated made sure
	loc.Refs = 1
	indexed[h] = &loc
	d := live[loc.Pack]
	d.AddLive(&loc, 1)
	live[loc.Pack] = d
	return x.PutBlock(h, &loc)
}

// removeOp deletes a file record and releases its blocks.
type removeOp struct {
	dir, name string
	copied    bool // followed from another front-end (journaled jeCopied)
}

func (o *removeOp) apply(x *index.Txn, _ time.Time) error {
	found, err := removeFile(x, o.dir, o.name)
	if err != nil {
		return err
	}
	if !found {
		return refuse(fmt.Errorf("%w: %s", ErrNotFound, joinPath(o.dir, o.name)))
	}
	return nil
}

// removeFilesOp deletes many files of one directory in one transaction
// (retention). Names that are already gone are skipped and not reported.
type removeFilesOp struct {
	dir     string
	names   []string
	removed []string // out
}

func (o *removeFilesOp) apply(x *index.Txn, _ time.Time) error {
	o.removed = o.removed[:0]
	for _, name := range o.names {
		found, err := removeFile(x, o.dir, name)
		if err != nil {
			return err
		}
		if found {
			o.removed = append(o.removed, name)
		}
	}
	return nil
}

// removeFile deletes one file record, releases its blocks and updates the
// totals. It reports false when the file does not exist.
func removeFile(x *index.Txn, dirName, name string) (bool, error) {
	f, err := x.File(dirName, name)
	if errors.Is(err, index.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var freed int64
	for _, h := range f.Blocks {
		if h.IsZero() {
			continue
		}
		n, err := release(x, h)
		if err != nil {
			return false, err
		}
		freed += n
	}
	if err := x.DeleteFile(dirName, name); err != nil {
		return false, err
	}
	if d, err := x.Dir(dirName); err == nil {
		if k := wal.ParseName(name).Kind; k == wal.KindSegment || k == wal.KindPartial {
			d.Segments--
		}
		d.Files--
		d.LogicalBytes -= f.Size
		d.StoredBytes -= freed
		if err := x.PutDir(d); err != nil {
			return false, err
		}
	}
	st, err := x.Stats()
	if err != nil {
		return false, err
	}
	st.Files--
	st.LogicalBytes -= f.Size
	return true, x.PutStats(st)
}

// release drops one reference to block h; the last one removes the block
// record and subtracts its bytes from the pack's live count. It returns the
// pack bytes that became dead.
func release(x *index.Txn, h index.Hash) (int64, error) {
	b, err := x.Block(h)
	if errors.Is(err, index.ErrNotFound) {
		return 0, nil // already gone: nothing to release
	}
	if err != nil {
		return 0, err
	}
	if b.Refs > 1 {
		b.Refs--
		return 0, x.PutBlock(h, b)
	}
	if err := x.DeleteBlock(h); err != nil {
		return 0, err
	}
	p, err := packRecord(x, b.Pack)
	if err != nil {
		return 0, err
	}
	p.AddLive(b, -1)
	return b.RecordLen(), x.PutPack(p)
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

type mkdirOp struct {
	dir     string
	created *index.Dir // out
}

func (o *mkdirOp) apply(x *index.Txn, now time.Time) error {
	o.created = nil
	_, err := x.Dir(o.dir)
	if err == nil {
		return nil
	}
	if !errors.Is(err, index.ErrNotFound) {
		return err
	}
	if _, err := x.File("", o.dir); err == nil {
		return refuse(fmt.Errorf("%w: a file named %s exists in the root", ErrExists, o.dir))
	}
	o.created = &index.Dir{Name: o.dir, Created: now.UnixNano()}
	return x.PutDir(o.created)
}

type rmdirOp struct{ dir string }

func (o *rmdirOp) apply(x *index.Txn, _ time.Time) error {
	if _, err := x.Dir(o.dir); errors.Is(err, index.ErrNotFound) {
		return refuse(fmt.Errorf("%w: directory %s", ErrNotFound, o.dir))
	} else if err != nil {
		return err
	}
	empty := true
	err := x.FileNames(o.dir, func(string) error { empty = false; return errStop })
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	if !empty {
		return refuse(fmt.Errorf("%w: %s", ErrNotEmpty, o.dir))
	}
	return x.DeleteDir(o.dir)
}

var errStop = errors.New("stop")
