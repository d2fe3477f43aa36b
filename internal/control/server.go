package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/walrus-archive/walrus/store"
)

// Server serves the control API for one store.
type Server struct {
	st  *store.Store
	log *slog.Logger
	srv *http.Server
}

// Listen creates the socket in dataDir. A socket file left by a killed
// server is replaced; one that still answers means another server runs.
func Listen(dataDir string) (net.Listener, error) {
	path := filepath.Join(dataDir, SocketName)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control: %s answers: another walrus serve owns %s", path, dataDir)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: chmod %s: %w", path, err)
	}
	return ln, nil
}

// NewServer returns the control API handler for st.
func NewServer(st *store.Store, log *slog.Logger) *Server {
	s := &Server{st: st, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /put", s.put)
	mux.HandleFunc("GET /get", s.get)
	mux.HandleFunc("GET /stat", s.stat)
	mux.HandleFunc("GET /ls", s.ls)
	mux.HandleFunc("POST /rm", s.rm)
	mux.HandleFunc("GET /status", s.status)
	mux.HandleFunc("POST /verify", s.verify)
	// Profiles for diagnosing a slow server; the socket is 0600, so only
	// the server's user and root reach them.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.registerAdmin(mux)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Serve answers on ln until ctx is cancelled, then shuts down gracefully
// (in-flight requests finish; a put in flight commits or aborts).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.srv.Shutdown(shutCtx)
	<-done
	return err
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	kind, status := kindOf(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody{Error: err.Error(), Kind: kind})
}

func (s *Server) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	mode, _ := strconv.ParseUint(q.Get("mode"), 8, 32)
	mtime, _ := strconv.ParseInt(q.Get("mtime"), 10, 64)
	meta := store.FileMeta{Mode: os.FileMode(mode), MTime: time.Unix(0, mtime), Origin: store.Origin{Interface: "cli"}}
	u, err := s.st.Create(q.Get("name"), meta)
	if err != nil {
		s.fail(w, err)
		return
	}
	n, err := io.CopyBuffer(u, r.Body, make([]byte, 1<<20))
	if err == nil && q.Get("size") != "" && strconv.FormatInt(n, 10) != q.Get("size") {
		err = fmt.Errorf("control: upload of %s truncated: %d of %s bytes arrived", q.Get("name"), n, q.Get("size"))
	}
	if err != nil {
		u.Abort()
		s.fail(w, err)
		return
	}
	fi, err := u.Commit()
	if err != nil {
		s.log.Warn("put refused", "name", q.Get("name"), "err", err)
		s.fail(w, err)
		return
	}
	s.reply(w, fi)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	rd, err := s.st.OpenFrom(r.URL.Query().Get("name"), store.Origin{Interface: "cli"})
	if err != nil {
		s.fail(w, err)
		return
	}
	defer rd.Close()
	info, _ := json.Marshal(rd.Info())
	w.Header().Set("Walrus-Info", string(info))
	w.Header().Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
	if _, err := rd.WriteTo(w); err != nil {
		// Headers are gone; a short body (Content-Length) tells the client.
		s.log.Error("get failed mid-stream", "name", r.URL.Query().Get("name"), "err", err)
	}
}

func (s *Server) stat(w http.ResponseWriter, r *http.Request) {
	fi, err := s.st.Stat(r.URL.Query().Get("name"))
	if err != nil {
		s.fail(w, err)
		return
	}
	s.reply(w, fi)
}

// Listing is the answer of /ls.
type Listing struct {
	Dirs  []string         `json:"dirs,omitempty"`
	Files []store.FileInfo `json:"files"`
}

func (s *Server) ls(w http.ResponseWriter, r *http.Request) {
	dir := r.URL.Query().Get("dir")
	var l Listing
	ok, err := s.st.IsDir(dir)
	if err == nil && !ok {
		err = fmt.Errorf("%w: directory %s", store.ErrNotFound, dir)
	}
	if err == nil && dir == "" {
		var dirs []string
		ds, derr := s.st.Dirs()
		for _, d := range ds {
			dirs = append(dirs, d.Name)
		}
		l.Dirs, err = dirs, derr
	}
	if err == nil {
		l.Files, err = s.st.List(dir)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	s.reply(w, l)
}

func (s *Server) rm(w http.ResponseWriter, r *http.Request) {
	if err := s.st.Remove(r.URL.Query().Get("name")); err != nil {
		s.fail(w, err)
		return
	}
	s.reply(w, struct{}{})
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	st, err := s.st.Status()
	if err != nil {
		s.fail(w, err)
		return
	}
	s.reply(w, st)
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	dir := r.URL.Query().Get("dir")
	if dir == "" {
		dir = "*"
	}
	rep, err := s.st.Verify(r.Context(), dir, nil)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.reply(w, rep)
}
