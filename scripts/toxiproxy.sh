#!/usr/bin/env bash
# toxiproxy.sh — install Shopify's toxiproxy (a TCP proxy that injects
# latency, bandwidth caps, stalls and resets) for the wan bench suite and
# internal/servertest. Does nothing when both binaries are already there.
#
# `go install .../cmd/server` and `.../cmd/cli` would name the binaries
# `server` and `cli`, names too generic to put on anyone's PATH. So they are
# built into a private temp GOBIN and moved into $GOBIN (or GOPATH/bin,
# where deps.sh puts versitygw) under the names toxiproxy's own releases
# use: toxiproxy-server and toxiproxy-cli. internal/servertest looks for
# toxiproxy-server on PATH, then in those dirs.
#
# The version is pinned to what the Go module proxy serves here (go list -m
# -versions github.com/Shopify/toxiproxy/v2 lists v2.3.0 and v2.5.0), and to
# the version of the client package in go.mod, so client and server agree.
set -euo pipefail

VERSION=v2.5.0

if ! command -v go >/dev/null 2>&1; then
	echo "toxiproxy: go is missing; cannot install toxiproxy" >&2
	exit 1
fi
gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
if { command -v toxiproxy-server >/dev/null 2>&1 || [ -x "$gobin/toxiproxy-server" ]; } &&
	{ command -v toxiproxy-cli >/dev/null 2>&1 || [ -x "$gobin/toxiproxy-cli" ]; }; then
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "toxiproxy: go install github.com/Shopify/toxiproxy/v2/cmd/{server,cli}@$VERSION into $gobin" >&2
GOBIN="$tmp" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$VERSION" "github.com/Shopify/toxiproxy/v2/cmd/cli@$VERSION"
mkdir -p "$gobin"
mv "$tmp/server" "$gobin/toxiproxy-server"
mv "$tmp/cli" "$gobin/toxiproxy-cli"
