#!/usr/bin/env bash
# The main job on the embedded default cache (file://), end to end with real
# Nix: build fib(10) in a private store, push its closure with nixpush, then
# make a fresh store substitute every path from the cache, signatures checked.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DEMO_DIR:-$PWD/demo}
chmod -R u+w "$D" 2>/dev/null || true
rm -rf "$D"
mkdir -p "$D"
# No internet here: no default substituter; builders see the host's /bin.
export NIX_CONFIG=$'substituters =\nsandbox-paths = /bin /usr /lib /lib64\nexperimental-features = nix-command'
export XDG_CACHE_HOME=$D/xdg-cache

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "build nixpush"
go build -o bin/nixpush ./cmd/nixpush

step "make a signing key"
bin/nixpush keygen demo-cache-1 "$D/key.sec" "$D/key.pub"

step "build fib(10) in a private store ($D/store)"
nix-build --store "$D/store" testdata/fib.nix --argstr prefix "demo-$$" -o "$D/result" 2>&1 | tail -n 1
echo "fib(10) = $(cat "$D/store$(readlink "$D/result")/value")"

step "push ./result and its closure to file://$D/cache"
bin/nixpush push --store "$D/store" --state-dir "$D/state" \
	--to "file://$D/cache?compression=zstd" --signing-key "$D/key.sec" "$D/result"

step "push again: nothing is missing, nothing is uploaded"
nix-store --store "$D/store" -qR "$D/result" |
	bin/nixpush push --store "$D/store" --state-dir "$D/state" --to "file://$D/cache?secret-key=$D/key.sec"

step "queue status"
bin/nixpush status --state-dir "$D/state"

step "a fresh store substitutes everything from the cache (Nix checks signatures)"
nix-store --store "$D/fresh" -r "$(readlink "$D/result")" \
	--option substituters "file://$D/cache" \
	--option trusted-public-keys "$(cat "$D/key.pub")" 2>&1 | grep -v 'add-root'
echo "copied: $(find "$D/fresh/nix/store" -maxdepth 1 -name "*-demo-$$-fib-*" ! -name '*.drv' | wc -l) paths"
