package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/walrus-archive/walrus/store"
)

type statusCmd struct {
	Dir    string        `arg:"" optional:"" help:"Only this directory (namespace)."`
	JSON   bool          `help:"Print JSON (format in the README): totals {files, logical_bytes, stored_bytes, ...} and dirs: [...] with timelines, gaps and backups." xor:"format"`
	Check  bool          `help:"Monitoring mode: print one line per problem (gaps and other continuity problems, a newest base backup that is not restorable, a last segment older than --max-age) and exit 2 if there is any, else print OK and exit 0." xor:"format"`
	MaxAge time.Duration `help:"With --check: a problem if a directory's last segment was archived longer ago than this (e.g. 1h). Off by default: an idle PostgreSQL archives nothing, archive_timeout or not." placeholder:"DURATION"`
}

func (c *statusCmd) Run(g *globals) error {
	if c.MaxAge != 0 && !c.Check {
		return fmt.Errorf("status: --max-age needs --check")
	}
	if c.MaxAge < 0 {
		return fmt.Errorf("status: --max-age %s: want a positive duration", c.MaxAge)
	}
	a, err := g.openAdmin()
	if err != nil {
		return err
	}
	defer a.Close()
	rep, err := a.StatusReport(strings.Trim(c.Dir, "/"))
	if err != nil {
		return err
	}
	switch {
	case c.Check:
		return printCheck(g.stdout, rep, c.MaxAge)
	case c.JSON:
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printStatus(g.stdout, rep)
}

func printStatus(w io.Writer, rep store.StatusReport) error {
	fmt.Fprintf(w, "archive: %d files, %s logical, %s stored (%.1fx), %s on disk in %d packs\n",
		rep.Files, humanBytes(rep.LogicalBytes), humanBytes(rep.StoredBytes), rep.Ratio, humanBytes(rep.DiskBytes), rep.Packs)
	if rep.UnsettledBytes > 0 || rep.ColdBytes > 0 {
		fmt.Fprintf(w, "  of the stored bytes: %s unsettled (ingest level, waiting for the settler), %s in the cold tier\n",
			humanBytes(rep.UnsettledBytes), humanBytes(rep.ColdBytes))
	}
	if rep.LandedFiles > 0 {
		fmt.Fprintf(w, "  landed: %d files (%s) acknowledged and waiting to be ingested into the packs", rep.LandedFiles, humanBytes(rep.LandedBytes))
		if rep.LandedFailing > 0 {
			fmt.Fprintf(w, "; the last ingest of %d failed (retried; the log says why)", rep.LandedFailing)
		}
		fmt.Fprintln(w)
	}
	if c := rep.Claims; c != nil {
		fmt.Fprintf(w, "  name claims %s (this front-end %s): %d claimed, %d identical re-pushes, %d refused (other content) since start",
			c.Location, c.Claimant, c.Claimed, c.Identical, c.Refused)
		if c.Failures > 0 {
			fmt.Fprintf(w, "; %d failed (pushes refused, nothing committed), the last: %s", c.Failures, c.LastError)
		}
		fmt.Fprintln(w)
	}
	if l := rep.Lease; l != nil {
		switch {
		case l.Here:
			fmt.Fprintf(w, "  maintenance lease: held here (epoch %d, valid %s more): retention runs here", l.Epoch, secs(l.ValidSeconds))
		case l.Holder != "":
			fmt.Fprintf(w, "  maintenance lease: front-end %s (epoch %d, seen %s ago; taken over after %s without renewal): retention runs there, its removals are followed here",
				l.Holder, l.Epoch, secs(l.SeenSeconds), secs(l.TTLSeconds))
		default:
			fmt.Fprintf(w, "  maintenance lease: nobody holds it yet (epoch %d): retention waits", l.Epoch)
		}
		if l.LastError != "" {
			fmt.Fprintf(w, "; failing: %s", l.LastError)
		}
		fmt.Fprintln(w)
	}
	for _, p := range rep.Peers {
		behind := fmt.Sprintf("%d packs behind", p.PacksBehind)
		if p.PacksBehind > 0 {
			behind += fmt.Sprintf(" (for %s)", secs(p.LagSeconds))
		}
		fmt.Fprintf(w, "  front-end %s (packs %s): heartbeat %s ago, followed to pack %d, %s, %d files adopted and %d removed since start",
			p.ID, p.Packs, secs(p.HeartbeatAgeSeconds), p.Marker, behind, p.Adopted, p.Removed)
		if p.LastError != "" {
			fmt.Fprintf(w, "; failing: %s", p.LastError)
		}
		fmt.Fprintln(w)
	}
	if b := rep.Bucket; b != nil {
		fmt.Fprintf(w, "  bucket %s: %d packs in it; waiting to upload: %d packs (%s)", b.Location, b.UploadedPacks, b.WaitingPacks, humanBytes(b.WaitingBytes))
		if b.WaitingPacks > 0 {
			fmt.Fprintf(w, ", oldest %s", secs(b.OldestWaitingSeconds))
		}
		fmt.Fprintf(w, "; active pack %s (sealed by age)\n", humanBytes(b.ActiveBytes))
		if !b.Verified && !b.Failing {
			fmt.Fprintln(w, "  bucket: checking that the prefix is this store's before the first upload")
		}
		if b.PendingDeletePacks > 0 || b.Deletes > 0 {
			fmt.Fprintf(w, "  bucket: %d objects of retired packs (%s) to delete once what replaced them is uploaded; %d deleted since start (%s)\n",
				b.PendingDeletePacks, humanBytes(b.PendingDeleteBytes), b.Deletes, humanBytes(b.DeletedBytes))
		}
		switch {
		case b.HeldForPeers > 0 && b.HeldUnlisted:
			fmt.Fprintf(w, "  bucket: %d of them held until the other front-ends' registry is read\n", b.HeldForPeers)
		case b.HeldForPeers > 0:
			fmt.Fprintf(w, "  bucket: %d of them held until front-end %s followed them\n", b.HeldForPeers, strings.Join(b.HeldBy, ", "))
		}
		if sn := b.Snapshot; sn != nil {
			if sn.Name != "" {
				fmt.Fprintf(w, "  bucket: index snapshot %s (batch %d, %s), %s old", sn.Name, sn.Seq, humanBytes(sn.Bytes),
					secs(sn.AgeSeconds))
			} else {
				fmt.Fprint(w, "  bucket: no index snapshot yet (written after the next upload pass)")
			}
			if sn.LastError != "" {
				fmt.Fprintf(w, "; %d failed since start, the last: %s", sn.Failures, sn.LastError)
			}
			fmt.Fprintln(w)
		}
		if b.Failures > 0 || b.Failing {
			fmt.Fprintf(w, "  bucket: %d failed uploads since start", b.Failures)
			if b.Failing {
				fmt.Fprintf(w, "; failing now (retried with backoff; pushes go on): %s", b.LastError)
			}
			fmt.Fprintln(w)
		}
		if c := b.Cache; c != nil && (c.BoundBytes > 0 || c.EvictedPacks > 0) {
			fmt.Fprintf(w, "  local pack cache: %s of packs in %s (bound %s); %d packs (%s) in the bucket only; %d range reads (%s) since start\n",
				humanBytes(c.LocalBytes), "DATA/packs", humanBytes(c.BoundBytes), c.EvictedPacks, humanBytes(c.EvictedBytes), c.RangeGets, humanBytes(c.RangeBytes))
		}
	}
	for _, d := range rep.Dirs {
		fmt.Fprintln(w)
		printDirStatus(w, d, rep.Time)
	}
	return nil
}

func printDirStatus(w io.Writer, d store.DirStatus, now time.Time) {
	fmt.Fprintf(w, "/%s", d.Name)
	if d.SystemID != 0 {
		fmt.Fprintf(w, "  cluster %d, PostgreSQL %s, %s segments", d.SystemID, d.Version, humanBytes(int64(d.SegmentSize)))
	}
	fmt.Fprintf(w, "\n  %d files, %s logical, %s stored (%.1fx)\n", d.Files, humanBytes(d.LogicalBytes), humanBytes(d.StoredBytes), d.Ratio)
	if d.LastArchived != nil {
		fmt.Fprintf(w, "  last segment %s archived %s (%s ago)\n", d.LastSegment,
			d.LastArchived.Local().Format(time.DateTime), secs(d.LastAge))
	}
	if len(d.Timelines) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TIMELINE\tPARENT\tBEGIN\tFIRST\tLAST\tSEGMENTS\tGAPS\tPARTIAL")
		for _, t := range d.Timelines {
			parent, begin := "-", "-"
			if t.History {
				parent, begin = fmt.Sprint(t.Parent), t.BeginLSN
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", t.TLI, parent, begin, dash(t.First), dash(t.Last), t.Segments, len(t.Gaps), len(t.Partial))
		}
		tw.Flush()
	}
	if len(d.Backups) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  BACKUP\tLABEL\tTIMELINE\tSTART\tSTOP\tSTOPPED\tRESTORABLE")
		for _, b := range d.Backups {
			ok := "yes"
			if !b.Restorable {
				ok = "NO, missing " + strings.Join(b.Missing, " ")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\t%s\n", b.Name, b.Label, b.TLI, b.StartLSN, b.StopLSN, b.StopTime.Format(time.DateTime), ok)
		}
		tw.Flush()
	}
	for _, p := range d.Problems {
		fmt.Fprintf(w, "  PROBLEM: %s\n", p)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
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
	a, err := g.openAdmin()
	if err != nil {
		return err
	}
	defer a.Close()
	dir := strings.Trim(c.Dir, "/")
	if dir == "" {
		dir = "*"
	}
	var total int64
	if st, err := a.Status(); err == nil {
		total = st.LogicalBytes
	}
	bar := newProgress(g.stderr, "verify", total)
	rep, err := a.VerifyWithProgress(ctx, dir, func(files, bytes int64) { bar.update(files, bytes) })
	bar.done()
	if err != nil {
		return err
	}
	if c.JSON {
		if err := json.NewEncoder(g.stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Problems {
			if p.Kind == store.ProblemContinuity {
				fmt.Fprintf(g.stdout, "BAD  %s: continuity: %s\n", p.Path, p.Err)
			} else {
				fmt.Fprintf(g.stdout, "BAD  %s: %s\n", p.Path, p.Err)
			}
		}
		mbps := 0.0
		if rep.Seconds > 0 {
			mbps = float64(rep.Bytes) / 1e6 / rep.Seconds
		}
		fmt.Fprintf(g.stdout, "verified %d files (%d WAL segments), %s in %.1f s (%.0f MB/s), %d problems\n",
			rep.Files, rep.Segments, humanBytes(rep.Bytes), rep.Seconds, mbps, len(rep.Problems))
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("%w: %d (see above)", errProblems, len(rep.Problems))
	}
	return nil
}

// secs renders seconds as a rounded duration.
func secs(v float64) time.Duration { return time.Duration(v * float64(time.Second)).Round(time.Second) }
