package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walrus-archive/walrus/store"
)

type putCmd struct {
	Name string `arg:"" help:"Archive path: NAME or DIR/NAME."`
	File string `arg:"" optional:"" help:"File to read; '-' or omitted reads standard input."`
}

func (c *putCmd) Run(ctx context.Context, g *globals) error {
	in, size, meta, closeIn, err := openInput(c.File, g.stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	a, err := g.openArchive()
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Put(c.Name, readerWithContext(ctx, in), size, meta); err != nil {
		return err
	}
	return a.Close() // the store's Close error matters: it closes the index
}

func openInput(path string, stdin io.Reader) (io.Reader, int64, store.FileMeta, func(), error) {
	meta := store.FileMeta{Mode: 0o600, MTime: time.Now()}
	if path == "" || path == "-" {
		return stdin, -1, meta, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, meta, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, meta, nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, meta, nil, fmt.Errorf("%s is a directory", path)
	}
	meta = store.FileMeta{Mode: st.Mode().Perm(), MTime: st.ModTime()}
	return f, st.Size(), meta, func() { f.Close() }, nil
}

// readerWithContext stops a long copy when the command is interrupted.
func readerWithContext(ctx context.Context, r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return r.Read(p)
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

type getCmd struct {
	Name string `arg:"" help:"Archive path: NAME or DIR/NAME."`
	File string `arg:"" optional:"" help:"Destination; '-' or omitted writes standard output."`
}

func (c *getCmd) Run(g *globals) error {
	a, err := g.openArchive()
	if err != nil {
		return err
	}
	defer a.Close()
	if c.File == "" || c.File == "-" {
		_, err := a.Get(c.Name, g.stdout)
		return err
	}
	return writeFileAtomic(c.File, func(w io.Writer) (store.FileInfo, error) { return a.Get(c.Name, w) })
}

// writeFileAtomic writes to a temp file beside path, fsyncs, then renames:
// a restore_command that fails half-way never leaves a partial segment
// under the name PostgreSQL will read.
func writeFileAtomic(path string, fill func(io.Writer) (store.FileInfo, error)) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".walrus-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	info, err := fill(tmp)
	if err != nil {
		return err
	}
	if err = tmp.Chmod(info.Mode.Perm() | 0o600); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Chtimes(tmp.Name(), info.MTime, info.MTime); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

type lsCmd struct {
	Dir  string `arg:"" optional:"" help:"Directory (namespace); the root when omitted."`
	Long bool   `short:"l" help:"Show size, modification time and kind."`
}

func (c *lsCmd) Run(g *globals) error {
	a, err := g.openArchive()
	if err != nil {
		return err
	}
	defer a.Close()
	l, err := a.List(strings.Trim(c.Dir, "/"))
	if err != nil {
		return fmt.Errorf("ls %s: %w", c.Dir, err)
	}
	for _, d := range l.Dirs {
		fmt.Fprintf(g.stdout, "%s/\n", d)
	}
	for _, fi := range l.Files {
		if c.Long {
			fmt.Fprintf(g.stdout, "%12d  %s  %-8s  %s\n", fi.Size, fi.MTime.UTC().Format(time.RFC3339), fi.Kind, fi.Name)
		} else {
			fmt.Fprintln(g.stdout, fi.Name)
		}
	}
	return nil
}

type rmCmd struct {
	Name string `arg:"" help:"Archive path: NAME or DIR/NAME."`
}

func (c *rmCmd) Run(g *globals) error {
	a, err := g.openArchive()
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Remove(c.Name); err != nil {
		return err
	}
	return a.Close()
}
