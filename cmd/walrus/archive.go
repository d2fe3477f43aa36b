package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/walrus-archive/walrus/internal/control"
	"github.com/walrus-archive/walrus/store"
)

// archive is what the file commands need. A running `walrus serve` owns the
// store, so the commands go through its control socket; with no server they
// open the store themselves.
type archive interface {
	Put(name string, r io.Reader, size int64, meta store.FileMeta) error
	Get(name string, w io.Writer) (store.FileInfo, error)
	List(dir string) (control.Listing, error)
	Remove(name string) error
	Status() (store.Status, error)
	Verify(ctx context.Context, dir string) (store.VerifyReport, error)
	Close() error
}

func (g *globals) openArchive() (archive, error) {
	c, err := control.Dial(g.Data)
	if err == nil {
		return remoteArchive{c}, nil
	}
	if !errors.Is(err, control.ErrNoServer) {
		return nil, err
	}
	// Only serve and init create a store: a command pointed at the wrong
	// directory must fail, not answer from an empty archive.
	s, err := store.Open(store.Config{Dir: g.Data, Logger: g.log, MustExist: true})
	if err != nil {
		return nil, explainOpenError(g.Data, err)
	}
	return localArchive{s}, nil
}

// explainOpenError says what to do about the store's refusals to open a
// directory; the store's sentinel stays in the chain for exitCode.
func explainOpenError(dir string, err error) error {
	switch {
	case errors.Is(err, store.ErrNoStore):
		return hintError{err, fmt.Sprintf("%s holds no walrus store (no index/, no packs/); check --data, "+
			"or create one with `walrus --data %s init` (walrus serve creates one too)", dir, dir)}
	case errors.Is(err, store.ErrIndexMissing), errors.Is(err, store.ErrIndexDamaged):
		return hintError{err, fmt.Sprintf("%v; rebuild %s from the packs with `walrus --data %s repair` "+
			"(until then no command, serve and init included, opens it)", err, filepath.Join(dir, "index"), dir)}
	}
	return err
}

// hintError replaces an error's text with one that says what to do.
type hintError struct {
	err  error
	text string
}

func (e hintError) Error() string { return e.text }
func (e hintError) Unwrap() error { return e.err }

type remoteArchive struct{ c *control.Client }

func (r remoteArchive) Put(name string, in io.Reader, size int64, meta store.FileMeta) error {
	return r.c.Put(name, in, size, meta)
}
func (r remoteArchive) Get(name string, w io.Writer) (store.FileInfo, error) { return r.c.Get(name, w) }
func (r remoteArchive) List(dir string) (control.Listing, error)             { return r.c.List(dir) }
func (r remoteArchive) Remove(name string) error                             { return r.c.Remove(name) }
func (r remoteArchive) Status() (store.Status, error)                        { return r.c.Status() }
func (r remoteArchive) Verify(_ context.Context, dir string) (store.VerifyReport, error) {
	return r.c.Verify(dir)
}
func (r remoteArchive) Close() error { return nil }

type localArchive struct{ s *store.Store }

func (l localArchive) Put(name string, in io.Reader, size int64, meta store.FileMeta) error {
	u, err := l.s.Create(name, meta)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(u, in, make([]byte, 1<<20)); err != nil {
		u.Abort()
		return err
	}
	_, err = u.Commit()
	return err
}

func (l localArchive) Get(name string, w io.Writer) (store.FileInfo, error) {
	r, err := l.s.OpenFrom(name, store.Origin{Interface: "cli"})
	if err != nil {
		return store.FileInfo{}, err
	}
	defer r.Close()
	_, err = r.WriteTo(w)
	return r.Info(), err
}

func (l localArchive) List(dir string) (control.Listing, error) {
	var out control.Listing
	ok, err := l.s.IsDir(dir)
	if err != nil {
		return out, err
	}
	if !ok {
		return out, store.ErrNotFound
	}
	if dir == "" {
		dirs, err := l.s.Dirs()
		if err != nil {
			return out, err
		}
		for _, d := range dirs {
			out.Dirs = append(out.Dirs, d.Name)
		}
	}
	out.Files, err = l.s.List(dir)
	return out, err
}

func (l localArchive) Remove(name string) error      { return l.s.Remove(name) }
func (l localArchive) Status() (store.Status, error) { return l.s.Status() }
func (l localArchive) Verify(ctx context.Context, dir string) (store.VerifyReport, error) {
	return l.s.Verify(ctx, dir, nil)
}
func (l localArchive) Close() error { return l.s.Close() }
