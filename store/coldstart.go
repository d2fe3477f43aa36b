package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
)

// A cold start: a new front-end rebuilds an empty data directory from the
// bucket, reading the newest index snapshot (snapshot.go) and the packs
// written after it instead of every pack (FetchPacks + Repair, which
// remains the way when the bucket holds no usable snapshot).
//
//  1. List snapshots/ and decode the newest; one that fails (damaged,
//     truncated, tampered, another store's) is reported and the next
//     older one is tried. None: ErrNoSnapshot.
//  2. List packs/. Every listed pack at or above the snapshot's ScanFrom,
//     and every pack whose object size differs from the snapshot's
//     committed length or which the snapshot does not know, is
//     downloaded as FetchPacks does (temporary file, fsync, checks,
//     rename) and scanned as Repair scans.
//  3. The base is the snapshot's records, or a complete checkpoint found
//     in the scanned packs if that is newer; the journal batches after it
//     are replayed as Repair replays them (the chain from the newest).
//     Block locations: the snapshot's, for blocks in packs the bucket
//     still holds, overridden by what the scan found (a later copy wins).
//  4. Check: the chain reaches the base, and every block a file needs has
//     a location. If not (a race at snapshot time put a record below
//     ScanFrom, see snapshot.go), the scan goes further down, 1, 2, 4 …
//     more packs at a time, until it holds or every pack is scanned; what
//     is still missing then is reported as Repair reports it.
//  5. Derive counts and live bytes (rebuilt.account); every pack is
//     marked uploaded, those not downloaded evicted (DATA/packs-evicted is
//     written first, so an offline repair refuses the store), the
//     snapshot's retired packs still in the bucket stay retired (GC deletes
//     their objects); DATA/bucket.id takes the bucket's id; the index is
//     written as Repair writes it (index.repair, rename, fsync); then the
//     store is opened and a journal checkpoint written (checkpointRebuilt).
//
// Nothing in the bucket is changed. A crash anywhere leaves no index/ (or
// the complete new one); running it again finishes, keeping the packs
// already downloaded.

// ErrNoSnapshot: the bucket holds no index snapshot that can be used.
var ErrNoSnapshot = errors.New("store: the bucket holds no usable index snapshot")

// ColdStartReport says what RebuildFromBucket did.
type ColdStartReport struct {
	RepairReport
	Snapshot SnapshotInfo `json:"snapshot"`
	// SkippedSnapshots: newer snapshots that could not be used, and why.
	SkippedSnapshots []string `json:"skipped_snapshots,omitempty"`
	// Base: "snapshot", or "checkpoint" when a checkpoint in the packs
	// written after the snapshot was newer.
	Base         string `json:"base"`
	ScanFrom     uint32 `json:"scan_from"`   // the lowest pack scanned
	Corrections  int    `json:"corrections"` // times the scan went further down
	BucketPacks  int    `json:"bucket_packs"`
	FetchedPacks int    `json:"fetched_packs"` // downloaded now (Skipped: already here)
	Skipped      int    `json:"skipped"`
	FetchedBytes int64  `json:"fetched_bytes"`
	EvictedPacks int    `json:"evicted_packs"` // left in the bucket only
	EvictedBytes int64  `json:"evicted_bytes"`
	// Seconds of each step: reading the snapshot, downloading, scanning
	// and replaying, writing the index.
	SnapshotSeconds float64 `json:"snapshot_seconds"`
	FetchSeconds    float64 `json:"fetch_seconds"`
	ScanSeconds     float64 `json:"scan_seconds"`
	WriteSeconds    float64 `json:"write_seconds"`
}

// RebuildFromBucket rebuilds the empty data directory cfg.Dir from the
// bucket b (the steps above). It fails with ErrNoSnapshot, changing
// nothing but DATA/packs/ being created, when no snapshot can be used.
func RebuildFromBucket(ctx context.Context, cfg Config, b backend.Backend, opts RepairOptions) (ColdStartReport, error) {
	start := time.Now()
	rep := ColdStartReport{RepairReport: RepairReport{Problems: []Problem{}, UnnamedPacks: []uint32{}}}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return rep, err
	}
	if has, err := nonEmptyDir(filepath.Join(cfg.Dir, "index")); err != nil || has {
		if err == nil {
			err = fmt.Errorf("%s holds an index: rebuild into an empty data directory (a new one, or move this one away)", cfg.Dir)
		}
		return rep, fmt.Errorf("store: rebuild from the bucket: %w", err)
	}
	packDir := filepath.Join(cfg.Dir, "packs")
	if err := os.MkdirAll(packDir, 0o750); err != nil {
		return rep, fmt.Errorf("store: rebuild from the bucket: %w", err)
	}
	unlock, err := lockForRepair(cfg.Dir)
	if err != nil {
		return rep, err
	}
	defer unlock()
	storeID, err := readRemoteBucketID(ctx, b)
	if err != nil {
		return rep, fmt.Errorf("store: read %s from %s: %w", bucketIDObject, b.Location(), err)
	}
	sn, err := newestSnapshot(ctx, b, storeID, filepath.Join(cfg.Dir, "snapshot.fetch"), &rep)
	if err != nil {
		return rep, err
	}
	rep.Snapshot = sn.info
	rep.SnapshotSeconds = time.Since(start).Seconds()

	objs, err := listPackObjects(ctx, b)
	if err != nil {
		return rep, err
	}
	ids := slices.Sorted(maps.Keys(objs))
	rep.BucketPacks = len(ids)
	known := map[uint32]snapPack{}
	for _, p := range sn.packs {
		known[p.id] = p
	}
	// Packs the snapshot cannot stand for: scanned whatever ScanFrom says.
	must := map[uint32]bool{}
	for _, id := range ids {
		p, ok := known[id]
		if id < sn.info.ScanFrom && (!ok || !p.retired && p.committed != objs[id].Size) {
			must[id] = true
		}
	}
	// The snapshot's block locations in packs the bucket still holds (in
	// place: at a million segments the map holds 16 million blocks).
	for h, bl := range sn.blocks {
		p, ok := known[bl.Pack]
		if _, in := objs[bl.Pack]; !ok || p.retired || !in {
			delete(sn.blocks, h)
		}
	}

	scanFrom := sn.info.ScanFrom
	var r *rebuilt
	var scans []packScan
	for step := 1; ; step *= 2 {
		t := time.Now()
		scanIDs := slices.DeleteFunc(slices.Clone(ids), func(id uint32) bool { return id < scanFrom && !must[id] })
		if err := rep.fetch(ctx, b, packDir, scanIDs, objs); err != nil {
			return rep, err
		}
		rep.FetchSeconds += time.Since(t).Seconds()
		t = time.Now()
		var short error
		// The same map each attempt: an attempt scans a superset of the
		// last one's packs in id order, so every location a scan set is set
		// again, or replaced by a later copy, as in a first attempt.
		r, scans, short, err = replayOnSnapshot(ctx, sn, sn.blocks, packDir, scanIDs, &rep)
		rep.ScanSeconds += time.Since(t).Seconds()
		if err != nil {
			return rep, err
		}
		lower := slices.DeleteFunc(slices.Clone(ids), func(id uint32) bool { return id >= scanFrom || must[id] })
		if short == nil || len(lower) == 0 {
			if short != nil {
				if !opts.Force && errors.Is(short, ErrJournalBroken) {
					return rep, short
				}
				rep.Problems = append(rep.Problems, Problem{Kind: ProblemPack, Path: b.Location(), Err: short.Error()})
			}
			rep.ScanFrom = scanFrom
			break
		}
		cfg.Logger.Info("cold start: the packs after the snapshot do not hold everything it lacks; scanning further down",
			"why", short, "scan_from", scanFrom, "more", min(step, len(lower)))
		scanFrom = lower[max(0, len(lower)-step)]
		rep.Corrections++
	}

	t := time.Now()
	scanned := map[uint32]bool{}
	for _, ps := range scans {
		scanned[ps.ID] = true
	}
	inSnap := map[uint32]int{} // blocks of each pack the snapshot stands for
	for _, bl := range r.blocks {
		if !scanned[bl.Pack] {
			inSnap[bl.Pack]++
		}
	}
	for _, id := range ids {
		p, ok := known[id]
		if scanned[id] || !ok || p.retired {
			continue
		}
		n := inSnap[id]
		ps := packScan{ID: id, Size: p.committed, End: p.committed, Blocks: n}
		if n == 0 {
			ps.Journal = 1 // journal records only, or dead: kept and accounted for
		}
		scans = append(scans, ps)
		r.packSeq[id] = max(r.packSeq[id], p.maxSeq)
	}
	slices.SortFunc(scans, func(a, b packScan) int { return int(a.ID) - int(b.ID) })
	r.account(scans, packDir, &rep.RepairReport)
	evicted := false
	for _, p := range r.packs {
		p.Uploaded = true
		if !scanned[p.ID] {
			p.Evicted, evicted = true, true
			rep.EvictedPacks++
			rep.EvictedBytes += p.Committed
		}
	}
	for _, id := range ids {
		if p, ok := known[id]; ok && p.retired && !scanned[id] {
			// Retired at snapshot time, its object not deleted yet: GC
			// deletes it (remotegc.go).
			r.packs = append(r.packs, &index.Pack{ID: id, Committed: objs[id].Size, Retired: true, Uploaded: true, MaxSeq: p.maxSeq})
		}
	}
	r.journal.HighSeq = max(r.journal.HighSeq, sn.high)
	if evicted {
		if err := writeEvictedMarker(cfg.Dir); err != nil {
			return rep, err
		}
	}
	if storeID != "" {
		if err := writeLocalBucketID(cfg.Dir, storeID); err != nil {
			return rep, err
		}
	}
	if err := writeIndex(cfg, r, &rep.RepairReport, opts.Progress); err != nil {
		return rep, err
	}
	unlock()
	if err := checkpointRebuilt(ctx, cfg); err != nil {
		return rep, err
	}
	rep.WriteSeconds = time.Since(t).Seconds()
	rep.RebuildSeconds = time.Since(start).Seconds()
	rep.Seconds = rep.RebuildSeconds
	return rep, nil
}

// checkpointRebuilt opens the rebuilt store and writes a journal
// checkpoint into a new local pack (serve uploads it): the journal's base
// is then in the packs again, as verify and GC expect, not only in the
// snapshot. Opened without the bucket, it reads no evicted pack.
func checkpointRebuilt(ctx context.Context, cfg Config) error {
	cfg.MustExist, cfg.Remote = true, nil
	s, err := Open(cfg)
	if err != nil {
		return fmt.Errorf("store: open the rebuilt store: %w", err)
	}
	if err := s.checkpoint(ctx); err != nil {
		s.Close()
		return err
	}
	return s.Close()
}

// newestSnapshot decodes the newest usable snapshot.
func newestSnapshot(ctx context.Context, b backend.Backend, storeID, tmp string, rep *ColdStartReport) (*snapshot, error) {
	snaps, err := listSnapshots(ctx, b)
	if err != nil {
		return nil, err
	}
	for _, in := range snaps {
		sn, err := readSnapshot(ctx, b, in, tmp)
		if err == nil && storeID != "" && sn.id != "" && sn.id != storeID {
			err = fmt.Errorf("store: snapshot %s was written by store %s, the bucket prefix belongs to %s", in.Name, sn.id, storeID)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.SkippedSnapshots = append(rep.SkippedSnapshots, err.Error())
			continue
		}
		return sn, nil
	}
	if len(snaps) == 0 {
		return nil, fmt.Errorf("%w: %s has no objects %s*.snap", ErrNoSnapshot, b.Location(), remoteSnapPrefix)
	}
	return nil, fmt.Errorf("%w: %s", ErrNoSnapshot, strings.Join(rep.SkippedSnapshots, "; "))
}

// fetch downloads the listed packs of ids not yet in packDir.
func (rep *ColdStartReport) fetch(ctx context.Context, b backend.Backend, packDir string, ids []uint32, objs map[uint32]backend.Info) error {
	want := map[uint32]backend.Info{}
	for _, id := range ids {
		if fi, err := os.Stat(packFileName(packDir, id)); err != nil || fi.Size() != objs[id].Size {
			want[id] = objs[id] // not yet here (an earlier attempt's are)
		}
	}
	return fetchPackObjects(ctx, b, packDir, want, func(_ uint32, in backend.Info, skipped bool) {
		if skipped {
			rep.Skipped++
		} else {
			rep.FetchedPacks++
			rep.FetchedBytes += in.Size
		}
	})
}

// replayOnSnapshot scans the packs ids (local now), and replays the
// journal after the base (steps 3 and 4). short says what the packs
// scanned so far do not cover: a broken chain (ErrJournalBroken) or blocks
// without a location.
func replayOnSnapshot(ctx context.Context, sn *snapshot, blocks map[index.Hash]*blockLoc, packDir string, ids []uint32, rep *ColdStartReport) (*rebuilt, []packScan, error, error) {
	sc := &storeScan{dir: packDir, blocks: blocks, batches: map[uint64][]jrecMeta{}, ckpts: map[uint64]*ckptMeta{}}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, nil, nil, err
		}
		ps, err := sc.scanOne(id, -1, true)
		if err != nil {
			return nil, nil, nil, err
		}
		sc.packs = append(sc.packs, ps)
	}
	rr := &rep.RepairReport
	rr.Problems = rr.Problems[:0]
	sc.report(rr)
	r := newRebuilt(sc.blocks)
	for seq, parts := range sc.batches {
		for _, m := range parts {
			r.packSeq[m.pack] = max(r.packSeq[m.pack], seq)
		}
	}
	floor := sn.info.Seq
	ckptID, ckpt := sc.newestCheckpoint()
	if ckpt != nil && ckpt.seq > floor {
		floor, rep.Base = ckpt.seq, "checkpoint"
		r.journal.CkptSeq, r.journal.CkptID = ckpt.seq, ckptID
	} else {
		ckpt, rep.Base = nil, "snapshot"
		for _, d := range sn.dirs {
			dd := *d // account counts into it
			r.dirs[d.Name] = &dd
		}
		for _, f := range sn.files {
			r.files[fileKeyOf(f.Dir, f.Name)] = f
		}
	}
	chain, head, short := sc.chain(floor)
	rr.CheckpointSeq, rr.HeadSeq, rr.Batches = floor, max(head, floor), len(chain)
	if err := sc.replay(ctx, r, ckpt, chain); err != nil {
		return nil, nil, nil, err
	}
	r.journal.LastSeq, r.journal.Covered = max(head, floor), true
	for seq := range sc.batches {
		r.journal.HighSeq = max(r.journal.HighSeq, seq)
	}
	if short == nil {
		missing := 0
		for _, f := range r.files {
			for _, h := range f.Blocks {
				if !h.IsZero() && r.blocks[h] == nil {
					missing++
				}
			}
		}
		if missing > 0 {
			short = fmt.Errorf("%d blocks files use are in no pack scanned or named by the snapshot", missing)
		}
	}
	return r, sc.packs, short, nil
}
