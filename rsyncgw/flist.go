package rsyncgw

import (
	"fmt"
	"sort"
	"strings"
)

// Flags of a file-list entry (rsync: rsync.h XMIT_*).
const (
	xmitTopDir         = 1 << 0
	xmitSameMode       = 1 << 1
	xmitExtendedFlags  = 1 << 2
	xmitSameUID        = 1 << 3
	xmitSameGID        = 1 << 4
	xmitSameName       = 1 << 5
	xmitLongName       = 1 << 6
	xmitSameTime       = 1 << 7
	xmitSameRdevMajor  = 1 << 8
	xmitNoContentDir   = 1 << 8 // directories only
	xmitHlinked        = 1 << 9
	xmitUserNameFollow = 1 << 10
	xmitGroupNameFolow = 1 << 11
	xmitHlinkFirst     = 1 << 12
	xmitIOErrorEndlist = 1 << 12 // with xmitExtendedFlags and nothing else
	xmitModNsec        = 1 << 13
	xmitSameAtime      = 1 << 14
)

// Unix file type bits as rsync sends them in the mode.
const (
	sIFMT  = 0o170000
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
	sIFBLK = 0o060000
	sIFIFO = 0o010000
	sIFSCK = 0o140000
)

// fileEntry is one file-list entry.
type fileEntry struct {
	name     string // relative path, "." for the top directory
	size     int64
	mtime    int64
	nsec     int32
	mode     uint32
	uid, gid int32
	target   string // symlink target
	sum      []byte // with -c
	storeKey string // where a pulled entry lives in the store
}

func (e *fileEntry) isDir() bool     { return e.mode&sIFMT == sIFDIR }
func (e *fileEntry) isRegular() bool { return e.mode&sIFMT == sIFREG }

func isDevice(mode uint32) bool {
	t := mode & sIFMT
	return t == sIFCHR || t == sIFBLK
}

func isSpecial(mode uint32) bool {
	t := mode & sIFMT
	return t == sIFIFO || t == sIFSCK
}

// flistCodec holds what both directions of the file-list encoding depend
// on: the negotiated options and the previous entry, since fields equal to
// the previous entry's may be left out.
type flistCodec struct {
	protocol  int
	varint    bool // CF_VARINT_FLIST_FLAGS
	owner     bool
	group     bool
	links     bool
	devices   bool
	numeric   bool
	csumLen   int // > 0 with -c
	prev      fileEntry
	rdevMajor int32

	// nameBytes counts the name bytes readEntry has decoded, bounded by
	// maxListNameBytes (the receiver bounds entries by maxFlistFiles): a
	// peer cannot make a session hold an unbounded file list.
	nameBytes int
}

// maxListNameBytes bounds the names of one received file list: 64 MiB is
// a million segment names, while 60 000 names of 4000 bytes (276 MB of
// RSS before this bound) are refused.
const maxListNameBytes = 64 << 20

// readEntry decodes one entry; it returns nil at the end of the list
// (rsync: flist.c recv_file_list, receive_file_entry).
func (c *flistCodec) readEntry(r byteReader) (*fileEntry, int32, error) {
	flags, err := c.readFlags(r)
	if err != nil || flags == 0 {
		return nil, 0, err
	}
	if c.endsWithIOError(flags) {
		ioErr, err := readVarint(r)
		return nil, ioErr, err
	}
	e, err := c.readBody(r, flags)
	if err != nil {
		return nil, 0, err
	}
	if err := checkEntryName(e); err != nil {
		return nil, 0, err
	}
	c.nameBytes += len(e.name)
	if c.nameBytes > maxListNameBytes {
		return nil, 0, fmt.Errorf("%w: file list with more than %d MiB of names; push fewer files per rsync call",
			ErrTooLong, maxListNameBytes>>20)
	}
	c.prev = *e
	return e, 0, nil
}

// checkEntryName refuses names no stock client sends for a transfer into a
// module (rsync: flist.c recv_file_entry, util.c clean_fname,
// sanitize_path): absolute paths, empty, "." or ".." components — except a
// directory "." for the transfer's top — and NUL bytes.
func checkEntryName(e *fileEntry) error {
	if e.name == "." && e.isDir() {
		return nil
	}
	bad := e.name == "" || strings.HasPrefix(e.name, "/") || strings.ContainsRune(e.name, 0)
	for _, part := range strings.Split(e.name, "/") {
		bad = bad || part == "" || part == "." || part == ".."
	}
	if bad {
		return fmt.Errorf("%w: file-list name %q is not a plain relative path", ErrProtocol, e.name)
	}
	return nil
}

func (c *flistCodec) endsWithIOError(flags int32) bool {
	return !c.varint && flags == xmitExtendedFlags|xmitIOErrorEndlist
}

func (c *flistCodec) readFlags(r byteReader) (int32, error) {
	if c.varint {
		return readVarint(r)
	}
	b, err := r.ReadByte()
	if err != nil {
		return 0, eofIsUnexpected(err)
	}
	flags := int32(b)
	if flags&xmitExtendedFlags != 0 {
		hi, err := r.ReadByte()
		if err != nil {
			return 0, eofIsUnexpected(err)
		}
		flags |= int32(hi) << 8
	}
	return flags, nil
}

func (c *flistCodec) readBody(r byteReader, flags int32) (*fileEntry, error) {
	name, err := c.readName(r, flags)
	if err != nil {
		return nil, err
	}
	e := &fileEntry{name: name, mode: c.prev.mode, uid: c.prev.uid, gid: c.prev.gid, mtime: c.prev.mtime}
	if flags&xmitHlinked != 0 {
		return nil, fmt.Errorf("%w: hard-link data in file list (-H is refused)", ErrProtocol)
	}
	if e.size, err = readVarlong(r, 3); err != nil {
		return nil, err
	}
	if e.size < 0 {
		return nil, fmt.Errorf("%w: negative file size for %q", ErrProtocol, name)
	}
	if err := c.readTimeMode(r, flags, e); err != nil {
		return nil, err
	}
	if err := c.readOwner(r, flags, e); err != nil {
		return nil, err
	}
	return e, c.readExtras(r, flags, e)
}

func (c *flistCodec) readName(r byteReader, flags int32) (string, error) {
	var l1 int
	if flags&xmitSameName != 0 {
		b, err := r.ReadByte()
		if err != nil {
			return "", eofIsUnexpected(err)
		}
		l1 = int(b)
	}
	var l2 int
	if flags&xmitLongName != 0 {
		n, err := readVarint(r)
		if err != nil {
			return "", err
		}
		l2 = int(n)
	} else {
		b, err := r.ReadByte()
		if err != nil {
			return "", eofIsUnexpected(err)
		}
		l2 = int(b)
	}
	if l1 > len(c.prev.name) || l2 < 0 || l1+l2 > maxNameLen {
		return "", fmt.Errorf("%w: file name length %d+%d", ErrTooLong, l1, l2)
	}
	b := make([]byte, l1+l2)
	copy(b, c.prev.name[:l1])
	if err := readFull(r, b[l1:]); err != nil {
		return "", err
	}
	return string(b), nil
}

func (c *flistCodec) readTimeMode(r byteReader, flags int32, e *fileEntry) error {
	var err error
	if flags&xmitSameTime == 0 {
		if e.mtime, err = readVarlong(r, 4); err != nil {
			return err
		}
	}
	if flags&xmitModNsec != 0 {
		if e.nsec, err = readVarint(r); err != nil {
			return err
		}
	}
	if flags&xmitSameMode == 0 {
		m, err := readInt32(r)
		if err != nil {
			return err
		}
		e.mode = uint32(m)
	}
	return nil
}

func (c *flistCodec) readOwner(r byteReader, flags int32, e *fileEntry) error {
	var err error
	if c.owner && flags&xmitSameUID == 0 {
		if e.uid, err = readVarint(r); err != nil {
			return err
		}
		if flags&xmitUserNameFollow != 0 {
			if _, err := readByteString(r); err != nil {
				return err
			}
		}
	}
	if c.group && flags&xmitSameGID == 0 {
		if e.gid, err = readVarint(r); err != nil {
			return err
		}
		if flags&xmitGroupNameFolow != 0 {
			if _, err := readByteString(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// readExtras reads device numbers, the symlink target and the checksum.
func (c *flistCodec) readExtras(r byteReader, flags int32, e *fileEntry) error {
	if (c.devices && isDevice(e.mode)) || (c.devices && isSpecial(e.mode) && c.protocol < 31) {
		if flags&xmitSameRdevMajor == 0 {
			maj, err := readVarint(r)
			if err != nil {
				return err
			}
			c.rdevMajor = maj
		}
		if _, err := readVarint(r); err != nil {
			return err
		}
	}
	if c.links && e.mode&sIFMT == sIFLNK {
		n, err := readVarint(r)
		if err != nil {
			return err
		}
		if n < 0 || n > maxNameLen {
			return fmt.Errorf("%w: symlink target of %d bytes", ErrTooLong, n)
		}
		b := make([]byte, n)
		if err := readFull(r, b); err != nil {
			return err
		}
		e.target = string(b)
	}
	if c.csumLen > 0 && e.isRegular() {
		e.sum = make([]byte, c.csumLen)
		return readFull(r, e.sum)
	}
	return nil
}

// readByteString reads a length byte and that many bytes (user and group
// names).
func readByteString(r byteReader) (string, error) {
	n, err := r.ReadByte()
	if err != nil {
		return "", eofIsUnexpected(err)
	}
	b := make([]byte, n)
	if err := readFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// readIDList skips a uid or gid list: (varint id, byte len, name)* 0
// (rsync: uidlist.c recv_id_list). Names only matter to a receiver that
// sets ownership; the store does not.
func readIDList(r byteReader) error {
	for i := 0; ; i++ {
		id, err := readVarint(r)
		if err != nil || id == 0 {
			return err
		}
		if i > maxFlistFiles {
			return fmt.Errorf("%w: id list too long", ErrTooLong)
		}
		if _, err := readByteString(r); err != nil {
			return err
		}
	}
}

// appendEntry encodes e with every field present (no "same as previous"
// compression beyond what rsync requires), which any client accepts
// (rsync: flist.c send_file_entry).
func (c *flistCodec) appendEntry(b []byte, e *fileEntry, top bool) []byte {
	var flags int32
	if top && e.isDir() {
		flags |= xmitTopDir
	}
	if len(e.name) > 255 {
		flags |= xmitLongName
	}
	if c.protocol >= 31 && e.nsec != 0 {
		flags |= xmitModNsec
	}
	b = c.appendFlags(b, flags, e)
	if flags&xmitLongName != 0 {
		b = appendVarint(b, int32(len(e.name)))
	} else {
		b = append(b, byte(len(e.name)))
	}
	b = append(b, e.name...)
	b = appendVarlong(b, e.size, 3)
	b = appendVarlong(b, e.mtime, 4)
	if flags&xmitModNsec != 0 {
		b = appendVarint(b, e.nsec)
	}
	b = appendInt32(b, int32(e.mode))
	if c.owner {
		b = appendVarint(b, e.uid)
	}
	if c.group {
		b = appendVarint(b, e.gid)
	}
	if c.csumLen > 0 && e.isRegular() {
		b = append(b, e.sum...)
	}
	c.prev = *e
	return b
}

func (c *flistCodec) appendFlags(b []byte, flags int32, e *fileEntry) []byte {
	if c.varint {
		if flags == 0 {
			flags = xmitExtendedFlags
		}
		return appendVarint(b, flags)
	}
	if flags == 0 && !e.isDir() {
		flags = xmitTopDir
	}
	if flags&0xff00 != 0 || flags == 0 {
		return appendUint16(b, uint16(flags|xmitExtendedFlags))
	}
	return append(b, byte(flags))
}

// appendEnd ends the list, carrying the sender's io_error.
func (c *flistCodec) appendEnd(b []byte, ioErr int32) []byte {
	switch {
	case c.varint:
		return appendVarint(appendVarint(b, 0), ioErr)
	case ioErr != 0:
		return appendVarint(appendUint16(b, xmitExtendedFlags|xmitIOErrorEndlist), ioErr)
	}
	return append(b, 0)
}

// appendIDList encodes a uid or gid list: every non-zero id with a name
// (rsync: uidlist.c send_id_lists).
func appendIDList(b []byte, names map[int32]string) []byte {
	ids := make([]int32, 0, len(names))
	for id := range names {
		if id != 0 && names[id] != "" {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		name := names[id]
		if len(name) > 255 {
			name = name[:255]
		}
		b = appendVarint(b, id)
		b = append(b, byte(len(name)))
		b = append(b, name...)
	}
	return appendVarint(b, 0)
}

// sortKey orders entries as rsync sorts a file list since protocol 29
// (rsync: flist.c f_name_cmp): within a directory its own "." first, then
// files, then subdirectories, each followed by its contents; names compare
// bytewise.
func sortKey(e *fileEntry) []string {
	parts := strings.Split(e.name, "/")
	if e.name == "." {
		parts = nil
	}
	var key []string
	dirs := parts
	item := "."
	if !e.isDir() && len(parts) > 0 {
		dirs, item = parts[:len(parts)-1], parts[len(parts)-1]
	}
	for _, d := range dirs {
		key = append(key, "\x02"+d) // a path component sorts after files
	}
	return append(key, "\x01"+item)
}

func lessKey(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// sortEntries sorts and removes duplicate names
// (rsync: flist.c flist_sort_and_clean).
func sortEntries(list []*fileEntry) []*fileEntry {
	keys := make(map[*fileEntry][]string, len(list))
	for _, e := range list {
		keys[e] = sortKey(e)
	}
	sort.SliceStable(list, func(i, j int) bool { return lessKey(keys[list[i]], keys[list[j]]) })
	out := list[:0]
	for _, e := range list {
		if len(out) > 0 && e.name == out[len(out)-1].name {
			continue
		}
		out = append(out, e)
	}
	return out
}
