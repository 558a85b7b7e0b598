#!/usr/bin/env bash
# bench/compile_sandboxes.sh: the same compile in builder's RUN, BuildKit's RUN and a plain
# chroot of the same image, interleaved: whether a sandbox slows the compiler itself.
#
#   KEEP=1 ONLY=rust bench/real_projects.sh          (once: prints its work dir, kept)
#   DOCKER_HOST=unix:///var/tmp/dk.sock bench/compile_sandboxes.sh WORKDIR      (as root)
#
# WORKDIR holds real_projects.sh's registry (served again here on 127.0.0.1:$PORT, 5055) with
# its toolchain image, and the ripgrep sources in rust/. Each round runs `cargo build --release
# --offline --locked` of them: with builder (`FROM toolchain; WORKDIR /src; COPY . .; RUN cargo
# build`, --no-cache), with BuildKit (the same Dockerfile), and with `chroot` into that
# toolchain image exported once with the sources (its own /proc and /dev bound in, target/
# removed before each round: no namespaces, no overlay, no cgroup of its own). The order turns
# each round. Prints each run's wall time and cargo's own "Finished ... in". Knobs: ROUNDS (2),
# BUILDER (default: the release binary, built), PORT.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
W="$(cd "${1:?usage: compile_sandboxes.sh WORKDIR (real_projects.sh KEEP=1)}" && pwd)"
ROUNDS="${ROUNDS:-2}" PORT="${PORT:-5055}"
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/tmp/dk.sock}" DOCKER_BUILDKIT=1
DOCKER="${DOCKER:-/usr/bin/docker}"
if [ -z "${BUILDER:-}" ]; then
  (cd "$repo" && cargo build --release --quiet --bin builder)
  BUILDER="${CARGO_TARGET_DIR:-$repo/target}/release/builder"
fi
reg="127.0.0.1:$PORT"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/bench-compile.XXXXXX")"
export BUILDER_ROOT="$work/store"
registry_pid=""
cleanup() {
  umount -R "$work/tree/dev" 2>/dev/null || true
  umount "$work/tree/proc" 2>/dev/null || true
  [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
if ! curl -sf "http://$reg/v2/" >/dev/null; then
  sed "s|addr: .*|addr: $reg|" "$W/registry.yml" >"$work/registry.yml"
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 50); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.1; done
fi
printf 'FROM %s/toolchain:bench\nWORKDIR /src\nCOPY . .\n' "$reg" >"$work/export.Dockerfile"
"$BUILDER" build --progress=quiet -f "$work/export.Dockerfile" --output "type=local,dest=$work/tree" \
  "$W/rust" >"$work/export.log" 2>&1 || { tail "$work/export.log" >&2; exit 1; }
mount -t proc proc "$work/tree/proc"
mount --rbind /dev "$work/tree/dev"
printf 'FROM %s/toolchain:bench\nWORKDIR /src\nCOPY . .\nRUN cargo build --release --offline --locked\n' \
  "$reg" >"$work/compile.Dockerfile"

finished() { grep -o 'Finished .* in [0-9ms .]*' "$1" | tail -1 || echo "(no Finished line)"; }
run() { # NAME LOG CMD...
  local name="$1" log="$2" t0 t1; shift 2
  t0=$(date +%s%N)
  "$@" >"$log" 2>&1 || { echo "FAILED: $name" >&2; tail -20 "$log" >&2; exit 1; }
  t1=$(date +%s%N)
  printf '%-9s %8.1f s   cargo: %s\n' "$name" "$(awk -v n=$((t1 - t0)) 'BEGIN { print n / 1e9 }')" "$(finished "$log")"
}
builder_run() { run builder "$work/b.log" "$BUILDER" build --progress=plain --no-cache -f "$work/compile.Dockerfile" "$W/rust"; }
buildkit_run() { run buildkit "$work/k.log" "$DOCKER" build --network host --no-cache --progress=plain -f "$work/compile.Dockerfile" "$W/rust"; }
chroot_run() {
  rm -rf "$work/tree/src/target"
  run chroot "$work/c.log" chroot "$work/tree" /usr/bin/env -i HOME=/root \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    sh -c 'cd /src && cargo build --release --offline --locked'
}
orders=("builder_run buildkit_run chroot_run" "chroot_run buildkit_run builder_run")
for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r"
  for step in ${orders[$(((r - 1) % 2))]}; do "$step"; done
done
