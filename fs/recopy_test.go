package fs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/walrus-archive/walrus/internal/walgen"
)

// PostgreSQL re-archives a segment after a crash with the same cp while a
// restore_command may be copying it out: every reader must get the whole
// committed file, never a prefix with exit 0.
func TestReadersSeeWholeFileDuringIdenticalRecopy(t *testing.T) {
	e := mountTest(t)
	g := seg(50, func(s *walgen.Segment) { s.SegSize = 16 << 20 })
	src := e.source("a", g.Bytes())
	e.mustRun("cp", src, e.m(g.Name()))
	out := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // the re-archiving writer
		defer wg.Done()
		for i := 0; i < 10; i++ {
			if b, err := exec.Command("cp", src, e.m(g.Name())).CombinedOutput(); err != nil {
				errs <- fmt.Errorf("re-copy %d: %v %s", i, err, b)
			}
		}
		close(stop)
	}()
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				dst := filepath.Join(out, fmt.Sprintf("r%d-%d", r, i))
				if b, err := exec.Command("cp", e.m(g.Name()), dst).CombinedOutput(); err != nil {
					errs <- fmt.Errorf("reader: %v %s", err, b)
					continue
				}
				got, _ := os.ReadFile(dst)
				if !bytes.Equal(got, g.Bytes()) {
					errs <- fmt.Errorf("reader %d copy %d: %d of %d bytes, exit 0", r, i, len(got), len(g.Bytes()))
				}
				os.Remove(dst)
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
}

// A SETATTR must not change what stat says the inode number is.
func TestSetattrKeepsInodeNumber(t *testing.T) {
	e := mountTest(t)
	g := seg(51)
	e.put(g.Name(), g.Bytes())
	e.mustRun("mkdir", e.m("ns"))
	for _, p := range []string{e.m(g.Name()), e.m("ns")} {
		before := e.mustRun("stat", "-c", "%i", p)
		e.mustRun("touch", "-m", "-d", "@1500000000", p)
		if after := e.mustRun("stat", "-c", "%i", p); after != before {
			t.Errorf("%s: inode %s before touch, %s after", p, before, after)
		}
	}
}
