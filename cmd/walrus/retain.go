package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/walrus-archive/walrus/internal/retention"
)

type retainCmd struct {
	Dir         string `arg:"" optional:"" help:"Only this directory (namespace); all directories when omitted."`
	KeepBackups int    `help:"Keep the WAL the newest N restorable base backups need." placeholder:"N"`
	KeepWindow  string `help:"Keep point-in-time recovery this far back (e.g. 36h, 7d, 2w)." placeholder:"DURATION"`
	DryRun      bool   `help:"Only print what would be removed, and why."`
	JSON        bool   `help:"Print the reports as JSON."`
}

func (c *retainCmd) Run(ctx context.Context, g *globals) error {
	p, err := policyFromFlags(c.KeepBackups, c.KeepWindow)
	if err != nil {
		return err
	}
	a, err := g.openAdmin()
	if err != nil {
		return err
	}
	defer a.Close()
	reps, err := a.Retain(ctx, strings.Trim(c.Dir, "/"), p, c.DryRun)
	if c.JSON && err == nil {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(reps)
	}
	for _, r := range reps {
		verb := "removed"
		if r.DryRun {
			verb = "would remove"
		}
		fmt.Fprintf(g.stdout, "/%s: %s\n", r.Dir, r.Policy)
		for _, k := range r.Kept {
			fmt.Fprintf(g.stdout, "  keep backup %s (%s): %s\n", k.Name, k.Label, k.Reason)
		}
		if r.Note != "" {
			fmt.Fprintf(g.stdout, "  %s\n", r.Note)
		}
		if r.Cutoff != "" {
			fmt.Fprintf(g.stdout, "  keeping every segment from ########%s on, every .history file and every non-WAL file\n", r.Cutoff)
		}
		for _, rm := range r.Removed {
			fmt.Fprintf(g.stdout, "  %s %s: %s\n", verb, rm.Name, rm.Reason)
		}
		fmt.Fprintf(g.stdout, "  %s %d files\n", verb, len(r.Removed))
	}
	if err != nil {
		return err
	}
	return a.Close()
}

// policyFromFlags builds a retention policy from --keep-backups and
// --keep-window style flags.
func policyFromFlags(backups int, window string) (retention.Policy, error) {
	p := retention.Policy{KeepBackups: backups}
	if window != "" {
		d, err := parseWindow(window)
		if err != nil {
			return p, err
		}
		p.KeepWindow = d
	}
	return p, p.Validate()
}

// parseWindow parses a Go duration, extended with days ("7d") and weeks
// ("2w"), which is how retention windows are usually stated.
func parseWindow(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("window %q: want a positive number before %q", s, suffix)
			}
			return time.Duration(v * float64(unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("window %q: want a positive duration like 36h, 7d or 2w", s)
	}
	return d, nil
}
