// Package metrics exposes walrus's Prometheus metrics (client_golang):
// events counted as they happen — files and bytes archived and restored
// per interface and directory, refusals by reason, commit and read latency,
// rsync connections, GC and retention runs — and the archive's state read
// at scrape time — totals, per directory and timeline the last segment
// and its end LSN, the age of the newest segment, gaps, restorable
// backups, free space and the upload watermark, the block cache. Names
// follow Prometheus conventions: walrus_ prefix, base units, _total
// counters. The README lists every metric.
package metrics

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/store"
)

// Metrics holds the event metrics; it implements store.Observer and the
// rsync gateway's and maintenance's hooks. A nil *Metrics ignores events.
type Metrics struct {
	reg *prometheus.Registry

	archivedFiles, archivedBytes, rearchived *prometheus.CounterVec
	restoredFiles, restoredBytes             *prometheus.CounterVec
	refused                                  *prometheus.CounterVec
	commitSeconds, readSeconds               *prometheus.HistogramVec

	rsyncOpen    prometheus.Gauge
	rsyncTotal   prometheus.Counter
	rsyncRefused *prometheus.CounterVec // before the store: hosts, auth, modules, limits

	maintRuns    *prometheus.CounterVec
	maintFreed   *prometheus.CounterVec
	maintSeconds *prometheus.HistogramVec
}

// latency buckets: 1 ms .. ~16 s.
var latency = prometheus.ExponentialBuckets(0.001, 2, 15)

// New registers every metric and Go's runtime collectors on a registry
// of its own; Watch adds the archive's state once the store is open.
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.reg.MustRegister(c)
		return c
	}
	m.archivedFiles = f("walrus_archived_files_total", "Files newly archived, by interface (fuse, rsync, cli) and directory.", "interface", "dir")
	m.archivedBytes = f("walrus_archived_bytes_total", "Logical bytes of files newly archived.", "interface", "dir")
	m.rearchived = f("walrus_rearchived_files_total", "Identical re-pushes of files already archived (accepted, nothing stored).", "interface", "dir")
	m.restoredFiles = f("walrus_restored_files_total", "Files read (restored), by interface and directory.", "interface", "dir")
	m.restoredBytes = f("walrus_restored_bytes_total", "Bytes read (restored).", "interface", "dir")
	m.refused = f("walrus_refused_total", "Pushes refused, by interface and reason (exists_different, invalid_wal, other_cluster, no_space, too_large, invalid_name, retry, error).", "interface", "dir", "reason")
	m.commitSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "walrus_commit_duration_seconds",
		Help: "Time from a file's last byte to its acknowledgement (fsync and index commit included).", Buckets: latency}, []string{"interface"})
	m.readSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "walrus_read_duration_seconds",
		Help: "Time from opening a file for reading to closing it.", Buckets: latency}, []string{"interface"})
	m.rsyncOpen = prometheus.NewGauge(prometheus.GaugeOpts{Name: "walrus_rsync_connections_open", Help: "rsync gateway connections open now."})
	m.rsyncTotal = prometheus.NewCounter(prometheus.CounterOpts{Name: "walrus_rsync_connections_total", Help: "rsync gateway connections accepted."})
	m.rsyncRefused = f("walrus_rsync_connections_refused_total", "rsync gateway connections or module requests refused, by reason (host_denied, auth_failed, unknown_module, max_connections, read_only, write_only).", "reason")
	m.maintRuns = f("walrus_maintenance_runs_total", "Retention and GC runs, by kind (retention, gc) and outcome (ok, error).", "kind", "outcome")
	m.maintFreed = f("walrus_maintenance_freed_bytes_total", "Bytes freed: logical bytes removed by retention, pack bytes reclaimed by GC.", "kind")
	m.maintSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "walrus_maintenance_duration_seconds",
		Help: "Duration of retention and GC runs.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}, []string{"kind"})
	m.reg.MustRegister(m.commitSeconds, m.readSeconds, m.rsyncOpen, m.rsyncTotal, m.maintSeconds)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walrus_build_info", Help: "Always 1; the version label says which walrus.",
		ConstLabels: prometheus.Labels{"version": version}}, func() float64 { return 1 }))
	return m
}

// Watch exports st's state (read at scrape time, at most every 10 s).
// Registerer is the registry, for metrics defined elsewhere (the bucket
// backend's request metrics, backend.NewMetrics).
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

func (m *Metrics) Watch(st *store.Store) {
	m.reg.MustRegister(&stateCollector{st: st, maxAge: 10 * time.Second})
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: nil})
}

func label(via string) string {
	if via == "" {
		return "other"
	}
	return via
}

// Committed implements store.Observer.
func (m *Metrics) Committed(ev store.CommitEvent) {
	if m == nil {
		return
	}
	via := label(ev.Origin.Interface)
	switch {
	case ev.Err != nil:
		m.refused.WithLabelValues(via, ev.Dir, store.RefusalReason(ev.Err)).Inc()
	case ev.Existed:
		m.rearchived.WithLabelValues(via, ev.Dir).Inc()
	default:
		m.archivedFiles.WithLabelValues(via, ev.Dir).Inc()
		m.archivedBytes.WithLabelValues(via, ev.Dir).Add(float64(ev.Size))
	}
	if ev.Err == nil {
		m.commitSeconds.WithLabelValues(via).Observe(ev.Duration.Seconds())
	}
}

// Restored implements store.Observer.
func (m *Metrics) Restored(ev store.ReadEvent) {
	if m == nil {
		return
	}
	via := label(ev.Origin.Interface)
	m.restoredFiles.WithLabelValues(via, ev.Dir).Inc()
	m.restoredBytes.WithLabelValues(via, ev.Dir).Add(float64(ev.Bytes))
	m.readSeconds.WithLabelValues(via).Observe(ev.Duration.Seconds())
}

// ConnOpened, ConnClosed and ConnRefused count rsync gateway connections.
func (m *Metrics) ConnOpened() {
	if m != nil {
		m.rsyncOpen.Inc()
		m.rsyncTotal.Inc()
	}
}

func (m *Metrics) ConnClosed() {
	if m != nil {
		m.rsyncOpen.Dec()
	}
}

func (m *Metrics) ConnRefused(reason string) {
	if m != nil {
		m.rsyncRefused.WithLabelValues(reason).Inc()
	}
}

// Maintained records one retention or GC run.
func (m *Metrics) Maintained(kind string, freed int64, d time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.maintRuns.WithLabelValues(kind, outcome).Inc()
	m.maintFreed.WithLabelValues(kind).Add(float64(freed))
	m.maintSeconds.WithLabelValues(kind).Observe(d.Seconds())
}

// stateCollector reads the archive's state at scrape time (what `walrus
// status` reads: about a second for a million segments). A scrape when
// nothing changed since the last one (store.Changes) and less than maxAge
// passed reuses it; the ages in it are timestamps, so nothing goes stale.
type stateCollector struct {
	st     *store.Store
	maxAge time.Duration

	mu      sync.Mutex
	at      time.Time
	changes uint64
	last    []prometheus.Metric
}

var (
	dStoreFiles    = prometheus.NewDesc("walrus_files", "Files archived.", nil, nil)
	dLogical       = prometheus.NewDesc("walrus_logical_bytes", "Logical bytes of all archived files.", nil, nil)
	dStored        = prometheus.NewDesc("walrus_stored_bytes", "Live bytes in packs (after dedup and compression).", nil, nil)
	dDisk          = prometheus.NewDesc("walrus_disk_bytes", "Bytes of pack files on disk, dead bytes included.", nil, nil)
	dPacks         = prometheus.NewDesc("walrus_packs", "Pack files.", nil, nil)
	dLandedFiles   = prometheus.NewDesc("walrus_landed_files", "Files acknowledged through the mount and waiting to be ingested into the packs.", nil, nil)
	dLandedBytes   = prometheus.NewDesc("walrus_landed_bytes", "Bytes of the landed files waiting to be ingested.", nil, nil)
	dLandedFailing = prometheus.NewDesc("walrus_landed_failing_files", "Landed files whose last ingest failed (retried; the log says why).", nil, nil)
	dFree          = prometheus.NewDesc("walrus_free_bytes", "Free bytes on the data directory's filesystem.", nil, nil)
	dFloor         = prometheus.NewDesc("walrus_free_bytes_floor", "Free bytes below which uploads are refused (the watermark).", nil, nil)
	dCacheHits     = prometheus.NewDesc("walrus_cache_hits_total", "Block look-ups the decompressed-block cache answered.", nil, nil)
	dCacheMisses   = prometheus.NewDesc("walrus_cache_misses_total", "Block look-ups the cache did not answer.", nil, nil)
	dDirLogical    = prometheus.NewDesc("walrus_dir_logical_bytes", "Logical bytes of a directory's files.", []string{"dir"}, nil)
	dDirStored     = prometheus.NewDesc("walrus_dir_stored_bytes", "Stored bytes attributed to a directory.", []string{"dir"}, nil)
	dDirSegments   = prometheus.NewDesc("walrus_dir_segments", "Full WAL segments in a directory, all timelines.", []string{"dir"}, nil)
	dLastArchived  = prometheus.NewDesc("walrus_last_archived_timestamp_seconds", "When the directory's newest segment (by position) was archived, unix time.", []string{"dir"}, nil)
	dLastEndLSN    = prometheus.NewDesc("walrus_timeline_last_segment_end_lsn_bytes", "End LSN of the last segment archived on a timeline, as a byte position.", []string{"dir", "timeline"}, nil)
	dTimelineSegs  = prometheus.NewDesc("walrus_timeline_segments", "Segments archived on a timeline.", []string{"dir", "timeline"}, nil)
	dGaps          = prometheus.NewDesc("walrus_gap_segments", "Segments missing inside a directory's timelines (0 when the WAL is continuous).", []string{"dir"}, nil)
	dProblems      = prometheus.NewDesc("walrus_continuity_problems", "Continuity problems of a directory (gaps, history contradictions, unreadable history or backup files).", []string{"dir"}, nil)
	dBackups       = prometheus.NewDesc("walrus_backups", "Base backups (.backup files) of a directory, by whether they are restorable.", []string{"dir", "restorable"}, nil)
	dNewestBackup  = prometheus.NewDesc("walrus_newest_backup_restorable", "1 if the newest base backup (by stop time) is restorable, 0 if not; absent without backups.", []string{"dir"}, nil)
	dNewestRestore = prometheus.NewDesc("walrus_newest_restorable_backup_timestamp_seconds", "Stop time of the newest restorable base backup, unix time.", []string{"dir"}, nil)
	dBucketPacks   = prometheus.NewDesc("walrus_bucket_waiting_packs", "Sealed packs not yet uploaded to the bucket (absent without a bucket).", nil, nil)
	dBucketBytes   = prometheus.NewDesc("walrus_bucket_waiting_bytes", "Bytes of the sealed packs not yet uploaded to the bucket.", nil, nil)
	dBucketOldest  = prometheus.NewDesc("walrus_bucket_oldest_waiting_seconds", "Age of the oldest pack waiting for upload (0: none waits).", nil, nil)
	dBucketActive  = prometheus.NewDesc("walrus_bucket_active_bytes", "Bytes of the active pack, not in the bucket until it is sealed (by size or by age).", nil, nil)
	dBucketFails   = prometheus.NewDesc("walrus_bucket_upload_failures_total", "Pack uploads that failed (after the backend's retries) since start.", nil, nil)
	dBucketUploads = prometheus.NewDesc("walrus_bucket_uploads_total", "Packs uploaded to the bucket since start.", nil, nil)
	dBucketUpBytes = prometheus.NewDesc("walrus_bucket_uploaded_bytes_total", "Pack bytes uploaded to the bucket since start.", nil, nil)
	dBucketPendDel = prometheus.NewDesc("walrus_bucket_pending_delete_packs", "Objects of packs GC retired, deleted once the bucket holds what replaced them.", nil, nil)
	dBucketPendDB  = prometheus.NewDesc("walrus_bucket_pending_delete_bytes", "Bytes of the objects pending deletion.", nil, nil)
	dBucketDeletes = prometheus.NewDesc("walrus_bucket_deletes_total", "Objects of retired packs deleted from the bucket since start.", nil, nil)
	dBucketDelByte = prometheus.NewDesc("walrus_bucket_deleted_bytes_total", "Bytes of the objects deleted from the bucket since start.", nil, nil)
	dScrapeErr     = prometheus.NewDesc("walrus_state_scrape_error", "1 if reading the archive's state failed at the last scrape.", nil, nil)
)

// The local pack cache with a bucket (store/packcache.go).
var (
	dCacheLocal   = prometheus.NewDesc("walrus_bucket_local_pack_bytes", "Committed bytes of the packs that have a local file (bounded by --bucket-cache-size).", nil, nil)
	dCacheEvicted = prometheus.NewDesc("walrus_bucket_evicted_packs", "Packs whose local file was evicted: they are read from the bucket.", nil, nil)
	dCacheGets    = prometheus.NewDesc("walrus_bucket_range_gets_total", "Range reads of pack objects (blocks of evicted packs) since start.", nil, nil)
	dCacheGetB    = prometheus.NewDesc("walrus_bucket_range_bytes_total", "Bytes fetched by range reads of pack objects since start.", nil, nil)
)

// Index snapshots in the bucket (store/snapshot.go).
var (
	dSnapAge   = prometheus.NewDesc("walrus_bucket_snapshot_age_seconds", "Age of the newest index snapshot in the bucket (a cold start reads it and the packs uploaded after it); absent while none is known.", nil, nil)
	dSnapBytes = prometheus.NewDesc("walrus_bucket_snapshot_bytes", "Size of the newest index snapshot object.", nil, nil)
	dSnapWrite = prometheus.NewDesc("walrus_bucket_snapshots_total", "Index snapshots written to the bucket since start.", nil, nil)
	dSnapFails = prometheus.NewDesc("walrus_bucket_snapshot_failures_total", "Index snapshots that failed since start (retried after a later upload pass).", nil, nil)
	dClaims    = prometheus.NewDesc("walrus_claims_total", "Name claims shared with other front-ends since start, by outcome: claimed (new), identical (a re-push), refused (other content), failed (no answer; the push failed).", []string{"outcome"}, nil)
)

// Other front-ends followed (store/peers.go).
var (
	dPeerAge     = prometheus.NewDesc("walrus_peer_heartbeat_age_seconds", "Age of another front-end's last heartbeat in the shared registry.", []string{"peer"}, nil)
	dPeerLag     = prometheus.NewDesc("walrus_peer_lag_seconds", "How long this front-end has been behind another one's packs in the bucket (0: caught up at the last pass).", []string{"peer"}, nil)
	dPeerBehind  = prometheus.NewDesc("walrus_peer_packs_behind", "Packs of another front-end in the bucket not followed yet (at the last pass).", []string{"peer"}, nil)
	dPeerAdopted = prometheus.NewDesc("walrus_peer_adopted_files_total", "Files of another front-end adopted (committed here) since start.", []string{"peer"}, nil)
	dPeerRemoved = prometheus.NewDesc("walrus_peer_removed_files_total", "Removals of another front-end followed (files removed here) since start.", []string{"peer"}, nil)
)

// The group's maintenance lease (store/lease.go).
var (
	dLeaseHeld  = prometheus.NewDesc("walrus_lease_held", "1 while this front-end holds the maintenance lease (retention runs here), else 0.", nil, nil)
	dLeaseEpoch = prometheus.NewDesc("walrus_lease_epoch", "Highest epoch of the maintenance lease seen; it grows at every renewal.", nil, nil)
	dLeaseTaken = prometheus.NewDesc("walrus_lease_acquired_total", "Times this front-end took the maintenance lease since start (renewals not counted).", nil, nil)
	dLeaseLost  = prometheus.NewDesc("walrus_lease_lost_total", "Times this front-end lost the maintenance lease since start (found taken, or not renewed in time).", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dCacheLocal, dCacheEvicted, dCacheGets, dCacheGetB, dSnapAge, dSnapBytes, dSnapWrite, dSnapFails, dClaims, dPeerAge, dPeerBehind, dPeerAdopted, dPeerRemoved, dPeerLag,
		dLeaseHeld, dLeaseEpoch, dLeaseTaken, dLeaseLost} {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{dStoreFiles, dLogical, dStored, dDisk, dPacks, dLandedFiles, dLandedBytes, dLandedFailing, dFree, dFloor, dCacheHits, dCacheMisses,
		dDirLogical, dDirStored, dDirSegments, dLastArchived, dLastEndLSN, dTimelineSegs, dGaps, dProblems, dBackups,
		dNewestBackup, dNewestRestore, dScrapeErr,
		dBucketPacks, dBucketBytes, dBucketOldest, dBucketActive, dBucketFails, dBucketUploads, dBucketUpBytes,
		dBucketPendDel, dBucketPendDB, dBucketDeletes, dBucketDelByte} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if ch := c.st.Changes(); c.last == nil || ch != c.changes || time.Since(c.at) > c.maxAge {
		c.last, c.at, c.changes = c.read(context.Background()), time.Now(), ch
	}
	ms := c.last
	c.mu.Unlock()
	for _, m := range ms {
		ch <- m
	}
}

func (c *stateCollector) read(ctx context.Context) []prometheus.Metric {
	var out []prometheus.Metric
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	hits, misses := c.st.CacheStats()
	out = append(out, prometheus.MustNewConstMetric(dCacheHits, prometheus.CounterValue, float64(hits)),
		prometheus.MustNewConstMetric(dCacheMisses, prometheus.CounterValue, float64(misses)))
	if free, floor, ok := c.st.Space(); ok {
		g(dFree, float64(free))
		g(dFloor, float64(floor))
	}
	rep, err := c.st.StatusReport("*", time.Now())
	if err != nil {
		g(dScrapeErr, 1)
		return out
	}
	g(dScrapeErr, 0)
	g(dStoreFiles, float64(rep.Files))
	g(dLogical, float64(rep.LogicalBytes))
	g(dStored, float64(rep.StoredBytes))
	g(dDisk, float64(rep.DiskBytes))
	g(dPacks, float64(rep.Packs))
	g(dLandedFiles, float64(rep.LandedFiles))
	g(dLandedBytes, float64(rep.LandedBytes))
	g(dLandedFailing, float64(rep.LandedFailing))
	if b := rep.Bucket; b != nil {
		g(dBucketPacks, float64(b.WaitingPacks))
		g(dBucketBytes, float64(b.WaitingBytes))
		g(dBucketOldest, b.OldestWaitingSeconds)
		g(dBucketActive, float64(b.ActiveBytes))
		g(dBucketPendDel, float64(b.PendingDeletePacks))
		g(dBucketPendDB, float64(b.PendingDeleteBytes))
		for d, v := range map[*prometheus.Desc]float64{dBucketFails: float64(b.Failures), dBucketUploads: float64(b.Uploads), dBucketUpBytes: float64(b.UploadedBytes),
			dBucketDeletes: float64(b.Deletes), dBucketDelByte: float64(b.DeletedBytes)} {
			out = append(out, prometheus.MustNewConstMetric(d, prometheus.CounterValue, v))
		}
	}
	if c := rep.Claims; c != nil {
		for outcome, v := range map[string]int64{"claimed": c.Claimed, "identical": c.Identical, "refused": c.Refused, "failed": c.Failures} {
			out = append(out, prometheus.MustNewConstMetric(dClaims, prometheus.CounterValue, float64(v), outcome))
		}
	}
	for _, p := range rep.Peers {
		g(dPeerAge, p.HeartbeatAgeSeconds, p.ID)
		g(dPeerBehind, float64(p.PacksBehind), p.ID)
		g(dPeerLag, p.LagSeconds, p.ID)
		out = append(out, prometheus.MustNewConstMetric(dPeerAdopted, prometheus.CounterValue, float64(p.Adopted), p.ID))
		out = append(out, prometheus.MustNewConstMetric(dPeerRemoved, prometheus.CounterValue, float64(p.Removed), p.ID))
	}
	if l := rep.Lease; l != nil {
		g(dLeaseHeld, map[bool]float64{true: 1}[l.Here])
		g(dLeaseEpoch, float64(l.Epoch))
		out = append(out, prometheus.MustNewConstMetric(dLeaseTaken, prometheus.CounterValue, float64(l.Acquired)),
			prometheus.MustNewConstMetric(dLeaseLost, prometheus.CounterValue, float64(l.Lost)))
	}
	if b := rep.Bucket; b != nil && b.Snapshot != nil {
		if b.Snapshot.Name != "" {
			g(dSnapAge, b.Snapshot.AgeSeconds)
			g(dSnapBytes, float64(b.Snapshot.Bytes))
		}
		out = append(out, prometheus.MustNewConstMetric(dSnapWrite, prometheus.CounterValue, float64(b.Snapshot.Writes)),
			prometheus.MustNewConstMetric(dSnapFails, prometheus.CounterValue, float64(b.Snapshot.Failures)))
	}
	if b := rep.Bucket; b != nil && b.Cache != nil {
		g(dCacheLocal, float64(b.Cache.LocalBytes))
		g(dCacheEvicted, float64(b.Cache.EvictedPacks))
		out = append(out, prometheus.MustNewConstMetric(dCacheGets, prometheus.CounterValue, float64(b.Cache.RangeGets)),
			prometheus.MustNewConstMetric(dCacheGetB, prometheus.CounterValue, float64(b.Cache.RangeBytes)))
	}
	for _, d := range rep.Dirs {
		g(dDirLogical, float64(d.LogicalBytes), d.Name)
		g(dDirStored, float64(d.StoredBytes), d.Name)
		g(dDirSegments, float64(d.Segments), d.Name)
		g(dProblems, float64(len(d.Problems)), d.Name)
		if d.LastArchived != nil {
			g(dLastArchived, float64(d.LastArchived.UnixNano())/1e9, d.Name)
		}
		var gaps uint64
		for _, t := range d.Timelines {
			tli := fmt.Sprintf("%08X", t.TLI)
			g(dTimelineSegs, float64(t.Segments), d.Name, tli)
			if end, ok := endLSN(t.Last, d.SegmentSize); ok {
				g(dLastEndLSN, float64(end), d.Name, tli)
			}
			for _, gp := range t.Gaps {
				gaps += gp.Count
			}
		}
		g(dGaps, float64(gaps), d.Name)
		var ok, bad int
		var newest, newestOK *store.BackupStatus
		for i := range d.Backups {
			b := &d.Backups[i]
			if b.Restorable {
				ok++
				if newestOK == nil || b.StopTime.After(newestOK.StopTime) {
					newestOK = b
				}
			} else {
				bad++
			}
			if newest == nil || b.StopTime.After(newest.StopTime) {
				newest = b
			}
		}
		g(dBackups, float64(ok), d.Name, "true")
		g(dBackups, float64(bad), d.Name, "false")
		if newest != nil {
			v := 0.0
			if newest.Restorable {
				v = 1
			}
			g(dNewestBackup, v, d.Name)
		}
		if newestOK != nil {
			g(dNewestRestore, float64(newestOK.StopTime.UnixNano())/1e9, d.Name)
		}
	}
	return out
}

// endLSN is the byte position just past segment name.
func endLSN(name string, segSize uint32) (uint64, bool) {
	n := wal.ParseName(name)
	if n.Kind != wal.KindSegment || !wal.ValidSegmentSize(segSize) {
		return 0, false
	}
	segNo, err := n.SegNo(segSize)
	if err != nil {
		return 0, false
	}
	return uint64(wal.SegmentStart(segNo+1, segSize)), true
}
