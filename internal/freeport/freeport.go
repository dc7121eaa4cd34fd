// Package freeport picks a TCP port on 127.0.0.1 for a server that tests,
// benchmarks or fault scenarios start. The port is free when picked; a
// caller whose server may lose it to another process before binding
// retries with a new one.
package freeport

import (
	"fmt"
	"net"
)

// Pick returns a TCP port of 127.0.0.1 that was free a moment ago.
func Pick() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
