package rsyncgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/walrus-archive/walrus/store"
)

// Item flags of a transfer request (rsync: rsync.h ITEM_*).
const (
	itemReportTime       = 1 << 3
	itemReportPerms      = 1 << 4
	itemBasisTypeFollows = 1 << 11
	itemXnameFollows     = 1 << 12
	itemIsNew            = 1 << 13
	itemTransfer         = 1 << 15
)

const (
	maxLiteral   = 32 << 10 // larger literal tokens break rsync 3.4 clients
	maxSumCount  = 1 << 24  // block sums a request may carry
	maxPhase     = 2        // protocol >= 29 (rsync: sender.c max_phase)
	ioErrGeneral = 1        // rsync: IOERR_GENERAL
)

// runSender serves a pull or a listing (rsync: main.c do_server_sender,
// sender.c send_files).
func (s *session) runSender(ctx context.Context) error {
	if s.writeOnly {
		s.srv.opts.Observer.ConnRefused("write_only")
		return s.abort("ERROR: module is write only", exitSyntax)
	}
	if err := s.readFilterList(); err != nil {
		return err
	}
	start := time.Now()
	s.dlog.printf("building file list")
	entries, ioErr := s.buildFileList(ctx)
	for _, e := range entries {
		s.totalSize += e.size
	}
	s.flistBuilt = time.Since(start)
	if err := s.sendFileList(entries, ioErr); err != nil {
		return err
	}
	if len(entries) == 0 {
		// rsync: main.c do_server_sender exits when the list is empty; the
		// client has the error message and exits 23.
		s.finish()
		return errSessionDone
	}
	s.tokw = newTokenWriter(s.comp, s.out, newCompressFilter(s.mod.DontCompress, s.args.skipCompress))
	if err := s.sendFiles(entries); err != nil {
		return err
	}
	return s.senderGoodbye(entries)
}

// readFilterList reads and ignores the client's filter rules: (int32 len,
// rule)* 0 (rsync: exclude.c recv_filter_list). Exclusions only narrow
// what the client asked for by name; the gateway sends what was named.
func (s *session) readFilterList() error {
	for i := 0; ; i++ {
		n, err := readInt32(s.in)
		if err != nil || n == 0 {
			return err
		}
		if n < 0 || n > maxFilterRule || i >= maxFilterRules {
			return fmt.Errorf("%w: filter rule of %d bytes", ErrTooLong, n)
		}
		if _, err := io.CopyN(io.Discard, s.in, int64(n)); err != nil {
			return eofIsUnexpected(err)
		}
	}
}

// buildFileList resolves the requested paths in the module. Missing paths
// are reported like rsync's link_stat failure and set io_error.
func (s *session) buildFileList(ctx context.Context) ([]*fileEntry, int32) {
	var list []*fileEntry
	var ioErr int32
	for _, arg := range s.requestPaths() {
		found, err := s.resolvePull(ctx, arg)
		if (err == nil || errors.Is(err, store.ErrNotFound)) && len(found) == 0 && s.args.ignoreMissing {
			continue // rsync: --ignore-missing-args (flist.c send_file_list)
		}
		if errors.Is(err, store.ErrElsewhere) || errors.Is(err, store.ErrClaims) {
			// Not "no such file": another front-end holds it (peers), or
			// its claim could not be read; a retry finds it.
			s.errorXfer(fmt.Sprintf(`rsync: [sender] link_stat "%s" (in %s) failed: not readable here yet, retry: %s (5)`, strings.TrimSuffix(arg, "/"), s.mod.Name, err))
			s.log.Warn("rsync pull of a file held elsewhere", "path", arg, "err", err)
			ioErr |= ioErrGeneral
			continue
		}
		if err != nil || len(found) == 0 {
			s.errorXfer(fmt.Sprintf(`rsync: [sender] link_stat "%s" (in %s) failed: No such file or directory (2)`, strings.TrimSuffix(arg, "/"), s.mod.Name))
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				s.log.Warn("rsync pull lookup failed", "path", arg, "err", err)
			}
			ioErr |= ioErrGeneral
			continue
		}
		list = append(list, found...)
	}
	return sortEntries(list), ioErr
}

// requestPaths strips the module name from each argument and cleans the
// rest, confined to the module (rsync: util.c sanitize_path). Old clients
// pack several paths into one argument separated by " module/".
func (s *session) requestPaths() []string {
	var out []string
	for _, arg := range s.args.paths {
		for _, p := range strings.Split(arg, " "+s.mod.Name+"/") {
			out = append(out, s.moduleRel(p))
		}
	}
	if len(out) == 0 {
		out = append(out, "")
	}
	return out
}

// moduleRel returns the path below the module, "" for the module itself;
// a trailing slash is kept since it means "the contents of".
func (s *session) moduleRel(p string) string {
	if rest, ok := strings.CutPrefix(p, s.mod.Name); ok && (rest == "" || rest[0] == '/') {
		p = rest
	}
	slash := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || p == "."
	clean := strings.TrimPrefix(path.Clean("/"+p), "/")
	if clean != "" && slash {
		clean += "/"
	}
	return clean
}

// resolvePull turns one request into entries: a file, a directory (its
// contents with a trailing slash, recursively with -r), or a wildcard.
func (s *session) resolvePull(ctx context.Context, rel string) ([]*fileEntry, error) {
	contents := rel == "" || strings.HasSuffix(rel, "/")
	rel = strings.TrimSuffix(rel, "/")
	if strings.ContainsAny(rel, "*?[") {
		return s.globPull(ctx, rel)
	}
	dir, isDir, err := s.dirOf(rel)
	if err != nil {
		return nil, err
	}
	if isDir {
		return s.dirPull(ctx, dir, rel, contents)
	}
	fi, err := s.srv.st.Stat(s.storePath(rel))
	if err != nil {
		return nil, err
	}
	return []*fileEntry{s.fileEntry(path.Base(rel), fi)}, nil
}

// storePath maps a path below the module to a store path.
func (s *session) storePath(rel string) string {
	if s.mod.ns == "" {
		return rel
	}
	return s.mod.ns + "/" + rel
}

// dirOf reports whether rel (below the module) is a store namespace, and
// which.
func (s *session) dirOf(rel string) (string, bool, error) {
	switch {
	case rel == "":
		return s.mod.ns, true, nil
	case s.mod.ns != "" || strings.Contains(rel, "/"):
		return "", false, nil
	}
	ok, err := s.srv.st.IsDir(rel)
	return rel, ok, err
}

func (s *session) dirPull(ctx context.Context, dir, rel string, contents bool) ([]*fileEntry, error) {
	prefix := ""
	var out []*fileEntry
	if contents {
		out = append(out, s.dirEntry("."))
	} else {
		prefix = path.Base(rel) + "/"
		out = append(out, s.dirEntry(path.Base(rel)))
		if !s.args.recursive {
			return out, nil
		}
	}
	files, err := s.srv.st.List(dir)
	if err != nil {
		return nil, err
	}
	for _, fi := range files {
		out = append(out, s.fileEntry(prefix+fi.Name, fi))
	}
	if dir != "" || (!s.args.recursive && !s.args.dirs && !contents) {
		return out, nil
	}
	subs, err := s.namespaces(ctx)
	if err != nil {
		return nil, err
	}
	for _, ns := range subs {
		out = append(out, s.dirEntry(ns))
		if s.args.recursive {
			more, err := s.dirPull(ctx, ns, ns, false)
			if err != nil {
				return nil, err
			}
			out = append(out, more[1:]...)
		}
	}
	return out, nil
}

// namespaces lists the store's directories below the root (an index
// scan of directory records, not of files).
func (s *session) namespaces(context.Context) ([]string, error) {
	return s.srv.st.Namespaces()
}

// globPull expands a wildcard in the last path element, as the daemon
// does for its arguments (rsync: util.c glob_expand).
func (s *session) globPull(ctx context.Context, rel string) ([]*fileEntry, error) {
	parent, pattern := path.Split(rel)
	parent = strings.TrimSuffix(parent, "/")
	if strings.ContainsAny(parent, "*?[") {
		return nil, store.ErrNotFound
	}
	dir, isDir, err := s.dirOf(parent)
	if err != nil || !isDir {
		return nil, err
	}
	files, err := s.srv.st.List(dir)
	if err != nil {
		return nil, err
	}
	var out []*fileEntry
	for _, fi := range files {
		if ok, _ := path.Match(pattern, fi.Name); ok {
			out = append(out, s.fileEntry(fi.Name, fi))
		}
	}
	return out, nil
}

func (s *session) fileEntry(name string, fi store.FileInfo) *fileEntry {
	perm := uint32(fi.Mode.Perm())
	if perm == 0 {
		perm = 0o600
	}
	return &fileEntry{
		name: name, size: fi.Size, mode: sIFREG | perm,
		mtime: fi.MTime.Unix(), nsec: int32(fi.MTime.Nanosecond()),
		uid: s.mod.uid, gid: s.mod.gid, storeKey: fi.Path,
	}
}

func (s *session) dirEntry(name string) *fileEntry {
	return &fileEntry{name: name, mode: sIFDIR | 0o755, mtime: time.Now().Unix(), uid: s.mod.uid, gid: s.mod.gid}
}

func (s *session) flistCodec() *flistCodec {
	c := &flistCodec{
		protocol: s.protocol, varint: s.compat&cfVarintFlistFlags != 0,
		owner: s.args.owner, group: s.args.group, links: s.args.links,
		devices: s.args.devices, numeric: s.args.numericIDs,
	}
	if s.args.checksum {
		c.csumLen = checksumLen(s.preCsum)
	}
	return c
}

// sendFileList writes the entries, the end marker and the id lists
// (rsync: flist.c send_file_list; uidlist.c send_id_lists).
func (s *session) sendFileList(entries []*fileEntry, ioErr int32) error {
	c := s.flistCodec()
	var b []byte
	for i, e := range entries {
		if c.csumLen > 0 && e.isRegular() {
			sum, err := s.wholeSum(e)
			if err != nil {
				return err
			}
			e.sum = sum
		}
		b = c.appendEntry(b, e, i == 0 && e.name == ".")
		if len(b) > dataFrameLen {
			if _, err := s.out.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	b = c.appendEnd(b, ioErr)
	if !c.numeric {
		if c.owner {
			b = appendIDList(b, map[int32]string{s.mod.uid: s.mod.uname})
		}
		if c.group {
			b = appendIDList(b, map[int32]string{s.mod.gid: s.mod.gname})
		}
	}
	if _, err := s.out.Write(b); err != nil {
		return err
	}
	return s.out.Flush()
}

// wholeSum computes the -c checksum of a file by reading it.
func (s *session) wholeSum(e *fileEntry) ([]byte, error) {
	r, err := s.srv.st.OpenFrom(e.storeKey, store.Origin{Interface: "rsync", Peer: s.peer.addr.String()})
	if err != nil {
		return make([]byte, checksumLen(s.preCsum)), nil
	}
	defer r.Close()
	sum := newFileSum(s.preCsum)
	if _, err := r.WriteTo(sumWriter{sum}); err != nil {
		return nil, err
	}
	return sum.Sum(), nil
}

type sumWriter struct{ s *fileSum }

func (w sumWriter) Write(p []byte) (int, error) { w.s.Write(p); return len(p), nil }

// request is what the client's generator asks for one file.
type request struct {
	ndx    int32
	iflags uint16
	basis  byte
	xname  string
	head   [4]int32 // count, blength, s2length, remainder
}

// sendFiles answers requests until the client's third NDX_DONE
// (rsync: sender.c send_files).
func (s *session) sendFiles(entries []*fileEntry) error {
	phase := 0
	for {
		ndx, err := s.readNdx()
		if err != nil {
			return err
		}
		if ndx == ndxDone {
			phase++
			if phase > maxPhase {
				break
			}
			if err := s.writeDone(); err != nil {
				return err
			}
			continue
		}
		if ndx == ndxDelStats {
			if err := s.echoDelStats(); err != nil {
				return err
			}
			continue
		}
		if ndx < 0 || int(ndx) >= len(entries) {
			return fmt.Errorf("%w: file index %d out of range", ErrProtocol, ndx)
		}
		req, err := s.readRequest(ndx)
		if err != nil {
			return err
		}
		if err := s.answer(req, entries[ndx]); err != nil {
			return err
		}
	}
	return s.writeDone()
}

// echoDelStats answers the deletion statistics a pulling client that
// deletes (--delete) sends after its transfers: a server sender reads
// them and writes them back (rsync: rsync.c read_ndx_and_attrs,
// main.c read_del_stats, write_del_stats).
func (s *session) echoDelStats() error {
	b := s.writeNdx(nil, ndxDelStats)
	for range 5 { // files, dirs, symlinks, devices, specials
		v, err := readVarint(s.in)
		if err != nil {
			return err
		}
		if v < 0 {
			return fmt.Errorf("%w: negative deletion count", ErrProtocol)
		}
		b = appendVarint(b, v)
	}
	_, err := s.out.Write(b)
	return err
}

func (s *session) writeDone() error {
	if _, err := s.out.Write(s.writeNdx(nil, ndxDone)); err != nil {
		return err
	}
	return s.out.Flush()
}

// readRequest reads the attributes after an index (rsync: rsync.c
// read_ndx_and_attrs) and, for a transfer, the block-sum header and sums,
// which are skipped: the sender sends every byte as a literal. In a dry
// run the client's generator sends no sums (generator.c recv_generator
// stops before write_sum_head).
func (s *session) readRequest(ndx int32) (*request, error) {
	req, err := s.readAttrs(ndx)
	if err != nil {
		return nil, err
	}
	if req.iflags&itemTransfer == 0 || s.args.dryRun {
		return req, nil
	}
	if err := s.readSumHead(&req.head); err != nil {
		return nil, err
	}
	n := int64(req.head[0]) * int64(4+req.head[2])
	if _, err := io.CopyN(io.Discard, s.in, n); err != nil {
		return nil, eofIsUnexpected(err)
	}
	return req, nil
}

// readSumHead reads count, block length, sum2 length and remainder
// (rsync: io.c read_sum_head) and bounds them.
func (s *session) readSumHead(h *[4]int32) error {
	for i := range h {
		v, err := readInt32(s.in)
		if err != nil {
			return err
		}
		h[i] = v
	}
	if h[0] < 0 || h[0] > maxSumCount || h[1] < 0 || h[2] < 0 || h[2] > maxDigestLen || h[3] < 0 {
		return fmt.Errorf("%w: bad sum header %v", ErrProtocol, *h)
	}
	return nil
}

func (s *session) appendAttrs(b []byte, req *request) []byte {
	b = s.writeNdx(b, req.ndx)
	b = appendUint16(b, req.iflags)
	if req.iflags&itemBasisTypeFollows != 0 {
		b = append(b, req.basis)
	}
	if req.iflags&itemXnameFollows != 0 {
		b = appendVstring(b, req.xname)
	}
	return b
}

// answer sends one file: attributes and sum header echoed, the data as
// literal tokens, token 0, the whole-file checksum.
func (s *session) answer(req *request, e *fileEntry) error {
	if req.iflags&itemTransfer == 0 || s.args.dryRun {
		_, err := s.out.Write(s.appendAttrs(nil, req))
		return err
	}
	if !e.isRegular() {
		return fmt.Errorf("%w: transfer requested for non-file %q", ErrProtocol, e.name)
	}
	r, err := s.srv.st.OpenFrom(e.storeKey, store.Origin{Interface: "rsync", Peer: s.peer.addr.String()})
	if err != nil {
		s.out.Msg(msgNoSend, appendInt32(nil, req.ndx))
		s.errorXfer(fmt.Sprintf(`rsync: [sender] send_files failed to open "%s" (in %s): %v`, e.name, s.mod.Name, err))
		return nil
	}
	defer r.Close()
	b := s.appendAttrs(nil, req)
	for _, v := range req.head {
		b = appendInt32(b, v)
	}
	written, read := s.out.count(), s.in.count()
	if _, err := s.out.Write(b); err != nil {
		return err
	}
	sum, err := s.sendData(r, e)
	if err != nil {
		return err
	}
	s.logTransfer(xferItem{op: "send", name: e.name, path: s.moduleRelOf(e.storeKey), entry: e, iflags: req.iflags,
		bytes: s.out.count() - written, otherWay: s.in.count() - read, sum: sum})
	return s.out.Flush()
}

// moduleRelOf is a store path as a path below the module.
func (s *session) moduleRelOf(storePath string) string {
	if s.mod.ns == "" {
		return storePath
	}
	return strings.TrimPrefix(storePath, s.mod.ns+"/")
}

// sendData streams the file from the store as literal tokens, then
// the whole-file checksum (rsync: match.c match_sums with no matches).
func (s *session) sendData(r *store.Reader, e *fileEntry) ([]byte, error) {
	sum := newFileSum(s.csum)
	if s.sendBuf == nil {
		s.sendBuf = make([]byte, chunkSize)
	}
	buf := s.sendBuf
	s.tokw.begin(e.name)
	var off int64
	for off < r.Size() {
		n, err := r.ReadAt(buf, off)
		if n > 0 {
			sum.Write(buf[:n])
			if werr := s.tokw.literal(buf[:n]); werr != nil {
				return nil, werr
			}
			off += int64(n)
		}
		if err == io.EOF && off >= r.Size() {
			break
		}
		if err != nil && err != io.EOF {
			// The stream cannot be taken back: end the session. The
			// client reports the broken transfer and keeps nothing.
			s.log.Error("rsync pull: store read failed", "file", e.storeKey, "err", err)
			s.out.Msg(msgError, []byte(fmt.Sprintf("rsync: [sender] read error on \"%s\" (in %s): %v\n", e.name, s.mod.Name, err)))
			return nil, fmt.Errorf("read %s: %w", e.storeKey, err)
		}
	}
	if err := s.tokw.end(); err != nil {
		return nil, err
	}
	digest := sum.Sum()
	_, err := s.out.Write(digest)
	return digest, err
}

// senderGoodbye ends a pull: the statistics, then the final NDX_DONE
// exchange (rsync: main.c handle_stats, read_final_goodbye).
func (s *session) senderGoodbye(entries []*fileEntry) error {
	var total int64
	for _, e := range entries {
		total += e.size
	}
	var b []byte
	for _, v := range []int64{s.nc.read.Load(), s.nc.written.Load(), total, s.flistBuilt.Milliseconds(), 0} {
		b = appendVarlong(b, v, 3)
	}
	if _, err := s.out.Write(b); err != nil {
		return err
	}
	if err := s.out.Flush(); err != nil {
		return err
	}
	if err := s.expectDone("goodbye"); err != nil {
		return err
	}
	if s.protocol >= 31 {
		if err := s.writeDone(); err != nil {
			return err
		}
		if err := s.expectDone("goodbye echo"); err != nil {
			return err
		}
	}
	s.finish()
	return nil
}

func (s *session) expectDone(what string) error {
	ndx, err := s.readNdx()
	if err != nil {
		return err
	}
	for ndx == ndxDelStats && s.args.sender {
		if err := s.echoDelStats(); err != nil {
			return err
		}
		if ndx, err = s.readNdx(); err != nil {
			return err
		}
	}
	if ndx != ndxDone {
		return fmt.Errorf("%w: expected NDX_DONE (%s), got %d", ErrProtocol, what, ndx)
	}
	return nil
}
