package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StackOptions configures the decorators Stack wraps a Backend in. The
// zero value of a field means its default.
type StackOptions struct {
	// Attempts is how often a call is tried in all when it fails with a
	// transient error (IsTransient); default 5, 1 disables retries.
	Attempts int
	// BackoffBase and BackoffMax bound the pause before retry n: a
	// uniformly random duration in [0, min(BackoffMax, BackoffBase*2^n))
	// ("full jitter", so that clients that failed together do not retry
	// together). Defaults 100 ms and 5 s.
	BackoffBase, BackoffMax time.Duration
	// Timeout bounds one attempt of a call (default 30 s). A call that
	// carries data (Put, PutIfAbsent, ReadAt) gets size/MinRate more. A
	// List fails when no object arrives for Timeout (the time fn runs
	// does not count).
	Timeout time.Duration
	// MinRate is the slowest transfer, in bytes per second, that is not
	// a hang (default 1 MiB/s: a 256 MiB pack gets 30 s + 256 s).
	MinRate int64
	// Connections bounds the calls in flight at once (default 8). A call
	// holds its slot for one attempt, not while it waits to retry.
	Connections int
	// Observer, if set, sees every attempt: method, outcome, latency.
	Observer Observer
}

func (o StackOptions) withDefaults() StackOptions {
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 100 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MinRate <= 0 {
		o.MinRate = 1 << 20
	}
	if o.Connections <= 0 {
		o.Connections = 8
	}
	return o
}

// Stack wraps b in the cross-cutting decorators, outermost first:
//
//	Retry → Limit → Timeout → Observe → b
//
// Retry is outermost so that a pause before a retry holds no connection
// slot and is not charged to the attempt's timeout; Limit sits outside
// Timeout so that time spent queueing for a slot is not mistaken for a
// hung server; Observe is innermost so that it counts requests as they
// are sent to b (what a provider bills) and times them without queueing.
// Every attempt ends within its timeout, and there are at most Attempts,
// so no call through the stack hangs (as long as b honours its context,
// which S3 does through net/http).
//
// Retry retries only transient errors: never ErrExist (a conflict),
// ErrNotExist, ErrShort, ErrTampered or an invalid name, and never once the
// caller's context is done. A List is retried only while it has not yet
// called fn: after that, a retry could report an object twice. A
// ListAfter is retried after that too, listing after the last object it
// reported. A PutIfAbsent retried after a transient failure may find ErrExist because
// its own first attempt succeeded and only the reply was lost; a caller
// claiming a name must store something that identifies it and read it
// back to tell (issue 15).
//
// Encrypted goes over the stack, NewEncrypted(Stack(s3, o), key): each
// request it makes (Stat, header, chunk range) is then retried, timed and
// counted on its own, and a retried Put re-sends the same ciphertext.
func Stack(b Backend, o StackOptions) Backend {
	o = o.withDefaults()
	return &stacked{b: b, o: o, slots: make(chan struct{}, o.Connections)}
}

// stacked is the decorator stack; it holds no state between calls but the
// connection slots.
type stacked struct {
	b     Backend
	o     StackOptions
	slots chan struct{} // one token per call in flight
}

var _ Backend = (*stacked)(nil)

func (s *stacked) Location() string { return s.b.Location() }

func (s *stacked) Put(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	return s.do(ctx, "put", size, func(ctx context.Context) error { return s.b.Put(ctx, name, r, size) })
}

func (s *stacked) PutIfAbsent(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	return s.do(ctx, "put_if_absent", size, func(ctx context.Context) error { return s.b.PutIfAbsent(ctx, name, r, size) })
}

func (s *stacked) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	return s.do(ctx, "read", int64(len(p)), func(ctx context.Context) error { return s.b.ReadAt(ctx, name, p, off) })
}

func (s *stacked) Stat(ctx context.Context, name string) (info Info, err error) {
	err = s.do(ctx, "stat", 0, func(ctx context.Context) (err error) {
		info, err = s.b.Stat(ctx, name)
		return err
	})
	return info, err
}

func (s *stacked) Delete(ctx context.Context, name string) error {
	return s.do(ctx, "delete", 0, func(ctx context.Context) error { return s.b.Delete(ctx, name) })
}

// List implements Backend with an idle timeout instead of a call
// timeout: a listing of a million objects takes long, a stalled one
// fails after Timeout without progress.
func (s *stacked) List(ctx context.Context, prefix string, fn func(Info) error) error {
	return s.list(ctx, prefix, "", false, fn)
}

// ListAfter implements Backend like List, except that a retry after
// objects were reported resumes strictly after the last one (the order
// is ascending), so that none is reported twice.
func (s *stacked) ListAfter(ctx context.Context, prefix, after string, fn func(Info) error) error {
	return s.list(ctx, prefix, after, true, fn)
}

// list runs List (ordered false) or ListAfter (true) through Retry →
// Limit → idle timeout → Observe.
func (s *stacked) list(ctx context.Context, prefix, after string, ordered bool, fn func(Info) error) error {
	delivered := false
	var fnErr error
	for attempt := 0; ; attempt++ {
		err := s.limit(ctx, func() error {
			return s.observe("list", func() error { return s.listOnce(ctx, prefix, &after, ordered, fn, &delivered, &fnErr) })
		})
		if err == nil || fnErr != nil || delivered && !ordered || !s.retry(ctx, attempt, err) {
			return err
		}
	}
}

// listOnce is one attempt of list; an ordered one moves *after to every
// object it reports.
func (s *stacked) listOnce(ctx context.Context, prefix string, after *string, ordered bool, fn func(Info) error, delivered *bool, fnErr *error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(s.o.Timeout, func() { cancel(ErrTimeout) })
	defer idle.Stop()
	each := func(info Info) error {
		if !idle.Stop() {
			return context.Cause(ctx) // the timer fired: the listing is already cancelled
		}
		*delivered = true
		if ordered {
			*after = info.Name
		}
		if err := fn(info); err != nil {
			*fnErr = err
			return err
		}
		idle.Reset(s.o.Timeout)
		return nil
	}
	var err error
	if ordered {
		err = s.b.ListAfter(ctx, prefix, *after, each)
	} else {
		err = s.b.List(ctx, prefix, each)
	}
	if err != nil && errors.Is(context.Cause(ctx), ErrTimeout) && *fnErr == nil {
		return fmt.Errorf("%w: list %q: no object for %v: %v", ErrTimeout, prefix, s.o.Timeout, err)
	}
	return err
}

// do runs one call through Retry → Limit → Timeout → Observe.
func (s *stacked) do(ctx context.Context, method string, size int64, call func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := s.limit(ctx, func() error {
			return s.timeout(ctx, method, size, func(ctx context.Context) error {
				return s.observe(method, func() error { return call(ctx) })
			})
		})
		if err == nil || !s.retry(ctx, attempt, err) {
			return err
		}
	}
}

// retry reports whether to try again after err on attempt (0-based), and
// waits out the backoff first; it returns false at once when the context
// is done.
func (s *stacked) retry(ctx context.Context, attempt int, err error) bool {
	if attempt+1 >= s.o.Attempts || !IsTransient(err) || ctx.Err() != nil {
		return false
	}
	ceil := s.o.BackoffBase << min(attempt, 30)
	if ceil > s.o.BackoffMax || ceil <= 0 {
		ceil = s.o.BackoffMax
	}
	t := time.NewTimer(rand.N(ceil) + 1)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// limit runs f holding one of the Connections slots.
func (s *stacked) limit(ctx context.Context, f func() error) error {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.slots }()
	return f()
}

// timeout runs f under the attempt's deadline and turns that deadline
// (not the caller's) into ErrTimeout.
func (s *stacked) timeout(ctx context.Context, method string, size int64, f func(context.Context) error) error {
	d := s.o.Timeout + time.Duration(float64(size)/float64(s.o.MinRate)*float64(time.Second))
	actx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := f(actx)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		return fmt.Errorf("%w: %s after %v: %v", ErrTimeout, method, d, err)
	}
	return err
}

func (s *stacked) observe(method string, f func() error) error {
	if s.o.Observer == nil {
		return f()
	}
	start := time.Now()
	err := f()
	s.o.Observer.Observe(method, Outcome(err), time.Since(start))
	return err
}

// Observer receives one event per attempt of a call on the backend below
// the stack: one request for Put, PutIfAbsent, ReadAt, Stat and Delete on
// S3 (ReadAt past the end adds a HEAD), one event per List however many
// pages (LIST requests) it took; a ListAfter is a List.
type Observer interface {
	Observe(method, outcome string, d time.Duration)
}

// Outcome names the class of err for metrics: ok, not_found, exists,
// short, tampered, invalid, canceled, timeout, transient or error.
func Outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotExist):
		return "not_found"
	case errors.Is(err, ErrExist):
		return "exists"
	case errors.Is(err, ErrShort):
		return "short"
	case errors.Is(err, ErrTampered):
		return "tampered"
	case errors.Is(err, ErrInvalidName):
		return "invalid"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrTimeout):
		return "timeout"
	case IsTransient(err):
		return "transient"
	}
	return "error"
}

// Metrics is an Observer that exports walrus_backend_requests_total
// {method, outcome} and walrus_backend_request_seconds {method} to a
// Prometheus registry.
type Metrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// NewMetrics registers the backend metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walrus_backend_requests_total",
			Help: "Requests to the pack storage backend, by method and outcome.",
		}, []string{"method", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "walrus_backend_request_seconds",
			Help:    "Latency of requests to the pack storage backend.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1 ms to 4.4 min
		}, []string{"method"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.seconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("backend: registering metrics: %w", err)
		}
	}
	return m, nil
}

// Observe implements Observer.
func (m *Metrics) Observe(method, outcome string, d time.Duration) {
	m.requests.WithLabelValues(method, outcome).Inc()
	m.seconds.WithLabelValues(method).Observe(d.Seconds())
}
