package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// buildsExpr is the watchexec suite's Nix file: a function of a seed
// (every derivation's name starts with it, so each run builds from
// scratch) and the attribute to build. It needs no nixpkgs: builders are
// the host's /bin/sh, mounted into the sandbox by the NIX_CONFIG of nixtest.EnvIn.
//
//   - chain: 30 derivations, each sleeping 0.1 s and writing a number one
//     above the previous one's, and the previous one's path (a run-time
//     reference, so the last output's closure is the whole chain);
//   - large: one output of 200 MiB from /dev/urandom, which the sandbox
//     provides (incompressible: compression cannot shrink the work);
//   - warmup: one tiny output, built untimed first by every variant.
const buildsExpr = `{ seed, kind }:
let
  mk = name: script: derivation {
    name = "${seed}-${name}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ("export PATH=/usr/bin:/bin; mkdir $out; " + script) ];
  };
  link = k:
    if k == 0 then mk "chain-0" "sleep 0.1; echo 0 > $out/n"
    else let prev = link (k - 1); in
      mk "chain-${toString k}"
        "sleep 0.1; echo $(( $(cat ${prev}/n) + 1 )) > $out/n; echo ${prev} > $out/prev";
in {
  chain = link 29;
  large = mk "large" "head -c 200M /dev/urandom > $out/blob";
  warmup = mk "warmup" "echo warm > $out/x";
}.${kind}
`

// buildCase is one thing the suite builds.
type buildCase struct {
	kind  string // the attribute of buildsExpr
	title string
	paths int    // store paths a push must put in the cache
	note  string // what bounds watch-exec here, for the report
}

var buildCases = []buildCase{
	{"chain", "A chain of 30 small derivations (each sleeps 0.1 s; each output refers to the previous one)", 30,
		"chain: each output is pushed while the next derivation builds, so watch-exec can hide nearly all of its pushing."},
	{"large", "One large output: 200 MiB from /dev/urandom", 1,
		"large: a single output becomes valid only when its build ends, so nothing can overlap: watch-exec's floor is " +
			"the build plus one push of 200 MiB, and the 1.10× target holds only if that push takes a tenth of the build; " +
			"the like-for-like comparison is with build, then nix copy."},
}

var warmupCase = buildCase{kind: "warmup", title: "warm-up", paths: 1}

// buildSetup is the suite's private store and expression file.
type buildSetup struct {
	Root, Expr string
}

// nixBuildArgs builds c with seed in s's store.
func (s *buildSetup) nixBuildArgs(c buildCase, seed string) []string {
	return []string{"nix-build", "--store", s.Root, "--no-out-link", s.Expr,
		"--argstr", "seed", seed, "--argstr", "kind", c.kind}
}

// newBuildSetup creates the store and writes the expression.
func newBuildSetup(ctx context.Context, w *workspace, dir string) (*buildSetup, error) {
	s := &buildSetup{Root: filepath.Join(dir, "root"), Expr: filepath.Join(dir, "builds.nix")}
	if err := os.WriteFile(s.Expr, []byte(buildsExpr), 0o644); err != nil {
		return nil, fmt.Errorf("write expression: %w", err)
	}
	if _, err := w.nix(ctx, "nix-store", "--store", s.Root, "--init"); err != nil {
		return nil, fmt.Errorf("init store: %w", err)
	}
	return s, nil
}

// buildVariant is one way of building (and perhaps pushing) a case.
type buildVariant struct {
	name string
	// args returns the command for one run; cache and state are fresh
	// dirs of the run (unused by the plain build).
	args func(b *bench, s *buildSetup, c buildCase, seed, cache, state string) []string
	// pushes: the run must leave c.paths narinfos in cache.
	pushes bool
}

// buildAndCopyScript is nix-build, then nix copy of the printed outputs'
// closures, as a CI job does it: $1 root, $2 cache, $3 key, then the
// nix-build command.
const buildAndCopyScript = `set -euo pipefail
root=$1 cache=$2 key=$3; shift 3
out=$("$@")
nix --store "$root" copy --to "file://$cache?compression=zstd&secret-key=$key" $out`

var buildVariants = []buildVariant{
	{name: "nix-build", args: func(_ *bench, s *buildSetup, c buildCase, seed, _, _ string) []string {
		return s.nixBuildArgs(c, seed)
	}},
	{name: "nix-build, then nix copy", pushes: true, args: func(b *bench, s *buildSetup, c buildCase, seed, cache, _ string) []string {
		return append([]string{"bash", "-c", buildAndCopyScript, "bash", s.Root, cache, b.work.SecKey}, s.nixBuildArgs(c, seed)...)
	}},
	{name: "nixpush watch-exec -- nix-build", pushes: true, args: func(b *bench, s *buildSetup, c buildCase, seed, cache, state string) []string {
		return append([]string{b.bin, "watch-exec", "--store", s.Root,
			"--to", "file://" + cache + "?compression=zstd", "--signing-key", b.work.SecKey,
			"--state-dir", state, "--"}, s.nixBuildArgs(c, seed)...)
	}},
}

// runVariant does one timed run of v on c in fresh dirs, checks the
// cache it filled, and removes the dirs.
func runVariant(ctx context.Context, b *bench, s *buildSetup, v buildVariant, c buildCase, seed string) (Sample, error) {
	scratch, err := b.work.newScratch("build")
	if err != nil {
		return Sample{}, err
	}
	defer removeAll(scratch)
	cache := filepath.Join(scratch, "cache")
	argv := v.args(b, s, c, seed, cache, filepath.Join(scratch, "state"))
	sample, _, err := measure(ctx, argv[0], argv[1:], cleanEnv(filepath.Join(scratch, "home")))
	if err != nil {
		return Sample{}, fmt.Errorf("%s, %s: %w", c.kind, v.name, err)
	}
	if v.pushes {
		if sample.Output, err = cacheOutput(cache, c.paths); err != nil {
			return Sample{}, fmt.Errorf("%s, %s: %w", c.kind, v.name, err)
		}
	}
	return sample, nil
}
