package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/walrus-archive/walrus/store/backend"
)

// FetchReport says what FetchPacks downloaded.
type FetchReport struct {
	Packs   int     `json:"packs"`   // objects downloaded
	Skipped int     `json:"skipped"` // already there from an earlier, interrupted run
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	// Sizes maps every pack now in DATA/packs from the bucket to its size
	// (Store.MarkUploaded).
	Sizes map[uint32]int64 `json:"-"`
}

// fetchChunk is the size of one ranged GET; fetchers run at once.
const (
	fetchChunk = 8 << 20
	fetchers   = 4
)

// FetchPacks downloads every pack object of the bucket (packs/NNNNNNNN.pack)
// into dir/packs, the first step of rebuilding a store from its bucket
// (Repair is the second). dir must hold no index: the packs of a live
// store are never overwritten. Each pack is written to a temporary file,
// fsynced, checked (the size the bucket reports, the pack header naming
// that pack), and renamed into place; the directory is fsynced at the end.
// A pack already in place with the right size (a run that was
// interrupted) is kept, so running it again completes it. Objects that are
// not packs are left alone.
func FetchPacks(ctx context.Context, b backend.Backend, dir string, progress func(FetchReport)) (FetchReport, error) {
	start := time.Now()
	rep := FetchReport{Sizes: map[uint32]int64{}}
	if has, err := nonEmptyDir(filepath.Join(dir, "index")); err != nil || has {
		if err == nil {
			err = fmt.Errorf("%s holds an index: fetch into an empty data directory (a new one, or move this one away)", dir)
		}
		return rep, fmt.Errorf("store: fetch from the bucket: %w", err)
	}
	packDir := filepath.Join(dir, "packs")
	if err := os.MkdirAll(packDir, 0o750); err != nil {
		return rep, fmt.Errorf("store: fetch: %w", err)
	}
	objs, err := listPackObjects(ctx, b)
	if err != nil {
		return rep, err
	}
	err = fetchPackObjects(ctx, b, packDir, objs, func(id uint32, in backend.Info, skipped bool) {
		if skipped {
			rep.Skipped++
		} else {
			rep.Packs++
			rep.Bytes += in.Size
		}
		rep.Sizes[id] = in.Size
		if progress != nil {
			progress(rep)
		}
	})
	if err != nil {
		return rep, err
	}
	// The rebuilt store is the bucket's store: it may upload there again.
	id, err := readRemoteBucketID(ctx, b)
	if err != nil {
		return rep, fmt.Errorf("store: read %s from %s: %w", bucketIDObject, b.Location(), err)
	}
	if id != "" {
		if err := writeLocalBucketID(dir, id); err != nil {
			return rep, err
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// listPackObjects lists the bucket's pack objects (packs/NNNNNNNN.pack)
// by pack id; other objects are left out.
func listPackObjects(ctx context.Context, b backend.Backend) (map[uint32]backend.Info, error) {
	objs := map[uint32]backend.Info{}
	err := b.List(ctx, remotePackPrefix, packObjectsFrom(objs, 0))
	if err != nil {
		return nil, fmt.Errorf("store: list packs in %s: %w", b.Location(), err)
	}
	return objs, nil
}

// packNamesOrdered bounds the pack ids whose object names sort as the
// ids do from every smaller id on: packObjectName pads to 8 digits, so
// names of 9 and 10 digits (ids from 10^8) sort by their first digit,
// after every padded name starting with "0" (ids below 10^7) but in
// among those of ids from 10^7.
const packNamesOrdered = 10_000_000

// listPackObjectsAfter is listPackObjects for the pack objects of ids
// above after only, listed from there (ListAfter): it costs the LIST
// pages of those objects, not of the whole prefix. From after =
// packNamesOrdered on, where a name of a larger id can sort before
// after's, it lists the whole prefix (and leaves out the rest).
func listPackObjectsAfter(ctx context.Context, b backend.Backend, after uint32) (map[uint32]backend.Info, error) {
	objs := map[uint32]backend.Info{}
	var err error
	if after >= packNamesOrdered {
		err = b.List(ctx, remotePackPrefix, packObjectsFrom(objs, uint64(after)+1))
	} else {
		err = b.ListAfter(ctx, remotePackPrefix, packObjectName(after), packObjectsFrom(objs, uint64(after)+1))
	}
	if err != nil {
		return nil, fmt.Errorf("store: list packs in %s: %w", b.Location(), err)
	}
	return objs, nil
}

// packObjectsFrom is a listing's fn that adds the pack objects of ids
// from from on to objs.
func packObjectsFrom(objs map[uint32]backend.Info, from uint64) func(backend.Info) error {
	return func(in backend.Info) error {
		rest := strings.TrimPrefix(in.Name, remotePackPrefix)
		if id, ok := parsePackName(rest); ok && uint64(id) >= from && !strings.Contains(rest, "/") {
			objs[id] = in
		}
		return nil
	}
}

// fetchPackObjects downloads the packs objs into packDir, fetchers at
// once (fetchPack each), calls done (serialised) after each, and fsyncs
// packDir.
func fetchPackObjects(ctx context.Context, b backend.Backend, packDir string, objs map[uint32]backend.Info, done func(id uint32, in backend.Info, skipped bool)) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchers)
	for id, in := range objs {
		g.Go(func() error {
			skipped, err := fetchPack(gctx, b, packDir, id, in)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			done(id, in, skipped)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return syncDir(packDir)
}

// fetchPack downloads one pack: temp file, ranged reads, fsync, checks,
// rename. Every range read must be filled (ReadAt fails with ErrShort
// past the object's end), the file must end up the listed size, and the
// pack header must name the pack.
func fetchPack(ctx context.Context, b backend.Backend, packDir string, id uint32, in backend.Info) (skipped bool, err error) {
	final := packFileName(packDir, id)
	if fi, err := os.Stat(final); err == nil {
		if fi.Size() == in.Size {
			return true, nil
		}
		return false, fmt.Errorf("store: fetch: %s exists with %d bytes, the bucket's %s has %d: move it away and fetch again", final, fi.Size(), in.Name, in.Size)
	}
	if in.Size < packHeaderLen {
		return false, fmt.Errorf("store: fetch: %s is %d bytes, shorter than a pack header", in.Name, in.Size)
	}
	tmp := filepath.Join(packDir, fmt.Sprintf(".fetch-%08d.tmp", id))
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return false, fmt.Errorf("store: fetch: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	buf := make([]byte, min(fetchChunk, in.Size))
	for off := int64(0); off < in.Size; {
		n := min(int64(len(buf)), in.Size-off)
		if err := b.ReadAt(ctx, in.Name, buf[:n], off); err != nil {
			return false, fmt.Errorf("store: fetch %s at %d: %w", in.Name, off, err)
		}
		if off == 0 {
			if string(buf[:8]) != packMagic || binary.LittleEndian.Uint32(buf[12:16]) != id {
				return false, fmt.Errorf("store: fetch: %s does not start with the header of pack %d", in.Name, id)
			}
		}
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return false, fmt.Errorf("store: fetch: write %s: %w", tmp, err)
		}
		off += n
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("store: fetch: fsync %s: %w", tmp, err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != in.Size {
		return false, fmt.Errorf("store: fetch: %s is not %d bytes after writing: %v", tmp, in.Size, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return false, fmt.Errorf("store: fetch: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return false, fmt.Errorf("store: fetch: %w", err)
	}
	return false, nil
}
