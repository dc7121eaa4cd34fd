package nixtest

import (
	"fmt"
	"strings"
)

// The expressions below need no nixpkgs: builders are /bin/sh from the host,
// mounted into the sandbox by nixConfig, and start with no PATH at all.

// FibChain is an expression for fib(n) as in the seed's fib.nix: the output
// of "<prefix>-fib-<k>" is a directory whose fib.txt holds fib(k), computed at
// build time by reading fib.txt of fib(k-1) and fib(k-2). Outputs do not
// refer to each other (the deps are build-time only), so each output's
// runtime closure is itself. It evaluates to the top derivation; building
// FibChain(p, k) for k < n afterwards returns the already-built lower links.
func FibChain(prefix string, n int) string {
	return Derivations(prefix, `
  fib = k:
    if k < 2 then mk "fib-${toString k}" "printf %s ${toString k} > $out/fib.txt"
    else let a = fib (k - 1); b = fib (k - 2); in
      mk "fib-${toString k}" "a=$(cat ${a}/fib.txt); b=$(cat ${b}/fib.txt); printf %s $((a + b)) > $out/fib.txt";`,
		fmt.Sprintf("fib %d", n))
}

// WithReference is an attrset { dep; top; } whose top output refers to dep's
// output at run time (dep-path holds dep's path, greeting is a symlink into
// dep), so the closure of top is {dep, top}. Store.Build returns the outputs
// as [dep, top]; "(" + WithReference(p) + ").top" builds top alone (and dep).
func WithReference(prefix string) string {
	return Derivations(prefix, `
  dep = mk "ref-dep" "echo hello > $out/greeting";
  top = mk "ref-top" "echo ${dep} > $out/dep-path; ln -s ${dep}/greeting $out/greeting";`,
		"{ inherit dep top; }")
}

// Derivations is "let BINDINGS in BODY" with mk in scope: mk NAME SCRIPT
// is a derivation named PREFIX-NAME whose builder runs SCRIPT with
// /usr/bin:/bin on PATH after making $out a directory.
func Derivations(prefix, bindings, body string) string {
	return `let
  prefix = ` + nixString(prefix) + `;
  mk = name: script: derivation {
    name = "${prefix}-${name}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ("export PATH=/usr/bin:/bin; mkdir $out; " + script) ];
  };` + bindings + `
in ` + body + "\n"
}

// nixString quotes s as a Nix string literal.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `${`, `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// CAChain is two content-addressed derivations, b referring to a: built
// with CAFeatures, their outputs have realisations. Builds an attrset
// { a; b; }.
const CAChain = `let mk = name: script: derivation {
    inherit name; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" ("export PATH=/usr/bin:/bin; mkdir $out; " + script) ];
    __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
  };
  a = mk "ca-a" "echo a > $out/a";
  b = mk "ca-b" "echo ${a} > $out/b; ln -s ${a}/a $out/link";
in { inherit a b; }`

// CAFeatures are the experimental features CAChain needs.
const CAFeatures = "nix-command ca-derivations"
