package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress draws one self-overwriting status line on a terminal. On
// anything that is not a terminal it prints nothing, so scripts and logs
// stay clean.
type progress struct {
	mu    sync.Mutex
	w     io.Writer // nil: not a terminal
	what  string
	total int64
	start time.Time
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer, what string, total int64) *progress {
	p := &progress{what: what, total: total, start: time.Now()}
	if isTerminal(w) {
		p.w = w
	}
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// update redraws at most five times a second.
func (p *progress) update(items, bytes int64) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last, p.drawn = now, true
	rate := float64(bytes) / 1e6 / max(now.Sub(p.start).Seconds(), 1e-3)
	pct := ""
	if p.total > 0 {
		pct = fmt.Sprintf(" of %s (%.0f%%)", humanBytes(p.total), 100*float64(bytes)/float64(p.total))
	}
	fmt.Fprintf(p.w, "\r\033[K%s: %d files, %s%s, %.0f MB/s", p.what, items, humanBytes(bytes), pct, rate)
}

func (p *progress) done() {
	if p.w != nil && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
