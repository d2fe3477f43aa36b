package rsyncgw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/walrus-archive/walrus/store"
)

// target is a received entry the generator asks for, and where it goes.
type target struct {
	ndx    int32
	entry  *fileEntry
	rel    string // the destination below the module, as messages name it
	path   string // store path
	iflags uint16 // what the request says (ITEM_* flags)
}

// runReceiver serves a push: the file list, then a generator goroutine
// that requests every regular file whole (an all-zero sum header) while
// this goroutine receives the data and commits each file to the store
// before the next (rsync: main.c do_server_recv, do_recv; generator.c
// generate_files; receiver.c recv_files).
func (s *session) runReceiver(ctx context.Context) error {
	if s.readOnly {
		s.srv.opts.Observer.ConnRefused("read_only")
		return s.abort("ERROR: module is read only", exitSyntax)
	}
	if s.args.prune {
		if err := s.readFilterList(); err != nil {
			return err
		}
	}
	s.dlog.printf("receiving file list")
	entries, err := s.receiveFileList()
	if err != nil {
		return err
	}
	for _, e := range entries {
		s.totalSize += e.size
	}
	s.tokr = newTokenReader(s.comp, s.in)
	targets := s.decide(s.placeEntries(entries))
	gen := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				s.nc.Close()
				gen <- fmt.Errorf("rsyncgw: generator panicked: %v", r)
			}
		}()
		gen <- s.generate(targets)
	}()
	err = s.receiveFiles(entries, targets)
	if err != nil {
		s.nc.Close() // unblocks the generator if it is stuck writing
	}
	if gerr := <-gen; err == nil && gerr != nil {
		err = gerr
	}
	if err != nil {
		return err
	}
	return s.receiverGoodbye()
}

// receiveFileList reads the client's list and sorts it like the client
// does, so indexes agree (rsync: flist.c recv_file_list).
func (s *session) receiveFileList() ([]*fileEntry, error) {
	c := s.flistCodec()
	var list []*fileEntry
	for {
		e, ioErr, err := c.readEntry(s.in)
		if err != nil {
			return nil, err
		}
		if e == nil {
			if ioErr != 0 {
				s.log.Info("rsync client reported errors building its file list", "io_error", ioErr)
			}
			break
		}
		if len(list) >= maxFlistFiles {
			return nil, fmt.Errorf("%w: more than %d files in one list", ErrTooLong, maxFlistFiles)
		}
		list = append(list, e)
	}
	if c.varint {
		// The varint end marker carries the io_error; readEntry read
		// the 0 flags only.
		if _, err := readVarint(s.in); err != nil {
			return nil, err
		}
	}
	if err := s.readIDLists(c); err != nil {
		return nil, err
	}
	return sortEntries(list), nil
}

func (s *session) readIDLists(c *flistCodec) error {
	if c.numeric {
		return nil
	}
	if c.owner {
		if err := readIDList(s.in); err != nil {
			return err
		}
	}
	if c.group {
		return readIDList(s.in)
	}
	return nil
}

// placeEntries decides where each regular file goes (rsync: main.c
// get_local_name): one file pushed to module/NAME that is not a directory
// becomes NAME; otherwise the destination is a directory and entries keep
// their names below it. Entries the store cannot hold are reported.
func (s *session) placeEntries(entries []*fileEntry) []target {
	dest := ""
	if len(s.args.paths) > 0 {
		dest = s.moduleRel(s.args.paths[0])
	}
	files := 0
	for _, e := range entries {
		if e.name != "." {
			files++
		}
	}
	single, base := s.destination(dest, files, entries)
	var out []target
	for i, e := range entries {
		if !e.isRegular() {
			if !e.isDir() {
				s.errorXfer(fmt.Sprintf(`rsync: [receiver] skipping "%s" (in %s): only regular files can be archived`, e.name, s.mod.Name))
			}
			continue
		}
		rel := single
		if rel == "" {
			rel = path.Join(base, e.name)
		}
		p := s.storePath(rel)
		if _, _, err := store.SplitPath(p); err != nil || strings.Count(p, "/") > 1 {
			s.errorXfer(fmt.Sprintf(`rsync: [receiver] cannot store "%s" (in %s): the archive holds NAME or NAMESPACE/NAME only`, rel, s.mod.Name))
			continue
		}
		out = append(out, target{ndx: int32(i), entry: e, rel: rel, path: p})
	}
	return out
}

// destination returns the single file name (below the module) when the
// push names a file, else "" and the directory the entries go into.
func (s *session) destination(dest string, files int, entries []*fileEntry) (single, base string) {
	isDirArg := dest == "" || strings.HasSuffix(dest, "/")
	dest = strings.TrimSuffix(dest, "/")
	if !isDirArg {
		if d, ok, _ := s.dirOf(dest); ok && d != "" {
			isDirArg = true
		}
	}
	if !isDirArg && files == 1 && entries[len(entries)-1].isRegular() {
		return dest, ""
	}
	return "", dest
}

// generate asks for every target whole, then ends phase 0 (rsync:
// generator.c recv_generator, write_sum_head with count 0). A dry run
// sends the index and flags only, as rsync's itemize does when it
// transfers nothing.
func (s *session) generate(targets []target) error {
	var b []byte
	for _, t := range targets {
		b = s.writeNdx(b, t.ndx)
		b = appendUint16(b, t.iflags)
		if !s.args.dryRun {
			b = append(b, make([]byte, 16)...) // count, blength, s2length, remainder
		}
		if len(b) >= dataFrameLen {
			if _, err := s.out.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	b = s.writeNdx(b, ndxDone)
	if _, err := s.out.Write(b); err != nil {
		return err
	}
	return s.out.Flush()
}

// receiveFiles reads the sender's data until it ends phase 0.
func (s *session) receiveFiles(entries []*fileEntry, targets []target) error {
	want := make(map[int32]*target, len(targets))
	for i := range targets {
		want[targets[i].ndx] = &targets[i]
	}
	for {
		ndx, err := s.readNdx()
		if err != nil {
			return err
		}
		if ndx == ndxDone {
			return nil
		}
		t, ok := want[ndx]
		if !ok {
			return fmt.Errorf("%w: data for file index %d that was not requested", ErrProtocol, ndx)
		}
		req, err := s.readAttrs(ndx)
		if err != nil {
			return err
		}
		if req.iflags&itemTransfer == 0 || s.args.dryRun {
			continue
		}
		if err := s.readSumHead(&req.head); err != nil {
			return err
		}
		if err := s.receiveFile(t); err != nil {
			return err
		}
	}
}

// readAttrs reads the iflags, basis type and xname after an index.
func (s *session) readAttrs(ndx int32) (*request, error) {
	req := &request{ndx: ndx}
	var err error
	if req.iflags, err = readUint16(s.in); err != nil {
		return nil, err
	}
	if req.iflags&itemBasisTypeFollows != 0 {
		if req.basis, err = s.in.ReadByte(); err != nil {
			return nil, eofIsUnexpected(err)
		}
	}
	if req.iflags&itemXnameFollows != 0 {
		req.xname, err = readVstring(s.in, maxNameLen)
	}
	return req, err
}

// receiveFile streams one file into the store and commits it. A file the
// store refuses is reported to the client (exit 23) and the session goes
// on; only protocol and I/O errors end it (rsync: receiver.c
// receive_data).
func (s *session) receiveFile(t *target) error {
	e := t.entry
	meta := store.FileMeta{Mode: fs.FileMode(e.mode & 0o7777), MTime: time.Unix(e.mtime, int64(e.nsec)), Origin: store.Origin{Interface: "rsync", Peer: s.peer.addr.String()}}
	u, storeErr := s.srv.st.Create(t.path, meta)
	w := &uploadWriter{u: u, err: storeErr}
	read, written := s.in.count(), s.out.count()
	sum := newFileSum(s.csum)
	if err := s.readData(w, sum); err != nil {
		if u != nil {
			u.Abort()
		}
		return err
	}
	got := make([]byte, sum.Len())
	if err := readFull(s.in, got); err != nil {
		if u != nil {
			u.Abort()
		}
		return err
	}
	if w.err == nil && !bytes.Equal(got, sum.Sum()) {
		w.err = fmt.Errorf("%s checksum of the received data does not match the sender's", s.csum)
	}
	if w.err != nil {
		if u != nil {
			u.Abort()
		}
		s.reportStoreError(t, w.err)
		return nil
	}
	if _, err := u.Commit(); err != nil {
		s.reportStoreError(t, err)
		return nil
	}
	s.log.Info("rsync push stored", "path", t.path, "size", w.n)
	s.logTransfer(xferItem{op: "recv", name: e.name, path: t.rel, entry: e, iflags: t.iflags,
		bytes: s.in.count() - read, otherWay: s.out.count() - written, sum: got})
	return nil
}

// uploadWriter feeds the upload until it fails, then only counts: the rest
// of the file must still be read from the stream.
type uploadWriter struct {
	u     *store.Upload
	err   error
	n     int64
	inBuf bool // the last buffer call handed out the upload's own buffer
}

// buffer is where the next literal bytes (at most max) are read: the
// upload's block buffer (store.Upload.Buffer), or nil (the token reader's
// own) once the upload failed.
func (w *uploadWriter) buffer(max int) []byte {
	w.inBuf = false
	if w.err != nil {
		return nil
	}
	b, err := w.u.Buffer(max)
	if err != nil {
		w.err = err
		return nil
	}
	w.inBuf = len(b) > 0
	return b
}

// write takes p, the bytes read: in place if buffer handed them out.
func (w *uploadWriter) write(p []byte) {
	w.n += int64(len(p))
	inBuf := w.inBuf
	w.inBuf = false
	if w.err != nil {
		return
	}
	if inBuf {
		w.err = w.u.Advance(len(p))
		return
	}
	_, w.err = w.u.Write(p)
}

// readData reads one file's tokens until its end (rsync: receiver.c
// receive_data). The generator offered no blocks, so a block reference is
// a protocol error. Uncompressed literals are read straight into the
// upload's block buffer (one copy fewer per byte); they are summed before
// the upload takes them, since a full block goes to a worker at once.
func (s *session) readData(w *uploadWriter, sum *fileSum) error {
	direct, _ := s.tokr.(*simpleTokenReader)
	for {
		var n int32
		var data []byte
		var err error
		if direct != nil && w.err == nil {
			n, data, err = direct.nextInto(w.buffer)
		} else {
			n, data, err = s.tokr.next()
		}
		switch {
		case err != nil:
			return err
		case n == 0:
			return nil
		case n < 0:
			return fmt.Errorf("%w: block reference %d but no blocks were offered", ErrProtocol, -(n + 1))
		}
		sum.Write(data)
		w.write(data)
	}
}

// reportStoreError tells the client why a file was not archived.
func (s *session) reportStoreError(t *target, err error) {
	var why string
	switch {
	case errors.Is(err, store.ErrExists):
		why = "it exists in the archive with different content and archived files are never overwritten"
	case errors.Is(err, store.ErrInvalidWAL):
		why = "not a valid WAL file"
	case errors.Is(err, store.ErrClusterMismatch):
		why = "the segment belongs to another cluster"
	case errors.Is(err, store.ErrTooLarge):
		why = "file too large"
	case errors.Is(err, store.ErrInvalidName):
		why = "invalid name"
	case errors.Is(err, store.ErrNoSpace):
		why = "the archive server is out of disk space; pushes succeed again by themselves once space is freed there (walrus retain, walrus gc, or a larger filesystem)"
	case errors.Is(err, store.ErrRetry):
		why = "a concurrent change to the same file; run the push again"
	case errors.Is(err, store.ErrBucket):
		why = "not in the bucket yet (remote-ack)"
	case errors.Is(err, store.ErrClaims):
		why = "the name could not be claimed (the claims bucket is unreachable); nothing was committed"
	case errors.Is(err, store.ErrClosed):
		why = "the archive server is shutting down; run the push again once it is back"
	default:
		why = "store error"
	}
	s.errorXfer(fmt.Sprintf(`rsync: [receiver] refused "%s" (in %s): %s (%v)`, t.rel, s.mod.Name, why, err))
}

// receiverGoodbye runs the end phases of a push. After the sender ended
// phase 0 we end phases 1 and 2 (and, protocol 31, the extra done of the
// delete-stats step), read the sender's two dones, then send the final
// goodbye; protocol 31 senders echo it (rsync: generator.c generate_files,
// main.c do_recv, read_final_goodbye).
func (s *session) receiverGoodbye() error {
	dones := 2
	if s.protocol >= 31 {
		dones = 3
	}
	var b []byte
	for range dones {
		b = s.writeNdx(b, ndxDone)
	}
	if _, err := s.out.Write(b); err != nil {
		return err
	}
	if err := s.out.Flush(); err != nil {
		return err
	}
	for _, what := range []string{"phase 1", "phase 2"} {
		if err := s.expectDone(what); err != nil {
			return err
		}
	}
	if err := s.writeDone(); err != nil {
		return err
	}
	if s.protocol >= 31 {
		if err := s.expectDone("goodbye echo"); err != nil {
			return err
		}
	}
	s.finish()
	return nil
}
