package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
)

// Front-ends serving each other's files (issue 15; claims.go is the
// other half).
//
// Several front-ends of one archive each keep their own store and packs
// prefix (Config.Remote) and share one claims prefix (Config.Claims). A
// front-end serves the files the others committed, with a bounded delay,
// and never answers "not found" for a name another one holds.
//
// Registry: with Claims and Remote, the follower goroutine writes
// fronts/<claimant id> in the claims prefix at its start and then every
// PeerHeartbeat: a JSON record of this store's packs prefix
// (Config.RemotePrefix), Remote.Location(), the unix time and its
// markers (Followed: how far it followed each other front-end, which
// bounds the deletion of their packs' objects: remotegc.go, step 2a). It
// is overwritten in place; a front-end that stops simply ages. The
// records of every listing are kept for that bound, with or without
// OpenPrefix.
//
// Follower, every PeerInterval or when kicked:
//
//  1. List fronts/, read each record (bounded: peerMaxRecord); skip ours;
//     keep them for the deletion bound (listedPeers); without OpenPrefix,
//     that is all;
//  2. per peer: open its packs prefix (OpenPrefix, cached), list packs/
//     (ListAfter, from the peerLookBack-th pack at or below the marker;
//     the first pass lists it all), and take every pack id above the
//     peer's marker, ascending, and the marker's pack again if its
//     object is no longer the size it was followed at (an upload that
//     went stale is put again whole; uploads go in id order, so only
//     the newest object can grow: remote.go);
//  3. download the pack (fetchPack) into DATA/peers/<peer>/, scan it
//     (scanPack, every record CRC-checked), note its block records and
//     decode its journal batch records' file entries (jeFile) and removals
//     (jeRemove), kept in their order, batch after batch; namespace
//     entries (jeDir, jeRmdir: a namespace is created here by its first
//     file, and removed here by a local rmdir only), checkpoints and packs
//     without batches (GC or settler copies) add nothing;
//  4. the entries in that order (a rename is the new name's file entry,
//     then, in a later batch, the old name's removal: the new name is
//     adopted while the old one's blocks are still here).
//     Per removal: Remove, as a local rm (journaled here, so GC reclaims
//     the space; a landed file's ingest is cancelled); a name not held
//     here (never adopted, or removed here already) is nothing to do.
//     Per file entry: a name this store already holds with the same
//     identity is skipped (also every file of ours the peer adopted back).
//     Else its bytes are rebuilt block by block: from this pack's record
//     (decodeRecord, checked as a local read is), else from this store's
//     own blocks (the peer deduplicated against a block both hold), zeros
//     for a hole, and committed through the normal upload path (Create,
//     Write, Commit with the entry's mode and mtime). The commit claims the
//     name, which finds the peer's identical claim; ErrExists there means
//     the peer's content is not what the claim names: logged, skipped.
//     Skipped too: entries marked copied (jeCopied), the peer's
//     adoptions and followed removals. Every front-end follows every
//     other's own changes directly, so a copy adds nothing, and
//     following copies would pass a removed name to and fro for ever
//     (our removal, the peer's older adoption of it, its removal...).
//     A block found nowhere, or a commit failing for another reason
//     (claims unreachable, disk full), fails the pack: it is retried at
//     the next pass and the marker does not pass it;
//  5. once every entry of the pack is done, the marker ("ID SIZE") is
//     advanced and written durably (DATA/peers/<peer>.marker: temporary
//     file, fsync, rename, fsync of DATA/peers), and the downloaded copy
//     removed.
//
// Durability and crashes: an adopted file is durable when its Commit
// returns, like any push; the marker only after every file of its pack
// is. A crash before the marker is written makes the next run take the
// pack again: its files are then already held with the same identity
// and skipped, its removals find nothing (one download repeated, nothing
// committed or removed twice). A torn
// download is a temporary file fetchPack replaces; a finished one left
// behind is reused. A marker is never ahead of what is committed here.
//
// Blocks of a file need not be in the pack of its journal entry (the
// pack rolled between the blocks and the batch): a block neither there
// nor here is looked for in the peer's peerLookBack packs before it
// (their block records are kept from the passes that followed them, or,
// after a restart, scanned by range from its prefix) and read by range.
// A block found nowhere leaves the peer at that pack (Status.Peers shows
// the error) and the pass retries it; the downloaded copy is kept for it.
//
// Lookups: Stat and Open that find a name neither in the index nor
// landed read its claim (one HEAD and one GET per miss). Claimed by
// another front-end: the follower is kicked (after every pass, while
// the lookup waits) and the lookup waits up to PeerWait for the name to
// arrive, then answers with it or fails with
// ErrElsewhere, never ErrNotFound. No claim, or our own: ErrNotFound. A
// claims prefix that does not answer fails the lookup with ErrClaims
// (not "not found": PostgreSQL would end its recovery there).
//
// The push paths (rsync's pre-transfer check, FUSE's CREATE checks) use
// StatHere, which does not ask: an identical re-push of a name another
// front-end holds goes through at once. The kernel's LOOKUP before a
// FUSE CREATE does ask, so a cp of such a name fails with EIO until the
// file arrived (archive_command retries it). A name another front-end
// removed later (retention) keeps its claim and answers ErrElsewhere
// here, after PeerWait; PostgreSQL does not ask for those.

// ErrElsewhere: the name is committed by another front-end of the group
// and has not arrived here yet; a retry succeeds once it has.
var ErrElsewhere = errors.New("store: archived by another front-end, not readable here yet")

const (
	// originPeer: Origin.Interface of a file adopted from another
	// front-end; its journal entry is marked jeCopied.
	originPeer    = "peer"
	peerPrefix    = "fronts/"
	peerMaxRecord = 4096
	peerDirName   = "peers"
	// peerLookBack: how many of a peer's earlier packs a missing block is
	// looked for in (read by range from its bucket prefix).
	peerLookBack = 4

	DefaultPeerHeartbeat = 10 * time.Second
	DefaultPeerInterval  = time.Second
	DefaultPeerWait      = 10 * time.Second
	DefaultPeerExpiry    = 24 * time.Hour
)

// peerRecord is the body of fronts/<id>.
type peerRecord struct {
	Prefix   string `json:"prefix"`   // packs prefix in the bucket (OpenPrefix's argument)
	Location string `json:"location"` // Remote.Location(), for status
	Time     int64  `json:"time"`     // unix seconds of the heartbeat
	// Followed: the marker of every front-end this one follows (hex
	// claimant id: the last of its packs followed here), from
	// DATA/peers/*.marker. A front-end deletes none of its retired
	// packs' objects this one may still read (remotegc.go).
	Followed map[string]uint32 `json:"followed,omitempty"`
}

// PeerStatus is what status shows of another front-end (Status.Peers).
type PeerStatus struct {
	ID                  string  `json:"id"`
	Packs               string  `json:"packs"` // its packs location
	HeartbeatAgeSeconds float64 `json:"heartbeat_age_seconds"`
	Marker              uint32  `json:"marker"`       // the last of its packs followed
	PacksBehind         int     `json:"packs_behind"` // listed above the marker at the last pass
	// LagSeconds: 0 while caught up (nothing listed above the marker);
	// else how long since this front-end last was (or since it first saw
	// the peer): the delay of its files here, give or take a pass.
	LagSeconds float64 `json:"lag_seconds"`
	Adopted    int64   `json:"adopted"` // files adopted from it since Open
	Removed    int64   `json:"removed"` // its removals followed (files removed here) since Open
	LastError  string  `json:"last_error,omitempty"`
}

type peer struct {
	id      string
	rec     peerRecord
	b       backend.Backend // its packs prefix
	bPrefix string          // the prefix b was opened on
	marker  uint32
	// markerSize: the size of the marker's pack object when it was
	// followed; 0 unknown (a marker written before it was recorded).
	markerSize int64
	caughtUp   time.Time // the last moment nothing of it was known to be unfollowed (LagSeconds)
	behind     int
	adopted    int64
	removed    int64
	lastErr    string
	// recent: block records of its last packs (peerLookBack), for a file
	// whose journal entry is in a later pack than some of its blocks (the
	// pack rolled between them). Follower only.
	recent map[uint32]map[index.Hash]index.Block
	listed []backend.Info // its packs at the last listing, ascending
}

type follower struct {
	s      *Store
	dir    string // DATA/peers
	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	lastHB time.Time // follower goroutine only

	mu      sync.Mutex
	peers   map[string]*peer
	changed chan struct{} // closed and replaced at the end of every pass
	failing bool
	// recs: the records of the last successful listing (listed), for
	// the deletion bound (deleteLimits); expired: the front-ends warned
	// about as no longer holding deletions.
	recs    map[string]peerRecord
	listed  bool
	limits  map[string]int64 // deleteLimits at that listing
	expired map[string]bool
}

func newFollower(s *Store) (*follower, error) {
	dir := filepath.Join(s.cfg.Dir, peerDirName)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &follower{s: s, dir: dir, kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), peers: map[string]*peer{}, changed: make(chan struct{}), expired: map[string]bool{}}, nil
}

func (f *follower) stop() {
	f.cancel()
	<-f.done
}

func (f *follower) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *follower) run() {
	defer close(f.done)
	for {
		err := f.pass()
		f.mu.Lock()
		switch {
		case err != nil && f.ctx.Err() == nil && !f.failing:
			f.failing = true
			f.s.log.Warn("following the other front-ends failed; retried every interval", "err", err)
		case err == nil && f.failing:
			f.failing = false
			f.s.log.Info("following the other front-ends again")
		}
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
		t := time.NewTimer(f.s.cfg.PeerInterval)
		select {
		case <-f.ctx.Done():
			t.Stop()
			return
		case <-f.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// pass is one heartbeat (when due) and one round over the peers. The
// error is the first failure (for the WARN); every peer is tried.
func (f *follower) pass() error {
	var first error
	if time.Since(f.lastHB) >= f.s.cfg.PeerHeartbeat {
		if err := f.heartbeat(); err != nil {
			first = err
		} else {
			f.lastHB = time.Now()
		}
	}
	recs, err := f.listPeers()
	if err != nil {
		return errors.Join(first, err)
	}
	f.listedPeers(recs)
	if f.s.cfg.OpenPrefix == nil {
		return first
	}
	for _, id := range slices.Sorted(mapKeys(recs)) {
		if f.ctx.Err() != nil {
			return nil
		}
		p, err := f.peer(id, recs[id])
		if err == nil {
			err = f.follow(p)
		}
		f.mu.Lock()
		if p != nil {
			p.lastErr = ""
			if err != nil {
				p.lastErr = oneLine(err.Error())
			}
		}
		f.mu.Unlock()
		if err != nil && first == nil && f.ctx.Err() == nil {
			first = fmt.Errorf("front-end %s: %w", id, err)
		}
	}
	return first
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (f *follower) heartbeat() error {
	c := f.s.claims
	followed, err := f.followed()
	if err != nil {
		return err
	}
	rec := peerRecord{Prefix: f.s.cfg.RemotePrefix, Location: f.s.cfg.Remote.Location(), Time: time.Now().Unix(), Followed: followed}
	body, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.s.cfg.AckTimeout)
	defer cancel()
	if err := c.b.Put(ctx, peerPrefix+hex.EncodeToString(c.id[:]), strings.NewReader(string(body)), int64(len(body))); err != nil {
		return fmt.Errorf("heartbeat %s%x in %s: %w", peerPrefix, c.id, c.b.Location(), err)
	}
	return nil
}

// followed reads the markers of DATA/peers, for the registry record.
// Read from the files (each written once its pack is done) rather than
// the follower's state: at a restart, before the first listing, they
// are known already.
func (f *follower) followed() (map[string]uint32, error) {
	ents, err := os.ReadDir(f.dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	out := map[string]uint32{}
	for _, de := range ents {
		id, ok := strings.CutSuffix(de.Name(), ".marker")
		if !ok || len(id) != 32 || de.IsDir() {
			continue
		}
		m, _, err := f.readMarker(id)
		if err != nil {
			return nil, err
		}
		out[id] = m
	}
	return out, nil
}

// listedPeers keeps the records of a successful listing for
// deleteLimits. When the bound differs from the last listing's (a
// front-end followed more of our packs, expired, appeared or was
// deleted), the uploader looks for deletable objects again. A
// front-end found expired is warned about once (again if it comes back
// and expires again).
func (f *follower) listedPeers(recs map[string]peerRecord) {
	now := time.Now()
	f.mu.Lock()
	known, before := f.listed, f.limits
	f.recs, f.listed = recs, true
	after, _ := f.limitsLocked(now)
	f.limits = after
	var expired []string
	for _, id := range slices.Sorted(mapKeys(recs)) {
		old := now.Sub(time.Unix(recs[id].Time, 0)) >= f.s.cfg.PeerExpiry
		if old && !f.expired[id] {
			expired = append(expired, id)
		}
		f.expired[id] = old
	}
	f.mu.Unlock()
	for _, id := range expired {
		rec := recs[id]
		f.s.log.Warn("a front-end of the group has not written its registry record for longer than the peer expiry: the objects of our retired packs are deleted without waiting for it to follow them; "+
			"if it comes back it may be stuck at a pack of ours that is gone; if it was retired for good, delete its record",
			"front_end", id, "record", peerPrefix+id, "packs", rec.Location, "heartbeat", time.Unix(rec.Time, 0).UTC().Format(time.RFC3339),
			"peer_expiry", f.s.cfg.PeerExpiry)
	}
	if !known || !maps.Equal(before, after) {
		f.s.wantBucketDeletes()
	}
}

// deleteLimits is the bound on deleting our packs' objects (remotegc.go):
// per live front-end (its record younger than PeerExpiry), the highest
// of our pack ids whose object it will not read any more: its marker
// for us (0 if it has none) less peerLookBack, since lookBack may read
// that many packs below the one being followed. known is false until a
// listing succeeded since Open: then nothing may be deleted.
func (f *follower) deleteLimits() (limits map[string]int64, known bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limitsLocked(time.Now())
}

func (f *follower) limitsLocked(now time.Time) (map[string]int64, bool) {
	if !f.listed {
		return nil, false
	}
	self := hex.EncodeToString(f.s.claims.id[:])
	limits := map[string]int64{}
	for id, rec := range f.recs {
		if now.Sub(time.Unix(rec.Time, 0)) < f.s.cfg.PeerExpiry {
			limits[id] = int64(rec.Followed[self]) - peerLookBack
		}
	}
	return limits, true
}

// listPeers reads every registry record but ours.
func (f *follower) listPeers() (map[string]peerRecord, error) {
	c := f.s.claims
	self := hex.EncodeToString(c.id[:])
	var names []backend.Info
	if err := c.b.List(f.ctx, peerPrefix, func(in backend.Info) error {
		names = append(names, in)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", peerPrefix, c.b.Location(), err)
	}
	recs := map[string]peerRecord{}
	for _, in := range names {
		id := strings.TrimPrefix(in.Name, peerPrefix)
		if id == self || len(id) != 32 || strings.Contains(id, "/") {
			continue
		}
		if in.Size > peerMaxRecord {
			continue
		}
		p := make([]byte, in.Size)
		if err := c.b.ReadAt(f.ctx, in.Name, p, 0); err != nil {
			if backend.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("read %s in %s: %w", in.Name, c.b.Location(), err)
		}
		var rec peerRecord
		if err := json.Unmarshal(p, &rec); err != nil {
			f.s.log.Warn("ignoring an unreadable front-end record", "object", in.Name, "err", err)
			continue
		}
		recs[id] = rec
	}
	return recs, nil
}

// peer returns the state of peer id, its backend opened on rec's prefix
// and its marker read.
func (f *follower) peer(id string, rec peerRecord) (*peer, error) {
	f.mu.Lock()
	p := f.peers[id]
	f.mu.Unlock()
	if p == nil {
		m, size, err := f.readMarker(id)
		if err != nil {
			return nil, err
		}
		p = &peer{id: id, marker: m, markerSize: size, caughtUp: time.Now()}
		f.mu.Lock()
		f.peers[id] = p
		f.mu.Unlock()
	}
	f.mu.Lock()
	p.rec = rec
	f.mu.Unlock()
	if p.b == nil || p.bPrefix != rec.Prefix {
		b, err := f.s.cfg.OpenPrefix(rec.Prefix)
		if err != nil {
			return p, fmt.Errorf("open its packs prefix %q: %w", rec.Prefix, err)
		}
		p.b, p.bPrefix, p.listed = b, rec.Prefix, nil // a full listing of the new prefix next
	}
	return p, nil
}

func (f *follower) markerFile(id string) string { return id + ".marker" }

func (f *follower) readMarker(id string) (marker uint32, size int64, err error) {
	name := filepath.Join(f.dir, f.markerFile(id))
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: %w", err)
	}
	// "ID SIZE"; "ID" alone before the size was recorded.
	fields := strings.Fields(string(b))
	if len(fields) == 0 || len(fields) > 2 {
		return 0, 0, fmt.Errorf("store: %s: want a pack id and its size: remove it to follow that front-end from its first pack again", name)
	}
	v, err := strconv.ParseUint(fields[0], 10, 32)
	if err == nil && len(fields) == 2 {
		size, err = strconv.ParseInt(fields[1], 10, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: %s: not a pack id and size: %w; remove it to follow that front-end from its first pack again", name, err)
	}
	return uint32(v), size, nil
}

// follow takes every pack of p above its marker, in order. It lists p's
// packs from the peerLookBack-th at or below the marker in the last
// listing on (listFrom): the packs above the marker, and lookBack's
// candidates for the first of them. A follower that is caught up lists
// peerLookBack objects a pass, not every pack of p; the first pass (no
// listing yet) lists them all.
func (f *follower) follow(p *peer) error {
	var listed map[uint32]backend.Info
	var err error
	if from := listFrom(p); from > 0 {
		listed, err = listPackObjectsAfter(f.ctx, p.b, from-1)
	} else {
		listed, err = listPackObjects(f.ctx, p.b)
	}
	if err != nil {
		return err
	}
	ids := slices.Sorted(maps.Keys(listed))
	all := make([]backend.Info, 0, len(ids))
	var objs []backend.Info
	for _, id := range ids {
		all = append(all, listed[id])
		// The marker's pack again if its object grew: the uploader put
		// it again whole after an upload that went stale (remote.go),
		// and only the newest object can (packs are uploaded in order).
		if id > p.marker || id == p.marker && p.markerSize != 0 && listed[id].Size != p.markerSize {
			objs = append(objs, listed[id])
		}
	}
	p.listed = all
	f.setBehind(p, len(objs))
	for i, in := range objs {
		if f.ctx.Err() != nil {
			return nil
		}
		id, _ := parsePackName(strings.TrimPrefix(in.Name, remotePackPrefix))
		if err := f.followPack(p, id, in); err != nil {
			return err
		}
		if err := writeIDFile(f.dir, f.markerFile(p.id), fmt.Sprintf("%d %d", id, in.Size)); err != nil {
			return err
		}
		f.mu.Lock()
		p.marker, p.markerSize = id, in.Size
		f.mu.Unlock()
		f.setBehind(p, len(objs)-i-1)
	}
	return nil
}

// listFrom returns the pack id follow lists p's packs from: the
// peerLookBack-th of the last listing at or below the marker (the
// marker's pack counted), or 0 (from the start) while the last listing
// has fewer, or none. The packs listed from there are those lookBack
// looks at for the pack after the marker, as a full listing's would be.
func listFrom(p *peer) uint32 {
	n := 0
	for i := len(p.listed) - 1; i >= 0; i-- {
		id, _ := parsePackName(strings.TrimPrefix(p.listed[i].Name, remotePackPrefix))
		if id > p.marker {
			continue
		}
		if n++; n == peerLookBack {
			return id
		}
	}
	return 0
}

// lag is PeerStatus.LagSeconds (f.mu held).
func (p *peer) lag() float64 {
	if p.behind == 0 {
		return 0
	}
	return time.Since(p.caughtUp).Seconds()
}

func (f *follower) setBehind(p *peer, n int) {
	f.mu.Lock()
	if p.behind == 0 {
		p.caughtUp = time.Now() // caught up until this listing
	}
	if p.behind = n; n == 0 {
		p.caughtUp = time.Now()
	}
	f.mu.Unlock()
}

// peerPack is a downloaded pack of a peer.
type peerPack struct {
	*os.File
	id uint32
}

// remember keeps pack id's block records in p.recent, dropping all but
// the newest peerLookBack packs.
func (f *follower) remember(p *peer, id uint32, blocks map[index.Hash]index.Block) {
	if p.recent == nil {
		p.recent = map[uint32]map[index.Hash]index.Block{}
	}
	p.recent[id] = blocks
	for len(p.recent) > peerLookBack+1 {
		delete(p.recent, slices.Min(slices.Collect(mapKeys(p.recent))))
	}
}

// lookBack finds block h in one of p's packs before id: the ones in
// p.recent, else (after a restart) those listed, scanned by range from
// its bucket prefix. It returns the block's bytes, checked.
func (f *follower) lookBack(p *peer, id uint32, h index.Hash) ([]byte, bool, error) {
	find := func() (index.Block, bool) {
		for pid, m := range p.recent {
			if loc, ok := m[h]; ok && pid != id {
				return loc, true
			}
		}
		return index.Block{}, false
	}
	loc, ok := find()
	if !ok {
		n := 0
		for i := len(p.listed) - 1; i >= 0 && n < peerLookBack; i-- {
			in := p.listed[i]
			pid, _ := parsePackName(strings.TrimPrefix(in.Name, remotePackPrefix))
			if pid >= id {
				continue
			}
			n++
			if _, ok := p.recent[pid]; ok {
				continue
			}
			blocks := map[index.Hash]index.Block{}
			r := &windowReader{r: backendReader{ctx: f.ctx, b: p.b, name: in.Name}, size: in.Size}
			if _, err := scanPack(r, pid, in.Size, false, func(off int64, rh recordHeader, _ []byte) error {
				if rh.Codec != codecJournal {
					blocks[rh.Hash] = index.Block{Pack: pid, Offset: off, RawLen: rh.RawLen, StoredLen: rh.StoredLen, Codec: rh.Codec}
				}
				return nil
			}); err != nil {
				return nil, false, err
			}
			p.recent[pid] = blocks
		}
		if loc, ok = find(); !ok {
			return nil, false, nil
		}
	}
	rec, payload, err := readRecord(backendReader{ctx: f.ctx, b: p.b, name: packObjectName(loc.Pack)}, loc.Offset, &loc)
	if err != nil {
		return nil, false, err
	}
	raw, err := f.s.decodeRecord(h, &loc, rec, payload, true)
	return raw, err == nil, err
}

// backendReader reads an object by range.
type backendReader struct {
	ctx  context.Context
	b    backend.Backend
	name string
}

func (r backendReader) ReadAt(p []byte, off int64) (int, error) {
	if err := r.b.ReadAt(r.ctx, r.name, p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

// followPack adopts the files pack id of p names and applies its
// removals, in the order of its batches (steps 3 and 4).
func (f *follower) followPack(p *peer, id uint32, in backend.Info) error {
	dir := filepath.Join(f.dir, p.id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	name := packFileName(dir, id)
	if fi, err := os.Stat(name); err == nil && fi.Size() != in.Size {
		os.Remove(name) // a download of the object before it grew (ours to drop)
	}
	if _, err := fetchPack(f.ctx, p.b, dir, id, in); err != nil {
		return err
	}
	file, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer file.Close()
	blocks := map[index.Hash]index.Block{}
	var entries []jentry // jeFile and jeRemove, in journal order
	_, err = scanPack(file, id, in.Size, false, func(off int64, h recordHeader, payload []byte) error {
		if h.Codec != codecJournal {
			blocks[h.Hash] = index.Block{Pack: id, Offset: off, RawLen: h.RawLen, StoredLen: h.StoredLen, Codec: h.Codec}
			return nil
		}
		r, err := decodeJournal(payload)
		if err != nil {
			f.s.log.Warn("skipping an undecodable journal record of a front-end's pack", "front_end", p.id, "pack", in.Name, "offset", off, "err", err)
			return nil
		}
		if r.typ != jrBatch {
			return nil
		}
		for _, e := range r.entries {
			// A copy (the peer adopted it, or followed a removal) is
			// followed at its origin.
			if !e.copied && (e.kind == jeFile && e.file != nil || e.kind == jeRemove) {
				entries = append(entries, e)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	f.remember(p, id, blocks)
	for _, e := range entries {
		if f.ctx.Err() != nil {
			return f.ctx.Err()
		}
		var path string
		var err error
		switch e.kind {
		case jeFile:
			path = e.file.Path()
			err = f.adopt(p, peerPack{file, id}, blocks, e.file)
		case jeRemove:
			path = joinPath(e.dirName, e.name)
			err = f.remove(p, path)
		}
		if err != nil {
			return fmt.Errorf("%s (pack %s, retried): %w", path, in.Name, err)
		}
	}
	file.Close()
	os.Remove(name)
	return nil
}

// adopt commits fe here unless it is held already. A nil error means
// done (adopted, held, or refused by its claim).
func (f *follower) adopt(p *peer, pack peerPack, blocks map[index.Hash]index.Block, fe *index.File) error {
	s := f.s
	path := fe.Path()
	if cur, err := s.lookup(path); err == nil && cur.HashKind == fe.HashKind && cur.Hash == fe.Hash && cur.Size == fe.Size {
		return nil
	}
	if fe.BlockSize != uint32(s.cfg.BlockSize) {
		s.log.Warn("not adopting a front-end's file written at another block size", "front_end", p.id, "path", path,
			"block_size", fe.BlockSize, "ours", s.cfg.BlockSize)
		return nil
	}
	u, err := s.Create(path, FileMeta{Mode: fs.FileMode(fe.Mode).Perm(), MTime: time.Unix(0, fe.MTime),
		Origin: Origin{Interface: originPeer, Peer: p.id}})
	if err != nil {
		return err
	}
	for i, h := range fe.Blocks {
		n := min(int64(fe.BlockSize), fe.Size-int64(i)*int64(fe.BlockSize))
		var raw []byte
		switch pb, ok := blocks[h]; {
		case h.IsZero():
			raw = s.zero[:n]
		case ok:
			rec, payload, rerr := readRecord(pack, pb.Offset, &pb)
			if rerr == nil {
				raw, rerr = s.decodeRecord(h, &pb, rec, payload, false)
			}
			if rerr != nil {
				u.Abort()
				return rerr
			}
		default:
			if found, _ := s.find(h); found {
				b, berr := s.block(h, nil, false)
				if berr != nil {
					u.Abort()
					return berr
				}
				raw = b
				break
			}
			b, ok, berr := f.lookBack(p, pack.id, h)
			if berr != nil || !ok {
				u.Abort()
				if berr == nil {
					berr = fmt.Errorf("block %d (%s) is neither in the pack, nor in its %d before, nor here", i, h, peerLookBack)
				}
				return berr
			}
			raw = b
		}
		if int64(len(raw)) != n {
			u.Abort()
			return fmt.Errorf("block %d is %d bytes, the file's record says %d", i, len(raw), n)
		}
		if _, err := u.Write(raw); err != nil {
			u.Abort()
			return err
		}
	}
	info, err := u.Commit()
	if errors.Is(err, ErrExists) {
		s.log.Warn("not adopting a front-end's file: its content is not what the name's claim names", "front_end", p.id, "path", path, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	if info.Hash != fe.Hash {
		s.log.Warn("adopted a front-end's file whose hash differs from its record", "front_end", p.id, "path", path)
	}
	f.mu.Lock()
	p.adopted++
	f.mu.Unlock()
	return nil
}

// remove applies a removal of p's (step 4): as a local rm, so that it is
// journaled here (marked copied) and GC reclaims the space. A name not
// held here (never adopted, removed here already, refused by its claim)
// is nothing to do.
func (f *follower) remove(p *peer, path string) error {
	err := f.s.remove(path, true)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	p.removed++
	f.mu.Unlock()
	return nil
}

func (f *follower) status() []PeerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []PeerStatus
	for _, id := range slices.Sorted(mapKeys(f.peers)) {
		p := f.peers[id]
		out = append(out, PeerStatus{ID: id, Packs: p.rec.Location, HeartbeatAgeSeconds: max(0, time.Since(time.Unix(p.rec.Time, 0)).Seconds()),
			Marker: p.marker, PacksBehind: p.behind, LagSeconds: p.lag(), Adopted: p.adopted, Removed: p.removed, LastError: p.lastErr})
	}
	return out
}

// elsewhere is the lookup hook: path is neither in the index nor landed.
// It returns the file if it arrived from another front-end within
// PeerWait, ErrElsewhere if another front-end holds it, an ErrClaims
// error if its claim could not be read, and (nil, nil) if nobody else
// claims it (the caller's ErrNotFound stands).
func (s *Store) elsewhere(path string) (*index.File, error) {
	c := s.claims
	if c == nil {
		return nil, nil
	}
	dir, name, err := SplitPath(path)
	if err != nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.AckTimeout)
	defer cancel()
	rec, err := c.read(ctx, claimObject(dir, name))
	if backend.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s (%s): its claim is unreadable: %s; retry", ErrClaims, c.b.Location(), path, oneLine(err.Error()))
	}
	if rec.Claimant == c.id || rec.Path != joinPath(dir, name) {
		return nil, nil // ours: removed here, or a commit that failed after its claim
	}
	if fl := s.fl; fl != nil {
		deadline := time.NewTimer(s.cfg.PeerWait)
		defer deadline.Stop()
	wait:
		for {
			// A pass after every pass while someone waits: the pack may
			// reach the bucket just after one began.
			fl.mu.Lock()
			ch := fl.changed
			fl.mu.Unlock()
			fl.poke()
			if f, err := s.lookup(path); err == nil {
				return f, nil
			}
			select {
			case <-ch:
			case <-deadline.C:
				break wait
			case <-s.closing:
				break wait
			}
		}
		if f, err := s.lookup(path); err == nil {
			return f, nil
		}
	}
	return nil, elsewhereError(fmt.Sprintf("store: %s is archived by front-end %x (claimed at %s) and not readable here yet: its pack is not in the bucket yet, or the follower is behind; retry",
		path, rec.Claimant, time.Unix(rec.Time, 0).UTC().Format(time.RFC3339)))
}

// elsewhereError is ErrElsewhere with its detail.
type elsewhereError string

func (e elsewhereError) Error() string        { return string(e) }
func (e elsewhereError) Is(target error) bool { return target == ErrElsewhere }
