//go:build bench

package compare

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/test/bench/rusage"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
)

// pitrRun is one recovery of the corpus's base backup.
type pitrRun struct {
	consistent time.Duration // start to pg_ctl start returning (consistent, accepting read-only connections)
	promoted   time.Duration // start to pg_is_in_recovery() false (end of WAL reached, promoted)
	server     time.Duration // CPU of the archive's server process over the recovery
	startup    time.Duration // CPU of PostgreSQL's startup process: replay plus its restore_command children
	restored   int           // segments restore_command delivered
}

type pitrResult struct {
	peer    *peer
	command string // the restore_command of the last run
	runs    []pitrRun
}

func (r *pitrResult) mean(f func(pitrRun) time.Duration) time.Duration {
	var sum time.Duration
	for _, x := range r.runs {
		sum += f(x)
	}
	return sum / time.Duration(max(1, len(r.runs)))
}

// measurePITR recovers the corpus's base backup to the end of the archived
// WAL (recovery.signal, recovery_target_timeline latest: restore_command
// runs until a segment is missing, then the cluster promotes) through every
// peer that has a restore_command, rounds times, rotating the order. Before
// each recovery the walrus servers are restarted and the page cache is
// dropped, so every recovery starts cold. Each recovered cluster is checked
// against the corpus's checksum and removed.
func measurePITR(t *testing.T, c *corpus, peers []*peer, rounds int) []*pitrResult {
	var res []*pitrResult
	for _, p := range peers {
		if p.restore != nil {
			res = append(res, &pitrResult{peer: p})
		}
	}
	for round := range rounds {
		for j := range res {
			r := res[(round+j)%len(res)]
			for _, p := range peers {
				if p.restart != nil {
					p.restart(t)
				}
			}
			dropCaches()
			run, cmd := recoverOnce(t, c, r.peer, fmt.Sprintf("pitr-%d-%d", round, j))
			r.runs, r.command = append(r.runs, run), cmd
		}
	}
	return res
}

func recoverOnce(t *testing.T, c *corpus, p *peer, name string) (pitrRun, string) {
	pg := pgcluster.FromBackup(t, name, c.backup, "recovery_target_timeline = 'latest'", "shared_buffers = '128MB'")
	pg.Configure("restore_command = '" + strings.ReplaceAll(p.restore(pg.Dir), "'", "''") + "'")
	pg.Signal("recovery.signal")
	before := serverUsage(t, p)
	var r pitrRun
	start := time.Now()
	pg.Start()
	r.consistent = time.Since(start)
	// Recovery goes on past consistency (reached at the end of the base
	// backup): find the startup process while it runs.
	pm := postmasterPid(t, pg)
	startup := startupChild(pm)
	pg.WaitRecovered(10 * time.Minute)
	r.promoted = time.Since(start)
	r.server = serverUsage(t, p).Sub(before).CPU
	// The startup process exits after promotion; once the postmaster has
	// reaped it, its time (and that of its restore_command children) is in
	// the postmaster's counters.
	if startup != 0 {
		pgcluster.Eventually(t, time.Minute, "the startup process to be reaped", func() (bool, string) {
			return !slices.Contains(children(pm), startup), "startup process not reaped"
		})
		r.startup = must(rusage.Proc(pm)).CPU
	} else {
		t.Logf("PITR through %s: recovery ended before the startup process was seen; its CPU is not counted", p.name)
	}
	if got := pg.Query(checksumSQL); got != c.checksum {
		t.Fatalf("PITR through %s: recovered %s, the corpus had %s", p.name, got, c.checksum)
	}
	r.restored = replayedSegments(t, c)
	pg.Stop("fast")
	os.RemoveAll(pg.Dir)
	return r, p.restore(pg.Dir)
}

func postmasterPid(t *testing.T, pg *pgcluster.Cluster) int {
	b := must(os.ReadFile(filepath.Join(pg.Dir, "postmaster.pid")))
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}

// children lists process pm's children.
func children(pm int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pm, pm))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// startupChild is the pid of the postmaster's startup process (0: none).
func startupChild(pm int) int {
	for _, pid := range children(pm) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.HasPrefix(string(cmdline), "postgres: startup") {
			return pid
		}
	}
	return 0
}

// replayedSegments is how many corpus segments recovery of the base
// backup reads: those from the backup's start segment (backup_label) on.
func replayedSegments(t *testing.T, c *corpus) int {
	label := string(must(os.ReadFile(filepath.Join(c.backup, "backup_label"))))
	_, rest, ok := strings.Cut(label, "(file ")
	if !ok || len(rest) < 24 {
		t.Fatalf("backup_label without a start segment:\n%s", label)
	}
	first, n := rest[:24], 0
	for _, s := range c.segments {
		if filepath.Base(s) >= first {
			n++
		}
	}
	return n
}
