package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
)

// contrib/systemd/walrus.service passes systemd-analyze verify, and the
// classic archive-host rsyncd.conf in contrib/etc-walrus serves unchanged:
// walrus serve started as that unit starts it (Type=notify) tells systemd
// READY=1 once the mount and the gateway are live and STOPPING=1 at
// SIGTERM, a push to wal_store and a pull from wal_fetch work through it,
// and the stop is clean (exit 0, mount gone).
func TestSystemdUnitAndSampleConfig(t *testing.T) {
	testenv.Require(t, testenv.Command("systemd-analyze"))
	testenv.Require(t, testenv.FUSE())
	bin := binary(t)
	work := t.TempDir()

	unit, err := os.ReadFile("../../contrib/systemd/walrus.service")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("Type=notify")) {
		t.Fatal("the unit is not Type=notify")
	}
	local := filepath.Join(work, "walrus.service")
	if err := os.WriteFile(local, bytes.ReplaceAll(unit, []byte("/usr/local/bin/walrus"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", local).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The sample rsyncd.conf, with only its log file moved out of /var/log.
	conf, err := os.ReadFile("../../contrib/etc-walrus/rsyncd.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf = bytes.ReplaceAll(conf, []byte("/var/log/walrus-rsyncd.log"), []byte(filepath.Join(work, "rsyncd.log")))
	confPath := filepath.Join(work, "rsyncd.conf")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		t.Fatal(err)
	}

	sock := filepath.Join(work, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	notified := func(want string) {
		t.Helper()
		ln.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 512)
		n, err := ln.Read(buf)
		if err != nil || !strings.Contains(string(buf[:n]), want) {
			t.Fatalf("sd_notify: got %q (%v), want %s", buf[:n], err, want)
		}
	}

	mnt := filepath.Join(work, "pg_archived")
	port := freePort(t)
	p := startServeEnv(t, []string{"NOTIFY_SOCKET=" + sock, "WALRUS_DATA=" + filepath.Join(work, "data"), "WALRUS_LOG_LEVEL=info"},
		"--mount", mnt, "--rsyncd-conf", confPath, "--archive-root", "/db/pg_archived",
		"--rsync-listen", fmt.Sprintf("127.0.0.1:%d", port))
	notified("READY=1")

	g := walgen.Segment{TLI: 1, SegNo: 5, SysID: 77, SegSize: 1 << 20, Seed: 3}
	src := filepath.Join(work, g.Name())
	if err := os.WriteFile(src, g.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("rsync://127.0.0.1:%d/", port)
	if out, err := exec.Command("rsync", "-aq", src, url+"wal_store/"+g.Name()).CombinedOutput(); err != nil {
		t.Fatalf("push to wal_store: %v %s", err, out)
	}
	back := filepath.Join(work, "back")
	if out, err := exec.Command("rsync", "-a", url+"wal_fetch/"+g.Name(), back).CombinedOutput(); err != nil {
		t.Fatalf("pull from wal_fetch: %v %s", err, out)
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, g.Bytes()) {
		t.Fatal("pulled segment differs from the pushed one")
	}
	if out, err := exec.Command("rsync", "-aq", src, url+"wal_fetch/x").CombinedOutput(); err == nil {
		t.Fatalf("push to the read-only wal_fetch succeeded: %s", out)
	}

	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.stderr)
	}
	notified("STOPPING=1")
	if mounted(mnt) {
		t.Fatal("mount still there after the stop")
	}
}
