//go:build bench

package compare

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/test/bench/rusage"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

func TestMain(m *testing.M) {
	rusage.ChildMain() // the launcher of status-scale commands (peak RSS of their own)
	code := m.Run()
	walrusproc.RemoveBinary()
	os.Exit(code)
}

// TestCompare measures every path of issue 12 against its peer in the same
// run and writes one table (path | walrus | peer | ratio | target | met?,
// with CPU per segment beside the times) and the detail behind it:
//
//   - per segment of one real WAL corpus, the archive (push) and restore
//     (pull, cold then warm) time of each archiver as archive_command and
//     restore_command run it (one process per segment, as the postgres
//     user; peers interleaved per segment, rotating who goes first), with
//     the CPU of the command and of the server process behind it;
//   - the bytes each stores (at ingest, and settled once walrus settles);
//   - PITR: the corpus cluster's base backup recovered to the end of its
//     WAL through each restore_command;
//   - sustained archiving under full-speed pgbench (TPC-B-like and
//     mkwal.sh's mix), walrus and the stock daemon in the same run;
//   - `walrus status` on 1 000 000 synthetic segments.
func TestCompare(t *testing.T) {
	if os.Getenv("WALRUS_BENCH") != "1" {
		t.Skip("comparison harness: set WALRUS_BENCH=1 (make compare)")
	}
	pgcluster.Require(t, "pgbackrest")
	var rep report
	rep.phase("start")
	fmt.Fprintf(&rep.header, "%s, %d CPUs; PostgreSQL %s, rsync %s, %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), version(filepath.Join(pgcluster.Bin, "postgres"), `\) (\S+)`),
		version("rsync", `version (\S+)`), strings.TrimSpace(string(must(exec.Command("pgbackrest", "version").Output()))))

	rep.phase("corpus")
	c := makeCorpus(t, envInt("WALRUS_COMPARE_SEGMENTS", 60))
	peers := startPeers(t, c)
	rep.phase("push and restore")
	res := measure(t, c, peers)
	rep.archivers(c, peers, res)
	if os.Getenv("WALRUS_COMPARE_STOP_AFTER") == "restore" {
		rep.phase("end")
		writeReport(t, &rep)
		return
	}

	rep.phase("PITR")
	rep.pitr(c, measurePITR(t, c, peers, envInt("WALRUS_COMPARE_PITR_ROUNDS", 2)))

	rep.phase("settle")
	rep.storage(peers, res, settledStoredBytes(t, peerNamed(peers, walrusRsync), time.Duration(envInt("WALRUS_COMPARE_SETTLE_SECONDS", 600))*time.Second))

	rep.phase("cold tier")
	rep.coldTier(coldTier(t, c, peerNamed(peers, walrusRsync), time.Duration(envInt("WALRUS_COMPARE_SETTLE_SECONDS", 600))*time.Second))

	rep.phase("sustained")
	rep.sustained(sustained(t, envInt("WALRUS_COMPARE_SECONDS", 60)))

	rep.phase("status scale")
	rep.status(statusScale(t, envInt("WALRUS_COMPARE_STATUS_SEGMENTS", 1_000_000)))
	rep.phase("end")
	writeReport(t, &rep)
}

// writeReport writes the report to $WALRUS_COMPARE_OUT (default
// bench-results/compare.md) and prints it.
func writeReport(t *testing.T, rep *report) {
	out := os.Getenv("WALRUS_COMPARE_OUT")
	if out == "" {
		root := must(exec.Command("go", "env", "GOMOD").Output())
		out = filepath.Join(filepath.Dir(strings.TrimSpace(string(root))), "bench-results", "compare.md")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	b := rep.bytes()
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\n%s\nwritten to %s\n", b, out)
}

// corpus is real WAL, the (stopped) cluster that wrote it and a base
// backup taken before any of it.
type corpus struct {
	cluster  *pgcluster.Cluster
	dir      string
	segments []string // paths, in name order
	bytes    int64
	pgbrConf string // pgBackRest configuration with a stanza on this cluster
	backup   string // pg_basebackup taken before the workload
	// endBackup is the .backup file of a base backup taken at the end of
	// the workload. It is pushed to walrus only after the settled storage
	// is measured: then the WAL before it is behind the newest restorable
	// backup, which is what the cold tier takes.
	endBackup string
	checksum  string // what the cluster held when its last segment was archived
}

var segmentName = regexp.MustCompile(`^[0-9A-F]{24}$`)

// checksumSQL sums what pgbench changes, to check a recovered cluster.
const checksumSQL = "select count(*), sum(abalance) from pgbench_accounts"

// makeCorpus runs a cluster archiving with cp into a directory, creates the
// pgBackRest stanza on it while it runs, takes a base backup, and writes
// pgbench WAL (the initial load, then TPC-B-like transactions mixed with
// range updates, as mkwal.sh does) until n segments are archived. The last
// segment holding changes is switched and archived before the stop, so
// recovery to the end of the archive reaches the checksum taken then.
func makeCorpus(t *testing.T, n int) *corpus {
	start := time.Now()
	c := &corpus{dir: pgcluster.TempDir(t)}
	c.cluster = pgcluster.Init(t, "corpus", pgcluster.Options{Conf: []string{
		"archive_mode = on",
		fmt.Sprintf("archive_command = 'cp %%p %s/%%f.tmp && mv %s/%%f.tmp %s/%%f'", c.dir, c.dir, c.dir),
		"wal_keep_size = 0", "synchronous_commit = off", "shared_buffers = '128MB'",
	}})
	pg := c.cluster
	pg.Start()
	c.pgbrConf = pgbackrestConfig(t, pg)
	pgbackrest(t, c.pgbrConf, "stanza-create")
	c.backup = pg.BaseBackup("base", "-X", "none")

	count := func() int {
		k := 0
		for _, e := range must(os.ReadDir(c.dir)) {
			if segmentName.MatchString(e.Name()) {
				k++
			}
		}
		return k
	}
	pg.Pgbench("-i", "-q", "-s", strconv.Itoa(max(1, n/2)))
	script := rangeScript(t, pg)
	for count() < n {
		pg.Pgbench("-n", "-c", "4", "-j", "2", "-T", "5", "-b", "tpcb-like@4", "-f", script+"@1")
	}
	pg.BaseBackup("end", "-X", "none") // waits until its WAL and .backup file are archived
	backups, _ := filepath.Glob(filepath.Join(c.dir, "*.backup"))
	slices.Sort(backups)
	if len(backups) < 2 {
		t.Fatalf("corpus: %d .backup files archived after two base backups", len(backups))
	}
	c.endBackup = backups[len(backups)-1]
	c.checksum = pg.Query(checksumSQL)
	last, _ := pg.SwitchWAL()
	pg.WaitArchived(5*time.Minute, last)
	pg.Stop("fast")
	for _, e := range must(os.ReadDir(c.dir)) {
		if segmentName.MatchString(e.Name()) {
			p := filepath.Join(c.dir, e.Name())
			c.segments = append(c.segments, p)
			c.bytes += must(os.Stat(p)).Size()
		}
	}
	slices.Sort(c.segments)
	t.Logf("corpus: %d segments, %d bytes of pgbench WAL in %v", len(c.segments), c.bytes, time.Since(start).Round(time.Second))
	return c
}

// pgbackrestConfig writes a configuration for stanza "walrus" on cluster pg:
// a repository in a temp directory, zstd (level 3, pgBackRest's default for
// zst), synchronous archive-push as archive_command would run it.
func pgbackrestConfig(t *testing.T, pg *pgcluster.Cluster) string {
	work := pgcluster.TempDir(t)
	return writePgbackrestConfig(t, work, "repo1-path="+work+"/repo\n",
		fmt.Sprintf("pg1-path=%s\npg1-socket-path=%s\npg1-port=5432\npg1-user=postgres\n", pg.Dir, pg.Sock))
}

// writePgbackrestConfig writes work/pgbackrest.conf: the repository lines,
// the settings every pgBackRest peer shares (zst, synchronous archive-push,
// quiet logs, lock and spool under work), and stanza "walrus".
func writePgbackrestConfig(t *testing.T, work, repo, stanza string) string {
	conf := filepath.Join(work, "pgbackrest.conf")
	body := fmt.Sprintf(`[global]
%[1]scompress-type=zst
archive-async=n
log-level-console=warn
log-level-stderr=warn
log-level-file=off
lock-path=%[2]s/lock
spool-path=%[2]s/spool

[walrus]
%[3]s`, repo, work, stanza)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil { // read by the postgres user
		t.Fatal(err)
	}
	return conf
}

func pgbackrest(t *testing.T, conf string, args ...string) {
	pgcluster.Run(t, filepath.Dir(conf), "pgbackrest", append([]string{"--config=" + conf, "--stanza=walrus"}, args...)...)
}

// peer is one way to archive and restore a segment.
type peer struct {
	name    string
	push    func(seg string) []string       // command line archiving seg
	pull    func(name, dst string) []string // command line restoring name to dst
	restore func(data string) string        // restore_command for PITR of data directory data (nil: not in the PITR rows)
	stored  func() int64                    // bytes the archive occupies
	restart func(t *testing.T)              // before restores: a fresh process (cold cache)
	server  func() int                      // pid of the server process behind it (0: none)
	drain   func(t *testing.T)              // waits until work acknowledged but still running in the background is done
	totals  func() storeTotals              // walrus: the store's totals (nil: not walrus)
	note    string
}

// Names of the peers the summary's rows refer to.
const (
	stockName     = "stock rsync daemon"
	stockSyncName = "stock rsync daemon --fsync"
	walrusRsync   = "walrus via rsync"
	walrusMount   = "walrus via mount (cp)"
	plainName     = "plain directory (cp + sync)"
	pgbrName      = "pgBackRest (zst)"
)

func startPeers(t *testing.T, c *corpus) []*peer {
	stockDir, stockSyncDir, plainDir := pgcluster.TempDir(t), pgcluster.TempDir(t), pgcluster.TempDir(t)
	stock, stockPid := startStockDaemon(t, stockDir)
	stockSync, stockSyncPid := startStockDaemon(t, stockSyncDir)
	// walrus serve with its defaults (prefetch 8).
	wr := walrusproc.Start(t, pgcluster.TempDir(t))
	wm := walrusproc.Start(t, pgcluster.TempDir(t))
	restart := func(w **walrusproc.Server) func(t *testing.T) {
		return func(t *testing.T) {
			if err := (*w).Stop(); err != nil {
				t.Fatal(err)
			}
			*w = walrusproc.Start(t, (*w).Home)
		}
	}
	pid := func(p int) func() int { return func() int { return p } }
	repo := filepath.Join(filepath.Dir(c.pgbrConf), "repo", "archive")
	pgbr := []string{"pgbackrest", "--config=" + c.pgbrConf, "--stanza=walrus"}
	return []*peer{
		{
			name: stockName,
			push: func(seg string) []string {
				return []string{"rsync", "-aq", seg, "rsync://" + stock + "/wal/" + filepath.Base(seg)}
			},
			pull: func(name, dst string) []string {
				return []string{"rsync", "-a", "rsync://" + stock + "/wal/" + name, dst}
			},
			stored: func() int64 { return apparentBytes(stockDir) },
			server: pid(stockPid),
			note:   "plain directory; no fsync, replaces an existing file silently",
		},
		{
			name: stockSyncName,
			push: func(seg string) []string {
				return []string{"rsync", "-aq", "--fsync", seg, "rsync://" + stockSync + "/wal/" + filepath.Base(seg)}
			},
			pull: func(name, dst string) []string {
				return []string{"rsync", "-a", "rsync://" + stockSync + "/wal/" + name, dst}
			},
			stored: func() int64 { return apparentBytes(stockSyncDir) },
			server: pid(stockSyncPid),
			note:   "the same, pushed with `rsync --fsync` (durable like the others)",
		},
		{
			name:    walrusRsync,
			push:    func(seg string) []string { return []string{"rsync", "-aq", seg, wr.StoreURL(filepath.Base(seg))} },
			pull:    func(name, dst string) []string { return []string{"rsync", "-a", wr.FetchURL(name), dst} },
			restore: func(string) string { return "rsync -a " + wr.FetchURL("%f") + " %p" },
			stored:  func() int64 { return totalsOf(wr).StoredBytes },
			totals:  func() storeTotals { return totalsOf(wr) },
			restart: restart(&wr),
			server:  func() int { return wr.Pid() },
			drain:   func(t *testing.T) { waitIngested(t, wr) },
			note:    "the bytes of its live records (`walrus status` stored_bytes)",
		},
		{
			name:    walrusMount,
			push:    func(seg string) []string { return []string{"cp", seg, filepath.Join(wm.Mount, filepath.Base(seg))} },
			pull:    func(name, dst string) []string { return []string{"cp", filepath.Join(wm.Mount, name), dst} },
			restore: func(string) string { return "cp " + wm.Mount + "/%f %p" },
			stored:  func() int64 { return totalsOf(wm).StoredBytes },
			totals:  func() storeTotals { return totalsOf(wm) },
			restart: restart(&wm),
			server:  func() int { return wm.Pid() },
			drain:   func(t *testing.T) { waitIngested(t, wm) },
			note:    "the bytes of its live records (`walrus status` stored_bytes)",
		},
		{
			name: plainName,
			push: func(seg string) []string {
				dst := filepath.Join(plainDir, filepath.Base(seg))
				return []string{"sh", "-c", `cp "$1" "$2" && sync "$2"`, "sh", seg, dst}
			},
			pull:    func(name, dst string) []string { return []string{"cp", filepath.Join(plainDir, name), dst} },
			restore: func(string) string { return "cp " + plainDir + "/%f %p" },
			stored:  func() int64 { return apparentBytes(plainDir) },
			note:    "a directory on the same disk; `sync FILE` is fsync",
		},
		{
			name: pgbrName,
			push: func(seg string) []string { return append(slices.Clone(pgbr), "archive-push", seg) },
			pull: func(name, dst string) []string { return append(slices.Clone(pgbr), "archive-get", name, dst) },
			// archive-get resolves a relative %p against pg1-path: point
			// that at the cluster recovering.
			restore: func(data string) string {
				return strings.Join(pgbr, " ") + " --pg1-path=" + data + " archive-get %f \"%p\""
			},
			stored: func() int64 { return apparentBytes(repo) },
			note:   "repository archive directory, archive.info included; synchronous archive-push",
		},
	}
}

func peerNamed(peers []*peer, name string) *peer {
	for _, p := range peers {
		if p.name == name {
			return p
		}
	}
	panic("no peer " + name)
}

// startStockDaemon runs `rsync --daemon --no-detach` on a free loopback port
// with module "wal" over dir, the classic archive host; it returns host:port
// and the daemon's pid.
func startStockDaemon(t *testing.T, dir string) (string, int) {
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "rsyncd.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("use chroot = no\nuid = postgres\ngid = postgres\n[wal]\n\tpath = %s\n\tread only = false\n", dir)), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "rsync", "--daemon", "--no-detach", "--address=127.0.0.1", "--port="+port, "--config="+conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	pgcluster.Eventually(t, 10*time.Second, "the stock rsync daemon", func() (bool, string) {
		err := exec.Command("rsync", "rsync://"+addr+"/").Run()
		return err == nil, fmt.Sprint(err)
	})
	return addr, cmd.Process.Pid
}

// phase is what one peer did in one pass over the corpus: wall time per
// command, and the user+sys time of the commands and of the server.
type phase struct {
	wall              []time.Duration
	client, serverCPU time.Duration
}

// clientPer and serverPer are the CPU per segment.
func (p *phase) clientPer() time.Duration { return p.client / time.Duration(max(1, len(p.wall))) }
func (p *phase) serverPer() time.Duration { return p.serverCPU / time.Duration(max(1, len(p.wall))) }

type timings struct {
	push, cold, warm phase
	ingest           int64 // bytes stored right after the pushes (walrus: before the settler's re-encoding)
	unsettled        int64 // walrus: the part of ingest still at the ingest level then
}

// serverUsage reads the usage of the server behind p once the handlers it
// forked have been reaped (a stock daemon's connection children count only
// then); a peer without a server reads zero.
func serverUsage(t *testing.T, p *peer) rusage.Usage {
	if p.server == nil {
		return rusage.Usage{}
	}
	pid := p.server()
	pgcluster.Eventually(t, 30*time.Second, p.name+"'s handlers to exit", func() (bool, string) {
		return !rusage.Children(pid), "children alive"
	})
	return must(rusage.Proc(pid))
}

// measure pushes every segment to every peer (rotating who goes first, so no
// peer always meets a cold or warm machine), restarts the walrus servers and
// drops the page cache, then restores every segment from every peer twice
// (cold, then warm) and checks the bytes. Server CPU is what the server
// process used over the whole pass, divided by the segments.
func measure(t *testing.T, c *corpus, peers []*peer) map[*peer]*timings {
	res := map[*peer]*timings{}
	for _, p := range peers {
		res[p] = &timings{}
	}
	work := pgcluster.TempDir(t)
	run := func(ph *phase, argv []string) {
		cmd := pgcluster.Command(work, argv[0], argv[1:]...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		ph.wall = append(ph.wall, d)
		ph.client += rusage.Exited(cmd.ProcessState).CPU
	}
	pass := func(which func(*timings) *phase, each func(i int, seg string, p *peer, ph *phase)) {
		before := map[*peer]rusage.Usage{}
		for _, p := range peers {
			before[p] = serverUsage(t, p)
		}
		for i, seg := range c.segments {
			for j := range peers {
				p := peers[(i+j)%len(peers)]
				each(i, seg, p, which(res[p]))
			}
		}
		for _, p := range peers {
			if p.drain != nil {
				p.drain(t)
			}
			which(res[p]).serverCPU = serverUsage(t, p).Sub(before[p]).CPU
		}
	}
	pass(func(r *timings) *phase { return &r.push }, func(_ int, seg string, p *peer, ph *phase) { run(ph, p.push(seg)) })
	for _, p := range peers {
		res[p].ingest = p.stored()
		if p.totals != nil {
			res[p].unsettled = p.totals().UnsettledBytes
		}
	}
	for _, p := range peers {
		if p.restart != nil {
			p.restart(t)
		}
	}
	dropCaches()
	for _, which := range []func(*timings) *phase{
		func(r *timings) *phase { return &r.cold },
		func(r *timings) *phase { return &r.warm },
	} {
		pass(which, func(_ int, seg string, p *peer, ph *phase) {
			dst := filepath.Join(work, "restored")
			run(ph, p.pull(filepath.Base(seg), dst))
			if got, want := must(os.ReadFile(dst)), must(os.ReadFile(seg)); !bytes.Equal(got, want) {
				t.Fatalf("%s restored %s with different bytes", p.name, filepath.Base(seg))
			}
			os.Remove(dst)
		})
	}
	return res
}

// waitIngested waits until walrus holds no landed file (a segment cp'd
// into the mount is acknowledged once landed and ingested into the packs
// in the background, store/landing.go), so the server's CPU and the bytes
// stored include the ingest.
func waitIngested(t *testing.T, w *walrusproc.Server) {
	pgcluster.Eventually(t, 10*time.Minute, "walrus to ingest its landed files", func() (bool, string) {
		tot := totalsOf(w)
		return tot.LandedFiles == 0, fmt.Sprintf("%d landed files, %d failing their ingest", tot.LandedFiles, tot.LandedFailing)
	})
}

// storeTotals are the byte totals of `walrus status --json`.
type storeTotals struct {
	StoredBytes    int64 `json:"stored_bytes"`
	DiskBytes      int64 `json:"disk_bytes"`
	UnsettledBytes int64 `json:"unsettled_bytes"` // at the ingest level, waiting for the settler
	ColdBytes      int64 `json:"cold_bytes"`      // in the cold tier
	LandedFiles    int64 `json:"landed_files"`    // acknowledged, not yet ingested
	LandedFailing  int64 `json:"landed_failing"`  // of those, failing their ingest
}

func totalsOf(w *walrusproc.Server) storeTotals {
	var st storeTotals
	out, _, err := w.CLI("status", "--json")
	if err == nil {
		err = json.Unmarshal([]byte(out), &st)
	}
	if err != nil {
		panic(fmt.Sprintf("walrus status --json: %v", err))
	}
	return st
}

// settled is walrus's storage once the background settler has re-encoded
// what it ingested at the ingest level (unsettled_bytes 0), or as it stood
// when the wait ran out.
type settled struct {
	storeTotals
	ok   bool          // nothing left unsettled
	wait time.Duration // how long it took
}

// settledStoredBytes waits (up to limit) until walrus's settler has
// re-encoded everything ingested at the ingest level and reports the store
// then. The settler runs at the lowest CPU priority and pauses while
// uploads are in progress, so it has been at work since the pushes.
func settledStoredBytes(t *testing.T, p *peer, limit time.Duration) settled {
	start := time.Now()
	for {
		st := p.totals()
		if st.UnsettledBytes == 0 || time.Since(start) > limit {
			return settled{storeTotals: st, ok: st.UnsettledBytes == 0, wait: time.Since(start)}
		}
		time.Sleep(time.Second) // poll interval of a wait with a deadline
	}
}

// coldResult is walrus's cold tier once the settler took the WAL behind
// the newest restorable backup, against pgBackRest's bytes of the same
// segments.
type coldResult struct {
	totals    storeTotals
	segments  int   // corpus segments before the end backup's start
	pgbrBytes int64 // pgBackRest's repository files of those segments
	ok        bool  // the cold bytes stopped growing within the limit
	wait      time.Duration
	cpu       time.Duration // server CPU while it re-encoded
}

// coldTier pushes the end backup's .backup file to walrus (through rsync,
// as PostgreSQL would have), which makes every segment before its start
// WAL behind the newest restorable backup, and waits (up to limit) until
// the settler has moved them to the cold tier: cold bytes stop growing
// while nothing is unsettled.
func coldTier(t *testing.T, c *corpus, p *peer, limit time.Duration) coldResult {
	name := filepath.Base(c.endBackup)
	start := name[:24]
	var res coldResult
	repo := filepath.Join(filepath.Dir(c.pgbrConf), "repo", "archive")
	for _, seg := range c.segments {
		if filepath.Base(seg) >= start {
			continue
		}
		res.segments++
		files, _ := filepath.Glob(filepath.Join(repo, "walrus", "*", filepath.Base(seg)[:16], filepath.Base(seg)+"-*"))
		for _, f := range files {
			res.pgbrBytes += must(os.Stat(f)).Size()
		}
	}
	before := serverUsage(t, p)
	argv := p.push(c.endBackup)
	if out, err := pgcluster.Command(pgcluster.TempDir(t), argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("push %s: %v\n%s", name, err, out)
	}
	began, last, stable := time.Now(), int64(-1), time.Now()
	for {
		st := p.totals()
		if st.ColdBytes != last {
			last, stable = st.ColdBytes, time.Now()
		}
		if st.ColdBytes > 0 && st.UnsettledBytes == 0 && time.Since(stable) > 15*time.Second {
			res.totals, res.ok, res.wait = st, true, time.Since(began)
			break
		}
		if time.Since(began) > limit {
			res.totals, res.wait = st, time.Since(began)
			break
		}
		time.Sleep(time.Second) // poll interval of a wait with a deadline
	}
	res.cpu = serverUsage(t, p).Sub(before).CPU
	return res
}

// dropCaches empties the kernel's page cache so restores read cold, as a
// restore host reading an archive written long ago does.
func dropCaches() {
	syscall.Sync()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// rangeScript writes mkwal.sh's pgbench script of 1000-row range updates,
// which writes WAL much faster than TPC-B-like transactions alone.
func rangeScript(t *testing.T, pg *pgcluster.Cluster) string {
	p := filepath.Join(pg.Work(), "range.sql")
	err := os.WriteFile(p, []byte("\\set aid random(1, 100000 * :scale - 1000)\n"+
		"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN :aid AND :aid + 999;\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func countReady(dataDir string) int {
	ents, _ := os.ReadDir(filepath.Join(dataDir, "pg_wal", "archive_status"))
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".ready") {
			n++
		}
	}
	return n
}

// apparentBytes sums the sizes of the files under dir.
func apparentBytes(dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return nil
	})
	return total
}

func median(d []time.Duration) time.Duration { return quantile(d, 0.5) }
func p90(d []time.Duration) time.Duration    { return quantile(d, 0.9) }

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

// loadAvg is the 1-minute load average.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func version(cmd, re string) string {
	out, _ := exec.Command(cmd, "--version").Output()
	if m := regexp.MustCompile(re).FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return "?"
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
