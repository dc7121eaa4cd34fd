#!/usr/bin/env bash
# deps.sh — install what nixpush's tests, demo and bench need on a Debian
# machine. Idempotent: each group checks for its commands first, and the
# script prints nothing when there is nothing to do. Runs as root, or uses
# sudo when not root.
set -euo pipefail

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "deps: not root and sudo is missing; cannot install packages" >&2
		exit 1
	fi
	SUDO=(sudo)
fi

have() { command -v "$1" >/dev/null 2>&1; }

APT_PKGS=()      # filled by the deps_* groups, installed by apt_install_all
APT_UPDATED=0

apt_install_all() {
	[ "${#APT_PKGS[@]}" -eq 0 ] && return 0
	if [ "$APT_UPDATED" -eq 0 ]; then
		echo "deps: apt-get update" >&2
		"${SUDO[@]}" apt-get update -qq
		APT_UPDATED=1
	fi
	echo "deps: apt-get install ${APT_PKGS[*]}" >&2
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${APT_PKGS[@]}" >/dev/null
	APT_PKGS=()
}

# ---- dependency groups: one function each ---------------------------------

# Real Nix (Debian's nix-bin, Nix 2.8): tests build and substitute with it.
deps_nix() {
	have nix-build && have nix-store && have nix || APT_PKGS+=(nix-bin)
}

# Building nixpush: a C compiler for cgo (mattn/go-sqlite3) and liblzma's
# headers (xz compression goes through liblzma, as in Nix).
deps_build() {
	have gcc || APT_PKGS+=(gcc)
	[ -e /usr/include/lzma.h ] || APT_PKGS+=(liblzma-dev)
}

# CLI tools used by tests and scripts: zstd to inspect NARs, sqlite3 to
# inspect the Nix DB and the queue.
deps_tools() {
	have zstd || APT_PKGS+=(zstd)
	have sqlite3 || APT_PKGS+=(sqlite3)
	# systemd-analyze verifies the unit file in the tests.
	have systemd-analyze || APT_PKGS+=(systemd)
	# GNU time measures the scale bench's peak memory (tools/bench).
	[ -x /usr/bin/time ] || APT_PKGS+=(time)
}

# nginx with WebDAV PUT for the http(s):// backend tests, which start their
# own nginx on 127.0.0.1 (scripts/nginx.sh, internal/servertest).
# The package's postinst would start a system nginx on port 80; nothing
# here needs it, so a policy-rc.d forbids service starts during the install.
# libnginx-mod-http-dav-ext adds PROPFIND, which the backend's List uses
# (nginx's core dav module has PUT and DELETE but no listing).
deps_nginx() {
	local pkgs=()
	have nginx || [ -x /usr/sbin/nginx ] || pkgs+=(nginx)
	[ -e /usr/lib/nginx/modules/ngx_http_dav_ext_module.so ] || pkgs+=(libnginx-mod-http-dav-ext)
	[ "${#pkgs[@]}" -eq 0 ] && return 0
	local policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
		"${SUDO[@]}" chmod 755 "$policy"
		trap '"${SUDO[@]}" rm -f '"$policy" EXIT
	fi
	APT_PKGS+=("${pkgs[@]}")
}

# versitygw, the S3 server the s3:// backend tests start (posix backend on
# 127.0.0.1): built from source with the Go toolchain, into $GOBIN or
# $(go env GOPATH)/bin, where internal/servertest looks for it.
deps_versitygw() {
	have versitygw && return 0
	if ! have go; then
		echo "deps: go is missing; cannot install versitygw" >&2
		exit 1
	fi
	local gobin
	gobin=$(go env GOBIN)
	[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
	[ -x "$gobin/versitygw" ] && return 0
	echo "deps: go install versitygw@v1.8.0 (a few minutes)" >&2
	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
}

# toxiproxy, the latency/bandwidth/fault-injecting TCP proxy of the wan bench
# suite and internal/servertest: go install too, see scripts/toxiproxy.sh.
deps_toxiproxy() {
	bash "$(dirname "$0")/toxiproxy.sh"
}

# ---------------------------------------------------------------------------

deps_nix
deps_build
deps_tools
deps_nginx
apt_install_all
deps_versitygw # go install, not apt: runs after the apt packages are in
deps_toxiproxy
