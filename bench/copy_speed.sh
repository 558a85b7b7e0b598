#!/usr/bin/env bash
# bench/copy_speed.sh: issue #17's benchmark, builder against BuildKit (and Buildah), one command.
#
#   DOCKER_HOST=unix:///var/tmp/dk.sock bench/copy_speed.sh      (as root, from anywhere)
#
# Builds the release binary, then measures with the same inputs for every tool, each case run
# interleaved builder / BuildKit / Buildah RUNS times after one warm-up, medians reported:
#   cold   a Debian base + `COPY src/ /app/src/` of a FILES-file (~79 MB) tree + 14 small RUN
#          steps, --no-cache;
#   copy   the COPY step alone (the same Dockerfile without the RUN steps), --no-cache;
#   edit   one source file rewritten before each run: the COPY and the RUN steps rerun;
#   noop   nothing changed: everything from the cache; with this machine's floors for it: the
#          tree's walk alone (context_hash_bench's floor mode) and the build on a one-file context;
#   large  `FROM scratch` + `COPY big/ /big/` of ten 100 MB files, --no-cache (gzip), then
#          builder with each of LARGE_COMPRESSIONS ("zstd uncompressed"; "" for none) and
#          `cp -r` + `sync -f` of the same tree on the same disk in the same rounds (target:
#          uncompressed at >= 80% of cp's throughput);
# and builder's peak RSS over all its runs (GNU time). Ratios are builder ÷ BuildKit.
#
# The BuildKit peer is the dockerd at $DOCKER_HOST (`DOCKER_BUILDKIT=1 docker build --network
# host`, client $DOCKER, default /usr/bin/docker); BUILDKIT=0 skips it. Buildah (`buildah build --isolation chroot --layers`, storage in
# the work dir) runs when installed; BUILDAH=0 skips it. Knobs: RUNS (5), FILES (20000),
# BASE_TAR (a rootfs tarball for the base image, default /var/tmp/bench/rootfs.tar; without one,
# busybox is the base), LARGE_MIB (100, per file), TMPDIR (work dir, default /var/tmp),
# KEEP=1, ONLY="cold copy edit noop large", LARGE_COMPRESSIONS.
# Output: a Markdown table on stdout (progress on stderr; command output in $work/log).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
RUNS="${RUNS:-5}" FILES="${FILES:-20000}" LARGE_MIB="${LARGE_MIB:-100}" KEEP="${KEEP:-0}"
ONLY="${ONLY:-cold copy edit noop large}"
LARGE_COMPRESSIONS="${LARGE_COMPRESSIONS-zstd uncompressed}"
BASE_TAR="${BASE_TAR:-/var/tmp/bench/rootfs.tar}"
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/tmp/dk.sock}" DOCKER_BUILDKIT=1
# a docker client that builds with the daemon's BuildKit itself (newer clients need buildx)
DOCKER="${DOCKER:-$(command -v /usr/bin/docker || command -v docker || true)}"
docker() { "$DOCKER" "$@"; }
only() { [[ " $ONLY " == *" $1 "* ]]; }

echo "building the release binary..." >&2
(cd "$repo" && cargo build --release --quiet --bin builder \
  && cargo build --release --quiet -p builder-solver --example context_hash_bench)
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
BUILDER="$target/release/builder"
GNUTIME=/usr/bin/time
[ -x "$GNUTIME" ] || { echo "GNU time is needed for peak RSS: apt-get install time" >&2; exit 2; }
BK="${BUILDKIT:-1}"
if [ "$BK" != 0 ] && ! docker version >/dev/null 2>&1; then
  echo "note: no docker daemon at $DOCKER_HOST: the BuildKit column is empty" >&2
  BK=0
fi
BH="${BUILDAH:-1}"
if [ "$BH" != 0 ] && ! command -v buildah >/dev/null; then
  echo "note: buildah is not installed (apt-get install buildah): its column is empty" >&2
  BH=0
fi

work="$(mktemp -d "${TMPDIR:-/var/tmp}/bench-copy.XXXXXX")"
log="$work/log"
export BUILDER_ROOT="$work/store"
broot="$work/buildah"
tag="bench-copy-$$"
cleanup() {
  if [ "$BK" != 0 ]; then
    docker image rm -f "localhost/$tag-base" "localhost/$tag" >/dev/null 2>&1 || true
  fi
  if [ "$KEEP" = 1 ]; then echo "kept $work" >&2; return; fi
  [ -d "$broot" ] && buildah --root "$broot/root" --runroot "$broot/run" rm -a >/dev/null 2>&1
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

H=(buildah --root "$broot/root" --runroot "$broot/run" --storage-driver overlay
  build --isolation chroot --layers --pull=never -q)
# every tool's command for a context; the Dockerfile is <ctx>/Dockerfile
b_build() { "$GNUTIME" -f %M -a -o "$work/rss" "$BUILDER" build --progress=quiet -t "localhost/$tag" "$@"; }
k_build() { docker build --network host -q -t "localhost/$tag" "$@"; }
h_build() { "${H[@]}" -t "localhost/$tag" "$@"; }
tools=(b)
[ "$BK" = 1 ] && tools+=(k)
[ "$BH" = 1 ] && tools+=(h)

# shellcheck source=lib.sh
. "$here/lib.sh"
ms() { awk -v n="$1" 'BEGIN { if (n == "" || n == "-") print "-"; else printf "%.0f", n / 1e6 }'; }

declare -A T
# measure CASE PREP ARGS...: RUNS+1 interleaved rounds (the first one a warm-up); before every
# build PREP runs (a shell function name, or :); medians land in T[CASE,tool]
measure() {
  local case="$1" prep="$2" r t; shift 2
  declare -A acc=()
  for ((r = 0; r <= RUNS; r++)); do
    for t in "${tools[@]}"; do
      "$prep" "$t"
      local ns
      ns=$(run_tool "$t" "$@")
      [ "$r" = 0 ] || acc[$t]+=" $ns"
    done
  done
  for t in "${tools[@]}"; do
    # shellcheck disable=SC2086
    T[$case,$t]=$(median ${acc[$t]})
  done
  echo "  $case: builder $(ms "${T[$case,b]}") ms, BuildKit $(ms "${T[$case,k]:-}") ms, buildah $(ms "${T[$case,h]:-}") ms (load $(load))" >&2
  # every run, not only the median: on this shared VM one disk-bound run can be 4x another
  for t in "${tools[@]}"; do
    local all="" ns
    for ns in ${acc[$t]}; do all+=" $(ms "$ns")"; done
    echo "    $t runs (ms):$all" >&2
  done
}

echo "# bench/copy_speed.sh"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "- machine: $(nproc) cores, $(free -h | awk '/^Mem:/ { print $2 }') RAM, kernel $(uname -r); work dir on $(df -T "$work" | awk 'NR == 2 { print $2 }')"
echo "- peers: BuildKit $([ "$BK" = 1 ] && docker version --format '{{.Server.Version}}' || echo '-') (dockerd), buildah $([ "$BH" = 1 ] && buildah --version | awk '{ print $3 }' || echo '-')"
echo "- median of $RUNS interleaved runs after 1 warm-up; load average at start: $(load)"
echo

# --- the base image, built by each tool from the same input ----------------------------------
echo "preparing base images and contexts in $work..." >&2
mkdir -p "$work/base"
if [ -r "$BASE_TAR" ]; then
  cp "$BASE_TAR" "$work/base/rootfs.tar"
  printf 'FROM scratch\nADD rootfs.tar /\n' >"$work/base/Dockerfile"
else
  cp "$(command -v busybox)" "$work/base/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n' >"$work/base/Dockerfile"
fi
"$BUILDER" build --progress=quiet -t "localhost/$tag-base" "$work/base" >>"$log" 2>&1
[ "$BK" = 1 ] && docker build --network host -q -t "localhost/$tag-base" "$work/base" >>"$log" 2>&1
[ "$BH" = 1 ] && "${H[@]}" -t "localhost/$tag-base" "$work/base" >>"$log" 2>&1
rm -f "$work/base/rootfs.tar"

# --- the FILES-file tree: ~4 KB per file, 20 dirs deep 2 ------------------------------------
proj="$work/proj"
python3 - "$proj/src" "$FILES" <<'PY'
import os, sys, random
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(17)
for i in range(n):
    d = os.path.join(root, f"pkg{i % 20}", f"mod{(i // 20) % 50}")
    os.makedirs(d, exist_ok=True)
    size = rnd.randint(1000, 6900)
    with open(os.path.join(d, f"f{i}.c"), "w") as f:
        line = f"int f{i}(int x) {{ return x * {i}; }} /* padding */\n"
        f.write((line * (size // len(line) + 1))[:size])
PY
{
  echo "FROM localhost/$tag-base"
  echo "COPY src/ /app/src/"
  for i in $(seq 1 14); do echo "RUN echo step $i > /s$i"; done
} >"$proj/Dockerfile"
copyonly="$work/copyonly"
mkdir -p "$copyonly"
cp -al "$proj/src" "$copyonly/src"
printf 'FROM localhost/%s-base\nCOPY src/ /app/src/\n' "$tag" >"$copyonly/Dockerfile"
echo "- tree: $(find "$proj/src" -type f | wc -l) files, $(du -sm --apparent-size "$proj/src" | cut -f1) MB" \
  "($(find "$proj/src" -type d | wc -l) dirs)"
echo

nop() { :; }
edit_n=0
edit() { edit_n=$((edit_n + 1)); echo "/* edit $edit_n $1 */" >>"$proj/src/pkg3/mod7/f143.c"; }

only cold && measure cold nop --no-cache "$proj"
only copy && measure copy nop --no-cache "$copyonly"
if only edit || only noop; then
  for t in "${tools[@]}"; do run_tool "$t" "$proj" >/dev/null; done
  sleep 3 # builder re-hashes context files younger than 2 s ("racy" stat cache entries)
fi
only edit && measure edit edit "$proj"
if only noop; then
  for t in "${tools[@]}"; do run_tool "$t" "$proj" >/dev/null; done
  sleep 3
  measure noop nop "$proj"
  # What a no-op cannot go below on this machine, measured now: the walk alone (listing and
  # statx on every core, no checksum: context_hash_bench's floor mode) and the same build on
  # a one-file context (the process, its store and cache lookups, without the walk).
  floors=()
  for ((r = 0; r < 3; r++)); do
    floors+=("$("$target/release/examples/context_hash_bench" hash "$proj/src" floor 5 2>&1 \
      | sed -n 's/.* seconds=\([0-9.]*\) .*/\1/p' | sort -n | awk '{ a[NR] = $1 } END { printf "%.0f", a[int((NR + 1) / 2)] * 1e9 }')")
  done
  T[noop_floor,b]=$(median "${floors[@]}")
  tiny="$work/tiny"
  mkdir -p "$tiny/src"
  cp "$proj/Dockerfile" "$tiny/Dockerfile"
  echo 'int main(void) { return 0; }' >"$tiny/src/main.c"
  run_tool b "$tiny" >/dev/null
  sleep 3
  tinies=()
  for ((r = 0; r <= RUNS; r++)); do
    ns=$(run_tool b "$tiny")
    [ "$r" = 0 ] || tinies+=("$ns")
  done
  T[noop_tiny,b]=$(median "${tinies[@]}")
  echo "  noop floors: walk alone $(ms "${T[noop_floor,b]}") ms, one-file context $(ms "${T[noop_tiny,b]}") ms" >&2
fi

# --- large files: ten LARGE_MIB MB files vs cp -----------------------------------------------
if only large; then
  big="$work/big"
  large_files "$big/big" "$LARGE_MIB"
  printf 'FROM scratch\nCOPY big/ /big/\n' >"$big/Dockerfile"
  # Before each run every tool drops its previous result, as cp's run below removes its last
  # copy: each then writes into page-cache memory the kernel has just freed. Kept, builder's
  # earlier 1 GB layers made each of its runs take never-used pages, which on the benchmark VM
  # cost 1-2.6 s per GB in the kernel, while cp reused its own (BENCHMARKS.md, "Large files").
  fresh() {
    case "$1" in
      b) "$BUILDER" rmi "localhost/$tag" >/dev/null 2>&1 || true
         "$BUILDER" prune --all --force >/dev/null 2>&1 || true ;;
      k) docker image rm -f "localhost/$tag" >/dev/null 2>&1 || true
         docker builder prune -af >/dev/null 2>&1 || true ;;
      h) buildah --root "$broot/root" --runroot "$broot/run" rmi -f "localhost/$tag" >/dev/null 2>&1 || true ;;
    esac
    sync
  }
  measure large fresh --no-cache "$big"
  # cp and builder's other compressions in the same rounds, each run after the other tools'
  # ones: the kernel's free pages then come from the same churn (a cp measured in a phase of
  # its own took 508-776 ms on one VM from one run to the next).
  cps=()
  declare -A lr=()
  for ((r = 0; r <= RUNS; r++)); do
    for c in $LARGE_COMPRESSIONS; do
      fresh b
      ns=$(run_tool b --no-cache --output "type=image,compression=$c" "$big")
      [ "$r" = 0 ] || lr[$c]+=" $ns"
    done
    rm -rf "$work/cpdst"
    sync
    # with the data on disk, as builder's layer blob is (it is written with O_DIRECT)
    t0=$(date +%s%N); cp -r "$big/big" "$work/cpdst" && sync -f "$work/cpdst"; t1=$(date +%s%N)
    [ "$r" = 0 ] || cps+=($((t1 - t0)))
  done
  rm -rf "$work/cpdst"
  T[large,cp]=$(median "${cps[@]}")
  echo "  large: cp -r $(ms "${T[large,cp]}") ms (runs:$(for n in "${cps[@]}"; do printf ' %s' "$(ms "$n")"; done))" >&2
  # The diff id's sha256 runs after the copy (the tar's first header is the destination
  # directory, whose time its last new file sets) on one core: this machine's rate for it.
  shas=()
  for ((r = 0; r < 3; r++)); do
    shas+=("$("$target/release/examples/context_hash_bench" sha 2>&1 \
      | sed -n 's/.* seconds=\([0-9.]*\) .*/\1/p' | awk -v m="$LARGE_MIB" '{ printf "%.0f", $1 * 1e9 * m * 10 / 1024 }')")
  done
  T[large_sha,b]=$(median "${shas[@]}")
  for c in $LARGE_COMPRESSIONS; do
    # shellcheck disable=SC2086
    T[large_$c,b]=$(median ${lr[$c]})
    echo "  large, compression=$c: builder $(ms "${T[large_$c,b]}") ms (runs:$(for n in ${lr[$c]}; do printf ' %s' "$(ms "$n")"; done))" >&2
  done
fi

rss=$(sort -n "$work/rss" | tail -1)
row() { # case, what, target
  local c="$1"
  [ -n "${T[$c,b]:-}" ] || return 0
  echo "| $2 | $(ms "${T[$c,b]}") | $(ms "${T[$c,k]:-}") | **$(ratio "${T[$c,b]}" "${T[$c,k]:-}")** | $(ms "${T[$c,h]:-}") | $3 |"
}
echo "## Results (load average at the end: $(load))"
echo
echo "| case | builder ms | BuildKit ms | builder ÷ BuildKit | buildah ms | target |"
echo "| --- | ---: | ---: | ---: | ---: | --- |"
row cold "cold build: COPY of the tree + 14 RUN, --no-cache" "≤ 0.5× BuildKit"
row copy "the COPY step alone (whole build), --no-cache" "COPY ≤ 1000 ms"
row edit "one-file edit rebuild (COPY + 14 RUN rerun)" "≤ 0.5× BuildKit"
row noop "no-op rebuild" "≤ 25 ms"
if [ -n "${T[noop_floor,b]:-}" ]; then
  echo "| the tree's walk alone on this machine (listing + statx on every core) | $(ms "${T[noop_floor,b]}") | | | | the no-op's floor |"
  echo "| the no-op's Dockerfile on a one-file context | $(ms "${T[noop_tiny,b]}") | | | | |"
fi
if [ -n "${T[large,b]:-}" ]; then
  # The default output gzips the layer (deflate decides its time, as for BuildKit); the
  # throughput target is for the copy, so it is judged on the uncompressed layer.
  row large "ten ${LARGE_MIB} MB files, \`COPY big/ /big/\`, --no-cache (gzip, the default)" "–"
  echo "| the same with \`cp -r\` + \`sync -f\` (in the rounds below) | $(ms "${T[large,cp]}") | | | | |"
  for c in $LARGE_COMPRESSIONS; do
    goal=""
    [ "$c" = uncompressed ] && goal="≥ 80% of cp"
    echo "| the same, builder with \`--output type=image,compression=$c\` | $(ms "${T[large_$c,b]}") | | builder at **$(awk -v a="${T[large,cp]}" -v b="${T[large_$c,b]}" 'BEGIN { printf "%.0f%%", 100 * a / b }')** of cp's throughput | | $goal |"
  done
fi
[ -n "${T[large_sha,b]:-}" ] \
  && echo "| sha256 of ${LARGE_MIB}0 MiB on one core (the layer's diff id, after the copy) | $(ms "${T[large_sha,b]}") | | | | |"
echo "| builder peak RSS over all runs | $(awk -v k="$rss" 'BEGIN { printf "%.0f MiB", k / 1024 }') | | | | < 100 MiB |"
