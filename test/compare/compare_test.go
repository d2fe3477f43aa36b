//go:build bench

package compare

import (
	"bytes"
	"context"
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

	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	walrusproc.RemoveBinary()
	os.Exit(code)
}

// TestCompare measures, per segment of one real WAL corpus, the archive
// (push) and restore (pull) time of each archiver as archive_command and
// restore_command run it (one process per segment, as the postgres user),
// and the bytes each stores; then a sustained pgbench run archiving through
// walrus's gateway, sampling the .ready backlog. It writes a Markdown report.
func TestCompare(t *testing.T) {
	if os.Getenv("WALRUS_BENCH") != "1" {
		t.Skip("comparison harness: set WALRUS_BENCH=1 (make compare)")
	}
	pgcluster.Require(t, "pgbackrest")
	var report bytes.Buffer
	loadAvg0 := loadAvg()
	fmt.Fprintf(&report, "# walrus comparison\n\n%s, %d CPUs; PostgreSQL %s, rsync %s, %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), numCPU(), version(filepath.Join(pgcluster.Bin, "postgres"), `\) (\S+)`),
		version("rsync", `version (\S+)`), strings.TrimSpace(string(must(exec.Command("pgbackrest", "version").Output()))))

	c := makeCorpus(t, envInt("WALRUS_COMPARE_SEGMENTS", 60))
	peers := startPeers(t, c)
	res := measure(t, c, peers)
	writeArchiverTable(&report, c, peers, res)

	sustained(t, &report, envInt("WALRUS_COMPARE_SECONDS", 60))

	fmt.Fprintf(&report, "\nLoad average at the start: %s; at the end: %s (this machine is shared: other work inflates every number alike).\n", loadAvg0, loadAvg())

	out := os.Getenv("WALRUS_COMPARE_OUT")
	if out == "" {
		root := must(exec.Command("go", "env", "GOMOD").Output())
		out = filepath.Join(filepath.Dir(strings.TrimSpace(string(root))), "bench-results", "compare.md")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, report.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\n%s\nwritten to %s\n", report.Bytes(), out)
}

// corpus is real WAL and the (stopped) cluster that wrote it.
type corpus struct {
	cluster  *pgcluster.Cluster
	dir      string
	segments []string // paths, in name order
	bytes    int64
	pgbrConf string // pgBackRest configuration with a stanza on this cluster
}

var segmentName = regexp.MustCompile(`^[0-9A-F]{24}$`)

// makeCorpus runs a cluster archiving with cp into a directory, creates the
// pgBackRest stanza on it while it runs, and writes pgbench WAL (the initial
// load, then TPC-B-like transactions mixed with range updates, as mkwal.sh
// does) until n segments are archived.
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
	pg.Stop("fast") // the archiver finishes its queue before it exits
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
	conf := filepath.Join(work, "pgbackrest.conf")
	body := fmt.Sprintf(`[global]
repo1-path=%[1]s/repo
compress-type=zst
archive-async=n
log-level-console=warn
log-level-stderr=warn
log-level-file=off
lock-path=%[1]s/lock
spool-path=%[1]s/spool

[walrus]
pg1-path=%[2]s
pg1-socket-path=%[3]s
pg1-port=5432
pg1-user=postgres
`, work, pg.Dir, pg.Sock)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
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
	stored  func() int64                    // bytes the archive occupies
	restart func(t *testing.T)              // before restores: a fresh process (cold cache)
	note    string
}

func startPeers(t *testing.T, c *corpus) []*peer {
	stockDir := pgcluster.TempDir(t)
	stock := startStockDaemon(t, stockDir)
	stockSyncDir := pgcluster.TempDir(t)
	stockSync := startStockDaemon(t, stockSyncDir)
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
	repo := filepath.Join(filepath.Dir(c.pgbrConf), "repo", "archive")
	return []*peer{
		{
			name: "stock rsync daemon",
			push: func(seg string) []string {
				return []string{"rsync", "-aq", seg, "rsync://" + stock + "/wal/" + filepath.Base(seg)}
			},
			pull: func(name, dst string) []string {
				return []string{"rsync", "-a", "rsync://" + stock + "/wal/" + name, dst}
			},
			stored: func() int64 { return apparentBytes(t, stockDir) },
			note:   "plain directory; no fsync, replaces an existing file silently",
		},
		{
			name: "stock rsync daemon --fsync",
			push: func(seg string) []string {
				return []string{"rsync", "-aq", "--fsync", seg, "rsync://" + stockSync + "/wal/" + filepath.Base(seg)}
			},
			pull: func(name, dst string) []string {
				return []string{"rsync", "-a", "rsync://" + stockSync + "/wal/" + name, dst}
			},
			stored: func() int64 { return apparentBytes(t, stockSyncDir) },
			note:   "the same, pushed with `rsync --fsync` (durable like the others)",
		},
		{
			name:    "walrus via rsync",
			push:    func(seg string) []string { return []string{"rsync", "-aq", seg, wr.StoreURL(filepath.Base(seg))} },
			pull:    func(name, dst string) []string { return []string{"rsync", "-a", wr.FetchURL(name), dst} },
			stored:  func() int64 { return wr.Status().DiskBytes },
			restart: restart(&wr),
			note:    "pack bytes on disk (`walrus status` disk_bytes)",
		},
		{
			name:    "walrus via mount (cp)",
			push:    func(seg string) []string { return []string{"cp", seg, filepath.Join(wm.Mount, filepath.Base(seg))} },
			pull:    func(name, dst string) []string { return []string{"cp", filepath.Join(wm.Mount, name), dst} },
			stored:  func() int64 { return wm.Status().DiskBytes },
			restart: restart(&wm),
			note:    "pack bytes on disk (`walrus status` disk_bytes)",
		},
		{
			name: "pgBackRest (zst)",
			push: func(seg string) []string {
				return []string{"pgbackrest", "--config=" + c.pgbrConf, "--stanza=walrus", "archive-push", seg}
			},
			pull: func(name, dst string) []string {
				return []string{"pgbackrest", "--config=" + c.pgbrConf, "--stanza=walrus", "archive-get", name, dst}
			},
			stored: func() int64 { return apparentBytes(t, repo) },
			note:   "repository archive directory, archive.info included; synchronous archive-push",
		},
	}
}

// startStockDaemon runs `rsync --daemon --no-detach` on a free loopback port
// with module "wal" over dir, the classic archive host; it returns host:port.
func startStockDaemon(t *testing.T, dir string) string {
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
	return addr
}

type timings struct{ push, pull []time.Duration }

// measure pushes every segment to every peer (rotating who goes first, so no
// peer always meets a cold or warm machine), restarts the walrus servers and
// drops the page cache, then restores every segment from every peer and
// checks the bytes.
func measure(t *testing.T, c *corpus, peers []*peer) map[*peer]*timings {
	res := map[*peer]*timings{}
	for _, p := range peers {
		res[p] = &timings{}
	}
	work := pgcluster.TempDir(t)
	run := func(argv []string) time.Duration {
		cmd := pgcluster.Command(work, argv[0], argv[1:]...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return d
	}
	for i, seg := range c.segments {
		for j := range peers {
			p := peers[(i+j)%len(peers)]
			res[p].push = append(res[p].push, run(p.push(seg)))
		}
	}
	for _, p := range peers {
		if p.restart != nil {
			p.restart(t)
		}
	}
	dropCaches()
	for i, seg := range c.segments {
		want := must(os.ReadFile(seg))
		for j := range peers {
			p := peers[(i+j)%len(peers)]
			dst := filepath.Join(work, "restored")
			res[p].pull = append(res[p].pull, run(p.pull(filepath.Base(seg), dst)))
			if got := must(os.ReadFile(dst)); !bytes.Equal(got, want) {
				t.Fatalf("%s restored %s with different bytes", p.name, filepath.Base(seg))
			}
			os.Remove(dst)
		}
	}
	return res
}

func writeArchiverTable(w *bytes.Buffer, c *corpus, peers []*peer, res map[*peer]*timings) {
	stock, pgbr := peers[0], peers[len(peers)-1]
	med := func(p *peer, push bool) time.Duration {
		if push {
			return median(res[p].push)
		}
		return median(res[p].pull)
	}
	fmt.Fprintf(w, "## Archive and restore, per segment\n\n")
	fmt.Fprintf(w, "%d segments of %d MiB of pgbench WAL (%.0f MiB), made in this run. One command per segment, as the postgres user,\n",
		len(c.segments), must(os.Stat(c.segments[0])).Size()>>20, float64(c.bytes)/(1<<20))
	fmt.Fprintf(w, "as `archive_command`/`restore_command` run them; restores after a restart of walrus and a dropped page cache.\n\n")
	fmt.Fprintf(w, "| archiver | push median | push p90 | push / stock | pull median | pull p90 | pull / stock | bytes stored | stored / stock | stored / pgBackRest |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	stored := map[*peer]int64{}
	for _, p := range peers {
		stored[p] = p.stored()
	}
	for _, p := range peers {
		fmt.Fprintf(w, "| %s | %s | %s | %.2f | %s | %s | %.2f | %d | %.3f | %.3f |\n", p.name,
			ms(med(p, true)), ms(p90(res[p].push)), ratio(med(p, true), med(stock, true)),
			ms(med(p, false)), ms(p90(res[p].pull)), ratio(med(p, false), med(stock, false)),
			stored[p], float64(stored[p])/float64(stored[stock]), float64(stored[p])/float64(stored[pgbr]))
	}
	fmt.Fprintf(w, "\nBytes stored: ")
	for i, p := range peers {
		if i > 0 {
			fmt.Fprintf(w, "; ")
		}
		fmt.Fprintf(w, "%s: %s", p.name, p.note)
	}
	fmt.Fprintf(w, ".\n\n")
	wr, wm := peers[2], peers[3]
	fmt.Fprintf(w, "Targets:\n\n")
	target(w, "walrus via rsync push ≤ 0.70 × stock daemon", ratio(med(wr, true), med(stock, true)), 0.70)
	target(w, "walrus via rsync pull ≤ 1.00 × stock daemon", ratio(med(wr, false), med(stock, false)), 1.00)
	target(w, "walrus via mount push ≤ pgBackRest archive-push", ratio(med(wm, true), med(pgbr, true)), 1.00)
	target(w, "walrus via mount pull ≤ pgBackRest archive-get", ratio(med(wm, false), med(pgbr, false)), 1.00)
	target(w, "walrus bytes stored ≤ 1.08 × pgBackRest", float64(stored[wr])/float64(stored[pgbr]), 1.08)
	fmt.Fprintln(w)
}

func target(w *bytes.Buffer, what string, got, limit float64) {
	verdict := "met"
	if got > limit {
		verdict = "**missed**"
	}
	fmt.Fprintf(w, "- %s: %.2f — %s\n", what, got, verdict)
}

// sustained runs pgbench at full speed for secs seconds on a cluster whose
// archive_command pushes through walrus's gateway: with pgbench's default
// TPC-B-like script, then with mkwal.sh's heavier mix, and the mix once more
// through the stock daemon for reference. It samples
// pg_wal/archive_status/*.ready every 100 ms and times every archive_command.
func sustained(t *testing.T, report *bytes.Buffer, secs int) {
	w := walrusproc.Start(t, pgcluster.TempDir(t))
	stock := startStockDaemon(t, pgcluster.TempDir(t))
	pg := pgcluster.Init(t, "sustained", pgcluster.Options{Conf: []string{
		"archive_mode = on", "wal_keep_size = 0", "shared_buffers = '128MB'", "synchronous_commit = off",
		fmt.Sprintf("archive_command = 'rsync -aq %%p %s'", w.StoreURL("%f")),
	}})
	pg.Start()
	pg.Pgbench("-i", "-q", "-s", "20")
	script := rangeScript(t, pg)

	fmt.Fprintf(report, "## Sustained archiving\n\n")
	fmt.Fprintf(report, "pgbench at full speed for %d s with 4 clients on one cluster with 16 MiB segments, `archive_command = 'rsync -aq %%p rsync://…/%%f'`\n", secs)
	fmt.Fprintf(report, "(wrapped to time each call); `.ready` files in pg_wal/archive_status counted every 100 ms. Loads: pgbench's default TPC-B-like\n")
	fmt.Fprintf(report, "script, and mkwal.sh's mix (TPC-B-like 4:1 with 1000-row range updates), which writes WAL several times faster.\n\n")
	fmt.Fprintf(report, "| load | archive target | WAL generated | WAL rate | tps | segments archived in the run | largest `.ready` backlog | samples with backlog > 2 | archive_command median / p90 / max | drained after pgbench in | failures |\n")
	fmt.Fprintf(report, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var verdicts []func()
	mix := []string{"-b", "tpcb-like@4", "-f", script + "@1"}
	for _, run := range []struct {
		load, target string
		args         []string
		url          string
	}{
		{"TPC-B-like", "walrus via rsync", []string{"-b", "tpcb-like"}, w.StoreURL("%f")},
		{"mkwal.sh mix", "walrus via rsync", mix, w.StoreURL("%f")},
		{"mkwal.sh mix", "stock rsync daemon", mix, "rsync://" + stock + "/wal/%f"},
	} {
		r := sustainedRun(t, pg, run.url, secs, run.args)
		fmt.Fprintf(report, "| %s | %s | %.0f MiB | %.1f MiB/s | %.0f | %d | %d | %.1f%% | %s / %s / %s | %s | %d |\n", run.load, run.target,
			float64(r.walBytes)/(1<<20), float64(r.walBytes)/(1<<20)/float64(secs), r.tps, r.archived, r.maxReady,
			100*r.over2, ms(median(r.pushes)), ms(p90(r.pushes)), ms(slices.Max(r.pushes)), r.drain.Round(100*time.Millisecond), r.failed)
		if run.target == "walrus via rsync" {
			what := "largest `.ready` backlog through walrus ≤ 2 segments, " + run.load
			verdicts = append(verdicts, func() { target(report, what, float64(r.maxReady), 2) })
		}
	}
	fmt.Fprintf(report, "\nTargets:\n\n")
	for _, v := range verdicts {
		v()
	}
	st := w.Status()
	fmt.Fprintf(report, "\nwalrus after the sustained runs: %d files, %d bytes in, %d stored (%.1f×).\n",
		st.Files, st.LogicalBytes, st.StoredBytes, float64(st.LogicalBytes)/float64(max(st.StoredBytes, 1)))
	pg.Stop("fast")
}

type sustainedResult struct {
	walBytes         int64
	tps              float64
	archived, failed int
	maxReady         int
	over2            float64 // fraction of samples with more than 2 .ready
	pushes           []time.Duration
	drain            time.Duration
}

func sustainedRun(t *testing.T, pg *pgcluster.Cluster, url string, secs int, load []string) sustainedResult {
	timing := filepath.Join(pg.Work(), fmt.Sprintf("archive-times-%d", time.Now().UnixNano()))
	// %% is a literal % in archive_command; the wrapper logs start and end in ns.
	cmd := "t0=$(date +%%s%%N); rsync -aq %p " + url + "; rc=$?; echo $t0 $(date +%%s%%N) >> " + timing + "; exit $rc"
	pg.Query("alter system set archive_command = '" + cmd + "'")
	pg.Query("select pg_reload_conf()")
	seg, _ := pg.SwitchWAL() // start with an empty queue
	pg.WaitArchived(5*time.Minute, seg)
	os.Remove(timing)
	before := pg.Archiver()
	lsn0 := pg.Query("select pg_current_wal_lsn()")

	stop := make(chan struct{})
	samples := make(chan []int)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var s []int
		for {
			select {
			case <-stop:
				samples <- s
				return
			case <-tick.C:
				s = append(s, countReady(pg.Dir))
			}
		}
	}()
	out := pg.Pgbench(append([]string{"-n", "-c", "4", "-j", "2", "-T", strconv.Itoa(secs)}, load...)...)
	var r sustainedResult
	r.walBytes = must(strconv.ParseInt(pg.Query(fmt.Sprintf("select pg_wal_lsn_diff(pg_current_wal_lsn(), '%s')::bigint", lsn0)), 10, 64))
	r.archived = pg.Archiver().Archived - before.Archived
	ended := time.Now()
	pgcluster.Eventually(t, 5*time.Minute, "the .ready backlog to drain", func() (bool, string) {
		n := countReady(pg.Dir)
		return n == 0, fmt.Sprintf("%d .ready", n)
	})
	r.drain = time.Since(ended)
	close(stop)
	s := <-samples
	over := 0
	for _, n := range s {
		r.maxReady = max(r.maxReady, n)
		if n > 2 {
			over++
		}
	}
	r.over2 = float64(over) / float64(max(len(s), 1))
	r.failed = pg.Archiver().Failed - before.Failed
	if mt := regexp.MustCompile(`tps = ([0-9.]+)`).FindStringSubmatch(out); mt != nil {
		r.tps, _ = strconv.ParseFloat(mt[1], 64)
	}
	b, _ := os.ReadFile(timing)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var t0, t1 int64
		if _, err := fmt.Sscan(line, &t0, &t1); err == nil {
			r.pushes = append(r.pushes, time.Duration(t1-t0))
		}
	}
	if len(r.pushes) == 0 {
		r.pushes = []time.Duration{0}
	}
	return r
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
func apparentBytes(t *testing.T, dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return nil
	})
	return total
}

// dropCaches empties the kernel's page cache so restores read cold, as a
// restore host reading an archive written long ago does.
func dropCaches() {
	syscall.Sync()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
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

func numCPU() int { return runtime.NumCPU() }

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
