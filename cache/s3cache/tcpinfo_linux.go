package s3cache

import (
	"net"

	"golang.org/x/sys/unix"
)

// tcpCounters are the bytes a connection's peer acknowledged and sent,
// as the kernel counts them: they move while a send queue drains after
// the last write returned.
type tcpCounters struct {
	acked, received uint64
	valid           bool
}

func readTCPCounters(c *net.TCPConn) (tcpCounters, bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return tcpCounters{}, false
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || ierr != nil {
		return tcpCounters{}, false
	}
	return tcpCounters{acked: info.Bytes_acked, received: info.Bytes_received, valid: true}, true
}
