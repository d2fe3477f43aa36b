//go:build bench

package compare

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

const (
	loadTPCB = "TPC-B-like"
	loadMix  = "mkwal.sh mix"
	susStock = "stock rsync daemon"
	susWalr  = "walrus via rsync"
)

type sustainedRuns struct {
	secs int
	runs []sustainedResult
	end  walrusproc.Status // walrus after all runs
}

func (s *sustainedRuns) find(load, target string) *sustainedResult {
	for i := range s.runs {
		if s.runs[i].load == load && s.runs[i].target == target {
			return &s.runs[i]
		}
	}
	panic("no sustained run " + load + " " + target)
}

// sustained runs pgbench at full speed for secs seconds on one cluster
// whose archive_command pushes with rsync, with pgbench's default TPC-B-like
// script and with mkwal.sh's heavier mix (TPC-B-like 4:1 with 1000-row
// range updates), each through walrus's gateway and through a stock rsync
// daemon, in the order walrus, stock, stock, walrus so drift on the shared
// machine hits both alike. It samples pg_wal/archive_status/*.ready every
// 100 ms, times every archive_command and reads the server's CPU.
func sustained(t *testing.T, secs int) *sustainedRuns {
	w := walrusproc.Start(t, pgcluster.TempDir(t))
	stock, stockPid := startStockDaemon(t, pgcluster.TempDir(t))
	pg := pgcluster.Init(t, "sustained", pgcluster.Options{Conf: []string{
		"archive_mode = on", "wal_keep_size = 0", "shared_buffers = '128MB'", "synchronous_commit = off",
		fmt.Sprintf("archive_command = 'rsync -aq %%p %s'", w.StoreURL("%f")),
	}})
	pg.Start()
	pg.Pgbench("-i", "-q", "-s", "20")
	script := rangeScript(t, pg)
	mix := []string{"-b", "tpcb-like@4", "-f", script + "@1"}
	tpcb := []string{"-b", "tpcb-like"}
	walrusSrv := &peer{name: susWalr, server: func() int { return w.Pid() }}
	stockSrv := &peer{name: susStock, server: func() int { return stockPid }}
	out := &sustainedRuns{secs: secs}
	for _, run := range []struct {
		load string
		args []string
		srv  *peer
		url  string
	}{
		{loadTPCB, tpcb, walrusSrv, w.StoreURL("%f")},
		{loadTPCB, tpcb, stockSrv, "rsync://" + stock + "/wal/%f"},
		{loadMix, mix, stockSrv, "rsync://" + stock + "/wal/%f"},
		{loadMix, mix, walrusSrv, w.StoreURL("%f")},
	} {
		r := sustainedRun(t, pg, run.srv, run.url, secs, run.args)
		r.load, r.target = run.load, run.srv.name
		out.runs = append(out.runs, r)
	}
	out.end = w.Status()
	pg.Stop("fast")
	return out
}

type sustainedResult struct {
	load, target     string
	walBytes         int64
	tps              float64
	archived, failed int
	maxReady         int
	medianReady      int
	over2            float64 // fraction of samples with more than 2 .ready
	pushes           []time.Duration
	drain            time.Duration
	serverCPU        time.Duration // over the run and the drain
}

func (r *sustainedResult) serverPer() time.Duration {
	return r.serverCPU / time.Duration(max(1, r.archived))
}

func sustainedRun(t *testing.T, pg *pgcluster.Cluster, srv *peer, url string, secs int, load []string) sustainedResult {
	timing := filepath.Join(pg.Work(), fmt.Sprintf("archive-times-%d", time.Now().UnixNano()))
	// %% is a literal % in archive_command; the wrapper logs start and end in ns.
	cmd := "t0=$(date +%%s%%N); rsync -aq %p " + url + "; rc=$?; echo $t0 $(date +%%s%%N) >> " + timing + "; exit $rc"
	pg.Query("alter system set archive_command = '" + cmd + "'")
	pg.Query("select pg_reload_conf()")
	seg, _ := pg.SwitchWAL() // start with an empty queue
	pg.WaitArchived(5*time.Minute, seg)
	os.Remove(timing)
	before := pg.Archiver()
	cpu0 := serverUsage(t, srv)
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
	ended := time.Now()
	pgcluster.Eventually(t, 5*time.Minute, "the .ready backlog to drain", func() (bool, string) {
		n := countReady(pg.Dir)
		return n == 0, fmt.Sprintf("%d .ready", n)
	})
	r.drain = time.Since(ended)
	close(stop)
	s := <-samples
	r.archived = pg.Archiver().Archived - before.Archived
	r.serverCPU = serverUsage(t, srv).Sub(cpu0).CPU
	over := 0
	for _, n := range s {
		r.maxReady = max(r.maxReady, n)
		if n > 2 {
			over++
		}
	}
	if len(s) > 0 {
		sorted := slices.Clone(s)
		slices.Sort(sorted)
		r.medianReady = sorted[len(sorted)/2]
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
