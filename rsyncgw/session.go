package rsyncgw

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	protocolVersion = 31 // what we advertise
	minProtocol     = 30 // older clients are refused
	dnsTimeout      = 5 * time.Second
)

// session is one client connection. It is used by one goroutine, except
// that a push runs its generator in a second goroutine which writes only
// through out (see receiver.go).
type session struct {
	srv  *Server
	nc   *countingConn
	br   *bufio.Reader
	in   *muxReader
	out  *muxWriter
	log  *slog.Logger
	peer *peer

	protocol      int
	clientDigests []string
	mod           *module
	readOnly      bool
	writeOnly     bool
	args          *serverArgs
	compat        int32
	comp          compression
	tokr          tokenReader // a push's decoder of file data
	tokw          tokenWriter // a pull's encoder of file data
	sendBuf       []byte
	csum          string // transfer checksum (after each file)
	preCsum       string // -c file-list checksum; differs only with a --checksum-choice pair
	seed          int32
	rndx, wndx    ndxCodec
	setupDone     bool
	flistBuilt    time.Duration
	dlog          *daemonLog
	user          string // the authenticated user, "" without auth
	exitCode      int    // what the client was told to exit with
	transferring  bool   // the arguments were accepted
	exitLogged    bool   // logExit wrote the session's last lines
	totalSize     int64  // bytes of the files in the file list
}

// countingConn counts bytes for the end-of-transfer statistics and the
// transfer log, and paces writes to the client's --bwlimit.
type countingConn struct {
	*deadlineConn
	read, written atomic.Int64
	limit         rateLimiter
}

func (c *countingConn) setBwlimit(rate int64) { c.limit.set(rate) }

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.deadlineConn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.deadlineConn.Write(p)
	c.written.Add(int64(n))
	c.limit.wrote(n)
	return n, err
}

func newSession(srv *Server, c net.Conn) *session {
	nc := &countingConn{deadlineConn: &deadlineConn{Conn: c}}
	br := bufio.NewReaderSize(nc, 64<<10)
	log := srv.log.With("peer", c.RemoteAddr().String())
	return &session{
		srv: srv, nc: nc, br: br, log: log,
		in:   &muxReader{r: br, log: log},
		out:  newMuxWriter(nc),
		peer: &peer{addr: remoteAddr(c), resolver: srv.opts.Resolver, timeout: dnsTimeout, names: &srv.names},
		rndx: newNdxCodec(), wndx: newNdxCodec(),
		dlog: newDaemonLog(srv, srv.newSessionID()),
	}
}

// host is the client's name as the daemon log and messages show it: the
// confirmed reverse-lookup name, or UNDETERMINED when `reverse lookup`
// is off globally and, once one is chosen, for the module (rsync:
// clientserver.c start_daemon and rsync_module, clientname.c
// client_name).
func (s *session) host() string {
	if !s.srv.cfg.ReverseLookup && (s.mod == nil || !s.mod.ReverseLookup) {
		return "UNDETERMINED"
	}
	return s.peer.Host()
}

// hostAddr is "HOST (ADDR)" as rsync's log lines name the client.
func (s *session) hostAddr() string { return fmt.Sprintf("%s (%s)", s.host(), s.peer.addr) }

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// run speaks the daemon protocol (rsync: clientserver.c start_daemon,
// rsync_module). Errors end the session; they are logged here.
func (s *session) run(ctx context.Context) {
	defer s.dlog.close()
	defer s.releaseCodecs()
	s.nc.SetDeadline(time.Now().Add(s.srv.opts.HandshakeTimeout))
	s.dlog.printf("connect from %s", s.hostAddr())
	err := s.handshake()
	if s.mod != nil { // the module's connection slot is held
		defer s.srv.release(s.mod)
		if err == nil {
			err = s.transfer(ctx)
		}
		s.logExit()
	}
	switch {
	case err == nil, errors.Is(err, errSessionDone):
		s.log.Debug("rsync session finished")
	case errors.Is(err, ErrPeerExit), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		s.log.Info("rsync session ended by the client", "err", err)
	default:
		s.log.Warn("rsync session failed", "err", err)
	}
}

// errSessionDone ends a session that has already told the client why.
var errSessionDone = errors.New("rsyncgw: session done")

// handshake runs the text phase up to `@RSYNCD: OK`. It leaves s.mod nil
// when the session ended there (module list, refusal).
func (s *session) handshake() error {
	if err := s.writeText(fmt.Sprintf("@RSYNCD: %d.0 %s\n", protocolVersion, strings.Join(authDigests, " "))); err != nil {
		return err
	}
	if err := s.readGreeting(); err != nil {
		return err
	}
	if s.srv.motd != "" {
		if err := s.writeText(strings.TrimRight(s.srv.motd, "\n") + "\n"); err != nil {
			return err
		}
	}
	line, err := s.readLine()
	if err != nil {
		return err
	}
	switch {
	case line == "" || line == "#list":
		s.dlog.printf("module-list request from %s", s.hostAddr())
		return s.sendListing()
	case strings.HasPrefix(line, "#"):
		return s.errorLine(fmt.Sprintf("Unknown command '%s'", line))
	}
	return s.openModule(line)
}

func (s *session) writeText(t string) error {
	if _, err := s.out.Write([]byte(t)); err != nil {
		return err
	}
	return s.out.Flush()
}

// errorLine ends the text phase with `@ERROR: msg` (the client exits 5).
func (s *session) errorLine(msg string) error {
	s.log.Info("rsync session refused", "reason", msg)
	if err := s.writeText("@ERROR: " + msg + "\n"); err != nil {
		return err
	}
	return errSessionDone
}

// readLine reads one text-phase line: bounded, no NUL, \r stripped.
func (s *session) readLine() (string, error) {
	var b []byte
	for {
		frag, err := s.br.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxLineLen {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrTooLong, maxLineLen)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", eofIsUnexpected(err)
		}
		break
	}
	line := strings.TrimRight(string(b), "\r\n")
	if strings.IndexByte(line, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL byte in a text line", ErrProtocol)
	}
	return line, nil
}

// readGreeting parses `@RSYNCD: 32.0 sha512 ...` (rsync: clientserver.c
// exchange_protocols).
func (s *session) readGreeting() error {
	line, err := s.readLine()
	if err != nil {
		return err
	}
	rest, ok := strings.CutPrefix(line, "@RSYNCD: ")
	if !ok {
		return s.errorLine("protocol startup error")
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s.errorLine("protocol startup error")
	}
	major, sub, hasSub := strings.Cut(fields[0], ".")
	v, err := strconv.Atoi(major)
	if err != nil || v <= 0 {
		return s.errorLine("protocol startup error")
	}
	if _, err := strconv.Atoi(sub); hasSub && err != nil {
		return s.errorLine("protocol startup error")
	}
	s.protocol = min(v, protocolVersion)
	s.clientDigests = fields[1:]
	if s.protocol < minProtocol {
		return s.errorLine(fmt.Sprintf("protocol version mismatch -- this server speaks protocol %d-%d (rsync 3.0 or newer), your client %d", minProtocol, protocolVersion, v))
	}
	if !hasSub {
		return s.errorLine("your client omitted the subprotocol value (e.g. 30.0)")
	}
	return nil
}

// sendListing answers an empty module line (rsync: clientserver.c
// send_listing): every module with `list = yes`, whether or not this
// host may open it, as stock rsyncd does. `list = no` hides a module
// from the listing and, from hosts it refuses, makes it look unknown.
func (s *session) sendListing() error {
	var b strings.Builder
	for _, m := range s.srv.order {
		if m.List {
			fmt.Fprintf(&b, "%-15s\t%s\n", m.Name, m.Comment)
		}
	}
	b.WriteString("@RSYNCD: EXIT\n")
	if err := s.writeText(b.String()); err != nil {
		return err
	}
	return errSessionDone
}

// openModule checks access in rsync's order: hosts, max connections,
// auth (rsync: clientserver.c rsync_module).
func (s *session) openModule(name string) error {
	m, ok := s.srv.modules[name]
	if !ok {
		s.srv.opts.Observer.ConnRefused("unknown_module")
		s.dlog.printf("unknown module '%s' tried from %s", name, s.hostAddr())
		return s.errorLine(fmt.Sprintf("Unknown module '%s'", name))
	}
	if !m.allows(s.peer) {
		s.srv.opts.Observer.ConnRefused("host_denied")
		s.dlog.printf("rsync denied on module %s from %s", name, s.hostAddr())
		if !m.List {
			return s.errorLine(fmt.Sprintf("Unknown module '%s'", name))
		}
		return s.errorLine(fmt.Sprintf("access denied to %s from %s (%s)", name, s.host(), s.peer.addr))
	}
	s.dlog.printf("rsync allowed access on module %s from %s", name, s.hostAddr())
	if len(m.AuthUsers) > 0 {
		// Before taking a connection slot: a throttled address must not
		// hold slots that others need.
		wait, refuse := s.srv.auth.delay(s.peer.addr)
		if refuse {
			s.dlog.printf("auth attempts from %s on module %s refused: too many failures", s.hostAddr(), name)
			return s.errorLine("too many failed authentications from your address -- try again later")
		}
		time.Sleep(wait)
	}
	if !s.srv.acquire(m) {
		s.srv.opts.Observer.ConnRefused("max_connections")
		s.dlog.printf("max connections (%d) reached", m.MaxConnections)
		return s.errorLine(fmt.Sprintf("max connections (%d) reached -- try again later", m.MaxConnections))
	}
	s.mod, s.readOnly, s.writeOnly = m, m.ReadOnly, m.WriteOnly
	s.log = s.log.With("module", name)
	if err := s.authenticate(); err != nil {
		return err
	}
	s.dlog.use(m.Log)
	return s.writeText("@RSYNCD: OK\n")
}

// authenticate runs the challenge-response exchange when the module has
// `auth users` (rsync: authenticate.c auth_server).
func (s *session) authenticate() error {
	if len(s.mod.AuthUsers) == 0 {
		return nil
	}
	digest := chooseAuthDigest(s.clientDigests)
	challenge := newChallenge()
	if err := s.writeText("@RSYNCD: AUTHREQD " + challenge + "\n"); err != nil {
		return err
	}
	line, err := s.readLine()
	if err != nil {
		return err
	}
	user, response, _ := strings.Cut(line, " ")
	mode, why := s.checkUser(user, digest, challenge, response)
	if why != "" {
		return s.authFailed(user, why)
	}
	s.srv.auth.succeeded(s.peer.addr)
	switch mode {
	case accessRO:
		s.readOnly, s.writeOnly = true, false
	case accessRW:
		s.readOnly, s.writeOnly = false, false
	}
	s.log = s.log.With("user", user)
	s.user = user
	return nil
}

// checkUser returns the user's access, or why authentication failed.
func (s *session) checkUser(user, digest, challenge, response string) (accessMode, string) {
	if user == "" || response == "" {
		return 0, "malformed response"
	}
	var groups []string
	groupsOf := func() []string {
		if groups == nil {
			groups = userGroups(user)
		}
		return groups
	}
	mode, ok := authMatch(s.mod.AuthUsers, user, groupsOf)
	if !ok || mode == accessDeny {
		return 0, "unauthorized user"
	}
	passwords, err := secrets(s.mod.SecretsFile, s.mod.StrictModes, user, groupsOf())
	if err != nil {
		s.log.Error("rsync secrets file unusable", "file", s.mod.SecretsFile, "err", err)
		return 0, "secrets file unusable"
	}
	if !checkResponse(digest, challenge, response, passwords) {
		return 0, "password mismatch"
	}
	return mode, ""
}

func (s *session) authFailed(user, why string) error {
	s.srv.auth.failed(s.peer.addr, s.mod.Name, user, why)
	s.srv.opts.Observer.ConnRefused("auth_failed")
	s.dlog.printf("auth failed on module %s from %s for %s: %s", s.mod.Name, s.hostAddr(), user, why)
	msg := "auth failed on module " + s.mod.Name
	// Give the slot back before answering: the client may retry at once.
	s.srv.release(s.mod)
	s.mod = nil
	return s.errorLine(msg)
}

// transfer reads the arguments and runs the sender or the receiver.
func (s *session) transfer(ctx context.Context) error {
	args, err := s.readArgs()
	if err != nil {
		return err
	}
	if s.args, err = parseServerArgs(args); err != nil {
		s.logRawRequest(args)
		return s.argsFailed(err)
	}
	if s.args.secluded {
		if err := s.readSecludedArgs(args); err != nil {
			return err
		}
	}
	s.log.Debug("rsync arguments", "args", args)
	s.logRequest()
	if o, refused := s.args.refusal(s.mod.RefuseOptions); refused {
		return s.refuse(o)
	}
	if err := s.setupProtocol(); err != nil {
		return err
	}
	if s.args.checksum && s.preCsum == "none" {
		return s.abort("Invalid checksum-choice for --checksum: none (0)", exitUnsupported)
	}
	s.log.Debug("rsync protocol set up", "checksum", s.csum, "compression", s.comp)
	s.nc.SetDeadline(time.Time{})
	s.nc.setTimeout(s.ioTimeout())
	s.nc.setBwlimit(s.args.bwlimit)
	if s.args.sender {
		return s.runSender(ctx)
	}
	return s.runReceiver(ctx)
}

// ioTimeout is the module's `timeout`, or the client's --timeout when
// that is shorter or the module has none (rsync: clientserver.c
// rsync_module), else Options.IdleTimeout.
func (s *session) ioTimeout() time.Duration {
	t := s.mod.Timeout
	if c := time.Duration(s.args.timeout) * time.Second; c > 0 && (t <= 0 || c < t) {
		t = c
	}
	if t <= 0 {
		t = s.srv.opts.IdleTimeout
	}
	return t
}

// readArgs reads the NUL-terminated argument list ended by an empty one
// (rsync: io.c read_args).
func (s *session) readArgs() ([]string, error) {
	var args []string
	for {
		a, err := s.br.ReadSlice(0)
		if err == bufio.ErrBufferFull || len(a) > maxArgLen {
			return nil, fmt.Errorf("%w: argument longer than %d bytes", ErrTooLong, maxArgLen)
		}
		if err != nil {
			return nil, eofIsUnexpected(err)
		}
		if len(a) == 1 {
			return args, nil
		}
		if len(args) >= maxArgs {
			return nil, fmt.Errorf("%w: more than %d arguments", ErrTooLong, maxArgs)
		}
		args = append(args, string(a[:len(a)-1]))
	}
}

// readSecludedArgs reads the second list a -s client sends, argv[0] and
// then the rest of the arguments (the paths), and parses both lists as one
// (rsync: clientserver.c rsync_module, protect_args).
func (s *session) readSecludedArgs(first []string) error {
	more, err := s.readArgs()
	if err != nil {
		return err
	}
	if len(more) > 0 {
		more = more[1:] // argv[0], "rsync"
	}
	args, err := parseServerArgs(append(first, more...))
	if err != nil {
		s.logRawRequest(append(first, more...))
		return s.argsFailed(err)
	}
	args.secluded = false
	s.args = args
	return nil
}

// setupProtocol writes the compatibility flags, negotiates the checksum
// and the compression, writes the seed, then turns multiplexing on in
// both directions (rsync: compat.c setup_protocol; main.c start_server).
func (s *session) setupProtocol() error {
	s.setupDone = true
	s.compat = s.compatFlags()
	var b []byte
	if s.compat&cfVarintFlistFlags != 0 {
		b = appendVarint(b, s.compat)
	} else {
		b = append(b, byte(s.compat))
	}
	failed, err := s.negotiate(b)
	if err != nil {
		return err
	}
	s.seed = s.args.checksumSeed
	if s.seed == 0 {
		var seed [4]byte
		rand.Read(seed[:])
		s.seed = int32(binary.LittleEndian.Uint32(seed[:])&0x7fffffff | 1)
	}
	if _, err := s.out.Write(appendInt32(nil, s.seed)); err != nil {
		return err
	}
	s.out.start()
	s.in.start()
	if failed != "" {
		return s.abort(failed, exitUnsupported)
	}
	if s.protocol >= 31 && s.mod.Timeout > 0 {
		s.out.Msg(msgIOTimeout, appendInt32(nil, int32(s.mod.Timeout/time.Second)))
	}
	return s.out.Flush()
}

// compatFlags sets only what the client announced and we implement;
// incremental recursion stays off.
func (s *session) compatFlags() int32 {
	var f int32
	if s.args == nil {
		return f
	}
	if s.args.hasCap('f') {
		f |= cfSafeFlist
	}
	if s.args.hasCap('C') {
		f |= cfChksumSeedFix
	}
	if s.args.hasCap('v') {
		f |= cfVarintFlistFlags
	}
	return f
}

// negotiate writes the compat bytes b and, with varint flags, the
// checksum list (without --checksum-choice) and the compression list
// (with -z and no explicit choice); each side writes its lists before
// reading the other's (rsync: compat.c negotiate_the_strings). It
// returns the text to abort with when no choice is possible.
func (s *session) negotiate(b []byte) (string, error) {
	s.csum, s.preCsum = "md5", "md5"
	if s.args.csumChoice != "" {
		// rsync: "--checksum-choice=XFER[,PRE]": the second names the -c
		// checksum.
		xfer, pre, ok := strings.Cut(s.args.csumChoice, ",")
		if !ok {
			pre = xfer
		}
		s.csum, s.preCsum = knownChecksum(xfer), knownChecksum(pre)
	}
	varint := s.compat&cfVarintFlistFlags != 0
	csumNeg := varint && s.args.csumChoice == ""
	compName, compNeg, failed := s.compressionChoice(varint)
	if csumNeg {
		b = appendVstring(b, strings.Join(xferChecksums, " "))
	}
	if compNeg {
		b = appendVstring(b, strings.Join(compressChoices, " "))
	}
	if _, err := s.out.Write(b); err != nil {
		return "", err
	}
	if err := s.out.Flush(); err != nil {
		return "", err
	}
	if csumNeg {
		list, err := readVstring(s.br, maxVstringLen)
		if err != nil {
			return "", err
		}
		if name, ok := chooseChecksum(list); ok {
			s.csum, s.preCsum = name, name
		} // else md5, which every client implements
	}
	if compNeg {
		list, err := readVstring(s.br, maxVstringLen)
		if err != nil {
			return "", err
		}
		var ok bool
		if compName, ok = chooseCompression(list); !ok && failed == "" {
			failed = "Failed to negotiate a compress choice."
		}
	}
	s.comp = compressionLevel(compName, s.args.compressLevel)
	return failed, nil
}

// compressionChoice is what the client's options say about compression:
// an explicit choice, -zz (zlibx), a negotiation (-z with varint flags),
// or zlib (rsync: options.c and compat.c parse_compress_choice).
func (s *session) compressionChoice(varint bool) (name string, negotiate bool, failed string) {
	a := s.args
	switch {
	case !a.compressRequested():
		return "", false, ""
	case a.compressName != "":
		if !knownCompression(a.compressName) {
			return "", false, "unknown compress name: " + a.compressName
		}
		return a.compressName, false, ""
	case a.compress > 1:
		return "zlibx", false, ""
	case varint:
		return "", true, ""
	}
	return "zlib", false, ""
}

// refuse reports a refused option as stock rsync 3.5.0 does: compat
// flags and seed so the client can read messages, the text as MSG_ERROR,
// then (protocol 31) MSG_ERROR_EXIT 4: the client prints the text and
// exits 4; a protocol-30 client sees the connection close and exits 12
// (rsync: clientserver.c rsync_module after parse_arguments fails,
// options.c create_refuse_error).
func (s *session) refuse(o option) error {
	return s.abort(fmt.Sprintf("rsync: The server is configured to refuse %s", o), exitUnsupported)
}

// argsFailed reports an argument list the server cannot parse, as
// rsync: options.c option_error does (exit 4).
func (s *session) argsFailed(err error) error {
	var ae *argError
	if errors.As(err, &ae) {
		return s.abort("rsync: "+ae.Error(), exitUnsupported)
	}
	return s.abort(fmt.Sprintf("rsync: Error parsing options: %v", err), exitUnsupported)
}

// abort sends an error after `@RSYNCD: OK` and ends the session: the
// protocol setup (so the client can read messages), MSG_ERROR, then with
// protocol 31 and a non-zero code MSG_ERROR_EXIT, which the client turns
// into its exit code (rsync: cleanup.c exit_cleanup, io.c send_msg_int).
func (s *session) abort(text string, code int) error {
	s.log.Info("rsync session refused", "reason", text, "code", code)
	s.dlog.warnf("%s", text)
	s.exitCode = code
	if !s.setupDone {
		s.setupDone = true
		b := append([]byte{0}, appendInt32(nil, 1)...) // no compat flags, seed 1
		if _, err := s.out.Write(b); err != nil {
			return err
		}
		s.out.start()
		s.in.start()
	}
	s.out.Msg(msgError, []byte(text+"\n"))
	if s.protocol >= 31 && code != 0 {
		s.out.Msg(msgErrorExit, appendInt32(nil, int32(code)))
	}
	if err := s.out.Flush(); err != nil {
		return err
	}
	s.finish()
	return errSessionDone
}

// finish half-closes the connection and reads until the client closes its
// side, bounded, so that our close never resets data the client still
// has to read.
//
// The daemon log's last lines of the session are written before the
// close, as stock rsync writes them before its process exits: a client
// that has exited finds them in the log.
func (s *session) finish() {
	s.out.Flush()
	if s.mod != nil {
		s.logExit()
	}
	if cw, ok := s.nc.Conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	s.nc.setTimeout(0)
	s.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, io.LimitReader(s.br, 1<<20))
}

// errorXfer reports a per-file failure: the client prints it and exits 23
// at the end (rsync: log.c rwrite, FERROR_XFER sets got_xfer_error).
func (s *session) errorXfer(text string) {
	s.log.Warn("rsync transfer error", "msg", text)
	s.dlog.warnf("%s", text)
	s.exitCode = exitPartial
	s.out.Msg(msgErrorXfer, []byte(text+"\n"))
}

func (s *session) readNdx() (int32, error) { return s.rndx.read(s.in) }

func (s *session) writeNdx(b []byte, ndx int32) []byte { return s.wndx.append(b, ndx) }

// logRequest logs what the client asked for, as rsync does once the
// arguments are parsed: "rsync on MODULE/PATH from [USER@]HOST (ADDR)"
// for a pull, "rsync to ..." for a push (rsync: clientserver.c
// rsync_module).
func (s *session) logRequest() {
	dir := "to"
	if s.args.sender {
		dir = "on"
	}
	s.logRequestLine(dir, strings.Join(s.args.paths, " "))
}

// logRawRequest logs the request of an argument list that did not parse.
func (s *session) logRawRequest(args []string) {
	dir := "to"
	for i, a := range args {
		if a == "--sender" {
			dir = "on"
		}
		if a == "." {
			s.logRequestLine(dir, strings.Join(args[i+1:], " "))
			return
		}
	}
}

func (s *session) logRequestLine(dir, request string) {
	s.transferring = true
	who := s.hostAddr()
	if s.user != "" {
		who = s.user + "@" + who
	}
	s.dlog.printf("rsync %s %s from %s", dir, request, who)
}

// logExit ends a session's daemon log like rsync: log.c log_exit.
func (s *session) logExit() {
	if !s.transferring || s.exitLogged {
		return
	}
	s.exitLogged = true
	s.dlog.printf("sent %d bytes  received %d bytes  total size %d", s.nc.written.Load(), s.nc.read.Load(), s.totalSize)
	if s.exitCode != 0 {
		s.dlog.warnf("rsync error: %s (code %d)", exitCodeName(s.exitCode), s.exitCode)
	}
}

// exitCodeName is rsync's text for an exit code (rsync: log.c rerr_names).
func exitCodeName(code int) string {
	switch code {
	case exitSyntax:
		return "syntax or usage error"
	case exitUnsupported:
		return "requested action not supported"
	case exitStreamIO:
		return "error in rsync protocol data stream"
	case exitPartial:
		return "some files/attrs were not transferred (see previous errors)"
	}
	return "unexplained error"
}

// logTransfer writes a `transfer logging` line for one file.
func (s *session) logTransfer(it xferItem) {
	if !s.mod.TransferLogging || s.args.dryRun {
		return
	}
	lc := logContext{host: s.host(), addr: s.peer.addr.String(), module: s.mod.Name, modPath: s.mod.Path, user: s.user, pid: s.dlog.id}
	s.dlog.printf("%s", formatLogLine(s.mod.LogFormat, lc, it))
}

// releaseCodecs frees the zstd state of a compressed session.
func (s *session) releaseCodecs() {
	if c, ok := s.tokr.(interface{ close() }); ok {
		c.close()
	}
	if c, ok := s.tokw.(interface{ close() }); ok {
		c.close()
	}
}
