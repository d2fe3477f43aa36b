//go:build bench

package compare

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/walrus-archive/walrus/store"
	"github.com/walrus-archive/walrus/test/bench"
	"github.com/walrus-archive/walrus/test/bench/rusage"
)

// report is the Markdown report: one summary table of every path of issue
// 12 against its peer in the same run, then the detail behind each row.
type report struct {
	header    bytes.Buffer
	rows      []row
	storageAt int // where the stored-bytes rows go
	detail    bytes.Buffer
	loads     []string // "phase load" at the start of each phase
}

// row is a line of the summary. ratio is NaN where there is no peer.
type row struct {
	path, walrus, peer string
	ratio              float64
	target, met        string
	cpuWalrus, cpuPeer string
}

func (r *report) phase(name string) { r.loads = append(r.loads, name+" "+loadAvg()) }

func (r *report) add(x row) { r.rows = append(r.rows, x) }

func (r *report) bytes() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# walrus comparison\n\n%s", r.header.Bytes())
	fmt.Fprintf(&b, "## Summary\n\n")
	fmt.Fprintf(&b, "| path | walrus | peer (same run) | ratio | target | met? | walrus CPU / segment | peer CPU / segment |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---|---|---:|---:|\n")
	for _, x := range r.rows {
		ratio := "—"
		if !math.IsNaN(x.ratio) && !math.IsInf(x.ratio, 0) {
			ratio = fmt.Sprintf("%.2f×", x.ratio)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", x.path, x.walrus, x.peer, ratio, x.target, x.met, x.cpuWalrus, x.cpuPeer)
	}
	fmt.Fprintf(&b, "\nTimes are medians per segment (PITR: mean of the rounds). CPU is user+sys per segment: `srv` the server process behind the path\n")
	fmt.Fprintf(&b, "(walrus serve; the stock daemon with its reaped connection handlers; /proc/PID/stat over the whole pass, divided by the segments),\n")
	fmt.Fprintf(&b, "`cmd` the archive_command/restore_command process itself (wait4 rusage, children included), `pg` PostgreSQL's startup process\n")
	fmt.Fprintf(&b, "(replay and its restore_command children). The ack of every walrus push is fsync + index commit.\n\n")
	fmt.Fprintf(&b, "Load average (1 min) at the start of each phase: %s. This machine has 2 cores and is shared with other work,\n", strings.Join(r.loads, "; "))
	fmt.Fprintf(&b, "so absolute figures are noisy; the peers are interleaved per segment (rotating who goes first), and the ratios from the same run are what counts.\n\n")
	b.Write(r.detail.Bytes())
	return b.Bytes()
}

func verdict(got, limit float64) string {
	if got <= limit {
		return "met"
	}
	return "**missed**"
}

func msPer(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

// cpuCell is the CPU per segment of a pass: server and command.
func cpuCell(p *peer, ph *phase) string {
	if p.server == nil {
		return fmt.Sprintf("cmd %s ms", msPer(ph.clientPer()))
	}
	return fmt.Sprintf("srv %s + cmd %s ms", msPer(ph.serverPer()), msPer(ph.clientPer()))
}

func (r *report) archivers(c *corpus, peers []*peer, res map[*peer]*timings) {
	stock, pgbr, plain := peerNamed(peers, stockName), peerNamed(peers, pgbrName), peerNamed(peers, plainName)
	wr, wm := peerNamed(peers, walrusRsync), peerNamed(peers, walrusMount)
	segMiB := must(os.Stat(c.segments[0])).Size() >> 20
	fmt.Fprintf(&r.header, "Corpus: %d segments of %d MiB of pgbench WAL (%.0f MiB) made in this run by PostgreSQL 15 (initial load, then\n",
		len(c.segments), segMiB, float64(c.bytes)/(1<<20))
	fmt.Fprintf(&r.header, "TPC-B-like transactions 4:1 with 1000-row range updates, as mkwal.sh makes). One command per segment, as the postgres\n")
	fmt.Fprintf(&r.header, "user, as `archive_command`/`restore_command` run them. Cold restores follow a restart of walrus (a fresh server: empty\n")
	fmt.Fprintf(&r.header, "block cache, prefetch 8, walrus serve's default) and a dropped page cache; warm restores are a second pass in the same order\n")
	fmt.Fprintf(&r.header, "(walrus's block cache holds %d MiB, so on a corpus larger than that the second pass finds its packs in the page cache, not its\n", store.DefaultCache>>20)
	fmt.Fprintf(&r.header, "decoded blocks in the block cache; `make bench`'s TestCompareMount measures a warm pass that fits). A push through the mount\n")
	fmt.Fprintf(&r.header, "returns once the segment has landed (fsynced, durable) and is ingested into the packs in the background; its server CPU\n")
	fmt.Fprintf(&r.header, "is read once nothing is left landed, so it includes the ingest.\n\n")

	cmp := func(path string, w, p *peer, pick func(*timings) *phase, target string, limit float64) {
		a, b := median(pick(res[w]).wall), median(pick(res[p]).wall)
		x := row{path: path, walrus: ms(a), peer: p.name + " " + ms(b), ratio: ratio(a, b), target: target, met: "—",
			cpuWalrus: cpuCell(w, pick(res[w])), cpuPeer: cpuCell(p, pick(res[p]))}
		if limit > 0 {
			x.met = verdict(x.ratio, limit)
		}
		r.add(x)
	}
	push := func(t *timings) *phase { return &t.push }
	cold := func(t *timings) *phase { return &t.cold }
	warm := func(t *timings) *phase { return &t.warm }
	cmp("rsync push", wr, stock, push, "≤ 0.5×", 0.5)
	cmp("rsync push", wr, pgbr, push, "≤ 0.8×", 0.8)
	cmp("cp into the mount", wm, plain, push, "≤ 1.2×", 1.2)
	cmp("cold sequential restore, prefetch 8 (fresh server, dropped caches)", wm, plain, cold, "≤ 1.2×", 1.2)
	cmp("warm restore", wm, plain, warm, "≤ 1.0×", 1.0)
	cmp("rsync pull (cold)", wr, stock, cold, "report", 0)
	cmp("rsync pull (warm)", wr, stock, warm, "report", 0)

	r.storageAt = len(r.rows)
	stored := map[*peer]int64{}
	for _, p := range peers {
		stored[p] = res[p].ingest
	}

	w := &r.detail
	fmt.Fprintf(w, "## Archive and restore, per segment\n\n")
	fmt.Fprintf(w, "| archiver | push median | push p90 | push CPU | cold pull median | cold p90 | cold CPU | warm pull median | warm CPU | bytes stored | stored / pgBackRest |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range peers {
		t := res[p]
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %.3f |\n", p.name,
			ms(median(t.push.wall)), ms(p90(t.push.wall)), cpuCell(p, &t.push),
			ms(median(t.cold.wall)), ms(p90(t.cold.wall)), cpuCell(p, &t.cold),
			ms(median(t.warm.wall)), cpuCell(p, &t.warm),
			stored[p], float64(stored[p])/float64(stored[pgbr]))
	}
	fmt.Fprintf(w, "\nBytes stored: ")
	for i, p := range peers {
		if i > 0 {
			fmt.Fprintf(w, "; ")
		}
		fmt.Fprintf(w, "%s: %s", p.name, p.note)
	}
	fmt.Fprintf(w, ".\n\n")
}

// storage adds the stored-bytes rows: at ingest (right after the pushes),
// settled (after the background settler), and the cold tier.
func (r *report) storage(peers []*peer, res map[*peer]*timings, st settled) {
	wr, pgbr := peerNamed(peers, walrusRsync), peerNamed(peers, pgbrName)
	mb := func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
	base := res[pgbr].ingest
	pg := pgbr.name + " " + mb(base)
	none := "—"
	ingest := res[wr].ingest
	rows := []row{{path: "stored bytes at ingest", walrus: fmt.Sprintf("%s (%s unsettled)", mb(ingest), mb(res[wr].unsettled)), peer: pg,
		ratio: float64(ingest) / float64(base), target: "report", met: none, cpuWalrus: none, cpuPeer: none}}
	x := row{path: "stored bytes, settled after background recompression", peer: pg, target: "≤ 0.95×", cpuWalrus: none, cpuPeer: none,
		walrus: fmt.Sprintf("%s after %.0f s", mb(st.StoredBytes), st.wait.Seconds()), ratio: float64(st.StoredBytes) / float64(base)}
	if st.ok {
		x.met = verdict(x.ratio, 0.95)
	} else {
		x.walrus += fmt.Sprintf(", %s still unsettled", mb(st.UnsettledBytes))
		x.met = "not settled in time"
	}
	rows = append(rows, x)
	r.rows = slices.Insert(r.rows, r.storageAt, rows...)
	fmt.Fprintf(&r.detail, "## Stored bytes\n\nwalrus via rsync: %d bytes stored right after the pushes (%d of them at the ingest level); %d once the settler\n",
		ingest, res[wr].unsettled, st.StoredBytes)
	fmt.Fprintf(&r.detail, "had run (waited %.0f s after the restores and PITR; %d unsettled, %d cold, %d pack bytes on disk). pgBackRest: %d bytes.\n\n",
		st.wait.Seconds(), st.UnsettledBytes, st.ColdBytes, st.DiskBytes, base)
}

// coldTier adds the cold-tier row: walrus's cold bytes against pgBackRest's
// files of the same segments (those before the newest backup).
func (r *report) coldTier(c coldResult) {
	mb := func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
	x := row{path: "stored bytes, cold tier", peer: fmt.Sprintf("%s %s", pgbrName, mb(c.pgbrBytes)), target: "≤ 0.7×",
		cpuWalrus: "—", cpuPeer: "—", ratio: float64(c.totals.ColdBytes) / float64(c.pgbrBytes)}
	if c.segments > 0 {
		x.cpuWalrus = fmt.Sprintf("%.0f ms/seg once", float64(c.cpu.Milliseconds())/float64(c.segments))
	}
	x.walrus = fmt.Sprintf("%s for %d segments after %.0f s", mb(c.totals.ColdBytes), c.segments, c.wait.Seconds())
	if c.ok && c.pgbrBytes > 0 {
		x.met = verdict(x.ratio, 0.7)
	} else {
		x.met = "not settled in time"
	}
	r.rows = slices.Insert(r.rows, r.storageAt+2, x)
	fmt.Fprintf(&r.detail, "## Cold tier\n\nAfter the settled measurement the .backup file of a base backup taken at the end of the workload was pushed: the %d\n", c.segments)
	fmt.Fprintf(&r.detail, "segments before its start are then behind the newest restorable backup. The settler moved %d bytes to the cold tier in %.0f s\n", c.totals.ColdBytes, c.wait.Seconds())
	fmt.Fprintf(&r.detail, "(server CPU %.1f s; %d bytes stored in all, %d unsettled). pgBackRest holds %d bytes for the same segments. The cold bytes are the blocks\n",
		c.cpu.Seconds(), c.totals.StoredBytes, c.totals.UnsettledBytes, c.pgbrBytes)
	fmt.Fprintf(&r.detail, "referenced only by those segments; a block shared with newer WAL stays warm, so the ratio slightly flatters neither side.\n\n")
}

func (r *report) pitr(c *corpus, res []*pitrResult) {
	by := map[string]*pitrResult{}
	for _, x := range res {
		by[x.peer.name] = x
	}
	n := 1
	if len(res) > 0 && len(res[0].runs) > 0 {
		n = max(1, res[0].runs[0].restored)
	}
	sec := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	promoted := func(x pitrRun) time.Duration { return x.promoted }
	per := func(d time.Duration) string { return msPer(d / time.Duration(n)) }
	cpu := func(x *pitrResult) string {
		pg := per(x.mean(func(r pitrRun) time.Duration { return r.startup }))
		if x.peer.server == nil {
			return "pg " + pg + " ms"
		}
		return "srv " + per(x.mean(func(r pitrRun) time.Duration { return r.server })) + " + pg " + pg + " ms"
	}
	for _, w := range []string{walrusMount, walrusRsync} {
		for _, p := range []string{plainName, pgbrName} {
			a, b := by[w], by[p]
			how := map[string]string{walrusMount: "cp from the mount", walrusRsync: "rsync from the gateway"}[w]
			peerHow := map[string]string{plainName: "cp from a plain directory", pgbrName: "pgBackRest archive-get"}[p]
			r.add(row{path: fmt.Sprintf("PITR, %d segments: restore_command %s", n, how),
				walrus: sec(a.mean(promoted)), peer: peerHow + " " + sec(b.mean(promoted)),
				ratio: float64(a.mean(promoted)) / float64(b.mean(promoted)), target: "report", met: "—",
				cpuWalrus: cpu(a), cpuPeer: cpu(b)})
		}
	}
	w := &r.detail
	fmt.Fprintf(w, "## PITR\n\n")
	fmt.Fprintf(w, "One base backup (pg_basebackup -X none, taken before the corpus's workload) recovered to the end of the archived WAL\n")
	fmt.Fprintf(w, "(recovery.signal, recovery_target_timeline latest: the first missing segment ends recovery and the cluster promotes),\n")
	fmt.Fprintf(w, "reading %d segments through each restore_command; before each recovery the walrus servers restart and the page cache is\n", n)
	fmt.Fprintf(w, "dropped. Consistent: start to `pg_ctl start -w` returning; promoted: start to pg_is_in_recovery() false. Every recovered\n")
	fmt.Fprintf(w, "cluster's pgbench_accounts matched the corpus's.\n\n")
	fmt.Fprintf(w, "| restore_command | rounds | consistent (mean) | promoted (mean) | promoted, each round | server CPU / segment | startup CPU / segment |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---|---:|---:|\n")
	for _, x := range res {
		var each []string
		for _, run := range x.runs {
			each = append(each, sec(run.promoted))
		}
		srv := "—"
		if x.peer.server != nil {
			srv = per(x.mean(func(r pitrRun) time.Duration { return r.server })) + " ms"
		}
		fmt.Fprintf(w, "| `%s` (%s) | %d | %s | %s | %s | %s | %s ms |\n", x.command, x.peer.name, len(x.runs),
			sec(x.mean(func(r pitrRun) time.Duration { return r.consistent })), sec(x.mean(promoted)), strings.Join(each, ", "),
			srv, per(x.mean(func(r pitrRun) time.Duration { return r.startup })))
	}
	fmt.Fprintln(w)
}

func (r *report) sustained(s *sustainedRuns) {
	backlog := func(x *sustainedResult) string { return fmt.Sprintf("max %d, median %d", x.maxReady, x.medianReady) }
	for _, load := range []string{loadTPCB, loadMix} {
		wr, st := s.find(load, susWalr), s.find(load, susStock)
		x := row{path: fmt.Sprintf("sustained `.ready` backlog, %s at full speed (%d s)", load, s.secs), walrus: backlog(wr),
			peer: "stock rsyncd " + backlog(st), ratio: float64(wr.maxReady) / float64(st.maxReady),
			cpuWalrus: "srv " + msPer(wr.serverPer()) + " ms", cpuPeer: "srv " + msPer(st.serverPer()) + " ms"}
		if st.maxReady == 0 {
			x.ratio = math.NaN()
		}
		if load == loadTPCB {
			x.target, x.met = "walrus max ≤ 2", verdict(float64(wr.maxReady), 2)
		} else {
			x.target, x.met = "report", "—"
		}
		r.add(x)
	}
	w := &r.detail
	fmt.Fprintf(w, "## Sustained archiving\n\n")
	fmt.Fprintf(w, "pgbench at full speed for %d s with 4 clients on one cluster with 16 MiB segments, `archive_command = 'rsync -aq %%p rsync://…/%%f'`\n", s.secs)
	fmt.Fprintf(w, "(wrapped to time each call); `.ready` files in pg_wal/archive_status counted every 100 ms. Runs in the order listed\n")
	fmt.Fprintf(w, "(walrus, stock, stock, walrus). Server CPU is per archived segment, over the run and the drain.\n\n")
	fmt.Fprintf(w, "| load | archive target | WAL generated | WAL rate | tps | segments archived | `.ready` max | `.ready` median | samples > 2 | archive_command median / p90 / max | drained in | server CPU / segment | failures |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range s.runs {
		fmt.Fprintf(w, "| %s | %s | %.0f MiB | %.1f MiB/s | %.0f | %d | %d | %d | %.1f%% | %s / %s / %s | %s | %s ms | %d |\n", x.load, x.target,
			float64(x.walBytes)/(1<<20), float64(x.walBytes)/(1<<20)/float64(s.secs), x.tps, x.archived, x.maxReady, x.medianReady,
			100*x.over2, ms(median(x.pushes)), ms(p90(x.pushes)), ms(slices.Max(x.pushes)), x.drain.Round(100*time.Millisecond), msPer(x.serverPer()), x.failed)
	}
	fmt.Fprintf(w, "\nwalrus after the sustained runs: %d files, %d bytes in, %d stored (%.1f×).\n\n",
		s.end.Files, s.end.LogicalBytes, s.end.StoredBytes, float64(s.end.LogicalBytes)/float64(max(s.end.StoredBytes, 1)))
}

func (r *report) status(s statusResult) {
	mbRSS := func(x int64) string { return fmt.Sprintf("%.0f MB", float64(x)/(1<<20)) }
	for _, c := range []struct {
		what string
		res  rusage.Result
	}{{"`walrus status --json`", s.json}, {"`walrus status --check`", s.chk}} {
		wall, rss := c.res.Wall.Seconds(), c.res.MaxRSS
		met := "met"
		if wall > bench.StatusTargetSeconds || rss > bench.StatusTargetRSS {
			met = "**missed**"
		}
		r.add(row{path: fmt.Sprintf("%s, %d synthetic segments", c.what, s.n),
			walrus: fmt.Sprintf("%.2f s, peak RSS %s", wall, mbRSS(rss)), peer: "—", ratio: math.NaN(),
			target: fmt.Sprintf("≤ %.0f s, ≤ %d MB", bench.StatusTargetSeconds, bench.StatusTargetRSS>>20), met: met,
			cpuWalrus: fmt.Sprintf("%.2f s in all", c.res.CPU.Seconds()), cpuPeer: "—"})
	}
	fmt.Fprintf(&r.detail, "## Status scale\n\n%d synthetic 16 MiB segments over two timelines (a gap, a .partial, a .history, two .backup files),\n", s.n)
	fmt.Fprintf(&r.detail, "their index records written straight into the index in %.1f s (test/bench's archive; `make bench` runs 10 000 to 1 000 000).\n", s.build.Seconds())
	fmt.Fprintf(&r.detail, "Each command started from a fresh copy of the test binary, so its peak RSS is its own; both reports were checked.\n\n")
}
