package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"syscall"

	"github.com/walrus-archive/walrus/internal/control"
	"github.com/walrus-archive/walrus/store"
)

type repairCmd struct {
	Force bool `help:"Rebuild even if some files cannot be named (packs written before walrus recorded file names in packs, never checkpointed) or the pack journal has a hole: the index then lacks those files, and gc later deletes their blocks."`
	JSON  bool `help:"Print the report as JSON."`

	FromBucket bool `name:"from-bucket" help:"Rebuild an empty data directory from the bucket (--bucket and its settings, as for serve): from its newest index snapshot and the packs written after it (those are downloaded; the others stay in the bucket and are read from there), or, without a usable snapshot, by downloading every pack and rebuilding the index from them."`
	// IgnoreSnapshots: the rebuild of FetchPacks + Repair, from the packs alone.
	IgnoreSnapshots bool `name:"ignore-snapshots" help:"With --from-bucket: ignore the bucket's index snapshots, download every pack and rebuild the index from the packs alone (slower; for a snapshot you do not trust)."`
	bucketFlags     `embed:""`
}

func (c *repairCmd) Run(ctx context.Context, g *globals) error {
	o := repairOptions{data: g.Data, force: c.Force, json: c.JSON, stdout: g.stdout, stderr: g.stderr, log: g.log}
	if err := c.bucketFlags.check(); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	if c.BucketClaimsPrefix != "" {
		return errors.New("repair: --bucket-claims-prefix is a walrus serve setting (claims are not rebuilt): drop it")
	}
	if !c.FromBucket {
		if c.IgnoreSnapshots {
			return errors.New("repair: --ignore-snapshots without --from-bucket: add --from-bucket, or drop it")
		}
		if c.enabled() {
			return errors.New("repair: --bucket without --from-bucket: add --from-bucket to rebuild from the bucket, or drop --bucket")
		}
		return repair(ctx, o)
	}
	if !c.enabled() {
		return errors.New("repair: --from-bucket needs the bucket: give --bucket and its settings (as for walrus serve)")
	}
	return repairFromBucket(ctx, o, &c.bucketFlags, c.IgnoreSnapshots)
}

// repairFromBucket rebuilds the empty data directory from the bucket's
// newest index snapshot (store.RebuildFromBucket). Without a usable one it
// downloads every pack of the bucket (store.FetchPacks: temp file, fsync,
// checks, rename), rebuilds the index from them (repair, store.Repair),
// and marks the packs that came from the bucket as uploaded, so that serve
// does not send them back.
func repairFromBucket(ctx context.Context, o repairOptions, bf *bucketFlags, ignoreSnapshots bool) error {
	if _, err := control.Dial(o.data); err == nil {
		return fmt.Errorf("repair: walrus serve is running on %s; stop it first", o.data)
	}
	be, err := bf.open(nil)
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	// The rebuild holds every block location and file record in memory
	// (about 3.8 KB a segment of live heap at its peak; with the garbage
	// the runtime lets grow beside it, a simulated million-segment cold
	// start peaked at 11.3 GB of RSS). A soft memory limit of half the
	// host's RAM makes the collector work harder near it instead of the
	// kernel killing the rebuild on a smaller host (collecting at 25 %
	// growth throughout cost 1.2-1.6x the time for 0.6x the RSS;
	// TestColdStartBench). GOMEMLIMIT or GOGC in the environment win.
	if os.Getenv("GOMEMLIMIT") == "" && os.Getenv("GOGC") == "" {
		var si syscall.Sysinfo_t
		if syscall.Sysinfo(&si) == nil && si.Totalram > 0 {
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(int64(si.Totalram) * int64(si.Unit) / 2))
		}
	}
	cs, err := store.ColdStartReport{}, fmt.Errorf("%w: --ignore-snapshots", store.ErrNoSnapshot)
	if !ignoreSnapshots {
		cs, err = store.RebuildFromBucket(ctx, store.Config{Dir: o.data, Logger: o.log}, be, store.RepairOptions{Force: o.force})
	}
	switch {
	case err == nil:
		return reportColdStart(o, cs, be.Location())
	case !errors.Is(err, store.ErrNoSnapshot):
		if o.json {
			json.NewEncoder(o.stdout).Encode(cs)
		}
		return fmt.Errorf("repair: %w", err)
	}
	if !o.json {
		fmt.Fprintf(o.stdout, "repair: %v; downloading every pack instead\n", err)
	}
	fetched, err := store.FetchPacks(ctx, be, o.data, nil)
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	if len(fetched.Sizes) == 0 {
		return fmt.Errorf("repair: %s holds no packs (objects packs/NNNNNNNN.pack): check --bucket and --bucket-prefix", be.Location())
	}
	if !o.json {
		fmt.Fprintf(o.stdout, "repair: fetched %d packs (%s) from %s in %.1f s (%d already here)\n",
			fetched.Packs, humanBytes(fetched.Bytes), be.Location(), fetched.Seconds, fetched.Skipped)
	}
	if err := repair(ctx, o); err != nil {
		return err
	}
	st, err := store.Open(store.Config{Dir: o.data, Logger: o.log, MustExist: true})
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	n, err := st.MarkUploaded(fetched.Sizes)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("repair: marking the fetched packs uploaded: %w", err)
	}
	if !o.json {
		fmt.Fprintf(o.stdout, "repair: %d of the %d packs are marked as in the bucket; serve uploads the rest\n", n, len(fetched.Sizes))
	}
	return nil
}

// reportColdStart prints what a rebuild from a snapshot did.
func reportColdStart(o repairOptions, cs store.ColdStartReport, where string) error {
	if o.json {
		if err := json.NewEncoder(o.stdout).Encode(cs); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(o.stdout, "repair: index snapshot %s (batch %d, %d files, %s) from %s in %.1f s\n",
			cs.Snapshot.Name, cs.Snapshot.Seq, cs.Snapshot.Files, humanBytes(cs.Snapshot.Bytes), where, cs.SnapshotSeconds)
		for _, s := range cs.SkippedSnapshots {
			fmt.Fprintf(o.stdout, "SKIP %s\n", s)
		}
		fmt.Fprintf(o.stdout, "repair: downloaded %d of the bucket's %d packs (%s, written from pack %d on; %d already here) in %.1f s; %d packs (%s) stay in the bucket\n",
			cs.FetchedPacks, cs.BucketPacks, humanBytes(cs.FetchedBytes), cs.ScanFrom, cs.Skipped, cs.FetchSeconds, cs.EvictedPacks, humanBytes(cs.EvictedBytes))
		fmt.Fprintf(o.stdout, "repair: replayed %d journal batches on the %s (batch %d to %d); %d files (%s) in %d namespaces; index written in %.1f s, %.1f s in all\n",
			cs.Batches, cs.Base, cs.CheckpointSeq, cs.HeadSeq, cs.Files, humanBytes(cs.LogicalBytes), cs.Dirs, cs.WriteSeconds, cs.Seconds)
		for _, p := range cs.Problems {
			fmt.Fprintf(o.stdout, "BAD  %s: %s\n", p.Path, p.Err)
		}
		fmt.Fprintln(o.stdout, "repair: serve it with the same bucket flags (walrus verify, while it runs, reads every block back from the bucket)")
	}
	if n := len(cs.Problems); n > 0 {
		return fmt.Errorf("%w: %d (see above)", errProblems, n)
	}
	return nil
}

type repairOptions struct {
	data   string
	force  bool
	json   bool
	stdout io.Writer
	stderr io.Writer // progress, on a terminal
	log    *slog.Logger
}

// repair rebuilds the index from the packs (store.Repair), which then
// checkpoints and verifies the store, and reports both. It refuses while
// walrus serve runs: the server owns the store.
func repair(ctx context.Context, o repairOptions) error {
	if _, err := control.Dial(o.data); err == nil {
		return fmt.Errorf("repair: walrus serve is running on %s; stop it first (repair rebuilds the index it has open)", o.data)
	}
	var bar *progress
	phase := ""
	rep, err := store.Repair(ctx, store.Config{Dir: o.data, Logger: o.log}, store.RepairOptions{
		Force: o.force,
		Progress: func(p store.RepairProgress) {
			if p.Phase != "scan" && p.Phase != "verify" {
				return
			}
			if p.Phase != phase {
				if bar != nil {
					bar.done()
				}
				phase, bar = p.Phase, newProgress(o.stderr, "repair: "+p.Phase, p.Total)
			}
			bar.update(p.Items, p.Bytes)
		},
	})
	if bar != nil {
		bar.done()
	}
	if o.json {
		if jerr := json.NewEncoder(o.stdout).Encode(rep); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		printRepair(o.stdout, rep, err == nil || rep.Verify != nil)
	}
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	if n := len(rep.Problems) + len(rep.Verify.Problems); n > 0 {
		return fmt.Errorf("%w: %d (see above)", errProblems, n)
	}
	return nil
}

func printRepair(w io.Writer, rep store.RepairReport, rebuilt bool) {
	fmt.Fprintf(w, "repair: scanned %d packs (%s): %d block records, %d journal records\n",
		rep.Packs, humanBytes(rep.PackBytes), rep.BlockRecords, rep.JournalRecords)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "BAD  %s: %s\n", p.Path, p.Err)
	}
	if len(rep.UnnamedPacks) > 0 {
		fmt.Fprintf(w, "repair: packs %v hold files no pack names (written before walrus recorded names in packs)\n", rep.UnnamedPacks)
	}
	if !rebuilt {
		return
	}
	from := "the start"
	if rep.CheckpointSeq > 0 {
		from = fmt.Sprintf("checkpoint %d", rep.CheckpointSeq)
	}
	fmt.Fprintf(w, "repair: rebuilt %d files (%s) in %d directories from %s and %d journal batches (last %d); %s live, %s dead (gc reclaims it)\n",
		rep.Files, humanBytes(rep.LogicalBytes), rep.Dirs, from, rep.Batches, rep.HeadSeq, humanBytes(rep.LiveBytes), humanBytes(rep.DeadBytes))
	if rep.OldIndex != "" {
		fmt.Fprintf(w, "repair: the old index is kept in %s (delete it once satisfied)\n", rep.OldIndex)
	}
	if v := rep.Verify; v != nil {
		for _, p := range v.Problems {
			fmt.Fprintf(w, "BAD  %s: %s\n", p.Path, p.Err)
		}
		fmt.Fprintf(w, "verified %d files (%d WAL segments), %s in %.1f s, %d problems\n",
			v.Files, v.Segments, humanBytes(v.Bytes), v.Seconds, len(v.Problems))
	}
}
