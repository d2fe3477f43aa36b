//go:build bench

package compare

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/store/backend/backendtest"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// TestCompareBucket is issue 14's figures: walrus with its packs in a
// bucket against pgBackRest with an S3 repository, both on versitygw on
// this machine (each its own gateway: pgBackRest speaks S3 only over TLS,
// walrus's is plain HTTP), on real WAL made in the run. Per segment,
// interleaved: push (walrus through rsync, local ack, and with --ack
// remote where this build has it; pgBackRest archive-push), then cold and
// warm restores (walrus restarted, page cache dropped; cp out of walrus's
// mount reads its local packs, or the bucket when its packs are evicted;
// pgBackRest archive-get GETs from the bucket), and the requests each
// sent to its gateway (versitygw's access log), per segment. Prints a
// Markdown report and writes it to $WALRUS_COMPARE_BUCKET_OUT (default
// bench-results/compare-bucket.md); asserts nothing but the bytes.
//
//	WALRUS_BENCH=1 go test -tags bench -count=1 -v -run TestCompareBucket ./test/compare/
func TestCompareBucket(t *testing.T) {
	if os.Getenv("WALRUS_BENCH") != "1" {
		t.Skip("comparison harness: set WALRUS_BENCH=1 (make compare-bucket)")
	}
	pgcluster.Require(t, "pgbackrest")
	n := envInt("WALRUS_COMPARE_BUCKET_SEGMENTS", 40)
	c := makeCorpus(t, n)

	logDir := pgcluster.TempDir(t)
	wlog, plog := filepath.Join(logDir, "walrus-gw.log"), filepath.Join(logDir, "pgbackrest-gw.log")
	wgw := backendtest.StartVersityGWWith(t, backendtest.GatewayOptions{AccessLog: wlog})
	pgw := backendtest.StartVersityGWWith(t, backendtest.GatewayOptions{TLS: true, AccessLog: plog})

	// gateway: per peer, its gateway's access log and the directory
	// holding its bucket.
	type gateway struct{ log, dir string }
	gws := map[*peer]gateway{}
	add := func(p *peer, log string, gw *backendtest.VersityGW, bucket string) *peer {
		gws[p] = gateway{log, filepath.Join(gw.Root, bucket)}
		return p
	}
	wb := wgw.NewBucket(t)
	peers := []*peer{add(walrusBucketPeer(t, wgw, wb, "walrus via rsync, bucket, local ack", nil), wlog, wgw, wb)}
	if hasFlag(t, "--bucket-cache-size") {
		// Every pack evicted once it is in the bucket (a bound of one
		// byte, sealed after 1 s): restores read the bucket with range GETs.
		eg := backendtest.StartVersityGWWith(t, backendtest.GatewayOptions{AccessLog: filepath.Join(logDir, "walrus-evicted-gw.log")})
		eb := eg.NewBucket(t)
		peers = append(peers, add(walrusBucketPeer(t, eg, eb, "walrus, bucket, local ack, packs evicted (restores from the bucket)",
			[]string{"--bucket-cache-size", "1", "--bucket-roll-age", "1s"}), filepath.Join(logDir, "walrus-evicted-gw.log"), eg, eb))
	}
	remoteAck := hasFlag(t, "--ack")
	if remoteAck {
		rlog := filepath.Join(logDir, "walrus-remote-gw.log")
		rgw := backendtest.StartVersityGWWith(t, backendtest.GatewayOptions{AccessLog: rlog})
		rb := rgw.NewBucket(t)
		peers = append(peers, add(walrusBucketPeer(t, rgw, rb, "walrus via rsync, bucket, --ack remote", []string{"--ack", "remote"}), rlog, rgw, rb))
	}
	pb := pgw.NewBucket(t)
	pgbr := add(pgbackrestS3Peer(t, c, pgw, pb), plog, pgw, pb)
	peers = append(peers, pgbr)

	res := measure(t, c, peers)
	for _, p := range peers {
		if p.drain != nil {
			p.drain(t) // the bucket holds everything before requests are counted
		}
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "# walrus with a bucket vs pgBackRest with an S3 repository\n\n%s, versitygw v1.8.0 as .ci/run installs it (posix backend, one gateway each, same disk); %d segments of real pgbench WAL made in the run.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), len(c.segments))
	fmt.Fprintf(&b, "| archiver | push median | push p90 | push CPU | cold restore median | warm restore median | requests / segment (whole run) | bucket bytes / segment |\n|---|---:|---:|---:|---:|---:|---|---:|\n")
	base := res[pgbr]
	for _, p := range peers {
		r := res[p]
		reqs := gatewayRequests(t, gws[p].log)
		bytesIn := apparentBytes(gws[p].dir)
		fmt.Fprintf(&b, "| %s | %s (%.2f×) | %s | srv %s + cmd %s | %s (%.2f×) | %s (%.2f×) | %s | %.0f |\n", p.name,
			ms(median(r.push.wall)), ratio(median(r.push.wall), median(base.push.wall)), ms(quantile(r.push.wall, 0.9)),
			ms(r.push.serverPer()), ms(r.push.clientPer()),
			ms(median(r.cold.wall)), ratio(median(r.cold.wall), median(base.cold.wall)),
			ms(median(r.warm.wall)), ratio(median(r.warm.wall), median(base.warm.wall)),
			perSegment(reqs, len(c.segments)), float64(bytesIn)/float64(len(c.segments)))
	}
	fmt.Fprintf(&b, "\nRatios are against pgBackRest in the same run. Requests: versitygw's access log over the whole run (pushes, restores, and walrus's bucket claim), by S3 action, divided by the segments; bucket bytes: the objects' sizes under the gateway's directory. walrus uploads sealed packs in the background (local ack: a push waits for the local fsync and index commit; packs are sealed by size or after --bucket-roll-age, 60 s)")
	if remoteAck {
		fmt.Fprintf(&b, "; with --ack remote a push returns once its pack is in the bucket")
	}
	fmt.Fprintf(&b, ". walrus restores with cp out of its mount: from its local packs, or, with its packs evicted (--bucket-cache-size 1), with range GETs from the bucket (prefetch 8); pgBackRest's archive-get GETs from the bucket. pgBackRest's gateway serves TLS (pgBackRest has no plain-HTTP S3), which costs it a handshake per command.\n")
	out := os.Getenv("WALRUS_COMPARE_BUCKET_OUT")
	if out == "" {
		root := must(exec.Command("go", "env", "GOMOD").Output())
		out = filepath.Join(filepath.Dir(strings.TrimSpace(string(root))), "bench-results", "compare-bucket.md")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\n%s\nwritten to %s\n", b.Bytes(), out)
}

// walrusBucketPeer is walrus serve with its packs copied to a new bucket
// on gw (default roll age unless extra says otherwise), archived to through
// rsync and restored from with cp out of its mount (the restore_command
// the README recommends).
func walrusBucketPeer(t *testing.T, gw *backendtest.VersityGW, bucket, name string, extra []string) *peer {
	home := pgcluster.TempDir(t)
	secret := filepath.Join(home, "s3.secret")
	if err := os.WriteFile(secret, []byte(gw.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--bucket", bucket, "--bucket-endpoint", gw.Endpoint, "--no-bucket-tls",
		"--bucket-prefix", "walrus/", "--bucket-access-key", gw.AccessKey, "--bucket-secret-key-file", secret}, extra...)
	w := walrusproc.Start(t, home, args...)
	p := &peer{
		name:   name,
		push:   func(seg string) []string { return []string{"rsync", "-aq", seg, w.StoreURL(filepath.Base(seg))} },
		pull:   func(name, dst string) []string { return []string{"cp", filepath.Join(w.Mount, name), dst} },
		stored: func() int64 { return totalsOf(w).StoredBytes },
		totals: func() storeTotals { return totalsOf(w) },
		server: func() int { return w.Pid() },
		restart: func(t *testing.T) {
			if err := w.Stop(); err != nil {
				t.Fatal(err)
			}
			w = walrusproc.Start(t, home, args...)
		},
	}
	p.drain = func(t *testing.T) {
		waitIngested(t, w)
		pgcluster.Eventually(t, 5*time.Minute, name+": the bucket to hold every pack", func() (bool, string) {
			out, _, err := w.CLI("status", "--json")
			if err != nil {
				return false, err.Error()
			}
			var st struct {
				Bucket *struct {
					WaitingPacks int   `json:"waiting_packs"`
					ActiveBytes  int64 `json:"active_bytes"`
					Verified     bool  `json:"verified"`
					Cache        *struct {
						BoundBytes int64 `json:"bound_bytes"`
						LocalBytes int64 `json:"local_bytes"`
					} `json:"cache"`
				} `json:"bucket"`
			}
			if err := json.Unmarshal([]byte(out), &st); err != nil || st.Bucket == nil {
				return false, fmt.Sprintf("status: %v", err)
			}
			b := st.Bucket
			evicted := b.Cache == nil || b.Cache.BoundBytes == 0 || b.Cache.LocalBytes <= b.Cache.BoundBytes
			return b.Verified && b.WaitingPacks == 0 && b.ActiveBytes == 0 && evicted,
				fmt.Sprintf("%d packs waiting, %d bytes in the active pack, cache %+v", b.WaitingPacks, b.ActiveBytes, b.Cache)
		})
	}
	return p
}

// pgbackrestS3Peer is pgBackRest (zst, synchronous archive-push) with an
// S3 repository in a new bucket on gw, its stanza on the corpus's cluster.
func pgbackrestS3Peer(t *testing.T, c *corpus, gw *backendtest.VersityGW, bucket string) *peer {
	work := pgcluster.TempDir(t)
	host, port, _ := strings.Cut(gw.Endpoint, ":")
	// The key in a file the postgres user reads: a test gateway's.
	conf := writePgbackrestConfig(t, work, fmt.Sprintf(`repo1-type=s3
repo1-path=/repo
repo1-s3-bucket=%s
repo1-s3-endpoint=%s
repo1-storage-port=%s
repo1-s3-region=us-east-1
repo1-s3-key=%s
repo1-s3-key-secret=%s
repo1-s3-uri-style=path
repo1-storage-verify-tls=n
`, bucket, host, port, gw.AccessKey, gw.Secret), "pg1-path="+c.cluster.Dir+"\n")
	pgbr := []string{"pgbackrest", "--config=" + conf, "--stanza=walrus"}
	pgcluster.Run(t, work, pgbr[0], append(slices.Clone(pgbr[1:]), "--no-online", "stanza-create")...)
	return &peer{
		name:   "pgBackRest (zst), S3 repository",
		push:   func(seg string) []string { return append(slices.Clone(pgbr), "archive-push", seg) },
		pull:   func(name, dst string) []string { return append(slices.Clone(pgbr), "archive-get", name, dst) },
		stored: func() int64 { return apparentBytes(filepath.Join(gw.Root, bucket)) },
	}
}

// hasFlag reports whether this build's walrus serve has the flag.
func hasFlag(t *testing.T, flag string) bool {
	out, _ := exec.Command(walrusproc.Binary(t), "serve", "--help").CombinedOutput()
	return regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(flag) + `[= ]`).Match(out)
}

var s3Action = regexp.MustCompile(`\ss3_([A-Za-z]+)\s`)

// gatewayRequests counts the requests in a versitygw access log by S3
// action.
func gatewayRequests(t *testing.T, log string) map[string]int {
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := s3Action.FindStringSubmatch(sc.Text()); m != nil {
			n[m[1]]++
		}
	}
	return n
}

func perSegment(reqs map[string]int, segs int) string {
	var keys []string
	for k := range reqs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(reqs[k])/float64(segs)))
	}
	return strings.Join(parts, ", ")
}
