package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/walrus-archive/walrus/store"
)

type gcCmd struct {
	Threshold float64 `help:"Rewrite packs whose live fraction is below this; packs with nothing live are always deleted." default:"0.5"`
	JSON      bool    `help:"Print the report as JSON."`
}

func (c *gcCmd) Run(ctx context.Context, g *globals) error {
	if c.Threshold <= 0 || c.Threshold > 1 {
		return fmt.Errorf("gc: --threshold %v: want a fraction in (0, 1]", c.Threshold)
	}
	a, err := g.openAdmin()
	if err != nil {
		return err
	}
	defer a.Close()
	bar := newProgress(g.stderr, "gc", 0)
	rep, err := a.GC(ctx, c.Threshold, func(r store.GCReport) {
		bar.update(int64(r.PacksRewritten+r.PacksDeleted), r.BytesRead)
	})
	bar.done()
	if err != nil {
		return err
	}
	if c.JSON {
		return json.NewEncoder(g.stdout).Encode(rep)
	}
	mbps := 0.0
	if rep.Seconds > 0 {
		mbps = float64(rep.BytesCopied) / 1e6 / rep.Seconds
	}
	fmt.Fprintf(g.stdout, "gc: %d packs rewritten, %d deleted, %d busy, %d left for lack of free space (of %d candidates, %d packs); copied %s (%.0f MB/s); disk %s -> %s (freed %s)\n",
		rep.PacksRewritten, rep.PacksDeleted, rep.PacksBusy, rep.PacksNoSpace, rep.Candidates, rep.PacksScanned, humanBytes(rep.BytesCopied), mbps,
		humanBytes(rep.DiskBefore), humanBytes(rep.DiskAfter), humanBytes(rep.DiskBefore-rep.DiskAfter))
	if rep.PacksNotUploaded > 0 {
		fmt.Fprintf(g.stdout, "gc: %d packs kept: not in the bucket yet (walrus serve with the bucket flags uploads them; run gc while it runs)\n", rep.PacksNotUploaded)
	}
	return a.Close()
}
