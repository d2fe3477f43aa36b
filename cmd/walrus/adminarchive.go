package main

import (
	"context"
	"time"

	"github.com/walrus-archive/walrus/internal/retention"
	"github.com/walrus-archive/walrus/store"
)

// admin is what status, verify, retain and gc need beyond the file
// commands; both archive implementations provide it.
type admin interface {
	archive
	StatusReport(dir string) (store.StatusReport, error)
	VerifyWithProgress(ctx context.Context, dir string, progress store.VerifyProgress) (store.VerifyReport, error)
	Retain(ctx context.Context, dir string, p retention.Policy, dryRun bool) ([]store.RetainReport, error)
	GC(ctx context.Context, threshold float64, progress func(store.GCReport)) (store.GCReport, error)
}

var (
	_ admin = localArchive{}
	_ admin = remoteArchive{}
)

func (g *globals) openAdmin() (admin, error) {
	a, err := g.openArchive()
	if err != nil {
		return nil, err
	}
	return a.(admin), nil
}

func (l localArchive) StatusReport(dir string) (store.StatusReport, error) {
	return l.s.StatusReport(dir, time.Now())
}

func (l localArchive) VerifyWithProgress(ctx context.Context, dir string, progress store.VerifyProgress) (store.VerifyReport, error) {
	return l.s.Verify(ctx, dir, progress)
}

func (l localArchive) Retain(ctx context.Context, dir string, p retention.Policy, dryRun bool) ([]store.RetainReport, error) {
	return l.s.Retain(ctx, dir, p, time.Now(), dryRun)
}

func (l localArchive) GC(ctx context.Context, threshold float64, progress func(store.GCReport)) (store.GCReport, error) {
	return l.s.GC(ctx, store.GCOptions{Threshold: threshold, Progress: progress})
}

func (r remoteArchive) StatusReport(dir string) (store.StatusReport, error) {
	return r.c.StatusReport(dir)
}

// VerifyWithProgress runs on the server, which reports no progress.
func (r remoteArchive) VerifyWithProgress(_ context.Context, dir string, _ store.VerifyProgress) (store.VerifyReport, error) {
	return r.c.Verify(dir)
}

func (r remoteArchive) Retain(_ context.Context, dir string, p retention.Policy, dryRun bool) ([]store.RetainReport, error) {
	return r.c.Retain(dir, p, dryRun)
}

func (r remoteArchive) GC(_ context.Context, threshold float64, _ func(store.GCReport)) (store.GCReport, error) {
	return r.c.GC(threshold)
}
