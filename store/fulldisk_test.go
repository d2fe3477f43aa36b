package store

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
)

// fullDiskCycles is how often TestFullDiskNeverKillsTheStore drives the
// filesystem to full (WALRUS_SOAK: many more).
func fullDiskCycles() int {
	if n, err := strconv.Atoi(os.Getenv("WALRUS_SOAK_FULLDISK_CYCLES")); err == nil && n > 0 {
		return n
	}
	if os.Getenv("WALRUS_SOAK") != "" {
		return 50
	}
	return 6
}

// fullDiskChild runs in a child process (a SIGBUS would kill it, not the
// test binary). Each cycle it opens the store on the small filesystem
// root, pushes until refused, fills what is left of the filesystem to the
// last block as another program would, removes two in three of the files
// it pushed, runs GC, tries a push, closes and reopens the store on the
// full filesystem, then frees the space, pushes again, and removes the
// cycle's files but two (and those of five cycles ago). It prints "ok NAME SHA256" per acknowledged
// file, "rm NAME" per removal, "cycle N" and, at the end, "done".
func fullDiskChild(root string, cycles int) {
	data := filepath.Join(root, "data")
	filler := filepath.Join(root, "filler")
	cfg := Config{Dir: data}
	smallPacks(&cfg)
	n := 0
	var kept []string
	push := func(s *Store) error {
		n++
		name := fmt.Sprintf("f%05d", n)
		b := randomBytes(192<<10, uint64(n))
		u, err := s.Create(name, FileMeta{Mode: 0o600, MTime: time.Now()})
		if err == nil {
			if _, err = u.Write(b); err != nil {
				u.Abort()
			}
		}
		if err == nil {
			_, err = u.Commit()
		}
		if err != nil {
			return err
		}
		fmt.Printf("ok %s %x\n", name, sha256.Sum256(b))
		return nil
	}
	fatal := func(what string, err error) {
		fmt.Printf("FAIL %s: %v\n", what, err)
		os.Exit(1)
	}
	for c := 0; c < cycles; c++ {
		s, err := Open(cfg)
		if err != nil {
			fatal("open", err)
		}
		var pushed []string
		for {
			if err := push(s); err != nil {
				if !errors.Is(err, ErrNoSpace) {
					fatal("push until refused", err)
				}
				break
			}
			pushed = append(pushed, fmt.Sprintf("f%05d", n))
		}
		if err := fillAll(filler); err != nil {
			fatal("fill", err)
		}
		for i, name := range pushed { // rm on a full disk: two in three
			if i%3 == 0 {
				continue
			}
			if err := s.Remove(name); err != nil {
				fatal("rm on a full disk", err)
			}
			fmt.Println("rm", name)
		}
		if _, err := s.GC(context.Background(), GCOptions{}); err != nil {
			fatal("gc on a full disk", err)
		}
		if err := push(s); err != nil && !errors.Is(err, ErrNoSpace) {
			fatal("push on a full disk", err)
		}
		if err := s.Close(); err != nil { // must not fault
			// It left the index to be recovered by the next open; badger's
			// directory lock stays with this process: restart, as a
			// server would be.
			fmt.Println("restart", c, err)
			os.Exit(3)
		}
		if s, err = Open(cfg); err == nil {
			s.Close()
		} else if !errors.Is(err, ErrNoSpace) {
			fatal("open on a full disk", err)
		}
		os.Remove(filler)
		s, err = Open(cfg)
		if err != nil {
			fatal("open after space returned", err)
		}
		if err := push(s); err != nil {
			fatal("first push after space returned", err)
		}
		for i, name := range pushed { // retention: two files of each of the last five cycles
			if i%3 == 0 && i <= 3 {
				kept = append(kept, name)
			} else if i%3 == 0 {
				if err := s.Remove(name); err != nil {
					fatal("rm", err)
				}
				fmt.Println("rm", name)
			}
		}
		for len(kept) > 10 {
			if err := s.Remove(kept[0]); err != nil {
				fatal("rm", err)
			}
			fmt.Println("rm", kept[0])
			kept = kept[1:]
		}
		if _, err := s.GC(context.Background(), GCOptions{}); err != nil {
			fatal("gc", err)
		}
		if err := s.Close(); err != nil {
			fatal("close", err)
		}
		fmt.Println("cycle", c)
	}
	fmt.Println("done")
}

// fillAll writes path until the filesystem has no block left.
func fillAll(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

// TestFullDiskNeverKillsTheStore drives the store's filesystem to full
// again and again, the last block taken by another writer, and checks that
// the process survives (badger writes through mappings, so a full disk used
// to end it with SIGBUS), that rm and gc work on the full disk, that the
// first push after space returns succeeds, and that nothing acknowledged
// and not removed is lost.
func TestFullDiskNeverKillsTheStore(t *testing.T) {
	root := testenv.SmallFS(t, 128<<20)
	cycles := fullDiskCycles()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "WALRUS_FULLDISK_CHILD="+root, fmt.Sprintf("WALRUS_FULLDISK_CYCLES=%d", cycles))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{}
	done, cyclesDone := false, 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "ok":
			acked[f[1]] = f[2]
		case len(f) == 2 && f[0] == "rm":
			delete(acked, f[1])
		case len(f) == 2 && f[0] == "cycle":
			cyclesDone++
		case len(f) == 1 && f[0] == "done":
			done = true
		default:
			t.Errorf("child: %s", sc.Text())
		}
	}
	err = cmd.Wait()
	if err != nil || !done {
		tail := stderr.String()
		if len(tail) > 4000 {
			tail = tail[:4000]
		}
		t.Fatalf("child died after %d of %d full-disk cycles: %v\n%s", cyclesDone, cycles, err, tail)
	}
	s := openTest(t, filepath.Join(root, "data"), smallPacks)
	for name, sum := range acked {
		if got := fmt.Sprintf("%x", sha256.Sum256(readAll(t, s, name))); got != sum {
			t.Fatalf("acknowledged %s reads back different bytes", name)
		}
	}
	checkIntact(t, s, nil)
	checkGCInvariants(t, s)
	t.Logf("%d full-disk cycles in %v (rm, gc, push, close and open on a full disk each time); %d acknowledged files intact",
		cycles, time.Since(start).Round(time.Millisecond), len(acked))
}
