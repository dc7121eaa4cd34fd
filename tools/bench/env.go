package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"nixpush/internal/nixtest"
)

// cleanEnv is the environment of every command the bench runs: Nix set
// up as the tests set it up, HOME and XDG dirs under home. Every timed run
// gets its own home: Nix remembers narinfo lookups in
// $XDG_CACHE_HOME/nix/binary-cache-v6.sqlite, and a remembered hit would
// let a later nix copy skip the work we mean to time.
func cleanEnv(home string) []string { return nixtest.EnvIn(home) }

// runCmd runs an untimed helper command (setup, versions) in dir with env
// and returns its stdout; the error carries the command line and stderr.
func runCmd(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w\n%s", commandLine(name, args), err, tail(errb.String(), 2000))
	}
	return out.String(), nil
}

// commandLine shows a command for an error message, eliding long path lists.
func commandLine(name string, args []string) string {
	if len(args) > 8 {
		args = append(args[:6:6], fmt.Sprintf("... (%d more args)", len(args)-6))
	}
	return name + " " + strings.Join(args, " ")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// moduleRoot is the directory of the nixpush go.mod: nixpush is built
// from it and docs/benchmarks.md written under it.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := runCmd(ctx, "", nil, "go", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(out)
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module: run the bench from the nixpush repository (go run ./tools/bench)")
	}
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("read go.mod: %w", err)
	}
	if !bytes.HasPrefix(b, []byte("module nixpush\n")) {
		return "", fmt.Errorf("%s is not the nixpush module", gomod)
	}
	return filepath.Dir(gomod), nil
}

// buildNixpush builds cmd/nixpush into a new temp dir and returns the
// binary; the caller removes filepath.Dir of it.
func buildNixpush(ctx context.Context, root string) (string, error) {
	dir, err := os.MkdirTemp("", "nixpush-bench-bin-")
	if err != nil {
		return "", fmt.Errorf("create build dir: %w", err)
	}
	bin := filepath.Join(dir, "nixpush")
	if _, err := runCmd(ctx, root, nil, "go", "build", "-o", bin, "./cmd/nixpush"); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build nixpush: %w", err)
	}
	return bin, nil
}

// machine describes where and with what a benchmark ran.
type machine struct {
	CPUs     int
	CPUModel string
	Go, Nix  string
	Zstd     string
	Revision string // git describe of the repo, "-dirty" with local changes
}

func describeMachine(ctx context.Context, root string) machine {
	m := machine{CPUs: runtime.NumCPU(), CPUModel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	version := func(name string, args ...string) string {
		out, err := runCmd(ctx, root, nil, name, args...)
		if err != nil {
			return "unknown"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		return line
	}
	m.Go = strings.Replace(version("go", "version"), "go version go", "Go ", 1)
	m.Nix = strings.Replace(version("nix", "--version"), "nix (Nix)", "Nix", 1)
	m.Zstd = "zstd unknown"
	for f := range strings.FieldsSeq(version("zstd", "--version")) {
		if strings.HasPrefix(f, "v") {
			m.Zstd = "zstd " + strings.TrimSuffix(f, ",")
			break
		}
	}
	m.Revision = version("git", "describe", "--always", "--dirty")
	if n, err := runCmd(ctx, "", nil, "nproc"); err == nil {
		fmt.Sscan(n, &m.CPUs)
	}
	return m
}
