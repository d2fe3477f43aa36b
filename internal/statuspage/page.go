// Package statuspage renders walrus's status page: a small server-rendered
// HTML page (no JavaScript) with, per cluster directory, the timeline tree
// with its fork LSNs, gaps, base backups and whether each is restorable,
// the archive rate over the last hours as an SVG chart, the storage ratio
// and the retention horizon. Template and stylesheet are embedded.
package statuspage

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/walrus-archive/walrus/internal/retention"
	"github.com/walrus-archive/walrus/store"
)

//go:embed assets
var assets embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"bytes": humanBytes,
	"ago":   ago,
	"add":   func(a, b int) int { return a + b },
}).ParseFS(assets, "assets/page.html"))

// Hours of archive rate the chart shows, one bar per hour.
const Hours = 24

// Options configure the page.
type Options struct {
	// Retention is serve's policy (zero: none); the page shows the horizon
	// it keeps (a dry run of walrus retain).
	Retention retention.Policy
	Logger    *slog.Logger
	// MaxAge bounds how long a rendered page is reused while the archive
	// does not change (default 10 s): the page reads every directory's
	// status, as `walrus status` does.
	MaxAge time.Duration
}

// Handler serves the page at / and its stylesheet at /static/style.css.
func Handler(st *store.Store, o Options) http.Handler {
	if o.MaxAge == 0 {
		o.MaxAge = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &handler{st: st, o: o}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.FileServerFS(subFS()))
	mux.HandleFunc("GET /{$}", h.serve)
	return mux
}

type handler struct {
	st *store.Store
	o  Options

	mu       sync.Mutex
	rendered []byte
	at       time.Time
	changes  uint64 // store.Changes when rendered
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch := h.st.Changes(); h.rendered == nil || ch != h.changes || time.Since(h.at) > h.o.MaxAge {
		h.changes = ch
		b, err := h.render(r.Context(), time.Now())
		if err != nil {
			h.o.Logger.Warn("status page", "err", err)
			http.Error(w, "walrus: status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h.rendered, h.at = b, time.Now()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(h.rendered)
}

// view is what the template shows.
type view struct {
	Now    time.Time
	Report store.StatusReport
	Policy string
	Dirs   []dirView
}

type dirView struct {
	store.DirStatus
	ID      string
	Tree    []*tlNode
	Rate    chart
	Horizon string // first segment retention keeps, or ""
	Note    string
}

type tlNode struct {
	store.TimelineStatus
	Children []*tlNode
}

func (h *handler) render(ctx context.Context, now time.Time) ([]byte, error) {
	rep, err := h.st.StatusReport("*", now)
	if err != nil {
		return nil, err
	}
	v := view{Now: now, Report: rep, Policy: "none (walrus serve --retain-backups/--retain-window)"}
	if h.o.Retention.Validate() == nil {
		v.Policy = h.o.Retention.String()
	}
	for i, d := range rep.Dirs {
		dv := dirView{DirStatus: d, ID: fmt.Sprintf("dir-%d", i), Tree: tree(d.Timelines)}
		counts, err := h.st.ArchiveHistory(d.Name, now, Hours, time.Hour)
		if err != nil {
			return nil, err
		}
		dv.Rate = newChart(counts, now)
		if h.o.Retention.Validate() == nil {
			r, err := h.st.Retain(ctx, d.Name, h.o.Retention, now, true)
			if err == nil && len(r) == 1 {
				dv.Horizon, dv.Note = r[0].Cutoff, r[0].Note
			}
		}
		v.Dirs = append(v.Dirs, dv)
	}
	var b bytes.Buffer
	if err := page.Execute(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// tree nests timelines under the timeline they continue.
func tree(tls []store.TimelineStatus) []*tlNode {
	nodes := map[uint32]*tlNode{}
	for _, t := range tls {
		nodes[t.TLI] = &tlNode{TimelineStatus: t}
	}
	var roots []*tlNode
	for _, t := range tls {
		n := nodes[t.TLI]
		if p, ok := nodes[t.Parent]; ok && t.Parent != 0 && t.Parent != t.TLI {
			p.Children = append(p.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	for _, n := range nodes {
		sort.Slice(n.Children, func(i, j int) bool { return n.Children[i].TLI < n.Children[j].TLI })
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].TLI < roots[j].TLI })
	return roots
}

// chart is an SVG bar chart of segments archived per hour.
type chart struct {
	Bars          []bar
	Max, Total    int
	Width, Height int
	From, To      string
}

type bar struct {
	X, Y, W, H int
	Count      int
	Hour       string
	Label      bool // the hour is written under the bar, at LabelY
	LabelY     int
}

func newChart(counts []int, now time.Time) chart {
	c := chart{Width: len(counts) * 36, Height: 80}
	for _, n := range counts {
		c.Max, c.Total = max(c.Max, n), c.Total+n
	}
	w := c.Width / len(counts)
	for i, n := range counts {
		h := 0
		if c.Max > 0 {
			h = n * (c.Height - 2) / c.Max
		}
		if n > 0 && h == 0 {
			h = 1
		}
		at := now.Add(-time.Duration(len(counts)-i) * time.Hour)
		c.Bars = append(c.Bars, bar{X: i * w, Y: c.Height - h, W: w - 2, H: h, Count: n, Hour: at.UTC().Format("15:04"),
			Label: (len(counts)-i)%6 == 0, LabelY: c.Height + 13})
	}
	c.From = now.Add(-time.Duration(len(counts)) * time.Hour).UTC().Format("2006-01-02 15:04")
	c.To = now.UTC().Format("15:04 UTC")
	return c
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	return now.Sub(*t).Round(time.Second).String() + " ago"
}
