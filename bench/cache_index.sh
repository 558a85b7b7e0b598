#!/bin/bash
# Cost of cache records: a cold build of STEPS COPY steps (one record written per step) and a fully
# cached rebuild (one record read and its last-use time updated per step), each timed RUNS times
# (median), for one or two builder binaries — e.g. the SQLite index against the JSON-file one it
# replaced. Also times `builder cache verify` on the resulting store. Markdown on stdout.
#
#   bench/cache_index.sh NEW_BUILDER [OLD_BUILDER]      (STEPS=60 RUNS=5 by default)
#
# STEPS stays below 80: each step is one more overlay lower directory, and the kernel's limit on
# mount options (4095 bytes) stops a build near 82 layers on this store path length.
set -euo pipefail
STEPS=${STEPS:-60}
RUNS=${RUNS:-5}
[ $# -ge 1 ] || { echo "usage: $0 BUILDER [BUILDER...]" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

make_ctx() { # dir steps
  mkdir -p "$1"
  echo "FROM scratch" > "$1/Dockerfile"
  for i in $(seq 1 "$2"); do
    echo "file $i" > "$1/f$i"
    echo "COPY f$i /f$i" >> "$1/Dockerfile"
  done
}
make_ctx "$work/many" "$STEPS"
make_ctx "$work/one" 1

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Milliseconds of `builder build` of context $2 into a fresh (cold) or warm root $3.
time_build() { # builder ctx root
  local t0 t1
  t0=$(now)
  BUILDER_ROOT=$3 "$1" build -q "$2" > /dev/null || { echo "build of $2 with $1 failed" >&2; return 1; }
  t1=$(now)
  echo $(( (t1 - t0) / 1000 ))
}

echo "| builder | cold build, $STEPS steps | cached rebuild, $STEPS steps | cached rebuild, 1 step | per cached step | \`cache verify\` |"
echo "| --- | --- | --- | --- | --- | --- |"
for b in "$@"; do
  cold=() warm=() one=()
  for r in $(seq 1 "$RUNS"); do
    root="$work/root-$r"
    rm -rf "$root" "$work/root1-$r"
    t=$(time_build "$b" "$work/many" "$root") || exit 1; cold+=("$t")
    t=$(time_build "$b" "$work/many" "$root") || exit 1; warm+=("$t")
    time_build "$b" "$work/one" "$work/root1-$r" > /dev/null || exit 1
    t=$(time_build "$b" "$work/one" "$work/root1-$r") || exit 1; one+=("$t")
  done
  c=$(printf '%s\n' "${cold[@]}" | median)
  w=$(printf '%s\n' "${warm[@]}" | median)
  o=$(printf '%s\n' "${one[@]}" | median)
  verify="-"
  if BUILDER_ROOT="$work/root-1" "$b" cache verify > /dev/null 2>&1; then
    t0=$(now); BUILDER_ROOT="$work/root-1" "$b" cache verify > /dev/null; t1=$(now)
    verify="$(( (t1 - t0) / 1000000 )) ms"
  fi
  per=$(awk -v w="$w" -v o="$o" -v n="$STEPS" 'BEGIN {printf "%.0f µs", (w - o) / (n - 1)}')
  printf '| %s | %d ms | %d ms | %d ms | %s | %s |\n' "$b" $((c / 1000)) $((w / 1000)) $((o / 1000)) "$per" "$verify"
done
