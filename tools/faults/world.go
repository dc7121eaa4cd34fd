package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// world is what every scenario shares: the nixpush binary built once, a
// private Nix store, a signing key and a toxiproxy server.
type world struct {
	Root    string // the module root, where docs/ is
	Dir     string // scratch for the whole suite
	Bin     string // nixpush
	Store   string // --store ROOT
	SecKey  string
	PubKey  string // name:base64
	Toxi    *servertest.Toxiproxy
	seq     int
	baseEnv []string
}

func newWorld(ctx context.Context, root, dir string) (*world, error) {
	w := &world{Root: root, Dir: dir, Bin: filepath.Join(dir, "bin", "nixpush"), Store: filepath.Join(dir, "store")}
	w.baseEnv = nixtest.EnvIn(filepath.Join(dir, "home"))
	logf("setup: go build ./cmd/nixpush")
	if _, err := w.run(ctx, root, nil, "go", "build", "-o", w.Bin, "./cmd/nixpush"); err != nil {
		return nil, err
	}
	if _, err := w.nix(ctx, "nix-store", "--store", w.Store, "--init"); err != nil {
		return nil, err
	}
	w.SecKey = filepath.Join(dir, "key.sec")
	pub := filepath.Join(dir, "key.pub")
	if _, err := w.nix(ctx, "nix-store", "--store", w.Store, "--generate-binary-cache-key", "faults-1", w.SecKey, pub); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(pub)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	w.PubKey = strings.TrimSpace(string(b))
	w.Toxi = servertest.NewToxiproxy(filepath.Join(dir, "toxiproxy"))
	if err := w.Toxi.Start(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *world) close() {
	if w.Toxi != nil {
		w.Toxi.Stop()
	}
}

// run runs a helper command and returns its stdout; the error has stderr.
func (w *world) run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args[:min(len(args), 6)], " "), err, tail(errb.String(), 1500))
	}
	return out.String(), nil
}

// nix runs a Nix command with the tests' Nix settings.
func (w *world) nix(ctx context.Context, name string, args ...string) (string, error) {
	return w.run(ctx, "", w.baseEnv, name, args...)
}

// chainExpr builds n derivations, each holding kib KiB of random text
// and referring at run time to the one before: a closure of n paths in
// which every path but the first has a reference.
const chainExpr = `{ prefix, n, kib }:
let
  mk = k: prev: derivation {
    name = "${prefix}-${toString k}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ("export PATH=/usr/bin:/bin; mkdir $out; head -c ${toString (kib * 1024)} /dev/urandom | od -An -x > $out/data; "
      + (if prev == null then "" else "echo ${prev} > $out/dep")) ];
  };
  go = k: if k == 0 then mk 0 null else mk k (go (k - 1));
in go (n - 1)
`

// chain builds a fresh chain (a unique prefix each call) and returns its
// top path; its closure is the n paths. kib is the size of random input,
// about 2.5 times that as text.
func (w *world) chain(ctx context.Context, name string, n, kib int) (string, error) {
	w.seq++
	expr := filepath.Join(w.Dir, "chain.nix")
	if err := os.WriteFile(expr, []byte(chainExpr), 0o644); err != nil {
		return "", fmt.Errorf("write chain.nix: %w", err)
	}
	out, err := w.nix(ctx, "nix-build", "--store", w.Store, "--no-out-link", expr,
		"--argstr", "prefix", fmt.Sprintf("%s-%d", name, w.seq), "--arg", "n", fmt.Sprint(n), "--arg", "kib", fmt.Sprint(kib))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// closure is nix-store -qR of paths.
func (w *world) closure(ctx context.Context, paths ...string) ([]string, error) {
	out, err := w.nix(ctx, "nix-store", append([]string{"--store", w.Store, "-qR"}, paths...)...)
	return strings.Fields(out), err
}

// addLarge adds a directory of files × mib MiB of incompressible bytes
// as one unreferenced store path (nothing roots it: GC may delete it).
func (w *world) addLarge(ctx context.Context, name string, files, mibEach int) (string, error) {
	w.seq++
	src := filepath.Join(w.Dir, "src", fmt.Sprintf("%s-%d", name, w.seq))
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", fmt.Errorf("create source: %w", err)
	}
	defer os.RemoveAll(src)
	rng := rand.NewChaCha8([32]byte{byte(w.seq)})
	buf := make([]byte, mibEach<<20)
	for i := range files {
		_, _ = rng.Read(buf)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("blob-%02d", i)), buf, 0o644); err != nil {
			return "", fmt.Errorf("write source: %w", err)
		}
	}
	out, err := w.nix(ctx, "nix-store", "--store", w.Store, "--add", src)
	return strings.TrimSpace(out), err
}

// nixpushEnv is the environment of a nixpush process: the tests' Nix
// settings, a home of its own, no AWS settings of the host.
func (w *world) nixpushEnv(home string, extra ...string) []string {
	var env []string
	for _, kv := range nixtest.EnvIn(home) {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}
