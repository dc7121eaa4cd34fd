// Package fleet simulates a fleet of build machines on one S3 bucket:
// pushers as separate processes, each with a state dir of its own (as
// each machine has), pushing closures that share most of their
// dependencies to one versitygw bucket behind a proxy that throttles as
// a busy S3 does, with gc --delete running on a schedule and verify
// reading the bucket throughout. The fault suite (tools/faults) checks
// its outcome; the bench (tools/bench) times it with and without
// throttling.
package fleet

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Closures are what each machine pushes: the leaves of the shared
// chain and the shared 6 MiB path, and a path of its own.
type Closures struct {
	Chain  []string   // the shared chain, bottom first
	Big    string     // the shared 6 MiB path (incompressible)
	Leaves [][]string // Leaves[i]: machine i's leaves, each referring to the chain's top and Big
	Own    []string   // Own[i]: machine i's own 2 MiB path (incompressible)
}

// Roots are machine i's roots.
func (c Closures) Roots(i int) []string { return append(append([]string{}, c.Leaves[i]...), c.Own[i]) }

// Paths are every path of every closure.
func (c Closures) Paths() []string {
	all := append(append([]string{}, c.Chain...), c.Big)
	for i := range c.Leaves {
		all = append(all, c.Roots(i)...)
	}
	return all
}

// expr builds the chain and the leaves; big is a store path.
const expr = `{ prefix, pushers, leaves, chain, big }:
let
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ("export PATH=/usr/bin:/bin; mkdir $out; " + script) ];
  };
  link = k: if k == 0 then mk "${prefix}-chain-0" "echo 0 > $out/n"
    else mk "${prefix}-chain-${toString k}" "echo ${link (k - 1)} > $out/dep";
  top = link (chain - 1);
  bigPath = builtins.storePath big;
  leaf = p: k: mk "${prefix}-m${toString p}-leaf-${toString k}"
    "echo ${top} ${bigPath} > $out/refs; head -c 2048 /dev/urandom | od -An -x > $out/data";
  chainList = builtins.genList link chain;
in chainList ++ builtins.concatLists (builtins.genList (p: builtins.genList (leaf p) leaves) pushers)
`

// Build makes the closures of n machines in the store at root with Nix
// (env: its settings), in dir: a chain of chain paths, a shared 6 MiB
// path, leaves leaves per machine and a 2 MiB path of each machine's own.
func Build(ctx context.Context, env []string, root, dir, prefix string, n, chain, leaves int) (Closures, error) {
	var c Closures
	big, err := addRandom(ctx, env, root, filepath.Join(dir, prefix+"-big"), 6<<20, 1)
	if err != nil {
		return c, err
	}
	c.Big = big
	file := filepath.Join(dir, "fleet.nix")
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		return c, err
	}
	out, err := run(ctx, env, "nix-build", "--store", root, "--no-out-link", "--max-jobs", "4", file,
		"--argstr", "prefix", prefix, "--arg", "pushers", fmt.Sprint(n), "--arg", "leaves", fmt.Sprint(leaves),
		"--arg", "chain", fmt.Sprint(chain), "--argstr", "big", big)
	if err != nil {
		return c, err
	}
	outs := strings.Fields(out)
	if len(outs) != chain+n*leaves {
		return c, fmt.Errorf("nix-build printed %d paths, want %d", len(outs), chain+n*leaves)
	}
	c.Chain, outs = outs[:chain], outs[chain:]
	for i := range n {
		c.Leaves = append(c.Leaves, outs[i*leaves:(i+1)*leaves])
		own, err := addRandom(ctx, env, root, filepath.Join(dir, fmt.Sprintf("%s-own-%d", prefix, i)), 2<<20, uint64(i)+2)
		if err != nil {
			return c, err
		}
		c.Own = append(c.Own, own)
	}
	return c, nil
}

// addRandom adds a directory holding one file of size incompressible
// bytes to the store.
func addRandom(ctx context.Context, env []string, root, src string, size int, seed uint64) (string, error) {
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	b := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'f'}).Read(b)
	if err := os.WriteFile(filepath.Join(src, "blob"), b, 0o644); err != nil {
		return "", err
	}
	out, err := run(ctx, env, "nix-store", "--store", root, "--add", src)
	return strings.TrimSpace(out), err
}

// run runs a command and returns its stdout; the error has its stderr.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := errb.String()
		if len(msg) > 1500 {
			msg = "..." + msg[len(msg)-1500:]
		}
		return out.String(), fmt.Errorf("%s: %w\n%s", name, err, msg)
	}
	return out.String(), nil
}
