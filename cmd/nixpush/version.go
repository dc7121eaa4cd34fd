package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is the release, set at build time
// (go build -ldflags "-X main.version=1.2.3"); else the module's version,
// "(devel)" for a build from a work tree.
var version = ""

// buildInfo is what `nixpush version` prints and nixpush_build_info
// carries: the version, the VCS revision the binary was built from
// ("+dirty" when the tree had changes) and the Go version.
func buildInfo() (ver, revision, goVersion string) {
	ver, revision, goVersion = version, "unknown", runtime.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return orDevel(ver), revision, goVersion
	}
	if ver == "" {
		ver = bi.Main.Version
	}
	dirty := ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	return orDevel(ver), revision + dirty, goVersion
}

func orDevel(v string) string {
	if v == "" {
		return "(devel)"
	}
	return v
}

func versionLine() string {
	v, rev, gov := buildInfo()
	return fmt.Sprintf("nixpush %s (revision %s, %s)", v, rev, gov)
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:         "version",
		Short:       "print the version, the revision it was built from and the Go version",
		Args:        noArgs,
		Annotations: map[string]string{noConfig: "prints a constant"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionLine())
			return nil
		},
	}
}
