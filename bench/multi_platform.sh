#!/usr/bin/env bash
# bench/multi_platform.sh: issue #18's benchmark (item 6), in one command.
#
# Measures, with the release `builder` binary and a throwaway store (BUILDER_ROOT=$(mktemp -d)):
#   1. a two-platform build (--platform linux/amd64,linux/arm64, --no-cache, type=oci output) of a
#      CPU-bound shell workload (a busybox sh loop of WORK iterations standing in for a compiler:
#      the Debian bench rootfs has no gcc, and an arm64 one with gcc is not at hand), built
#        a. cross: the work runs in a `FROM --platform=$BUILDPLATFORM` stage, natively, once per
#           target (ARG TARGETARCH makes the keys differ), its output copied into each target;
#        b. emulated: the work runs in each target's own stage, the arm64 one under qemu-user
#           through binfmt_misc;
#      and each platform alone, to show where the time goes.
#   2. the per-RUN overhead under emulation: `RUN ["/bin/busybox","true",N]` x STEPS on
#      linux/arm64 (qemu) vs linux/amd64 (native), --no-cache; per step = (tSTEPS - t1)/(STEPS-1).
# 3. the same two-platform builds with Buildah (`buildah build --platform a,b --manifest`).
# BuildKit is not measured when `docker buildx` is missing (dockerd 20.10 without the buildx
# plugin refuses DOCKER_BUILDKIT=1 builds; its legacy builder makes no index): the script says so.
# Every time is the median wall time of RUNS runs after one warm-up (hyperfine -N when
# installed, otherwise date +%s%N). Results are printed as Markdown tables.
#
# Usage: bench/multi_platform.sh
# Environment knobs (defaults in brackets):
#   BUILDER  the builder binary [$CARGO_TARGET_DIR/release/builder, else target/release/builder]
#   BUSYBOX  a static amd64 busybox [$(command -v busybox)]
#   ARM64_BUSYBOX  a static arm64 busybox [$BUILDER_TEST_ARM64_BUSYBOX, else /var/tmp/arm64/busybox]
#                  (Debian: apt-get download busybox-static:arm64 && dpkg -x ...)
#   RUNS [3]  STEPS [20]  WORK [200000]  TIMER  hyperfine | date
#   BUILDAH  auto | 0 | 1: also time the two-platform builds with buildah (chroot isolation,
#            --layers, --manifest) [auto = if installed]
#   KEEP=1   keep the temp store (printed)
# Needs: qemu-user-static + binfmt-support (a qemu-aarch64 handler with the F flag).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

RUNS="${RUNS:-3}"
STEPS="${STEPS:-20}"
WORK="${WORK:-200000}"
KEEP="${KEEP:-0}"
if [ -z "${BUILDER:-}" ]; then
  for c in "${CARGO_TARGET_DIR:-$repo/target}/release/builder" "$repo/target/release/builder"; do
    [ -x "$c" ] && { BUILDER="$c"; break; }
  done
fi
[ -n "${BUILDER:-}" ] && [ -x "$BUILDER" ] || {
  echo "no builder binary: cargo build --release first, or set BUILDER=" >&2; exit 2; }
BUSYBOX="${BUSYBOX:-$(command -v busybox || true)}"
[ -n "$BUSYBOX" ] || { echo "no busybox: apt-get install busybox-static, or set BUSYBOX=" >&2; exit 2; }
ARM64_BUSYBOX="${ARM64_BUSYBOX:-${BUILDER_TEST_ARM64_BUSYBOX:-/var/tmp/arm64/busybox}}"
[ -x "$ARM64_BUSYBOX" ] || { echo "no arm64 busybox at $ARM64_BUSYBOX: set ARM64_BUSYBOX=" >&2; exit 2; }
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || {
  echo "no qemu-aarch64 binfmt_misc handler: apt-get install qemu-user-static binfmt-support" >&2; exit 2; }
BUILDAH="${BUILDAH:-auto}"
if [ "$BUILDAH" = auto ]; then
  if command -v buildah >/dev/null; then BUILDAH=1; else BUILDAH=0; fi
fi
if [ -z "${TIMER:-}" ]; then
  if command -v hyperfine >/dev/null; then TIMER=hyperfine; else TIMER=date; fi
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/bench-multi-platform.XXXXXX")"
export BUILDER_ROOT="$work/store"
mkdir -p "$BUILDER_ROOT"
log="$work/log"
cleanup() {
  if [ "$KEEP" = 1 ]; then echo "kept $work" >&2; return; fi
  if [ -d "$work/buildah" ]; then
    buildah --root "$work/buildah/root" --runroot "$work/buildah/run" rm -a >/dev/null 2>&1 || true
  fi
  rm -rf "$work" 2>/dev/null || { chmod -R u+rwx "$work" 2>/dev/null; rm -rf "$work" 2>/dev/null || true; }
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
source "$here/lib.sh"

# --- contexts ----------------------------------------------------------------------------------
# The workload: an arithmetic loop in busybox sh, CPU-bound in the interpreter, so its cost under
# qemu is the cost of emulating a real program's instructions.
loop="i=0; s=0; while [ \$i -lt $WORK ]; do s=\$(( (s * 31 + i) % 1000003 )); i=\$((i + 1)); done; echo \$s > /out"
ctx="$work/ctx"
for d in cross emulated steps1 "steps$STEPS"; do
  mkdir -p "$ctx/$d"
  cp "$BUSYBOX" "$ctx/$d/busybox-amd64"
  cp "$ARM64_BUSYBOX" "$ctx/$d/busybox-arm64"
done
cat >"$ctx/cross/Dockerfile" <<EOF
FROM --platform=\$BUILDPLATFORM scratch AS build
COPY busybox-amd64 /bin/busybox
ARG TARGETARCH
RUN ["/bin/busybox", "sh", "-c", "$loop; echo \$TARGETARCH >> /out"]
FROM scratch
ARG TARGETARCH
COPY busybox-\${TARGETARCH} /bin/busybox
COPY --from=build /out /out
EOF
cat >"$ctx/emulated/Dockerfile" <<EOF
FROM scratch
ARG TARGETARCH
COPY busybox-\${TARGETARCH} /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "$loop; echo \$TARGETARCH >> /out"]
EOF
steps_dockerfile() { # N
  echo "FROM scratch"
  echo "ARG TARGETARCH"
  echo "COPY busybox-\${TARGETARCH} /bin/busybox"
  for ((i = 1; i <= $1; i++)); do echo "RUN [\"/bin/busybox\", \"true\", \"$i\"]"; done
}
steps_dockerfile 1 >"$ctx/steps1/Dockerfile"
steps_dockerfile "$STEPS" >"$ctx/steps$STEPS/Dockerfile"

B=("$BUILDER")
build() { # CTX PLATFORMS
  "${B[@]}" build --no-cache --progress=quiet --platform "$2" \
    -o "type=oci,tar=false,dest=$work/out-$(basename "$1")-${2//[\/,]/_}" "$1"
}

echo "## builder: multi-platform builds"
echo
echo "- user: $(id -un) (uid $(id -u)); $(nproc) cores; kernel $(uname -r)"
echo "- builder: $BUILDER; qemu: $(grep -m1 interpreter /proc/sys/fs/binfmt_misc/qemu-aarch64 | cut -d' ' -f2)"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- timer: $TIMER; median of $RUNS runs after 1 warm-up; WORK=$WORK, STEPS=$STEPS"
echo

# sanity: the emulated arm64 step really ran as arm64
"${B[@]}" build --progress=quiet --platform linux/arm64 -t mp-bench:check "$ctx/emulated" >>"$log" 2>&1
arch=$("${B[@]}" run --platform linux/arm64 mp-bench:check /bin/busybox uname -m)
[ "$arch" = aarch64 ] || { echo "the arm64 image runs as $arch, not aarch64" >&2; exit 1; }

echo "### 1. A CPU-bound step for two platforms: cross (native) vs emulated"
echo
echo "| Dockerfile | platforms | median ms | min ms | max ms |"
echo "| --- | --- | ---: | ---: | ---: |"
for shape in cross emulated; do
  for p in linux/amd64 linux/arm64 linux/amd64,linux/arm64; do
    read -r t tmin tmax _ < <(time_median "$shape-${p//[\/,]/_}" build "$ctx/$shape" "$p")
    echo "| $shape | $p | $(ms "$t") | $(ms "$tmin") | $(ms "$tmax") |"
  done
done
echo

echo "### 2. Per-RUN overhead: RUN true x $STEPS, native amd64 vs emulated arm64"
echo
echo "| platform | 1 step, ms | $STEPS steps, ms | **per step, ms** |"
echo "| --- | ---: | ---: | ---: |"
for p in linux/amd64 linux/arm64; do
  read -r s1 _ < <(time_median "steps1-${p//\//_}" build "$ctx/steps1" "$p")
  read -r sn _ < <(time_median "stepsN-${p//\//_}" build "$ctx/steps$STEPS" "$p")
  per=$(awk -v a="$sn" -v b="$s1" -v n="$STEPS" 'BEGIN { printf "%.1f", (a - b) / (n - 1) / 1e6 }')
  echo "| $p | $(ms "$s1") | $(ms "$sn") | **$per** |"
done
echo

if [ "$BUILDAH" = 1 ]; then
  echo "### 3. Buildah $(buildah --version | awk '{ print $3 }'): the same two-platform builds"
  echo
  broot="$work/buildah"
  # an array, not a function: hyperfine runs it without a shell
  H=(buildah --root "$broot/root" --runroot "$broot/run" --storage-driver "${BUILDAH_DRIVER:-overlay}"
    build --isolation chroot --layers --no-cache -q)
  echo "| Dockerfile | platforms | median ms | min ms | max ms |"
  echo "| --- | --- | ---: | ---: | ---: |"
  for shape in cross emulated; do
    p=linux/amd64,linux/arm64
    read -r t tmin tmax _ < <(time_median "h-$shape" "${H[@]}" --platform "$p" \
      --manifest "localhost/mp-$shape" -f "$ctx/$shape/Dockerfile" "$ctx/$shape")
    echo "| $shape | $p | $(ms "$t") | $(ms "$tmin") | $(ms "$tmax") |"
  done
  echo
fi

echo "### BuildKit"
echo
if docker buildx version >/dev/null 2>&1; then
  echo "docker buildx is installed, but this script sets up no multi-platform BuildKit builder"
  echo "(docker-container driver with binfmt): not measured."
else
  echo "Not measured: \`docker buildx\` is not installed (dockerd 20.10 without the buildx plugin"
  echo "refuses \`DOCKER_BUILDKIT=1 docker build\`, and its legacy builder makes no image index)."
fi
