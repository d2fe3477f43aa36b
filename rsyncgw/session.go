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
	csum          string // transfer checksum (after each file)
	preCsum       string // -c file-list checksum; differs only with a --checksum-choice pair
	seed          int32
	rndx, wndx    ndxCodec
	setupDone     bool
	flistBuilt    time.Duration
}

// countingConn counts bytes for the end-of-transfer statistics.
type countingConn struct {
	*deadlineConn
	read, written atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.deadlineConn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.deadlineConn.Write(p)
	c.written.Add(int64(n))
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
		peer: &peer{addr: remoteAddr(c), resolver: srv.opts.Resolver, timeout: dnsTimeout},
		rndx: newNdxCodec(), wndx: newNdxCodec(),
	}
}

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// run speaks the daemon protocol (rsync: clientserver.c start_daemon,
// rsync_module). Errors end the session; they are logged here.
func (s *session) run(ctx context.Context) {
	s.nc.SetDeadline(time.Now().Add(s.srv.opts.HandshakeTimeout))
	err := s.handshake()
	if s.mod != nil { // the module's connection slot is held
		defer s.srv.release(s.mod)
		if err == nil {
			err = s.transfer(ctx)
		}
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
// send_listing). Modules the client may not reach are not shown.
func (s *session) sendListing() error {
	var b strings.Builder
	for _, m := range s.srv.order {
		if m.List && m.allows(s.peer) {
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
		return s.errorLine(fmt.Sprintf("Unknown module '%s'", name))
	}
	if !m.allows(s.peer) {
		if !m.List {
			return s.errorLine(fmt.Sprintf("Unknown module '%s'", name))
		}
		return s.errorLine(fmt.Sprintf("access denied to %s from %s (%s)", name, s.peer.Host(), s.peer.addr))
	}
	if !s.srv.acquire(m) {
		return s.errorLine(fmt.Sprintf("max connections (%d) reached -- try again later", m.MaxConnections))
	}
	s.mod, s.readOnly, s.writeOnly = m, m.ReadOnly, m.WriteOnly
	s.log = s.log.With("module", name)
	if err := s.authenticate(); err != nil {
		return err
	}
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
	switch mode {
	case accessRO:
		s.readOnly, s.writeOnly = true, false
	case accessRW:
		s.readOnly, s.writeOnly = false, false
	}
	s.log = s.log.With("user", user)
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
	s.log.Warn("rsync auth failed", "user", user, "reason", why)
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
		return s.abort(fmt.Sprintf("rsync: %v", err), exitSyntax)
	}
	if s.args.secluded {
		if err := s.readSecludedArgs(args); err != nil {
			return err
		}
	}
	s.log.Debug("rsync arguments", "args", args)
	if o, refused := s.args.refusal(s.mod.RefuseOptions); refused {
		return s.refuse(o)
	}
	if err := s.setupProtocol(); err != nil {
		return err
	}
	if s.args.checksum && s.preCsum == "none" {
		return s.abort("Invalid checksum-choice for --checksum: none (0)", exitUnsupported)
	}
	timeout := s.mod.Timeout
	if timeout <= 0 {
		timeout = s.srv.opts.IdleTimeout
	}
	s.nc.SetDeadline(time.Time{})
	s.nc.setTimeout(timeout)
	if s.args.sender {
		return s.runSender(ctx)
	}
	return s.runReceiver(ctx)
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
		return s.abort(fmt.Sprintf("rsync: %v", err), exitSyntax)
	}
	args.secluded = false
	s.args = args
	return nil
}

// setupProtocol writes the compatibility flags, negotiates the checksum
// and writes the seed, then turns multiplexing on in both directions
// (rsync: compat.c setup_protocol; main.c start_server).
func (s *session) setupProtocol() error {
	s.setupDone = true
	s.compat = s.compatFlags()
	var b []byte
	if s.compat&cfVarintFlistFlags != 0 {
		b = appendVarint(b, s.compat)
	} else {
		b = append(b, byte(s.compat))
	}
	s.csum, s.preCsum = "md5", "md5"
	if err := s.negotiateChecksum(b); err != nil {
		return err
	}
	var seed [4]byte
	rand.Read(seed[:])
	s.seed = int32(binary.LittleEndian.Uint32(seed[:])&0x7fffffff | 1)
	if _, err := s.out.Write(appendInt32(nil, s.seed)); err != nil {
		return err
	}
	s.out.start()
	s.in.start()
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

// negotiateChecksum writes the compat bytes b and, with varint flags and
// no --checksum-choice, exchanges checksum lists: each side writes its
// list before reading the other's (rsync: compat.c negotiate_the_strings).
func (s *session) negotiateChecksum(b []byte) error {
	if s.args.csumChoice != "" {
		// rsync: "--checksum-choice=XFER[,PRE]": the second names the -c
		// checksum.
		xfer, pre, ok := strings.Cut(s.args.csumChoice, ",")
		if !ok {
			pre = xfer
		}
		s.csum, s.preCsum = knownChecksum(xfer), knownChecksum(pre)
	}
	negotiate := s.compat&cfVarintFlistFlags != 0 && s.args.csumChoice == ""
	if negotiate {
		b = appendVstring(b, strings.Join(xferChecksums, " "))
	}
	if _, err := s.out.Write(b); err != nil {
		return err
	}
	if err := s.out.Flush(); err != nil {
		return err
	}
	if !negotiate {
		return nil
	}
	list, err := readVstring(s.br, maxVstringLen)
	if err != nil {
		return err
	}
	if name, ok := chooseChecksum(list); ok {
		s.csum, s.preCsum = name, name
	} // else md5, which every client implements
	return nil
}

// refuse reports a refused option exactly as stock rsync does: compat
// flags and seed so the client can read messages, the text as MSG_ERROR,
// then the connection closes; the client prints the text and exits 12
// (rsync: clientserver.c rsync_module after parse_arguments fails).
func (s *session) refuse(o option) error {
	return s.abort(fmt.Sprintf("rsync: The server is configured to refuse %s", o), 0)
}

// abort sends an error after `@RSYNCD: OK` and ends the session: the
// protocol setup (so the client can read messages), MSG_ERROR, then with
// protocol 31 and a non-zero code MSG_ERROR_EXIT, which the client turns
// into its exit code (rsync: cleanup.c exit_cleanup, io.c send_msg_int).
func (s *session) abort(text string, code int) error {
	s.log.Info("rsync session refused", "reason", text, "code", code)
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
func (s *session) finish() {
	s.out.Flush()
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
	s.out.Msg(msgErrorXfer, []byte(text+"\n"))
}

func (s *session) readNdx() (int32, error) { return s.rndx.read(s.in) }

func (s *session) writeNdx(b []byte, ndx int32) []byte { return s.wndx.append(b, ndx) }
