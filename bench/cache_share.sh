#!/usr/bin/env bash
# Shared build cache (--cache-to / --cache-from): how long a second machine (an empty store,
# its own copy of the context) takes to build from the first one's cache, against building
# from scratch. The Dockerfile has a CPU-bound step (a busy loop of LOOP iterations) and a
# data step writing MIB MiB of random data, so what a hit saves is visible.
#
#   bench/cache_share.sh [LOOP] [MIB]      (defaults: 2000000, 64)
#
# Prints one line per measurement: seconds of wall time. Needs busybox-static; the registry
# rows need docker-registry (Debian's), started on a free loopback port and removed after.
set -euo pipefail
cd "$(dirname "$0")/.."
loop=${1:-2000000}
mib=${2:-64}
cargo build -q --release
bin=${CARGO_TARGET_DIR:-target}/release/builder
work=$(mktemp -d)
trap 'kill ${reg_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT

ctx() {
  mkdir -p "$work/$1"
  cp /bin/busybox "$work/$1/busybox"
  cat >"$work/$1/Dockerfile" <<DOCKERFILE
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN i=0; while [ \$i -lt $loop ]; do i=\$((i+1)); done; echo \$i > /loop
RUN head -c $((mib * 1048576)) /dev/urandom > /data
RUN echo done > /done
DOCKERFILE
  echo "$work/$1"
}

timed() { # label, root, args...
  local label=$1 root=$2 start end
  shift 2
  start=$(date +%s.%N)
  SOURCE_DATE_EPOCH=1700000000 BUILDER_ROOT=$root "$bin" build -q -t bench:1 "$@" \
    >/dev/null 2>"$work/build.log" || { cat "$work/build.log" >&2; exit 1; }
  end=$(date +%s.%N)
  printf '%-58s %6.2f s\n' "$label" "$(echo "$end - $start" | bc)"
}

a=$(ctx a)
timed "A: cold build, no cache export" "$work/root-cold" "$a"
timed "A: cold build + --cache-to type=local,mode=max" "$work/root-a" \
  --cache-to "type=local,dest=$work/cache,mode=max" "$a"
timed "A: warm rebuild (local records)" "$work/root-a" "$a"
b=$(ctx b)
timed "B: empty store, --cache-from type=local" "$work/root-b" \
  --cache-from "type=local,src=$work/cache" "$b"
timed "B: rebuild (records now local)" "$work/root-b" "$b"

if command -v docker-registry >/dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$work/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YAML
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  reg_pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  ref=127.0.0.1:$port/bench/cache:1
  timed "A: warm build + --cache-to type=registry,mode=max (push)" "$work/root-a" \
    --cache-to "type=registry,ref=$ref,mode=max" "$a"
  timed "C: empty store, --cache-from type=registry" "$work/root-c" \
    --cache-from "type=registry,ref=$ref" "$(ctx c)"
fi
