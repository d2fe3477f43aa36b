package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
)

// Name claims shared by a group of front-ends (Config.Claims; issue 15).
//
// Several front-ends serve one archive; each keeps its own store (and its
// own packs prefix in the bucket), so nothing local stops two of them from
// committing different content under one name when PostgreSQL, or two
// clusters misconfigured into one archive, push to both. The rule that
// keeps the archive one archive: a name is committed anywhere only under
// the one content the group agreed on first, and the agreement is a
// conditional create in the shared claims prefix, which is linearizable
// (of several PutIfAbsent calls on one name exactly one succeeds, and
// every later one sees it).
//
// Object claims/<namespace>/<name> (claimObject: namespace "_" is the
// root, names are escaped reversibly), body a claimRecord: the file's
// identity (HashKind, Hash, BlockSize, Size), the claimant's id (a random
// id per data directory, DATA/claimant.id) and the time.
//
// Order for one push (Upload.commit), once every block is hashed and the
// file's identity is known, before anything of it is submitted to the
// committer:
//
//  1. PutIfAbsent of the claim. Success: go on with the local commit;
//  2. ErrExist: read the claim (bounded: claimMaxRecord) and compare
//     identities. Equal: go on (an identical re-push, to this front-end or
//     to another one: PostgreSQL's retry after a front-end died). Not
//     equal: refuse with ErrExists naming the claimant; nothing is
//     committed locally;
//  3. any other failure (bucket unreachable, timeout after the Stack's
//     retries, AckTimeout for the whole claim): refuse with ErrClaims,
//     nothing committed; the next attempt starts at 1 again, so the push
//     succeeds by itself once the bucket is back;
//  4. the local commit, unchanged ("Write path" in doc.go).
//
// Crash or failure between 1 and 4 leaves a claim without a local commit:
// harmless, since the retry of the same content finds its own identical
// claim at 2 (and different content is refused, as it would be had the
// commit gone through). A claim is never made after a local commit, so no
// front-end holds a name the group has not agreed on. Claims are never
// deleted: a name removed locally (retention, walrus rm) keeps its claim,
// and a later push of other content under it is refused.
//
// Every commit claims, the identical re-push of a name the store already
// holds too: a name committed before claims were configured, or whose
// claim was lost, gets (or is checked against) its claim that way, at one
// PUT (and on a conflict a HEAD and a GET) per push.
//
// Identities are HashRoot, which depends on the block size: front-ends of
// one group must use one --block-size, or an identical re-push to a
// front-end with another one is refused (errClaimBlockSize) rather than
// wrongly accepted or wrongly called different content.
//
// What the guarantee rests on: PutIfAbsent (If-None-Match: *) being
// atomic in the claims bucket. AWS S3 (since 2024), MinIO and versitygw
// make it so; versitygw v1.8.0's posix backend checks and publishes under
// a striped mutex and, across gateway processes on one directory, an
// flock (store/backend/doc.go; TestS3TwoGatewaysRace), unless it runs
// with --disable-object-lock-file. A bucket that ignores If-None-Match
// gives no safety at all.

// ErrClaims: the claims bucket did not answer a claim; nothing was
// committed, and a retry of the push succeeds once it is back.
var ErrClaims = errors.New("store: the claims bucket is unreachable")

// errClaimedHere: a file of another front-end being adopted (peers.go)
// is claimed by this one and not held here: this front-end committed it
// first and removed it since (or its commit failed after the claim). It
// is not adopted back: two front-ends following each other's removals
// would otherwise hand a removed name back and forth for ever.
var errClaimedHere = errors.New("store: claimed by this front-end and removed here")

// errClaimedElsewhere: a file being adopted from one front-end is
// claimed by another live one, which this front-end follows too: it is
// adopted from the claimant's own packs only. Adopting it from a third
// front-end's copy as well would let two followers that removed it (as
// the claimant did) hand it back and forth for ever.
var errClaimedElsewhere = errors.New("store: claimed by another front-end, adopted from its packs")

// errClaimBlockSize: the name is claimed with the same size under
// another block size, so the identities cannot be compared.
var errClaimBlockSize = errors.New("store: the name is claimed by a front-end with another block size")

const (
	claimPrefix   = "claims/"
	claimRootNS   = "_" // the root namespace: no escaped component is "_" alone
	claimantFile  = "claimant.id"
	claimMagic    = "WALRUSCL"
	claimVersion  = 1
	claimFixedLen = 82 // the record up to the path (claimRecord.encode)
	// claimMaxRecord bounds the read of a claim: a path is at most
	// 255+1+255 bytes (checkComponent), so a version 1 record at most 593.
	claimMaxRecord = 1024
	// claimMaxComponent: an escaped component longer than this is named
	// by its hash instead, so that claims/NS/NAME stays within the 512
	// bytes of backend.ValidName (7 + 200 + 1 + 200).
	claimMaxComponent = 200
)

// claims is the store's side of the claims prefix.
type claims struct {
	b  backend.Backend
	id [16]byte // this data directory's claimant id (DATA/claimant.id)

	mu sync.Mutex
	st ClaimsStatus // counters since Open
}

// ClaimsStatus is what status shows of the claims prefix (Status.Claims;
// nil without one): outcomes of the claims made since Open.
type ClaimsStatus struct {
	Location  string `json:"location"`
	Claimant  string `json:"claimant"`  // this front-end's id
	Claimed   int64  `json:"claimed"`   // names newly claimed
	Identical int64  `json:"identical"` // already claimed for the same content (re-pushes)
	Refused   int64  `json:"refused"`   // already claimed for other content
	Failures  int64  `json:"failures"`  // no answer (the push failed, nothing committed)
	LastError string `json:"last_error,omitempty"`
}

func (c *claims) status() *ClaimsStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Location, st.Claimant = c.b.Location(), hex.EncodeToString(c.id[:])
	return &st
}

// count records one claim's outcome.
func (c *claims) count(claimed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil && claimed:
		c.st.Claimed++
	case err == nil || errors.Is(err, errClaimedHere) || errors.Is(err, errClaimedElsewhere):
		c.st.Identical++
	case errors.Is(err, ErrExists) || errors.Is(err, errClaimBlockSize):
		c.st.Refused++
	default:
		c.st.Failures++
		c.st.LastError = oneLine(err.Error())
	}
}

// openClaims reads DATA/claimant.id, creating it durably first if it is
// missing (temporary file, fsync, rename, fsync of DATA: writeIDFile), so
// that a claim never names a claimant that a crash could forget.
func openClaims(cfg Config) (*claims, error) {
	hexID, err := readIDFile(cfg.Dir, claimantFile)
	if err != nil {
		return nil, err
	}
	if hexID == "" {
		if hexID, err = newBucketID(); err != nil {
			return nil, err
		}
		if err := writeIDFile(cfg.Dir, claimantFile, hexID); err != nil {
			return nil, err
		}
	}
	c := &claims{b: cfg.Claims}
	if _, err := hex.Decode(c.id[:], []byte(hexID)); err != nil {
		return nil, fmt.Errorf("store: %s/%s: %w", cfg.Dir, claimantFile, err)
	}
	return c, nil
}

// claimRecord is the body of a claim object, version 1, little-endian:
//
//	magic "WALRUSCL" (8) | version (1) | hash kind (1) | zero (2) |
//	block size (4) | size (8) | hash (32) | claimant id (16) |
//	unix seconds (8) | path length (2) | path ("NAME" or "NS/NAME")
//
// The path makes a claim self-describing (a listing of the prefix can be
// read without reversing the escaping) and lets a read check that the
// object is the claim of the name asked for.
type claimRecord struct {
	HashKind  index.HashKind
	BlockSize uint32
	Size      int64
	Hash      index.Hash
	Claimant  [16]byte
	Time      int64
	Path      string
}

func (r *claimRecord) encode() []byte {
	b := make([]byte, claimFixedLen, claimFixedLen+len(r.Path))
	copy(b, claimMagic)
	b[8], b[9] = claimVersion, byte(r.HashKind)
	binary.LittleEndian.PutUint32(b[12:], r.BlockSize)
	binary.LittleEndian.PutUint64(b[16:], uint64(r.Size))
	copy(b[24:56], r.Hash[:])
	copy(b[56:72], r.Claimant[:])
	binary.LittleEndian.PutUint64(b[72:], uint64(r.Time))
	binary.LittleEndian.PutUint16(b[80:], uint16(len(r.Path)))
	return append(b, r.Path...)
}

func decodeClaimRecord(b []byte) (claimRecord, error) {
	var r claimRecord
	if len(b) < claimFixedLen || string(b[:8]) != claimMagic {
		return r, fmt.Errorf("not a walrus claim record (%d bytes)", len(b))
	}
	if b[8] != claimVersion {
		return r, fmt.Errorf("claim record version %d: written by another walrus version, this one reads %d", b[8], claimVersion)
	}
	r.HashKind = index.HashKind(b[9])
	r.BlockSize = binary.LittleEndian.Uint32(b[12:])
	r.Size = int64(binary.LittleEndian.Uint64(b[16:]))
	copy(r.Hash[:], b[24:56])
	copy(r.Claimant[:], b[56:72])
	r.Time = int64(binary.LittleEndian.Uint64(b[72:]))
	n := int(binary.LittleEndian.Uint16(b[80:]))
	if len(b) != claimFixedLen+n || r.Size < 0 || (r.HashKind != index.HashWhole && r.HashKind != index.HashRoot) {
		return r, fmt.Errorf("corrupt claim record (%d bytes)", len(b))
	}
	r.Path = string(b[claimFixedLen:])
	return r, nil
}

func (r *claimRecord) sameFile(o *claimRecord) bool {
	return r.HashKind == o.HashKind && r.Hash == o.Hash && r.Size == o.Size
}

// claimObject is the object name of the claim on dir/name: every archive
// name maps to exactly one object, and distinct names to distinct ones.
func claimObject(dir, name string) string {
	ns := claimRootNS
	if dir != "" {
		ns = escapeClaimComponent(dir)
	}
	return claimPrefix + ns + "/" + escapeClaimComponent(name)
}

// escapeClaimComponent maps a path component (checkComponent: 1 to 255
// bytes, no slash or NUL) to an object name component (backend.ValidName:
// [A-Za-z0-9._-], not starting with "."). '%' is not allowed there, so the
// escape is '_': '_', every byte outside the set and a leading '.' become
// _XX (two upper-case hex digits). The escaping is reversible
// (unescapeClaimComponent). A component whose escaped form is longer than
// claimMaxComponent is named "_h" + hex SHA-256 of its bytes instead: no
// escaped form contains "_h" (an escape is '_' and upper-case hex), so it
// is distinct from every escaped one, and from every other long one as far
// as SHA-256 is collision-free; the claim record still holds the path.
func escapeClaimComponent(c string) string {
	var b strings.Builder
	for i := 0; i < len(c); i++ {
		ch := c[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' && i > 0 {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "_%02X", ch)
		}
	}
	if b.Len() > claimMaxComponent {
		sum := sha256.Sum256([]byte(c))
		return "_h" + hex.EncodeToString(sum[:])
	}
	return b.String()
}

// unescapeClaimComponent reverses escapeClaimComponent; ok is false for a
// hashed component (not reversible) or a string no component escapes to.
func unescapeClaimComponent(e string) (string, bool) {
	if e == "" || e == claimRootNS || strings.HasPrefix(e, "_h") {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(e); i++ {
		if e[i] != '_' {
			b.WriteByte(e[i])
			continue
		}
		if i+2 >= len(e) || strings.ToUpper(e[i+1:i+3]) != e[i+1:i+3] {
			return "", false
		}
		v, err := hex.DecodeString(e[i+1 : i+3])
		if err != nil {
			return "", false
		}
		b.WriteByte(v[0])
		i += 2
	}
	if escapeClaimComponent(b.String()) != e { // one escaping per component
		return "", false
	}
	return b.String(), true
}

// claim claims f's name in the claims prefix for f's content (steps 1 to
// 3 above); nil: the local commit may go on. Without Config.Claims it
// returns nil at once. from: the front-end (hex claimant id) whose file
// f the follower adopts, "" for a push; an identical claim of ours
// refuses the adoption with errClaimedHere, one of a third live
// front-end with errClaimedElsewhere (peers.go, step 4).
func (s *Store) claim(f *index.File, from string) (err error) {
	c := s.claims
	if c == nil {
		return nil
	}
	claimed := false
	defer func() { c.count(claimed, err) }()
	path := joinPath(f.Dir, f.Name)
	mine := claimRecord{HashKind: f.HashKind, BlockSize: f.BlockSize, Size: f.Size, Hash: f.Hash,
		Claimant: c.id, Time: time.Now().Unix(), Path: path}
	body := mine.encode()
	obj := claimObject(f.Dir, f.Name)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.AckTimeout)
	defer cancel()
	// A claim that vanishes between the conflict and the read (someone
	// deleted it by hand) is claimed again; twice is plenty.
	for attempt := 0; ; attempt++ {
		err := c.b.PutIfAbsent(ctx, obj, bytes.NewReader(body), int64(len(body)))
		if err == nil {
			claimed = true
			return nil
		}
		if !backend.IsExist(err) {
			return s.claimsErr(path, err)
		}
		theirs, err := c.read(ctx, obj)
		if backend.IsNotExist(err) && attempt < 2 {
			continue
		}
		if err != nil {
			if backend.IsTransient(err) || ctx.Err() != nil || backend.IsNotExist(err) {
				return s.claimsErr(path, err)
			}
			return fmt.Errorf("store: %s: the claim %s in %s is unreadable (%s); nothing was committed: remove the object if no front-end holds the name",
				path, obj, c.b.Location(), oneLine(err.Error()))
		}
		if theirs.Path != path {
			return fmt.Errorf("store: %s: the claim %s in %s is the claim of %q; nothing was committed", path, obj, c.b.Location(), theirs.Path)
		}
		if from != "" && mine.sameFile(&theirs) {
			who := hex.EncodeToString(theirs.Claimant[:])
			switch {
			case theirs.Claimant == c.id:
				return fmt.Errorf("%w: %s", errClaimedHere, path)
			case who != from && s.fl != nil && s.fl.live(who):
				return fmt.Errorf("%w: %s (front-end %s)", errClaimedElsewhere, path, who)
			}
		}
		return c.compare(&mine, &theirs)
	}
}

// compare decides a conflict (step 2): nil for the same file.
func (c *claims) compare(mine, theirs *claimRecord) error {
	if mine.sameFile(theirs) {
		return nil
	}
	who := "front-end " + hex.EncodeToString(theirs.Claimant[:])
	if theirs.Claimant == c.id {
		who = "this front-end" // a claim whose local commit failed
	}
	when := time.Unix(theirs.Time, 0).UTC().Format(time.RFC3339)
	if mine.Size == theirs.Size && mine.HashKind == index.HashRoot && theirs.HashKind == index.HashRoot &&
		mine.BlockSize != theirs.BlockSize {
		return fmt.Errorf("%w: %s (claimed by %s at %s with block size %d, this front-end uses %d): give every front-end of the group one --block-size; nothing was committed",
			errClaimBlockSize, mine.Path, who, when, theirs.BlockSize, mine.BlockSize)
	}
	return fmt.Errorf("%w: %s (claimed by %s at %s, %d bytes; the new copy of %d bytes differs)",
		ErrExists, mine.Path, who, when, theirs.Size, mine.Size)
}

// read reads and decodes the claim object obj, at most claimMaxRecord
// bytes of it.
func (c *claims) read(ctx context.Context, obj string) (claimRecord, error) {
	info, err := c.b.Stat(ctx, obj)
	if err != nil {
		return claimRecord{}, err
	}
	if info.Size > claimMaxRecord {
		return claimRecord{}, fmt.Errorf("%d bytes, larger than any claim record", info.Size)
	}
	p := make([]byte, info.Size)
	if err := c.b.ReadAt(ctx, obj, p, 0); err != nil {
		return claimRecord{}, err
	}
	return decodeClaimRecord(p)
}

// claimsErr is the one-line refusal of a push whose claim got no answer.
func (s *Store) claimsErr(path string, err error) error {
	return fmt.Errorf("%w: %s (%s): %s; nothing was committed; the push succeeds once it is back",
		ErrClaims, s.cfg.Claims.Location(), path, oneLine(err.Error()))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// uploadsAtClose reports whether a FUSE landing file must be uploaded at
// close instead of landed: a landed file is acknowledged before its ingest,
// so before it is in the bucket (remote-ack, remoteack.go) and before its
// name is claimed (claims).
func (s *Store) uploadsAtClose() bool { return s.cfg.AckRemote || s.cfg.Claims != nil }
