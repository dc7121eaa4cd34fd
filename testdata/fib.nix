# fib(n) as in the workshop chapter on caching Nix builds (../shared/seed),
# without nixpkgs. Each output links to the outputs it was computed from, so
# the runtime closure of fib(n) is the whole chain: pushing one path pushes
# them all, references first.
{ prefix ? "demo", n ? 10 }:
let
  mk = k: script: derivation {
    name = "${prefix}-fib-${toString k}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ("export PATH=/usr/bin:/bin; mkdir $out; " + script) ];
  };
  fib = k:
    if k < 2 then mk k "printf %s ${toString k} > $out/value"
    else let a = fib (k - 1); b = fib (k - 2); in
      mk k ''
        printf %s $(( $(cat ${a}/value) + $(cat ${b}/value) )) > $out/value
        ln -s ${a} $out/prev1; ln -s ${b} $out/prev2
      '';
in fib n
