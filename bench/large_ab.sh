#!/usr/bin/env bash
# bench/large_ab.sh: two or more builder binaries on copy_speed.sh's large case, interleaved.
#
#   BINS="/path/builder-before /path/builder-after" bench/large_ab.sh      (as root)
#
# For comparing a change to the large-file path where copy_speed.sh's numbers move more from one
# run to the next than the change does: every round builds `FROM scratch` + `COPY big/ /big/` of
# ten LARGE_MIB (100) MB files (half random, half text) with each binary in turn, --no-cache,
# `--output type=image,compression=COMPRESSION` (uncompressed), each with its own store, after
# dropping its previous result as copy_speed.sh does; then `cp -r` + `sync -f` of the same tree.
# ROUNDS (8) timed rounds after one warm-up; prints each binary's times and median in ms.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
read -r -a bins <<<"${BINS:?BINS: the builder binaries to compare}"
ROUNDS="${ROUNDS:-8}" LARGE_MIB="${LARGE_MIB:-100}" COMPRESSION="${COMPRESSION:-uncompressed}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/bench-large-ab.XXXXXX")"
trap 'rm -rf "$work"' EXIT
large_files "$work/ctx/big" "$LARGE_MIB"
printf 'FROM scratch\nCOPY big/ /big/\n' >"$work/ctx/Dockerfile"
declare -A times=()
for ((r = 0; r <= ROUNDS; r++)); do
  for i in "${!bins[@]}"; do
    export BUILDER_ROOT="$work/store$i"
    "${bins[$i]}" rmi localhost/large-ab >/dev/null 2>&1 || true
    "${bins[$i]}" prune --all --force >/dev/null 2>&1 || true
    sync
    t0=$(date +%s%N)
    "${bins[$i]}" build --progress=quiet --no-cache -t localhost/large-ab \
      --output "type=image,compression=$COMPRESSION" "$work/ctx" >"$work/log" 2>&1 \
      || { echo "FAILED: ${bins[$i]}" >&2; tail -20 "$work/log" >&2; exit 1; }
    t1=$(date +%s%N)
    [ "$r" = 0 ] || times[$i]+=" $((t1 - t0))"
  done
  rm -rf "$work/cpdst"
  sync
  t0=$(date +%s%N); cp -r "$work/ctx/big" "$work/cpdst" && sync -f "$work/cpdst"; t1=$(date +%s%N)
  [ "$r" = 0 ] || times[cp]+=" $((t1 - t0))"
done
report() { # NAME KEY
  # shellcheck disable=SC2086
  printf '%s: median %s ms (runs:%s)\n' "$1" "$(ms "$(median ${times[$2]})")" \
    "$(for n in ${times[$2]}; do printf ' %s' "$(ms "$n")"; done)"
}
for i in "${!bins[@]}"; do report "${bins[$i]}" "$i"; done
report "cp -r + sync -f" cp
