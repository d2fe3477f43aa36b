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

func (g *globals) openStore() (*store.Store, error) {
	return store.Open(store.Config{Dir: g.Data, Logger: g.log})
}

type putCmd struct {
	Name string `arg:"" help:"Archive path: NAME or DIR/NAME."`
	File string `arg:"" optional:"" help:"File to read; '-' or omitted reads standard input."`
}

func (c *putCmd) Run(ctx context.Context, g *globals) error {
	in, meta, closeIn, err := openInput(c.File, g.stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	s, err := g.openStore()
	if err != nil {
		return err
	}
	defer s.Close()
	u, err := s.Create(c.Name, meta)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(u, readerWithContext(ctx, in), make([]byte, 1<<20)); err != nil {
		u.Abort()
		return fmt.Errorf("put %s: %w", c.Name, err)
	}
	if _, err := u.Commit(); err != nil {
		return err
	}
	return s.Close()
}

func openInput(path string, stdin io.Reader) (io.Reader, store.FileMeta, func(), error) {
	meta := store.FileMeta{Mode: 0o600, MTime: time.Now()}
	if path == "" || path == "-" {
		return stdin, meta, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, meta, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, meta, nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, meta, nil, fmt.Errorf("%s is a directory", path)
	}
	meta = store.FileMeta{Mode: st.Mode().Perm(), MTime: st.ModTime()}
	return f, meta, func() { f.Close() }, nil
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
	s, err := g.openStore()
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.Open(c.Name)
	if err != nil {
		return err
	}
	if c.File == "" || c.File == "-" {
		_, err := r.WriteTo(g.stdout)
		return err
	}
	return writeFileAtomic(c.File, r)
}

// writeFileAtomic writes to a temp file beside path, fsyncs, then renames:
// a restore_command that fails half-way never leaves a partial segment
// under the name PostgreSQL will read.
func writeFileAtomic(path string, r *store.Reader) (err error) {
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
	if _, err = r.WriteTo(tmp); err != nil {
		return err
	}
	info := r.Info()
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
	s, err := g.openStore()
	if err != nil {
		return err
	}
	defer s.Close()
	dir := strings.Trim(c.Dir, "/")
	if ok, err := s.IsDir(dir); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: directory %s", store.ErrNotFound, c.Dir)
	}
	if dir == "" {
		dirs, err := s.Dirs()
		if err != nil {
			return err
		}
		for _, d := range dirs {
			fmt.Fprintf(g.stdout, "%s/\n", d.Name)
		}
	}
	if !c.Long {
		return s.Names(dir, func(name string) error {
			_, err := fmt.Fprintln(g.stdout, name)
			return err
		})
	}
	return s.Walk(context.Background(), dir, func(fi store.FileInfo) error {
		_, err := fmt.Fprintf(g.stdout, "%12d  %s  %-8s  %s\n", fi.Size, fi.MTime.UTC().Format(time.RFC3339), fi.Kind, fi.Name)
		return err
	})
}

type rmCmd struct {
	Name string `arg:"" help:"Archive path: NAME or DIR/NAME."`
}

func (c *rmCmd) Run(g *globals) error {
	s, err := g.openStore()
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Remove(c.Name); err != nil {
		return err
	}
	return s.Close()
}
