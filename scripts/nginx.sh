#!/usr/bin/env bash
# nginx.sh — a throwaway nginx serving a binary cache that accepts uploads
# (WebDAV PUT), for demos and trying nixpush's http:// backend by hand.
# Tests start their own (internal/servertest, same configuration).
#
#   scripts/nginx.sh start DIR PORT   serve DIR/cache at http://127.0.0.1:PORT/
#   scripts/nginx.sh stop DIR         stop the nginx started for DIR
#
# Everything nginx writes (config, pid, logs, temp files) stays under DIR.
# Install nginx with scripts/deps.sh.
set -euo pipefail

usage() {
	echo "usage: $0 start DIR PORT | stop DIR" >&2
	exit 2
}

nginx_bin() {
	if command -v nginx >/dev/null 2>&1; then
		command -v nginx
	elif [ -x /usr/sbin/nginx ]; then
		echo /usr/sbin/nginx
	else
		echo "nginx.sh: nginx is not installed: run scripts/deps.sh" >&2
		exit 1
	fi
}

running() { [ -s "$1/nginx.pid" ] && kill -0 "$(cat "$1/nginx.pid")" 2>/dev/null; }

write_conf() {
	local dir=$1 port=$2 user=""
	[ "$(id -u)" -eq 0 ] && user="user root; # workers must write DIR even when it is private (0700)"
	cat >"$dir/nginx.conf" <<EOF
# nixpush test cache: $dir/cache on 127.0.0.1:$port; PUT stores files (WebDAV).
# Everything nginx writes stays under $dir.
daemon on;
worker_processes 2;
# WebDAV PROPFIND (listing, for nixpush verify and gc): Debian's
# libnginx-mod-http-dav-ext, installed by scripts/deps.sh.
load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
$user
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 512; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    default_type application/octet-stream;
    types { text/x-nix-narinfo narinfo; }
    server {
        listen 127.0.0.1:$port;
        root $dir/cache;
        autoindex off;
        client_max_body_size 0;
        location / {
            dav_methods PUT DELETE;
            dav_ext_methods PROPFIND OPTIONS;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }
    }
}
EOF
}

start() {
	local dir=$1 port=$2 bin
	bin=$(nginx_bin)
	case $port in '' | *[!0-9]*) usage ;; esac
	mkdir -p "$dir/cache" "$dir/tmp"
	dir=$(cd "$dir" && pwd)
	if running "$dir"; then
		echo "nginx.sh: nginx already runs for $dir (pid $(cat "$dir/nginx.pid"))" >&2
		exit 1
	fi
	write_conf "$dir" "$port"
	if ! "$bin" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"; then
		echo "nginx.sh: nginx failed to start; see $dir/error.log" >&2
		exit 1
	fi
	# Wait (up to 10 s) until it accepts connections.
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "http://127.0.0.1:$port"
			return 0
		fi
		sleep 0.1
	done
	echo "nginx.sh: nginx does not answer on 127.0.0.1:$port; see $dir/error.log" >&2
	exit 1
}

stop() {
	local dir=$1 pid
	if ! running "$dir"; then
		echo "nginx.sh: no nginx runs for $dir" >&2
		return 0
	fi
	pid=$(cat "$dir/nginx.pid")
	kill -TERM "$pid" # fast shutdown: the master stops its workers
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "nginx.sh: nginx (pid $pid) did not stop within 10 s" >&2
	exit 1
}

case ${1:-} in
start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
stop) [ $# -eq 2 ] || usage; stop "$2" ;;
*) usage ;;
esac
