package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/walrus-archive/walrus/store"
)

// healthProblems is what `walrus status --check` reports, one line each:
// every continuity problem of a directory (gaps among them), a newest
// base backup that is not restorable, and, when maxAge > 0, a last segment
// archived longer ago than maxAge.
//
// The age check is off unless asked for: an idle PostgreSQL writes no WAL,
// and archive_timeout does not force a segment switch when nothing was
// written since the last one, so an idle cluster's archive legitimately
// grows old. Give --max-age to clusters that always write (or write a
// heartbeat row), well above their archive_timeout.
func healthProblems(rep store.StatusReport, maxAge time.Duration) []string {
	var out []string
	segments := false
	for _, d := range rep.Dirs {
		name := "/" + d.Name
		for _, p := range d.Problems {
			out = append(out, fmt.Sprintf("%s: %s", name, p))
		}
		if b, ok := newestBackup(d.Backups); ok && !b.Restorable {
			out = append(out, fmt.Sprintf("%s: newest base backup %s (%s) is not restorable: missing %s",
				name, b.Name, b.Label, strings.Join(b.Missing, " ")))
		}
		if d.LastArchived == nil {
			continue
		}
		segments = true
		if age := time.Duration(d.LastAge * float64(time.Second)); maxAge > 0 && age > maxAge {
			out = append(out, fmt.Sprintf("%s: last segment %s archived %s ago, more than --max-age %s",
				name, d.LastSegment, age.Round(time.Second), maxAge))
		}
	}
	if maxAge > 0 && !segments {
		out = append(out, fmt.Sprintf("no WAL segment archived (--max-age %s)", maxAge))
	}
	return out
}

// newestBackup is the backup that stopped last.
func newestBackup(bs []store.BackupStatus) (store.BackupStatus, bool) {
	var newest store.BackupStatus
	for i, b := range bs {
		if i == 0 || b.StopTime.After(newest.StopTime) || (b.StopTime.Equal(newest.StopTime) && b.Name > newest.Name) {
			newest = b
		}
	}
	return newest, len(bs) > 0
}

// printCheck prints one line per problem, or one OK line, in the manner of a
// Nagios plugin, and returns errUnhealthy when there are problems.
func printCheck(w io.Writer, rep store.StatusReport, maxAge time.Duration) error {
	problems := healthProblems(rep, maxAge)
	for _, p := range problems {
		fmt.Fprintf(w, "CRITICAL: %s\n", p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %d (see above)", errUnhealthy, len(problems))
	}
	fmt.Fprintf(w, "OK: %d directories, no gaps, newest backups restorable%s\n", len(rep.Dirs), ageNote(maxAge))
	return nil
}

func ageNote(maxAge time.Duration) string {
	if maxAge <= 0 {
		return ""
	}
	return fmt.Sprintf(", last segments within %s", maxAge)
}
