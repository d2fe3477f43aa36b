package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/walrus-archive/walrus/internal/metrics"
	"github.com/walrus-archive/walrus/internal/statuspage"
	"github.com/walrus-archive/walrus/store"
)

// httpHandler is what --http serves: the status page and /metrics.
func (c *serveCmd) httpHandler(st *store.Store, m *maintenance, met *metrics.Metrics, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", met.Handler())
	mux.Handle("/", statuspage.Handler(st, statuspage.Options{Retention: m.policy, Logger: log}))
	return mux
}

// serveHTTP serves h on ln until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		<-done
		return ctx.Err()
	}
}
