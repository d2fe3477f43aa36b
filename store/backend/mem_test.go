package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// mem is an in-memory Backend for the fuzz test (fsync-free, so fast). It
// passes the conformance suite like the others (TestMemConformance).
type mem struct {
	mu      sync.Mutex
	objects map[string][]byte // guarded by mu
}

func newMem() *mem { return &mem{objects: map[string][]byte{}} }

func (m *mem) Location() string { return "mem:" }

func (m *mem) Put(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	return m.put(ctx, name, r, size, false)
}

func (m *mem) PutIfAbsent(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	return m.put(ctx, name, r, size, true)
}

func (m *mem) put(ctx context.Context, name string, r io.ReaderAt, size int64, exclusive bool) error {
	if err := backend.ValidName(name); err != nil {
		return err
	}
	buf := make([]byte, size)
	if n, err := r.ReadAt(buf, 0); n < len(buf) {
		return fmt.Errorf("mem: short source: %v", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[name]; ok && exclusive {
		return backend.ErrExist
	}
	m.objects[name] = buf
	return nil
}

func (m *mem) get(name string) ([]byte, error) {
	if err := backend.ValidName(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objects[name]
	if !ok {
		return nil, backend.ErrNotExist
	}
	return b, nil
}

func (m *mem) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := m.get(name)
	if err != nil {
		return err
	}
	if off < 0 || off+int64(len(p)) > int64(len(b)) {
		return fmt.Errorf("%w: %d bytes", backend.ErrShort, len(b))
	}
	copy(p, b[off:])
	return nil
}

func (m *mem) Stat(ctx context.Context, name string) (backend.Info, error) {
	b, err := m.get(name)
	return backend.Info{Name: name, Size: int64(len(b))}, err
}

func (m *mem) List(ctx context.Context, prefix string, fn func(backend.Info) error) error {
	m.mu.Lock()
	var infos []backend.Info
	for n, b := range m.objects {
		if strings.HasPrefix(n, prefix) {
			infos = append(infos, backend.Info{Name: n, Size: int64(len(b))})
		}
	}
	m.mu.Unlock()
	for _, i := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(i); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (m *mem) ListAfter(ctx context.Context, prefix, after string, fn func(backend.Info) error) error {
	return backend.ListAfterFromList(ctx, m.List, prefix, after, fn)
}

func (m *mem) Delete(ctx context.Context, name string) error {
	if err := backend.ValidName(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, name)
	return nil
}

func TestMemConformance(t *testing.T) {
	backendtest.Run(t, func(*testing.T) backend.Backend { return newMem() }, backendtest.Options{})
}

// FuzzEncryptedRead stores arbitrary bytes as an encrypted object's
// stored form and reads it back. The seeds are objects Encrypted wrote of
// plaintext Data(n, n); a read may succeed only with exactly such a
// plaintext (only the key holder can make one); anything else fails with
// ErrTampered (or ErrShort past the end), never with other bytes.
func FuzzEncryptedRead(f *testing.F) {
	ctx := context.Background()
	m := newMem()
	enc := backend.NewEncrypted(m, testKey)
	for _, n := range []int{0, 1, 65536, 65537, 2*65536 + 5} {
		backendtest.Put(f, enc, "seed", backendtest.Data(uint64(n), n))
		stored, err := backendtest.ReadAll(ctx, m, "seed")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(stored)
	}
	f.Fuzz(func(t *testing.T, stored []byte) {
		m := newMem()
		backendtest.Put(t, m, "seed", stored)
		got, err := backendtest.ReadAll(ctx, backend.NewEncrypted(m, testKey), "seed")
		switch {
		case err == nil && !bytes.Equal(got, backendtest.Data(uint64(len(got)), len(got))):
			t.Fatalf("%d stored bytes read as %d plaintext bytes no writer wrote", len(stored), len(got))
		case err != nil && !errors.Is(err, backend.ErrTampered) && !errors.Is(err, backend.ErrShort):
			t.Fatalf("damaged object: %v; want ErrTampered", err)
		}
	})
}
