package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/walrus-archive/walrus/index"
)

// ProblemIndex is the kind of problem where the index and the packs
// disagree: a pack file the index does not know, a file or namespace whose
// record differs from what the pack journal says, or a journal that cannot
// be read back. walrus repair rebuilds the index from the packs.
const ProblemIndex = "index"

// verifyJournal checks the pack files against the index: every header,
// that the index knows every pack file, and that replaying the pack
// journal (the checkpoint the index names and the chain of batches to its
// last one) yields exactly the index's file and namespace records. dir
// limits the file comparison ("*": all). It holds gcMu, so that no pack it
// reads is retired meanwhile; commits go on (the comparison is against one
// index snapshot, and records written after it are ignored).
func (s *Store) verifyJournal(ctx context.Context, dir string) []Problem {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	v := &journalCheck{s: s, dir: dir}
	if err := v.snapshot(); err != nil {
		return []Problem{{Kind: ProblemIndex, Path: "index", Err: err.Error()}}
	}
	v.scanPacks()
	if err := v.compare(ctx); err != nil {
		v.add("", fmt.Sprintf("pack journal: %v", err))
	}
	return v.problems
}

type journalCheck struct {
	s        *Store
	dir      string
	j        *index.Journal
	packs    map[uint32]*index.Pack
	created  map[uint32]bool
	files    map[string]*index.File
	dirs     map[string]*index.Dir
	sc       *storeScan
	problems []Problem
}

func (v *journalCheck) add(path, msg string) {
	if path == "" {
		path = v.s.packs.dir
	}
	v.problems = append(v.problems, Problem{Kind: ProblemIndex, Path: path, Err: msg})
}

// snapshot reads, in one index snapshot, the journal state, the pack
// records and every file and namespace record.
func (v *journalCheck) snapshot() error {
	v.packs, v.created = map[uint32]*index.Pack{}, map[uint32]bool{}
	v.files, v.dirs = map[string]*index.File{}, map[string]*index.Dir{}
	return v.s.idx.View(func(x *index.Txn) error {
		var err error
		if v.j, _, err = x.Journal(); err != nil {
			return err
		}
		if err := x.Packs(func(p *index.Pack) error { v.packs[p.ID] = p; return nil }); err != nil {
			return err
		}
		if err := x.NewPacks(func(id uint32) error { v.created[id] = true; return nil }); err != nil {
			return err
		}
		if err := x.Dirs(func(d *index.Dir) error { v.dirs[d.Name] = d; return nil }); err != nil {
			return err
		}
		return x.Files(context.Background(), "*", func(f *index.File) error {
			v.files[fileKeyOf(f.Dir, f.Name)] = f
			return nil
		})
	})
}

// scanPacks checks every pack file's header and reads the journal records
// of those the snapshot knows, up to their committed length.
func (v *journalCheck) scanPacks() {
	v.sc = &storeScan{dir: v.s.packs.dir, batches: map[uint64][]jrecMeta{}, ckpts: map[uint64]*ckptMeta{}}
	ids, _, err := listPacks(v.s.packs.dir)
	if err != nil {
		v.add("", err.Error())
		return
	}
	// Evicted packs are scanned in the bucket (packcache.go).
	v.sc.remote = v.s.scanSource
	for id, p := range v.packs {
		if p.Evicted && !p.Retired && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		name := packFileName(v.s.packs.dir, id)
		p := v.packs[id]
		switch {
		case p == nil && !v.created[id]:
			if !v.knownNow(id) {
				v.add(name, "pack file unknown to the index (walrus repair accounts for it; nothing deletes it)")
			}
			continue
		case p == nil || p.Retired:
			continue // only created so far, or retired (Open deletes it)
		}
		ps, err := v.sc.scanOne(id, p.Committed, false)
		if err != nil {
			v.add(name, err.Error())
			continue
		}
		if ps.HeaderErr != "" {
			v.add(name, "pack header: "+ps.HeaderErr)
		}
		for _, d := range ps.Damaged {
			v.add(name, fmt.Sprintf("%d bytes at %d hold no valid record", d.Len, d.Off))
		}
		if ps.Tail > 0 {
			v.add(name, fmt.Sprintf("%d committed bytes at %d hold no valid record", ps.Tail, ps.End))
		}
	}
	v.problems = append(v.problems, v.sc.problems...)
}

// knownNow reports whether the index knows pack id now: one created after
// the snapshot is not unknown.
func (v *journalCheck) knownNow(id uint32) bool {
	known := false
	v.s.idx.View(func(x *index.Txn) error {
		if _, err := x.Pack(id); err == nil {
			known = true
		}
		return x.NewPacks(func(c uint32) error {
			known = known || c == id
			return nil
		})
	})
	return known
}

// compare replays the journal the index names and compares the result.
func (v *journalCheck) compare(ctx context.Context) error {
	if !v.j.Covered {
		n := 0
		for _, f := range v.files {
			if v.dir == "*" || f.Dir == v.dir {
				n++
			}
		}
		v.add("", fmt.Sprintf("%d files are named by no pack record yet (archived before packs carried file records, "+
			"and the checkpoint walrus writes when it opens such a store has not succeeded): walrus repair could not rebuild them", n))
		return nil
	}
	var ckpt *ckptMeta
	if v.j.CkptSeq > 0 || v.j.CkptID != 0 {
		ckpt = v.sc.ckpts[v.j.CkptID]
		if ckpt == nil || !ckpt.complete() || ckpt.seq != v.j.CkptSeq {
			return fmt.Errorf("checkpoint %x (batch %d), which the index names, is missing or incomplete in the packs", v.j.CkptID, v.j.CkptSeq)
		}
	}
	chain, err := v.sc.chainFrom(v.j.LastSeq, v.j.CkptSeq)
	if err != nil {
		return err
	}
	r := newRebuilt(nil)
	if err := v.sc.replay(ctx, r, ckpt, chain); err != nil {
		return err
	}
	v.compareFiles(r)
	v.compareDirs(r)
	return nil
}

func (v *journalCheck) compareFiles(r *rebuilt) {
	for k, f := range v.files {
		if v.dir != "*" && f.Dir != v.dir {
			continue
		}
		switch g := r.files[k]; {
		case g == nil:
			v.add(f.Path(), "in the index, but no pack records it (or the packs record its removal)")
		case !sameFile(f, g):
			v.add(f.Path(), "the index and the pack journal disagree about it: "+fileDiff(f, g))
		}
	}
	for k, g := range r.files {
		if v.dir != "*" && g.Dir != v.dir {
			continue
		}
		if v.files[k] == nil {
			v.add(g.Path(), "recorded in the packs, missing from the index")
		}
	}
}

func (v *journalCheck) compareDirs(r *rebuilt) {
	for name, d := range v.dirs {
		if v.dir != "*" && name != v.dir {
			continue
		}
		switch g := r.dirs[name]; {
		case g == nil:
			v.add("/"+name, "namespace in the index, but no pack records it")
		case *dirIdentity(d) != *dirIdentity(g):
			v.add("/"+name, fmt.Sprintf("namespace: the index says %+v, the pack journal %+v", *dirIdentity(d), *dirIdentity(g)))
		}
	}
	for name := range r.dirs {
		if (v.dir == "*" || name == v.dir) && v.dirs[name] == nil {
			v.add("/"+name, "namespace recorded in the packs, missing from the index")
		}
	}
}

func sameFile(a, b *index.File) bool {
	return a.Size == b.Size && a.Mode == b.Mode && a.MTime == b.MTime && a.Archived == b.Archived &&
		a.Hash == b.Hash && a.HashKind == b.HashKind && a.BlockSize == b.BlockSize && a.Stored == b.Stored && slices.Equal(a.Blocks, b.Blocks)
}

func fileDiff(ix, pk *index.File) string {
	switch {
	case ix.Hash != pk.Hash || ix.HashKind != pk.HashKind || ix.Size != pk.Size || !slices.Equal(ix.Blocks, pk.Blocks):
		return fmt.Sprintf("content (index %d bytes %s, packs %d bytes %s)", ix.Size, ix.Hash, pk.Size, pk.Hash)
	case ix.Mode != pk.Mode:
		return fmt.Sprintf("mode (index %o, packs %o)", ix.Mode, pk.Mode)
	case ix.MTime != pk.MTime:
		return fmt.Sprintf("mtime (index %d, packs %d)", ix.MTime, pk.MTime)
	}
	return "archive time, block size or stored size"
}
