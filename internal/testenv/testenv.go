// Package testenv decides, in one place, what a test does when this machine
// lacks something it needs (root, /dev/fuse, the rsync client, PostgreSQL
// 15): skip with the reason — or, when CI=true, fail, because CI must never
// pass by skipping (restic's RESTIC_TEST_DISALLOW_SKIP).
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// PGBin is where the tests find PostgreSQL 15.
const PGBin = "/usr/lib/postgresql/15/bin"

// Require skips t (or fails it under CI=true) unless missing is "".
func Require(t testing.TB, missing string) {
	t.Helper()
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs %s, and CI=true forbids skipping", missing)
	}
	t.Skipf("needs %s", missing)
}

// FUSE reports what is missing to mount FUSE directly ("" if nothing).
func FUSE() string {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "/dev/fuse"
	}
	if os.Geteuid() != 0 {
		return "root (the tests mount FUSE directly)"
	}
	return ""
}

// Command reports whether name is on PATH ("" if it is).
func Command(name string) string {
	if _, err := exec.LookPath(name); err != nil {
		return "the " + name + " command"
	}
	return ""
}

// Postgres reports what is missing to run PostgreSQL 15 as the postgres
// OS user ("" if nothing).
func Postgres() string {
	if _, err := os.Stat(filepath.Join(PGBin, "initdb")); err != nil {
		return "PostgreSQL 15 in " + PGBin
	}
	if u, err := user.Current(); err != nil || (u.Uid != "0" && u.Username != "postgres") {
		return "root or the postgres user (initdb refuses to run as root)"
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return "the postgres OS user"
	}
	return ""
}

// RequireFUSE is Require(t, FUSE()).
func RequireFUSE(t testing.TB) { t.Helper(); Require(t, FUSE()) }

// RequireCommand is Require(t, Command(name)).
func RequireCommand(t testing.TB, name string) { t.Helper(); Require(t, Command(name)) }

// RequirePostgres is Require(t, Postgres()).
func RequirePostgres(t testing.TB) { t.Helper(); Require(t, Postgres()) }

// WaitFor polls cond until it holds, failing t after timeout. The short
// sleep between polls is a polling interval, not synchronisation: the test
// waits for a condition it can observe, with a deadline.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// SmallFS mounts a tmpfs of size bytes on a new temporary directory and
// returns that directory; it is detached at cleanup. Full-disk tests use
// it: a real filesystem that really runs out of space (ENOSPC on write,
// SIGBUS on a store through a mapping). It needs root; without it (or when
// mount(2) is refused, as in an unprivileged container) Require decides.
func SmallFS(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir() // its removal is registered first, so it runs after the unmount
	MountSmallFS(t, dir, size)
	return dir
}

// MountSmallFS is SmallFS on an existing directory (mode 0755 at its root).
func MountSmallFS(t testing.TB, dir string, size int64) {
	t.Helper()
	if os.Geteuid() != 0 {
		Require(t, "root (to mount a small tmpfs for full-disk tests)")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		Require(t, fmt.Sprintf("mount(2) of a tmpfs (%v)", err))
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// Fill grows the file path until its filesystem has at most left bytes
// free (left 0: none), as another program filling the disk would. It
// takes the space in as few fallocate calls as it can, so that it does not
// run on into space a server frees while the disk is being filled (a
// program that keeps writing after the disk is full is another test).
func Fill(t testing.TB, path string, left int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
			t.Fatal(err)
		}
		n := int64(st.Bavail)*st.Bsize - left
		if n <= 0 {
			return
		}
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Fallocate(int(f.Fd()), 0, fi.Size(), n)
		switch {
		case err == nil, errors.Is(err, syscall.ENOSPC):
			// ENOSPC: someone took some of it meanwhile; measure again.
			if err != nil && left == 0 {
				if err := syscall.Fallocate(int(f.Fd()), 0, fi.Size(), st.Bsize); errors.Is(err, syscall.ENOSPC) {
					return // not one block left
				}
			}
		default:
			t.Fatalf("fill %s: %v", path, err)
		}
	}
}
