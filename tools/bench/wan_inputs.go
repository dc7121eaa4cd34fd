package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// The wan suite's realistic closure: closureLayers layers of closureWidth
// paths, every path of a layer referring to one to three of the layer
// below (and sometimes one further down), so the longest reference chain
// is closureLayers paths long. Sizes are mostly under 10 KB with a tail:
// about 4 % up to 1 MB, 1 % up to 20 MB and one 50 MB path low in the
// graph, where a libc or a compiler would sit. Each is a real derivation
// built by Nix in the workspace store, as the tests build theirs
// (internal/nixtest), so its references are the ones Nix found.
const (
	closureInput  = "wan-closure-v1" // bump the suffix when the recipe changes
	closureLayers = 25
	closureWidth  = 42
	closureBigMB  = 50
)

// closureNode is one derivation of the closure's Nix expression.
type closureNode struct {
	name  string
	size  int  // bytes of content
	mixed bool // half random, half text: large paths, like binaries beside data
	deps  []int
}

// planClosure lays out the graph, deterministically (fixed seed).
func planClosure() []closureNode {
	rng := rand.New(rand.NewPCG(3, 4))
	var nodes []closureNode
	for layer := range closureLayers {
		first := len(nodes)
		for i := range closureWidth {
			n := closureNode{name: fmt.Sprintf("wan-l%02d-%02d", layer, i)}
			switch r := rng.Float64(); {
			case layer == 2 && i == 0:
				n.size, n.mixed = closureBigMB*1_000_000, true
			case r < 0.95:
				n.size = 200 + rng.IntN(10_000-200)
			case r < 0.99:
				n.size = 10_000 + rng.IntN(1_000_000-10_000)
			default:
				n.size, n.mixed = 1_000_000+rng.IntN(19_000_000), true
			}
			if layer > 0 {
				below := first - closureWidth
				for _, k := range rng.Perm(closureWidth)[:1+rng.IntN(3)] {
					n.deps = append(n.deps, below+k)
				}
				if layer > 1 && rng.IntN(10) < 3 {
					n.deps = append(n.deps, rng.IntN(below))
				}
			}
			nodes = append(nodes, n)
		}
	}
	return nodes
}

// closureExpr is the Nix expression building every node; it evaluates to
// the list of all of them, so nix-build prints every output path. A
// node's output names its dependencies' outputs in refs, which is what
// makes Nix record them as references.
func closureExpr(nodes []closureNode) string {
	var b strings.Builder
	b.WriteString(`let
  mk = name: script: deps: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ("export PATH=/usr/bin:/bin; mkdir $out; for d in ${toString deps}; do echo $d >> $out/refs; done; " + script) ];
  };
`)
	for i, n := range nodes {
		var script string
		if n.mixed {
			half := n.size / 2
			script = fmt.Sprintf("head -c %d /dev/urandom > $out/blob; seq 1 100000000 | head -c %d > $out/text", half, n.size-half)
		} else {
			script = fmt.Sprintf("seq %d 7 1000000000 | head -c %d > $out/data", i, n.size)
		}
		var deps []string
		for _, d := range n.deps {
			deps = append(deps, fmt.Sprintf("n%d", d))
		}
		fmt.Fprintf(&b, "  n%d = mk %q %q [ %s ];\n", i, n.name, script, strings.Join(deps, " "))
	}
	b.WriteString("in [")
	for i := range nodes {
		fmt.Fprintf(&b, " n%d", i)
	}
	b.WriteString(" ]\n")
	return b.String()
}

// closure builds the realistic closure in the workspace store (a minute
// or two, once; the work dir keeps it).
func (w *workspace) closure(ctx context.Context) (*Input, error) {
	return w.input(ctx, closureInput, func(ctx context.Context) (*Input, error) {
		nodes := planClosure()
		expr := filepath.Join(w.Dir, "src", closureInput+".nix")
		if err := os.WriteFile(expr, []byte(closureExpr(nodes)), 0o644); err != nil {
			return nil, fmt.Errorf("write closure expression: %w", err)
		}
		out, err := w.nix(ctx, "nix-build", "--store", w.Root, "--no-out-link", "--max-jobs", "2", expr)
		if err != nil {
			return nil, fmt.Errorf("build closure: %w", err)
		}
		paths := strings.Fields(out)
		if len(paths) != len(nodes) {
			return nil, fmt.Errorf("build closure: %d paths printed for %d derivations", len(paths), len(nodes))
		}
		// valid() wants a dump source that exists; the expression stands
		// in for it (nothing dumps this input as one tree).
		return &Input{Paths: paths, DumpSource: expr}, nil
	})
}

// firstPaths is in cut to its first n paths (the small paths are
// independent, so any n of them are a closure).
func firstPaths(ctx context.Context, w *workspace, in *Input, n int) (*Input, error) {
	if n >= len(in.Paths) {
		return in, nil
	}
	sub := &Input{Name: fmt.Sprintf("%s-first-%d", in.Name, n), Paths: in.Paths[:n:n], DumpSource: in.DumpSource}
	size, err := w.narSize(ctx, sub.Paths)
	if err != nil {
		return nil, err
	}
	sub.NARSize = size
	return sub, nil
}
