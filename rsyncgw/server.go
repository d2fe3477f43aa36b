package rsyncgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walrus-archive/walrus/store"
)

// Store is what the gateway needs from the segment store; *store.Store
// satisfies it.
type Store interface {
	Create(path string, meta store.FileMeta) (*store.Upload, error)
	OpenFrom(path string, o store.Origin) (*store.Reader, error)
	Stat(path string) (store.FileInfo, error)
	StatHere(path string) (store.FileInfo, error) // a push's check: not the other front-ends'
	IsDir(dir string) (bool, error)
	List(dir string) ([]store.FileInfo, error)
	Walk(ctx context.Context, dir string, fn func(store.FileInfo) error) error
	Namespaces() ([]string, error)
}

var _ Store = (*store.Store)(nil)

// DefaultArchiveRoot is where the archive is mounted on archive hosts; a
// module path is read relative to it.
const DefaultArchiveRoot = "/db/pg_archived"

// Options configures a Server beyond rsyncd.conf.
type Options struct {
	// Listen overrides the config's address and port ("host:port").
	Listen string
	// ArchiveRoot is the directory module paths are relative to: a module
	// whose path is ArchiveRoot serves the archive root, ArchiveRoot/NAME
	// serves namespace NAME. Default DefaultArchiveRoot.
	ArchiveRoot string
	Logger      *slog.Logger
	// HandshakeTimeout bounds everything before the transfer starts
	// (greeting, module, auth, arguments). Default 30s.
	HandshakeTimeout time.Duration
	// IdleTimeout is the I/O timeout of modules without `timeout`.
	// Default 10 minutes.
	IdleTimeout time.Duration
	// ShutdownGrace is how long Serve waits for sessions after its context
	// is cancelled before closing their connections. Default 10s.
	ShutdownGrace time.Duration
	// MaxSessions bounds concurrent connections over all modules.
	// Default 512.
	MaxSessions int
	// Resolver answers the DNS questions of hosts allow/deny; nil means
	// net.DefaultResolver.
	Resolver *net.Resolver
	// SyslogNetwork and SyslogAddr name the syslog daemon the daemon log
	// goes to when no `log file` is set; empty means the local one.
	SyslogNetwork, SyslogAddr string
	// Observer counts connections and the refusals the store never sees
	// (package metrics implements it); nil: none.
	Observer Observer
}

// Observer receives the gateway's connection events. Reasons:
// max_connections, host_denied, unknown_module, auth_failed, read_only (a
// push to a read-only module), write_only.
type Observer interface {
	ConnOpened()
	ConnClosed()
	ConnRefused(reason string)
}

type noObserver struct{}

func (noObserver) ConnOpened()        {}
func (noObserver) ConnClosed()        {}
func (noObserver) ConnRefused(string) {}

func (o Options) withDefaults() Options {
	if o.ArchiveRoot == "" {
		o.ArchiveRoot = DefaultArchiveRoot
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 30 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Minute
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 10 * time.Second
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 512
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	return o
}

// module is a configured module resolved against the store.
type module struct {
	*Module
	ns           string // store namespace, "" for the archive root
	uid, gid     int32
	uname, gname string
}

// Server is the rsync daemon. It is safe for concurrent use; Serve may be
// called once per listener.
type Server struct {
	cfg     *Config
	st      Store
	opts    Options
	log     *slog.Logger
	modules map[string]*module
	order   []*module
	motd    string

	mu       sync.Mutex // guards active, sessions, conns, nextID
	active   map[string]int
	sessions int
	conns    map[net.Conn]struct{}
	nextID   int64

	auth  *authLimiter // slows repeated failed authentication per address
	names nameCache    // confirmed host names of recent clients

	logMu     sync.Mutex // guards syslogs, logWarned
	syslogs   map[LogTarget]*syslogState
	logWarned map[string]bool
}

// syslogState is one syslog connection, or when it last failed.
type syslogState struct {
	w      *syslogWriter
	failed time.Time
}

// NewServer resolves every module against the store layout and the
// archive root. It logs the config's warnings.
func NewServer(cfg *Config, st Store, opts Options) (*Server, error) {
	opts = opts.withDefaults()
	s := &Server{
		cfg: cfg, st: st, opts: opts, log: opts.Logger,
		modules: map[string]*module{}, active: map[string]int{}, conns: map[net.Conn]struct{}{},
		syslogs: map[LogTarget]*syslogState{}, logWarned: map[string]bool{},
		auth: newAuthLimiter(opts.Logger),
	}
	for _, w := range cfg.Warnings {
		s.log.Warn("rsyncd.conf: " + w)
	}
	for _, m := range cfg.Modules {
		rm, err := s.resolve(m)
		if err != nil {
			return nil, err
		}
		s.modules[m.Name] = rm
		s.order = append(s.order, rm)
	}
	if cfg.MotdFile != "" {
		b, err := os.ReadFile(cfg.MotdFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: motd file: %w", ErrConfig, cfg.File, err)
		}
		s.motd = string(b)
	}
	return s, nil
}

func (s *Server) resolve(m *Module) (*module, error) {
	ns, err := namespaceFor(m.Path, s.opts.ArchiveRoot)
	if err != nil {
		return nil, configError(s.cfg.File, m.PathLine, "module [%s]: %v", m.Name, err)
	}
	rm := &module{Module: m, ns: ns}
	if rm.uid, rm.uname, err = resolveID(m.UID, true); err != nil {
		return nil, configError(s.cfg.File, m.Line, "module [%s]: uid: %v", m.Name, err)
	}
	if rm.gid, rm.gname, err = resolveID(m.GID, false); err != nil {
		return nil, configError(s.cfg.File, m.Line, "module [%s]: gid: %v", m.Name, err)
	}
	return rm, nil
}

// namespaceFor maps a module path to a store namespace: the archive root
// itself is "", a directory directly below it is that namespace.
func namespaceFor(modPath, root string) (string, error) {
	p, r := path.Clean(modPath), path.Clean(root)
	if p == r {
		return "", nil
	}
	prefix := r + "/"
	if r == "/" {
		prefix = "/"
	}
	rel, ok := strings.CutPrefix(p, prefix)
	if !ok || rel == "" || strings.Contains(rel, "/") {
		return "", fmt.Errorf("path %q is outside the archive: walrus serves %s (the archive root) or %s/NAME (one namespace); deeper or other paths are not supported",
			modPath, r, strings.TrimSuffix(r, "/"))
	}
	if _, _, err := store.SplitPath(rel + "/x"); err != nil {
		return "", fmt.Errorf("path %q: %v", modPath, err)
	}
	return rel, nil
}

// resolveID turns a `uid`/`gid` value into the id and name reported in
// file lists. Unset means nobody/nogroup when running as root (as rsync
// does) and our own id otherwise.
func resolveID(v string, isUser bool) (int32, string, error) {
	if v == "" {
		return defaultID(isUser)
	}
	if n, err := strconv.ParseUint(v, 10, 31); err == nil {
		return int32(n), idName(v, isUser), nil
	}
	id, err := lookupID(v, isUser)
	if err != nil {
		return 0, "", err
	}
	return id, v, nil
}

func defaultID(isUser bool) (int32, string, error) {
	if os.Geteuid() == 0 {
		for _, name := range map[bool][]string{true: {"nobody"}, false: {"nogroup", "nobody"}}[isUser] {
			if id, err := lookupID(name, isUser); err == nil {
				return id, name, nil
			}
		}
		return 65534, "", nil
	}
	id := os.Geteuid()
	if !isUser {
		id = os.Getegid()
	}
	return int32(id), idName(strconv.Itoa(id), isUser), nil
}

func lookupID(name string, isUser bool) (int32, error) {
	var ids string
	if isUser {
		u, err := user.Lookup(name)
		if err != nil {
			return 0, err
		}
		ids = u.Uid
	} else {
		g, err := user.LookupGroup(name)
		if err != nil {
			return 0, err
		}
		ids = g.Gid
	}
	n, err := strconv.ParseUint(ids, 10, 31)
	return int32(n), err
}

func idName(id string, isUser bool) string {
	if isUser {
		if u, err := user.LookupId(id); err == nil {
			return u.Username
		}
		return ""
	}
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return ""
}

// ListenAddr is Options.Listen, else the config's address and port
// (default port 873).
func (s *Server) ListenAddr() string {
	if s.opts.Listen != "" {
		return s.opts.Listen
	}
	port := s.cfg.Port
	if port == 0 {
		port = DefaultPort
	}
	return net.JoinHostPort(s.cfg.Address, strconv.Itoa(port))
}

// Serve accepts connections until ctx is cancelled, then closes ln, waits
// up to ShutdownGrace for sessions to finish, closes the rest and waits
// for them. Each connection runs in its own goroutine; a panic there is
// logged and ends only that connection.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer s.closeSyslogs()
	start := newDaemonLog(s, int64(os.Getpid()))
	start.printf("walrus rsync gateway starting, listening on %s", ln.Addr())
	start.close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			ln.Close()
		case <-stop:
		}
	}()
	err := s.acceptLoop(ctx, ln, &wg)
	close(stop)
	ln.Close()
	s.drain(&wg)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Server) acceptLoop(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) error {
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return err
			}
			s.log.Warn("rsync accept failed", "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !s.track(c) {
			s.opts.Observer.ConnRefused("max_connections")
			s.log.Warn("rsync connection refused: too many sessions", "peer", c.RemoteAddr(), "limit", s.opts.MaxSessions)
			c.SetWriteDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(c, "@RSYNCD: %d.0\n@ERROR: max connections (%d) reached -- try again later\n", protocolVersion, s.opts.MaxSessions)
			c.Close()
			continue
		}
		wg.Add(1)
		s.opts.Observer.ConnOpened()
		go func() {
			defer wg.Done()
			defer s.opts.Observer.ConnClosed()
			defer s.untrack(c)
			s.handle(ctx, c)
		}()
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions >= s.opts.MaxSessions {
		return false
	}
	s.sessions++
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions--
	delete(s.conns, c)
}

// drain waits for sessions; after the grace period it closes their
// connections, which makes every blocked read and write return.
func (s *Server) drain(wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(s.opts.ShutdownGrace)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	s.mu.Lock()
	n := len(s.conns)
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.log.Warn("rsync sessions still running after the shutdown grace period were closed", "sessions", n)
	<-done
}

// handle runs one session and contains its panics.
func (s *Server) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("rsync session panicked; connection closed", "peer", c.RemoteAddr(), "panic", r)
		}
	}()
	sess := newSession(s, c)
	sess.run(ctx)
}

// acquire counts a session against the module's `max connections`.
func (s *Server) acquire(m *module) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.MaxConnections < 0 || (m.MaxConnections > 0 && s.active[m.Name] >= m.MaxConnections) {
		return false
	}
	s.active[m.Name]++
	return true
}

func (s *Server) release(m *module) {
	s.mu.Lock()
	s.active[m.Name]--
	s.mu.Unlock()
}

// syslogWrite sends one daemon log line to syslog. A syslog that cannot
// be reached, or does not take the line in time, drops it; the
// connection is tried again a minute later.
func (s *Server) syslogWrite(t LogTarget, warning bool, msg string) {
	t.File = ""
	s.logMu.Lock()
	defer s.logMu.Unlock()
	st := s.syslogs[t]
	if st == nil {
		st = &syslogState{}
		s.syslogs[t] = st
	}
	if st.w == nil {
		if time.Since(st.failed) < time.Minute {
			return
		}
		w, err := dialSyslog(s.opts.SyslogNetwork, s.opts.SyslogAddr, t)
		if err != nil {
			st.failed = time.Now()
			s.warnOnce("syslog", "rsync daemon log: syslog unreachable; lines are dropped", "err", err)
			return
		}
		st.w = w
	}
	severity := syslogInfo
	if warning {
		severity = syslogWarning
	}
	if err := st.w.send(severity, msg); err != nil {
		// A stalled or vanished syslog: drop the line, reconnect later.
		st.w.close()
		st.w, st.failed = nil, time.Now()
		s.warnOnce("syslog-write", "rsync daemon log: syslog write failed; lines are dropped", "err", err)
	}
}

// logFileFailed reports, once per file, a `log file` that cannot be
// opened; its lines go to syslog instead, as rsync does.
func (s *Server) logFileFailed(name string, err error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	s.warnOnce("file:"+name, "rsync daemon log: cannot open the log file; using syslog", "file", name, "err", err)
}

func (s *Server) warnOnce(key, msg string, args ...any) {
	if !s.logWarned[key] {
		s.logWarned[key] = true
		s.log.Warn(msg, args...)
	}
}

// closeSyslogs closes the syslog connections.
func (s *Server) closeSyslogs() {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	for t, st := range s.syslogs {
		if st.w != nil {
			st.w.close()
		}
		delete(s.syslogs, t)
	}
}

// newSessionID numbers sessions for the daemon log.
func (s *Server) newSessionID() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	return s.nextID
}
