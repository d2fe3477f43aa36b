package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/walrus-archive/walrus/internal/metrics"
	"github.com/walrus-archive/walrus/internal/retention"
	"github.com/walrus-archive/walrus/store"
)

// maintenance is the server's periodic retention and GC.
type maintenance struct {
	st        *store.Store
	log       *slog.Logger
	policy    retention.Policy // zero: no retention, GC only
	interval  time.Duration
	threshold float64
	metrics   *metrics.Metrics // nil: none
	elsewhere string           // the last "retention runs elsewhere" said, not to repeat it every tick
}

// maintenanceFor checks serve's retention and GC flags and builds the loop;
// the caller sets st once the store is open.
func (c *serveCmd) maintenanceFor(log *slog.Logger) (*maintenance, error) {
	if c.GCThreshold <= 0 || c.GCThreshold > 1 {
		return nil, fmt.Errorf("serve: --gc-threshold %v: want a fraction in (0, 1]", c.GCThreshold)
	}
	m := &maintenance{log: log, interval: c.RetainInterval, threshold: c.GCThreshold}
	if c.RetainBackups > 0 || c.RetainWindow != "" {
		p, err := policyFromFlags(c.RetainBackups, c.RetainWindow)
		if err != nil {
			return nil, fmt.Errorf("serve: --retain-window/--retain-backups (retain_window, retain_backups): %w", err)
		}
		m.policy = p
	}
	return m, nil
}

// run applies retention (when a policy is set) and then GC every interval,
// until ctx ends. Failures are logged and retried at the next tick: a
// maintenance problem must never stop archiving.
func (m *maintenance) run(ctx context.Context) error {
	if m.interval <= 0 {
		return nil
	}
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.once(ctx)
		}
	}
}

func (m *maintenance) once(ctx context.Context) {
	if m.policy.Validate() == nil && m.maintainer() {
		start := time.Now()
		reps, err := m.st.Retain(ctx, "*", m.policy, time.Now(), false)
		if err != nil && ctx.Err() == nil {
			m.log.Error("retention failed", "err", err)
		}
		var freed int64
		for _, r := range reps {
			freed += r.LogicalBytesFreed
		}
		m.metrics.Maintained("retention", freed, time.Since(start), err)
		for _, r := range reps {
			if len(r.Removed) > 0 || r.Note != "" {
				m.log.Info("retention", "dir", r.Dir, "removed", len(r.Removed), "cutoff", r.Cutoff, "note", r.Note)
			}
		}
	}
	start := time.Now()
	rep, err := m.st.GC(ctx, store.GCOptions{Threshold: m.threshold})
	m.metrics.Maintained("gc", max(rep.DiskBefore-rep.DiskAfter, 0), time.Since(start), err)
	if err != nil && ctx.Err() == nil {
		m.log.Error("gc failed", "err", err)
		return
	}
	if rep.PacksRewritten+rep.PacksDeleted > 0 {
		m.log.Info("gc", "rewritten", rep.PacksRewritten, "deleted", rep.PacksDeleted,
			"copied_bytes", rep.BytesCopied, "disk_before", rep.DiskBefore, "disk_after", rep.DiskAfter)
	}
}

// maintainer says whether retention runs here: with several front-ends,
// only on the holder of the maintenance lease (store/lease.go). A change
// of the reason is logged once.
func (m *maintenance) maintainer() bool {
	err := m.st.Maintainer()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != m.elsewhere {
		if err != nil {
			m.log.Info("retention skipped here", "why", msg)
		} else if m.elsewhere != "" {
			m.log.Info("retention runs here again: this front-end holds the maintenance lease")
		}
		m.elsewhere = msg
	}
	return err == nil
}
