package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
)

type statusCmd struct {
	JSON bool `help:"Print JSON: {\"files\":N,\"logical_bytes\":N,\"stored_bytes\":N,...}."`
}

func (c *statusCmd) Run(g *globals) error {
	a, err := g.openArchive()
	if err != nil {
		return err
	}
	defer a.Close()
	st, err := a.Status()
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "files\t%d\n", st.Files)
	fmt.Fprintf(tw, "directories\t%d\n", st.Dirs)
	fmt.Fprintf(tw, "logical bytes\t%d\t(%s)\n", st.LogicalBytes, humanBytes(st.LogicalBytes))
	fmt.Fprintf(tw, "stored bytes\t%d\t(%s)\n", st.StoredBytes, humanBytes(st.StoredBytes))
	fmt.Fprintf(tw, "disk bytes\t%d\t(%s, %d packs)\n", st.DiskBytes, humanBytes(st.DiskBytes), st.Packs)
	if st.StoredBytes > 0 {
		fmt.Fprintf(tw, "ratio\t%.1fx\n", float64(st.LogicalBytes)/float64(st.StoredBytes))
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

type verifyCmd struct {
	Dir  string `arg:"" optional:"" help:"Only this directory (namespace)."`
	JSON bool   `help:"Print the report as JSON."`
}

func (c *verifyCmd) Run(ctx context.Context, g *globals) error {
	a, err := g.openArchive()
	if err != nil {
		return err
	}
	defer a.Close()
	dir := c.Dir
	if dir == "" {
		dir = "*"
	}
	rep, err := a.Verify(ctx, dir)
	if err != nil {
		return err
	}
	if c.JSON {
		if err := json.NewEncoder(g.stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintf(g.stdout, "BAD  %s: %s\n", p.Path, p.Err)
		}
		fmt.Fprintf(g.stdout, "verified %d files, %s, %d problems\n", rep.Files, humanBytes(rep.Bytes), len(rep.Problems))
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("%w: %d (see above)", errProblems, len(rep.Problems))
	}
	return nil
}
