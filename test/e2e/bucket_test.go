package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// bucketStatus is the "bucket" object of `walrus status --json`.
type bucketStatus struct {
	Location      string `json:"location"`
	WaitingPacks  int    `json:"waiting_packs"`
	WaitingBytes  int64  `json:"waiting_bytes"`
	ActiveBytes   int64  `json:"active_bytes"`
	UploadedPacks int    `json:"uploaded_packs"`
	Uploads       int64  `json:"uploads"`
	UploadedBytes int64  `json:"uploaded_bytes"`
	Failures      int64  `json:"failures"`
	Failing       bool   `json:"failing"`
	LastError     string `json:"last_error"`
	landed        int64  // files landed through the mount, not yet in a pack
}

func serverBucket(t *testing.T, w *walrusproc.Server) *bucketStatus {
	t.Helper()
	var st struct {
		LandedFiles int64         `json:"landed_files"`
		Bucket      *bucketStatus `json:"bucket"`
	}
	if err := json.Unmarshal([]byte(w.MustCLI("status", "--json")), &st); err != nil {
		t.Fatalf("walrus status --json: %v", err)
	}
	if st.Bucket == nil {
		t.Fatal("walrus status --json has no bucket object with --bucket set")
	}
	st.Bucket.landed = st.LandedFiles
	return st.Bucket
}

// waitBucketEmpty polls `walrus status --json` until nothing committed is
// outside the bucket (nothing landed and not ingested, no pack waiting,
// the active pack sealed by age).
func waitBucketEmpty(t *testing.T, w *walrusproc.Server) *bucketStatus {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		b := serverBucket(t, w)
		if b.landed == 0 && b.WaitingPacks == 0 && b.ActiveBytes == 0 && !b.Failing && b.UploadedPacks > 0 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backlog did not drain in 3 minutes: %+v", b)
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not synchronisation
	}
}

// Segments pushed with the real rsync client and with cp into the FUSE
// mount of a `walrus serve --bucket` (encrypted) are all in the bucket
// once the backlog is 0; the data directory is then deleted, `walrus
// repair --from-bucket` rebuilds a new one from the bucket alone (from the
// server's newest index snapshot: it downloads only the packs written
// after it), and a serve on it returns every segment byte-identical
// through the mount and through rsync, reading the other packs from the
// bucket.
func TestBucketRebuildAfterDataLoss(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	if _, err := exec.LookPath("rsync"); err != nil {
		testenv.Require(t, "rsync")
	}
	const n = 24
	corpus := walCorpus(t, n)
	gw := backendtest.StartVersityGW(t)
	home := t.TempDir()
	common, serveArgs := bucketArgs(t, gw, home, true)
	serveArgs = append(serveArgs, "--bucket-snapshot-bytes", "1", "--bucket-snapshot-interval", "1s")

	w := walrusproc.Start(t, home, serveArgs...)
	if out, err := exec.Command("mkdir", filepath.Join(w.Mount, "ns")).CombinedOutput(); err != nil {
		t.Fatalf("mkdir: %v %s", err, out)
	}
	for i, p := range corpus {
		var cmd *exec.Cmd
		if i%2 == 0 {
			cmd = exec.Command("rsync", "-a", p, w.StoreURL("ns/"+filepath.Base(p)))
		} else {
			cmd = exec.Command("cp", p, filepath.Join(w.Mount, "ns", filepath.Base(p)))
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", cmd, err, out)
		}
	}
	start := time.Now()
	b := waitBucketEmpty(t, w)
	t.Logf("backlog drained %.1fs after the last push: %d packs in the bucket, %d uploads, %d MiB", time.Since(start).Seconds(),
		b.UploadedPacks, b.Uploads, b.UploadedBytes>>20)
	text := w.MustCLI("status")
	if !strings.Contains(text, "bucket encrypted:s3:http://"+gw.Endpoint) || !strings.Contains(text, "waiting to upload: 0 packs") {
		t.Fatalf("walrus status does not show the bucket:\n%s", text)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(w.Data); err != nil {
		t.Fatal(err)
	}

	out := rebuildFromBucket(t, w, gw, common)
	if !strings.Contains(out, "repair: index snapshot snapshots/") || !strings.Contains(out, "stay in the bucket") ||
		strings.Contains(out, "downloading every pack") {
		t.Fatalf("the rebuild did not start from the server's index snapshot:\n%s", out)
	}
	w = walrusproc.Start(t, home, serveArgs...)
	ls := w.Ls("ns")
	for i, p := range corpus {
		name := filepath.Base(p)
		if !slices.Contains(ls, name) {
			t.Fatalf("%s missing after the rebuild (ls: %v)", name, ls)
		}
		if out, err := exec.Command("cmp", p, filepath.Join(w.Mount, "ns", name)).CombinedOutput(); err != nil {
			t.Fatalf("%s through the mount: %v %s", name, err, out)
		}
		if i%6 == 0 {
			dst := filepath.Join(t.TempDir(), name)
			if out, err := exec.Command("rsync", "-a", w.FetchURL("ns/"+name), dst).CombinedOutput(); err != nil {
				t.Fatalf("rsync fetch %s: %v %s", name, err, out)
			}
			if out, err := exec.Command("cmp", p, dst).CombinedOutput(); err != nil {
				t.Fatalf("%s through rsync: %v %s", name, err, out)
			}
		}
	}
	w.Verify()
	t.Logf("rebuilt server's bucket status: %+v", serverBucket(t, w))
}

// bucketArgs writes the secret and (encrypt) a key file into home and
// returns the bucket flags of repair (common) and of serve.
func bucketArgs(t *testing.T, gw *backendtest.VersityGW, home string, encrypt bool) (common, serve []string) {
	t.Helper()
	secretFile := filepath.Join(home, "s3.secret")
	if err := os.WriteFile(secretFile, []byte(gw.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common = []string{"--bucket", gw.NewBucket(t), "--bucket-endpoint", gw.Endpoint, "--no-bucket-tls", "--bucket-prefix", "e2e/",
		"--bucket-access-key", gw.AccessKey}
	if encrypt {
		keyFile := filepath.Join(home, "bucket.key")
		key := make([]byte, 32)
		rand.Read(key)
		if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		common = append(common, "--bucket-key-file", keyFile)
	}
	serve = append(slices.Clone(common), "--bucket-secret-key-file", secretFile, "--bucket-roll-age", "1s", "--log-level", "info")
	return common, serve
}

// rebuildFromBucket deletes the stopped server's data directory and runs
// `walrus repair --from-bucket` into it (the secret from the environment).
func rebuildFromBucket(t *testing.T, w *walrusproc.Server, gw *backendtest.VersityGW, common []string) string {
	t.Helper()
	if err := os.RemoveAll(w.Data); err != nil {
		t.Fatal(err)
	}
	rebuild := exec.Command(walrusproc.Binary(t), append([]string{"--data", w.Data, "repair", "--from-bucket"}, common...)...)
	rebuild.Env = append(os.Environ(), "WALRUS_BUCKET_SECRET_KEY="+gw.Secret)
	start := time.Now()
	out, err := rebuild.CombinedOutput()
	if err != nil {
		t.Fatalf("walrus repair --from-bucket: %v\n%s", err, out)
	}
	t.Logf("rebuild from the bucket in %.1fs:\n%s", time.Since(start).Seconds(), out)
	return string(out)
}

// Point-in-time recovery with real PostgreSQL from an archive rebuilt
// from the bucket: WAL archived with rsync into a serve with a bucket
// (not encrypted), the data directory deleted and rebuilt, and a restore
// of the base backup to a restore point, with restore_command = cp from
// the rebuilt server's mount, holds exactly the rows before it.
func TestBucketPITRAfterDataLoss(t *testing.T) {
	t.Parallel()
	pgcluster.Require(t)
	gw := backendtest.StartVersityGW(t)
	home := pgcluster.TempDir(t)
	common, serveArgs := bucketArgs(t, gw, home, false)
	w := walrusproc.Start(t, home, serveArgs...)
	pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: 1, Conf: []string{"archive_mode = on", rsyncArchive(w, "")}})
	pg.Start()
	pg.Query("create table t (id int primary key, batch int, pad text)")
	backup := pg.BaseBackup("backup", "-X", "none")
	insert := func(batch, from, to int) string {
		return fmt.Sprintf("insert into t select g, %d, repeat('p', 200) from generate_series(%d, %d) g", batch, from, to)
	}
	pg.Query(insert(1, 1, 10000))
	pg.Query("select pg_create_restore_point('before_batch_2')")
	pg.Query(insert(2, 10001, 20000))
	last, _ := pg.SwitchWAL()
	pg.WaitArchived(time.Minute, last)
	pg.Stop("fast")
	waitBucketEmpty(t, w)
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	rebuildFromBucket(t, w, gw, common)
	w = walrusproc.Start(t, home, serveArgs...)
	r := pgcluster.FromBackup(t, "pitr", backup, cpRestore(w, ""), "recovery_target_name = 'before_batch_2'", "recovery_target_action = 'promote'")
	r.Signal("recovery.signal")
	r.Start()
	r.WaitRecovered(time.Minute)
	if got := r.Query("select batch, count(*), min(id), max(id) from t group by batch order by batch"); got != "1|10000|1|10000" {
		t.Fatalf("recovered rows (batch|count|min|max) = %q, want exactly batch 1: 1|10000|1|10000", got)
	}
	r.Stop("fast")
}

// A bucket that is down: pushes through rsync keep succeeding, `walrus
// status --json` and /metrics show the backlog and the failures, the log
// has one WARN for the whole failure streak, and the backlog drains when
// the bucket is back (and the log says so).
func TestBucketOutage(t *testing.T) {
	t.Parallel()
	pgcluster.Require(t, "rsync")
	corpus := walCorpus(t, 8)
	gw := backendtest.StartVersityGW(t)
	home := t.TempDir()
	_, serveArgs := bucketArgs(t, gw, home, true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := ln.Addr().String()
	ln.Close()
	w := walrusproc.Start(t, home, append(serveArgs, "--http", httpAddr)...)
	push := func(p string) {
		if out, err := exec.Command("rsync", "-a", p, w.StoreURL(filepath.Base(p))).CombinedOutput(); err != nil {
			t.Fatalf("rsync %s with the bucket down: %v %s", p, err, out)
		}
	}
	push(corpus[0])
	waitBucketEmpty(t, w)

	gw.Stop()
	for i, p := range corpus[1:8] {
		push(p)
		// One pack per push: wait until the roll age sealed it.
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) { // polling interval
			if b := serverBucket(t, w); b.ActiveBytes == 0 && b.WaitingPacks >= i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("push %d was not sealed by age: %+v", i, serverBucket(t, w))
			}
		}
	}
	deadline := time.Now().Add(time.Minute)
	var b *bucketStatus
	for {
		b = serverBucket(t, w)
		if b.Failing && b.Failures >= 3 && b.WaitingPacks >= 7 { // the settler may add packs
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no backlog with the bucket down: %+v", b)
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, re := range []string{`(?m)^walrus_bucket_waiting_packs [1-9]`, `(?m)^walrus_bucket_waiting_bytes [1-9]`,
		`(?m)^walrus_bucket_oldest_waiting_seconds [0-9.e+]+$`, `(?m)^walrus_backend_requests_total\{method="put",outcome="(transient|error)"\} [1-9]`} {
		if !regexp.MustCompile(re).Match(body) {
			t.Errorf("/metrics lacks %s during the outage", re)
		}
	}
	if n := strings.Count(w.Output(), "bucket upload failed"); n != 1 {
		t.Errorf("%d WARN lines for one failure streak of %d failures, want 1", n, b.Failures)
	}
	t.Logf("during the outage: %+v", b)

	gw.Restart(t)
	b = waitBucketEmpty(t, w)
	if !strings.Contains(w.Output(), "bucket uploads resumed") {
		t.Error("no log line says the uploads resumed")
	}
	if got := len(w.Ls("")); got != 8 {
		t.Errorf("%d files archived, want 8", got)
	}
	t.Logf("after the outage: %+v", b)
}

// walCorpus returns the first n segments of timeline 1 of the real WAL
// corpus (test/testdata/walcache, `make corpus`), in name order; without
// n of them the test skips (fails under CI=true).
func walCorpus(t *testing.T, n int) []string {
	t.Helper()
	corpus, _ := filepath.Glob(filepath.Join("..", "testdata", "walcache", "00000001[0-9A-F]*"))
	corpus = slices.DeleteFunc(corpus, func(p string) bool { return len(filepath.Base(p)) != 24 })
	sort.Strings(corpus)
	if len(corpus) < n {
		testenv.Require(t, "the WAL corpus in test/testdata/walcache")
	}
	return corpus[:n]
}
