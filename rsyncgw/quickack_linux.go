package rsyncgw

import (
	"net"
	"syscall"
)

// quickAck asks the kernel to acknowledge received data at once instead of
// delaying the ACK. Linux clears the setting again as it sees fit, so it
// is renewed before every read. Without it, an rsync client that writes
// its arguments and checksum list in several small writes (Nagle) waits
// for our delayed ACK, about 40 ms each time, which dominated the latency
// of a one-segment push.
func quickAck(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
