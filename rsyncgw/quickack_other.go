//go:build !linux

package rsyncgw

import "net"

// quickAck is a Linux tuning; elsewhere the kernel's defaults apply.
func quickAck(net.Conn) {}
