// Package gobin finds the tools the scripts install with `go install`
// (versitygw, toxiproxy-server): on PATH, or where go install puts them
// when that is not on PATH (GOBIN, GOPATH/bin), as on a fresh machine
// whose shell has not picked up the new directory.
package gobin

import (
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
)

// Find returns the path of the executable name, or "" and the
// directories it looked in besides PATH, for the caller's message.
func Find(name string) (path string, searched []string) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		searched = append(searched, gobin)
	}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		searched = append(searched, filepath.Join(gp, "bin"))
	}
	for _, d := range searched {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", searched
}
