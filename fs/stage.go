package fs

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// memBudget bounds the staging memory of all drafts together.
// Locking: mu guards used.
type memBudget struct {
	mu   sync.Mutex
	used int64
	max  int64
}

func (b *memBudget) reserve(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *memBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// stageBuffer holds the bytes of a staged draft: in memory up to a limit
// (and while the shared budget allows), then in an unlinked spill file.
// It is not safe for concurrent use; the owning draft's mutex guards it.
type stageBuffer struct {
	budget *memBudget
	limit  int64  // most bytes held in memory
	dir    string // where spill files go
	mem    []byte // len(mem) == size while in memory; cap(mem) is reserved
	file   *os.File
	size   int64
}

func newStageBuffer(fsys *fileSystem) *stageBuffer {
	return &stageBuffer{budget: &fsys.budget, limit: fsys.opts.StageMemory, dir: fsys.opts.StageDir}
}

// Size is the logical size.
func (b *stageBuffer) Size() int64 { return b.size }

// WriteAt writes p at off; a gap after the old end reads as zeros.
func (b *stageBuffer) WriteAt(p []byte, off int64) error {
	end := off + int64(len(p))
	if err := b.grow(end); err != nil {
		return err
	}
	if b.file != nil {
		if _, err := b.file.WriteAt(p, off); err != nil {
			return fmt.Errorf("fs: write staging file: %w", err)
		}
	} else {
		copy(b.mem[off:end], p)
	}
	b.size = max(b.size, end)
	return nil
}

// Truncate sets the logical size; growing adds zeros.
func (b *stageBuffer) Truncate(n int64) error {
	if n > b.size {
		return b.grow(n)
	}
	if b.file != nil {
		if err := b.file.Truncate(n); err != nil {
			return fmt.Errorf("fs: truncate staging file: %w", err)
		}
	} else {
		b.mem = b.mem[:n]
	}
	b.size = n
	return nil
}

// grow makes room for n bytes, zero-filling past the old size.
func (b *stageBuffer) grow(n int64) error {
	if n <= b.size {
		return nil
	}
	if b.file == nil && n > int64(cap(b.mem)) && !b.enlarge(n) {
		if err := b.spill(); err != nil {
			return err
		}
	}
	if b.file != nil {
		if err := b.file.Truncate(n); err != nil { // holes read as zeros
			return fmt.Errorf("fs: extend staging file: %w", err)
		}
	} else {
		old := len(b.mem)
		b.mem = b.mem[:n]
		clear(b.mem[old:])
	}
	b.size = n
	return nil
}

// enlarge grows the memory buffer to hold n bytes if the limits allow.
func (b *stageBuffer) enlarge(n int64) bool {
	c := min(max(n, 2*int64(cap(b.mem)), 64<<10), b.limit)
	if n > c || !b.budget.reserve(c-int64(cap(b.mem))) {
		return false
	}
	m := make([]byte, len(b.mem), c)
	copy(m, b.mem)
	b.budget.release(int64(cap(b.mem)))
	b.mem = m
	return true
}

// spill moves the content to an unlinked file in dir and frees the memory.
func (b *stageBuffer) spill() error {
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return fmt.Errorf("fs: staging directory: %w", err)
	}
	f, err := os.CreateTemp(b.dir, "spill-*")
	if err != nil {
		return fmt.Errorf("fs: create staging file: %w", err)
	}
	os.Remove(f.Name()) // unlinked: the space returns when f is closed, even after a crash
	if _, err := f.WriteAt(b.mem, 0); err != nil {
		f.Close()
		return fmt.Errorf("fs: write staging file: %w", err)
	}
	b.file = f
	b.freeMem()
	return nil
}

func (b *stageBuffer) freeMem() {
	b.budget.release(int64(cap(b.mem)))
	b.mem = nil
}

// ReadAt implements io.ReaderAt over the logical content.
func (b *stageBuffer) ReadAt(p []byte, off int64) (int, error) {
	if off >= b.size {
		return 0, io.EOF
	}
	if rest := b.size - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	var n int
	var err error
	if b.file != nil {
		n, err = b.file.ReadAt(p, off)
	} else {
		n = copy(p, b.mem[off:])
	}
	if err == nil && off+int64(n) == b.size {
		err = io.EOF
	}
	return n, err
}

// WriteTo writes the whole content to w in pieces of at most chunk bytes.
func (b *stageBuffer) WriteTo(w io.Writer, chunk int) error {
	if b.file == nil {
		for off := int64(0); off < b.size; off += int64(chunk) {
			if _, err := w.Write(b.mem[off:min(off+int64(chunk), b.size)]); err != nil {
				return err
			}
		}
		return nil
	}
	_, err := io.CopyBuffer(w, io.NewSectionReader(b.file, 0, b.size), make([]byte, chunk))
	return err
}

// Close frees the memory and the spill file.
func (b *stageBuffer) Close() {
	b.freeMem()
	if b.file != nil {
		b.file.Close()
		b.file = nil
	}
	b.size = 0
}
