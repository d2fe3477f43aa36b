package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/walrus-archive/walrus/store"
)

// exportCmd writes a directory of the archive back out as plain files (no
// lock-in): each file byte-identical, through a temp file that is fsynced
// and renamed, with the archived mode and mtime. A file already exported
// (same size and mtime) is skipped, so an interrupted export resumes.
type exportCmd struct {
	Dir  string `arg:"" help:"walrus directory to export (\"\" or / for the archive root)."`
	Dest string `arg:"" help:"Destination directory (created if missing)."`
}

func (c *exportCmd) Run(ctx context.Context, g *globals) error {
	a, err := g.openArchive()
	if err != nil {
		return err
	}
	defer a.Close()
	dir := strings.Trim(c.Dir, "/")
	l, err := a.List(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dest, 0o700); err != nil {
		return err
	}
	var total int64
	for _, f := range l.Files {
		total += f.Size
	}
	p := newProgress(g.stderr, "export", total)
	var done, sent, skipped int64
	for _, f := range l.Files {
		if err := ctx.Err(); err != nil {
			p.done()
			return fmt.Errorf("export interrupted after %d of %d files; run the same command again to resume: %w", done, len(l.Files), err)
		}
		dst := filepath.Join(c.Dest, f.Name)
		if st, err := os.Stat(dst); err == nil && st.Size() == f.Size && st.ModTime().Equal(f.MTime) {
			skipped++
		} else {
			// writeFileAtomic sets the archived mtime, so a re-run skips it.
			if err := writeFileAtomic(dst, func(w io.Writer) (store.FileInfo, error) { return a.Get(f.Path, w) }); err != nil {
				p.done()
				return fmt.Errorf("export stopped at %s after %d of %d files (run the same command again to resume): %w", f.Path, done, len(l.Files), err)
			}
		}
		done++
		sent += f.Size
		p.update(done, sent)
	}
	p.done()
	if err := syncDir(c.Dest); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "exported %d files (%s) from /%s to %s; %d were there already\n", done, humanBytes(total), dir, c.Dest, skipped)
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
