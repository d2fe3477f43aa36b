package control

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/walrus-archive/walrus/internal/retention"
	"github.com/walrus-archive/walrus/store"
)

// Admin endpoints: WAL status, retention and GC.
//
//	GET  /status/full?dir=D                      store.StatusReport
//	POST /retain?dir=D&keep_backups=N&keep_window=DUR&dry_run=1   []store.RetainReport
//	POST /gc?threshold=F                         store.GCReport

func (s *Server) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /status/full", s.statusFull)
	mux.HandleFunc("POST /retain", s.retain)
	mux.HandleFunc("POST /gc", s.gc)
}

func (s *Server) statusFull(w http.ResponseWriter, r *http.Request) {
	rep, err := s.st.StatusReport(r.URL.Query().Get("dir"), time.Now())
	if err != nil {
		s.fail(w, err)
		return
	}
	s.reply(w, rep)
}

func (s *Server) retain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var p retention.Policy
	p.KeepBackups, _ = strconv.Atoi(q.Get("keep_backups"))
	if v := q.Get("keep_window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.fail(w, err)
			return
		}
		p.KeepWindow = d
	}
	reps, err := s.st.Retain(r.Context(), q.Get("dir"), p, time.Now(), q.Get("dry_run") == "1")
	if err != nil {
		s.fail(w, err)
		return
	}
	s.reply(w, reps)
}

func (s *Server) gc(w http.ResponseWriter, r *http.Request) {
	th, _ := strconv.ParseFloat(r.URL.Query().Get("threshold"), 64)
	rep, err := s.st.GC(r.Context(), store.GCOptions{Threshold: th})
	if err != nil {
		s.fail(w, err)
		return
	}
	s.reply(w, rep)
}

// StatusReport returns the WAL status of dir ("" for every directory).
func (c *Client) StatusReport(dir string) (store.StatusReport, error) {
	var rep store.StatusReport
	err := c.decode("GET", "/status/full", url.Values{"dir": {dir}}, nil, -1, &rep)
	return rep, err
}

// Retain applies (or with dryRun, plans) a retention policy on the server.
func (c *Client) Retain(dir string, p retention.Policy, dryRun bool) ([]store.RetainReport, error) {
	q := url.Values{"dir": {dir}, "keep_backups": {strconv.Itoa(p.KeepBackups)}}
	if p.KeepWindow > 0 {
		q.Set("keep_window", p.KeepWindow.String())
	}
	if dryRun {
		q.Set("dry_run", "1")
	}
	var reps []store.RetainReport
	err := c.decode("POST", "/retain", q, nil, -1, &reps)
	return reps, err
}

// GC runs garbage collection on the server.
func (c *Client) GC(threshold float64) (store.GCReport, error) {
	var rep store.GCReport
	err := c.decode("POST", "/gc", url.Values{"threshold": {strconv.FormatFloat(threshold, 'g', -1, 64)}}, nil, -1, &rep)
	return rep, err
}
