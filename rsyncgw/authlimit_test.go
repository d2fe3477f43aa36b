package rsyncgw

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countHandler counts log records (the limiter must not log per attempt).
type countHandler struct{ n atomic.Int64 }

func (h *countHandler) Enabled(_ context.Context, _ slog.Level) bool  { return true }
func (h *countHandler) Handle(_ context.Context, _ slog.Record) error { h.n.Add(1); return nil }
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h *countHandler) WithGroup(string) slog.Handler                 { return h }

func TestAuthLimiterPenalties(t *testing.T) {
	var h countHandler
	l := newAuthLimiter(slog.New(&h))
	now := time.Unix(1700000000, 0)
	l.now = func() time.Time { return now }
	a, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := 0; i < authFreeFailures; i++ {
		if d, refuse := l.delay(a); d != 0 || refuse {
			t.Fatalf("attempt %d within the free failures: delay %v refuse %v", i+1, d, refuse)
		}
		l.failed(a, "m", "u", "password mismatch")
	}
	// From now on slots: parallel attempts queue, each a penalty apart.
	d1, _ := l.delay(a)
	d2, _ := l.delay(a)
	d3, _ := l.delay(a)
	if d1 != 0 || d2 != authPenalty || d3 != 2*authPenalty {
		t.Errorf("queued delays %v %v %v, want 0, %v, %v", d1, d2, d3, authPenalty, 2*authPenalty)
	}
	if d, _ := l.delay(other); d != 0 {
		t.Errorf("another address waits %v", d)
	}
	// Penalties double per failure up to the cap.
	for i := 0; i < 10; i++ {
		l.failed(a, "m", "u", "password mismatch")
	}
	if p := penalty(authFreeFailures + 10); p != authMaxPenalty {
		t.Errorf("penalty after 20 failures %v, want the cap %v", p, authMaxPenalty)
	}
	// A queue longer than the cap is refused at once, without a slot.
	refused := 0
	for i := 0; i < 10; i++ {
		if _, refuse := l.delay(a); refuse {
			refused++
		}
	}
	if refused == 0 {
		t.Error("a long queue was never refused")
	}
	// Logging is per burst, not per attempt: 20 failures, few lines.
	if n := h.n.Load(); n == 0 || n > 4 {
		t.Errorf("%d log lines for 20 failures", n)
	}
	// Quiet for authForget: the count starts again.
	now = now.Add(authForget + authMaxPenalty*20)
	if d, refuse := l.delay(a); d != 0 || refuse {
		t.Errorf("after a quiet minute: delay %v refuse %v", d, refuse)
	}
	// A success ends the burst at once.
	for i := 0; i < authFreeFailures+3; i++ {
		l.failed(other, "m", "u", "x")
	}
	l.succeeded(other)
	if d, _ := l.delay(other); d != 0 {
		t.Errorf("after a success: delay %v", d)
	}
}

// The real client with a wrong password, again and again: every attempt
// gets the stock refusal; a raw client hammering from 8 connections gets
// its password checked at most authFreeFailures + 1 s / authPenalty + 8
// times in a second (it was 2 500–3 300 a second; the rest wait for their
// slot or are refused unchecked); and the right password still gets in.
func TestAuthFailuresAreSlowed(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	os.WriteFile(secrets, []byte("alice:wonderland\n"), 0o600)
	e := startServer(t, fmt.Sprintf(`
[secure]
	path = /db/pg_archived
	read only = false
	auth users = alice
	secrets file = %s
`, secrets))
	seg := segment(1)
	src := e.writeFile(seg.Name(), seg.Bytes())
	dest := "rsync://alice@HOST/secure/" + seg.Name()
	for i := 0; i < 3; i++ {
		out, code := e.rsyncEnv([]string{"RSYNC_PASSWORD=wrong"}, "-aq", src, dest)
		expectExit(t, out, code, exitStartClient, "@ERROR: auth failed on module secure")
	}

	var checked, refused atomic.Int64
	deadline := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				switch authAttempt(t, e.addr) {
				case "auth failed":
					checked.Add(1)
				case "too many":
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	bound := int64(authFreeFailures + int(time.Second/authPenalty) + 8)
	t.Logf("in 1 s from 8 connections: %d password checks, %d refused unchecked", checked.Load(), refused.Load())
	if checked.Load() > bound {
		t.Errorf("%d password checks in a second from one address, want at most %d", checked.Load(), bound)
	}
	// The penalty ends with authForget; a good password is slowed at most
	// by the queue, never refused for long: retry until it gets in.
	var out string
	code := -1
	for i := 0; i < 30 && code != 0; i++ {
		out, code = e.rsyncEnv([]string{"RSYNC_PASSWORD=wonderland"}, "-aq", src, dest)
		if code != 0 && !strings.Contains(out, "too many failed authentications") {
			break
		}
	}
	expectExit(t, out, code, 0)
}

// authAttempt runs one failing authentication by hand and returns what
// the server answered.
func authAttempt(t *testing.T, addr string) string {
	c, r := dial(t, addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "@RSYNCD: 31.0 md5\nsecure\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "closed"
		}
		switch {
		case strings.HasPrefix(line, "@RSYNCD: AUTHREQD"):
			fmt.Fprintf(c, "alice d3JvbmctcmVzcG9uc2U\n")
		case strings.Contains(line, "auth failed"):
			return "auth failed"
		case strings.Contains(line, "too many failed"):
			return "too many"
		case strings.HasPrefix(line, "@ERROR"):
			return line
		}
	}
}
