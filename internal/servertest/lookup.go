package servertest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago,
// for a server (these, or a nixpush daemon's metrics) to listen on. It
// may be taken before the server binds it: Start then tries another.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomHex returns n random bytes in hex: fresh keys for every server,
// so no test or run can reach another's.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// ErrNotInstalled marks the error of a server whose binary is missing,
// so a caller can tell it from one that fails to start.
var ErrNotInstalled = errors.New("not installed")

// binary finds the executable name: on PATH; in /usr/sbin, where Debian
// puts nginx and a non-root PATH may not look; or where `go install`
// puts the tools the scripts install that way (versitygw,
// toxiproxy-server), GOBIN or GOPATH/bin, as on a fresh machine whose
// shell has not picked up that directory yet. hint says how to install it.
func binary(name, hint string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs := []string{"/usr/sbin"}
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is %w: not on PATH nor in %s: %s", name, ErrNotInstalled, strings.Join(dirs, ", "), hint)
}
