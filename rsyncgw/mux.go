package rsyncgw

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Message tags of the multiplexed stream (rsync: rsync.h enum msgcode).
const (
	msgData      = 0
	msgErrorXfer = 1
	msgInfo      = 2
	msgError     = 3
	msgWarning   = 4
	msgLog       = 6
	msgClient    = 7
	msgIOError   = 22
	msgIOTimeout = 33
	msgNoop      = 42
	msgErrorExit = 86
	msgSuccess   = 100
	msgDeleted   = 101
	msgNoSend    = 102

	mplexBase    = 7        // rsync: io.c MPLEX_BASE
	maxFrameLen  = 0xffffff // 24-bit frame length
	dataFrameLen = 32 << 10 // DATA frames we write (rsync uses the same size)
)

// deadlineConn refreshes the connection's deadline before every read and
// write, so an idle or stalled peer times out while a slow but moving one
// does not.
type deadlineConn struct {
	net.Conn
	mu      sync.Mutex
	timeout time.Duration
}

func (c *deadlineConn) setTimeout(d time.Duration) {
	c.mu.Lock()
	c.timeout = d
	c.mu.Unlock()
}

func (c *deadlineConn) current() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timeout
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if d := c.current(); d > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(d))
	}
	quickAck(c.Conn)
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if d := c.current(); d > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(d))
	}
	return c.Conn.Write(p)
}

// muxReader reads the client's stream. Before start it passes bytes
// through; after it, it returns the payload of DATA frames and handles the
// other messages itself (rsync: io.c read_a_msg).
type muxReader struct {
	r      *bufio.Reader
	log    *slog.Logger
	on     bool
	remain int   // bytes left in the current DATA frame
	n      int64 // DATA bytes read
	ioErr  int32 // io_error bits the client reported (MSG_IO_ERROR)
	noSend []int32
}

func (m *muxReader) start() { m.on = true }

func (m *muxReader) Read(p []byte) (int, error) {
	if !m.on {
		return m.r.Read(p)
	}
	if err := m.fill(); err != nil {
		return 0, err
	}
	n, err := m.r.Read(p[:min(len(p), m.remain)])
	m.remain -= n
	m.n += int64(n)
	return n, eofIsUnexpected(err)
}

func (m *muxReader) ReadByte() (byte, error) {
	if !m.on {
		return m.r.ReadByte()
	}
	if err := m.fill(); err != nil {
		return 0, err
	}
	b, err := m.r.ReadByte()
	if err == nil {
		m.remain--
		m.n++
	}
	return b, eofIsUnexpected(err)
}

// count is the DATA bytes read so far (after start).
func (m *muxReader) count() int64 { return m.n }

// fill reads frame headers until DATA bytes are available. Zero-length DATA
// frames are keep-alives.
func (m *muxReader) fill() error {
	for m.remain == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(m.r, hdr[:]); err != nil {
			return err
		}
		h := binary.LittleEndian.Uint32(hdr[:])
		tag, n := int(h>>24)-mplexBase, int(h&maxFrameLen)
		if tag == msgData {
			m.remain = n
			continue
		}
		if err := m.message(tag, n); err != nil {
			return err
		}
	}
	return nil
}

func (m *muxReader) message(tag, n int) error {
	if tag < 0 || n > maxMessageLen {
		return fmt.Errorf("%w: bad frame (tag %d, %d bytes)", ErrProtocol, tag, n)
	}
	payload := make([]byte, n)
	if err := readFull(m.r, payload); err != nil {
		return err
	}
	switch tag {
	case msgErrorXfer, msgError, msgWarning, msgInfo, msgLog, msgClient:
		m.log.Info("client message", "tag", tag, "text", trimNL(string(payload)))
	case msgIOError:
		if n == 4 {
			m.ioErr |= int32(binary.LittleEndian.Uint32(payload))
		}
	case msgNoSend:
		if n == 4 {
			m.noSend = append(m.noSend, int32(binary.LittleEndian.Uint32(payload)))
		}
	case msgErrorExit:
		code := int32(0)
		if n == 4 {
			code = int32(binary.LittleEndian.Uint32(payload))
		}
		return fmt.Errorf("%w (exit code %d)", ErrPeerExit, code)
	case msgNoop, msgIOTimeout, msgSuccess, msgDeleted:
	default:
		m.log.Debug("ignoring unexpected message", "tag", tag, "len", n)
	}
	return nil
}

func trimNL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// muxWriter writes the server's stream: DATA is gathered into frames of
// dataFrameLen, messages get their own frames. Its methods are safe for
// concurrent use; each call writes its bytes as one unit, so the generator
// and the receiver of a push can share it. The first write error is sticky.
type muxWriter struct {
	mu  sync.Mutex // guards all fields
	w   *bufio.Writer
	on  bool
	buf []byte
	err error
	n   int64 // DATA bytes queued
}

func newMuxWriter(w io.Writer) *muxWriter {
	return &muxWriter{w: bufio.NewWriterSize(w, 256<<10), buf: make([]byte, 0, dataFrameLen)}
}

func (m *muxWriter) start() {
	m.mu.Lock()
	m.on = true
	m.mu.Unlock()
}

// Write queues p as DATA.
func (m *muxWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return 0, m.err
	}
	if !m.on {
		_, m.err = m.w.Write(p)
		return len(p), m.err
	}
	n := len(p)
	m.n += int64(n)
	for len(p) > 0 {
		k := copy(m.buf[len(m.buf):cap(m.buf)], p)
		m.buf = m.buf[:len(m.buf)+k]
		p = p[k:]
		if len(m.buf) == cap(m.buf) {
			m.frameLocked()
		}
	}
	return n, m.err
}

func (m *muxWriter) frameLocked() {
	if len(m.buf) == 0 || m.err != nil {
		m.buf = m.buf[:0]
		return
	}
	m.headerLocked(msgData, len(m.buf))
	if m.err == nil {
		_, m.err = m.w.Write(m.buf)
	}
	m.buf = m.buf[:0]
}

func (m *muxWriter) headerLocked(tag, n int) {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(mplexBase+tag)<<24|uint32(n))
	if m.err == nil {
		_, m.err = m.w.Write(hdr[:])
	}
}

// Msg writes a message frame after any queued DATA.
func (m *muxWriter) Msg(tag int, payload []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(payload) > maxFrameLen {
		payload = payload[:maxFrameLen]
	}
	m.frameLocked()
	m.headerLocked(tag, len(payload))
	if m.err == nil {
		_, m.err = m.w.Write(payload)
	}
	return m.err
}

// Flush sends everything queued.
func (m *muxWriter) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.frameLocked()
	if m.err == nil {
		m.err = m.w.Flush()
	}
	return m.err
}

// count is the DATA bytes queued so far (after start).
func (m *muxWriter) count() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}
