package e2e

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// `walrus serve --ack remote`: a segment pushed with the real rsync
// client or cp into the mount is in the bucket when the push returns. The
// roll age is an hour, so nothing gets there by age: the server is killed
// (SIGKILL, no drain) right after the last push, its data directory
// deleted and rebuilt with `walrus repair --from-bucket`, and every
// segment reads back byte-identical. With the bucket down a push fails
// within --ack-timeout with a message saying so (rsync prints it; cp gets
// EIO, the reason is logged), an identical re-push fails too, and both
// succeed once the bucket is back, after which the bucket alone holds
// them.
func TestRemoteAckRsyncAndMount(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	if _, err := exec.LookPath("rsync"); err != nil {
		testenv.Require(t, "rsync")
	}
	corpus := walCorpus(t, 6)
	gw := backendtest.StartVersityGW(t)
	home := t.TempDir()
	common, serveArgs := bucketArgs(t, gw, home, false)
	i := slices.Index(serveArgs, "--bucket-roll-age")
	serveArgs[i+1] = "1h"
	const ackTimeout = 5 * time.Second
	serveArgs = append(serveArgs, "--ack", "remote", "--ack-timeout", ackTimeout.String())

	rsyncPush := func(w *walrusproc.Server, p string) (string, error) {
		out, err := exec.Command("rsync", "-a", p, w.StoreURL("ns/"+filepath.Base(p))).CombinedOutput()
		return string(out), err
	}
	cpPush := func(w *walrusproc.Server, p string) (string, error) {
		out, err := exec.Command("cp", p, filepath.Join(w.Mount, "ns", filepath.Base(p))).CombinedOutput()
		return string(out), err
	}
	checkRebuilt := func(w *walrusproc.Server, files []string) *walrusproc.Server {
		t.Helper()
		w.Kill() // right after the ack: nothing more reaches the bucket
		rebuildFromBucket(t, w, gw, common)
		w = walrusproc.Start(t, home, serveArgs...)
		for _, p := range files {
			if out, err := exec.Command("cmp", p, filepath.Join(w.Mount, "ns", filepath.Base(p))).CombinedOutput(); err != nil {
				t.Fatalf("%s after the rebuild from the bucket: %v %s", filepath.Base(p), err, out)
			}
		}
		return w
	}

	w := walrusproc.Start(t, home, serveArgs...)
	if out, err := exec.Command("mkdir", filepath.Join(w.Mount, "ns")).CombinedOutput(); err != nil {
		t.Fatalf("mkdir: %v %s", err, out)
	}
	for i, p := range corpus[:4] {
		push := rsyncPush
		if i%2 == 1 {
			push = cpPush
		}
		if out, err := push(w, p); err != nil {
			t.Fatalf("push %s: %v %s", p, err, out)
		}
	}
	w = checkRebuilt(w, corpus[:4])

	gw.Stop()
	for _, what := range []string{"rsync push", "cp push", "identical rsync re-push"} {
		p, push := corpus[4], rsyncPush
		if what == "cp push" {
			p, push = corpus[5], cpPush
		}
		start := time.Now()
		out, err := push(w, p)
		took := time.Since(start)
		if err == nil {
			t.Fatalf("%s with the bucket down succeeded: %s", what, out)
		}
		if took > ackTimeout+10*time.Second { // bounded (process start-up included), not a speed assertion
			t.Fatalf("%s failed after %v, --ack-timeout %v", what, took, ackTimeout)
		}
		if what != "cp push" && (!strings.Contains(out, "bucket is unreachable") || !strings.Contains(out, "once the bucket is back")) {
			t.Fatalf("%s: rsync does not say the bucket is unreachable:\n%s", what, out)
		}
		t.Logf("%s failed after %v: %s", what, took.Round(time.Millisecond), strings.TrimSpace(out))
	}
	if !strings.Contains(w.Output(), "bucket is unreachable") {
		t.Fatalf("the server log does not say why cp failed:\n%s", w.Output())
	}

	gw.Restart(t)
	for _, p := range corpus[4:] { // identical re-pushes of what was committed locally
		if out, err := rsyncPush(w, p); err != nil {
			t.Fatalf("re-push of %s with the bucket back: %v %s", p, err, out)
		}
	}
	checkRebuilt(w, corpus)
}
