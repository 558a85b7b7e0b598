#!/usr/bin/env bash
# bench/run_overhead.sh: issue #3's "Done when" benchmark, in one command.
#
# Measures, with the release `builder` binary and a throwaway store (BUILDER_ROOT=$(mktemp -d)):
#   1. per-RUN-step overhead: `FROM busybox:bench` + STEPS distinct `RUN true # step N` lines,
#      built with --no-cache --progress=quiet, against the same Dockerfile with 1 step (fixed
#      startup cost); ms/step = (t[STEPS] - t[1]) / (STEPS - 1). Goal: < 20 ms per step.
#   2. the cost of a step that changes 1 file on top of a large base: bases with N files
#      (SIZES), then `FROM base-N` + `RUN echo x > /one-file` with --no-cache (only that step runs;
#      the base image is in the store). N=0 is the busybox base itself. Goal: flat in N.
#   3. the same for Buildah (`buildah build --isolation chroot --layers --no-cache`, storage in a
#      temp dir via --root/--runroot), when buildah is installed and works here.
# Every time is the median wall time of RUNS runs after one warm-up run (hyperfine -N when it is
# installed, otherwise date +%s%N). Results are printed as Markdown tables.
#
# Usage (from anywhere; as root or as a user with /etc/subuid ranges):
#   bench/run_overhead.sh
# Environment knobs (defaults in brackets):
#   BUILDER    the builder binary [$CARGO_TARGET_DIR/release/builder, else target/release/builder]
#   BUSYBOX    a static busybox [$(command -v busybox); Debian: apt-get install busybox-static]
#   RUNS [3]  STEPS [50]  SIZES ["1000 10000 50000"]
#   BUILDAH    auto | 0 | 1: also measure buildah [auto = if installed]
#   TIMER      hyperfine | date [hyperfine if installed]
#   AS_USER    after the run as the current user (root), run again as this unprivileged user
#              (e.g. AS_USER=tester): the binary and this script are copied to a temp dir it
#              can read, and the rerun goes through runuser. Buildah is skipped for that rerun
#              unless AS_USER_BUILDAH=1.
#   TMPDIR     where the throwaway stores go [/tmp]; TMPDIR=/dev/shm puts them on tmpfs
#   KEEP=1     keep the temp store roots (printed) instead of deleting them
# Needs: bash, coreutils; optional hyperfine, buildah (apt-get install hyperfine buildah).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

RUNS="${RUNS:-3}"
STEPS="${STEPS:-50}"
SIZES="${SIZES:-1000 10000 50000}"
BUILDAH="${BUILDAH:-auto}"
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
if [ -z "${TIMER:-}" ]; then
  if command -v hyperfine >/dev/null; then TIMER=hyperfine; else TIMER=date; fi
fi
if [ "$BUILDAH" = auto ]; then
  if command -v buildah >/dev/null; then BUILDAH=1; else BUILDAH=0; fi
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/bench-overhead.XXXXXX")"
export BUILDER_ROOT="$work/store"
mkdir -p "$BUILDER_ROOT"
log="$work/log"
cleanup() {
  if [ "$KEEP" = 1 ]; then echo "kept $work" >&2; return; fi
  # buildah's overlay storage may hold mounts; let buildah take them down first.
  if [ -d "$work/buildah" ]; then
    buildah --root "$work/buildah/root" --runroot "$work/buildah/run" rm -a >/dev/null 2>&1 || true
    # rootless, its layers belong to subordinate ids: remove them from inside its user namespace
    [ "$(id -u)" = 0 ] || buildah unshare rm -rf "$work/buildah" >/dev/null 2>&1 || true
  fi
  rm -rf "$work" 2>/dev/null || chmod -R u+rwx "$work" 2>/dev/null; rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

# shared helpers: ms, time_median, once
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

# --- contexts ----------------------------------------------------------------------------------
ctx="$work/ctx"
mkdir -p "$ctx/base" "$ctx/steps1" "$ctx/steps$STEPS" "$ctx/one"
cp "$BUSYBOX" "$ctx/base/busybox"
cat >"$ctx/base/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox","--install","-s","/bin"]
EOF
steps_dockerfile() { # FROM STEPS
  echo "FROM $1"
  for ((i = 1; i <= $2; i++)); do echo "RUN true # step $i"; done
}
# N files of one line each (f<i> holds i) in dirs of at most 1000; the shell's builtin echo, no
# fork per file (`busybox --install -s /bin` skips applets whose home is /usr/bin, such as seq).
tree_dockerfile() { # FROM N
  echo "FROM $1"
  echo "RUN mkdir /t && cd /t && s=0; while [ \$s -lt $2 ]; do e=\$((s + 999));" \
    "[ \$e -lt $2 ] || e=\$(($2 - 1)); mkdir d\$s && cd d\$s || exit 1;" \
    "for i in \$(busybox seq \$s \$e); do echo \$i > f\$i; done; cd ..; s=\$((s + 1000)); done"
}

machine() {
  echo "- user: $(id -un) (uid $(id -u)); $(nproc) cores; kernel $(uname -r)"
  echo "- memory: $(free -h | awk '/^Mem:/ { print $2 " total, " $7 " available" }')"
  echo "- store: $BUILDER_ROOT on $(df -T "$BUILDER_ROOT" | awk 'NR == 2 { print $2 }')"
  echo "- builder: $BUILDER ($("$BUILDER" --version 2>/dev/null || echo '?'))"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine inflates wall times)"
  echo "- timer: $TIMER; median of $RUNS runs after 1 warm-up; STEPS=$STEPS"
}

# --- builder -----------------------------------------------------------------------------------
B=("$BUILDER")

echo "## builder, as $(id -un)"
echo
machine
echo
once "${B[@]}" build --progress=quiet -t busybox:bench "$ctx/base" >/dev/null
steps_dockerfile busybox:bench 1 >"$ctx/steps1/Dockerfile"
steps_dockerfile busybox:bench "$STEPS" >"$ctx/steps$STEPS/Dockerfile"
read -r s1 s1min s1max s1cpu < <(time_median b-steps1 "${B[@]}" build --no-cache --progress=quiet "$ctx/steps1")
read -r sn snmin snmax sncpu < <(time_median b-stepsN "${B[@]}" build --no-cache --progress=quiet "$ctx/steps$STEPS")
per=$(awk -v a="$sn" -v b="$s1" -v n="$STEPS" 'BEGIN { printf "%.1f", (a - b) / (n - 1) / 1e6 }')
cpuper=$(awk -v a="$sncpu" -v b="$s1cpu" -v n="$STEPS" 'BEGIN { if (a == "-") print "-"; else printf "%.1f", (a - b) / (n - 1) / 1e6 }')
avg=$(awk -v a="$sn" -v n="$STEPS" 'BEGIN { printf "%.1f", a / n / 1e6 }')
echo "### 1. RUN-step overhead (FROM busybox:bench + RUN true x N, --no-cache)"
echo
echo "| build | median ms | min ms | max ms | CPU ms (mean) |"
echo "| --- | ---: | ---: | ---: | ---: |"
echo "| 1 step | $(ms "$s1") | $(ms "$s1min") | $(ms "$s1max") | $(ms "$s1cpu") |"
echo "| $STEPS steps | $(ms "$sn") | $(ms "$snmin") | $(ms "$snmax") | $(ms "$sncpu") |"
echo
echo "**per step: $per ms wall** (marginal, (t$STEPS - t1)/$((STEPS - 1))), $cpuper ms CPU; $avg ms wall (t$STEPS/$STEPS, startup included); goal < 20 ms"
echo

echo "### 2. 1-file step on a base of N files (FROM base-N + RUN echo x > /one-file, --no-cache)"
echo
echo "| N files in base | base build (once) ms | 1-file step build, median ms | min ms | max ms | CPU ms (mean) |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
for n in 0 $SIZES; do
  if [ "$n" = 0 ]; then
    base=busybox:bench; tb="-"
  else
    base="base:n$n"
    mkdir -p "$ctx/tree$n"
    tree_dockerfile busybox:bench "$n" >"$ctx/tree$n/Dockerfile"
    tb=$(ms "$(once "${B[@]}" build --progress=quiet -t "$base" "$ctx/tree$n")")
    # sanity: the base holds N files
    got=$("${B[@]}" run --rm "$base" sh -c 'busybox find /t -type f | busybox wc -l' 2>>"$log" | tr -d ' ' || echo '?')
    [ "$got" = "$n" ] || echo "WARNING: base-$n has $got files" >&2
  fi
  mkdir -p "$ctx/one$n"
  printf 'FROM %s\nRUN echo x > /one-file\n' "$base" >"$ctx/one$n/Dockerfile"
  read -r t tmin tmax tcpu < <(time_median "b-one$n" "${B[@]}" build --no-cache --progress=quiet "$ctx/one$n")
  echo "| $n | $tb | $(ms "$t") | $(ms "$tmin") | $(ms "$tmax") | $(ms "$tcpu") |"
done
echo

# --- buildah -----------------------------------------------------------------------------------
if [ "$BUILDAH" = 1 ]; then
  echo "## buildah $(buildah --version | awk '{ print $3 }'), as $(id -un)"
  echo
  broot="$work/buildah"
  mkdir -p "$broot"
  driver="${BUILDAH_DRIVER:-overlay}"
  bah() { buildah --root "$broot/root" --runroot "$broot/run" --storage-driver "$driver" "$@"; }
  # an array, not a function: hyperfine runs it without a shell
  H=(buildah --root "$broot/root" --runroot "$broot/run" --storage-driver "$driver"
    build --isolation chroot --layers --pull=never -q)
  echo "- storage: $broot (driver $driver), isolation chroot, --layers"
  echo
  if ! {
    c=$(bah from scratch) &&
      bah copy "$c" "$BUSYBOX" /bin/busybox &&
      bah run --isolation chroot "$c" -- /bin/busybox --install -s /bin &&
      bah commit -q "$c" localhost/busybox:bench && bah rm "$c"
  } >>"$log" 2>&1; then
    echo "buildah FAILED to make the base image; last lines of its output:"
    echo
    tail -15 "$log" | sed 's/^/    /'
    echo
  else
    steps_dockerfile localhost/busybox:bench 1 >"$ctx/steps1/Containerfile"
    steps_dockerfile localhost/busybox:bench "$STEPS" >"$ctx/steps$STEPS/Containerfile"
    read -r s1 s1min s1max s1cpu < <(time_median h-steps1 "${H[@]}" --no-cache -f "$ctx/steps1/Containerfile" "$ctx/steps1")
    read -r sn snmin snmax sncpu < <(time_median h-stepsN "${H[@]}" --no-cache -f "$ctx/steps$STEPS/Containerfile" "$ctx/steps$STEPS")
    per=$(awk -v a="$sn" -v b="$s1" -v n="$STEPS" 'BEGIN { printf "%.1f", (a - b) / (n - 1) / 1e6 }')
    cpuper=$(awk -v a="$sncpu" -v b="$s1cpu" -v n="$STEPS" 'BEGIN { if (a == "-") print "-"; else printf "%.1f", (a - b) / (n - 1) / 1e6 }')
    echo "### 1. RUN-step overhead (buildah)"
    echo
    echo "| build | median ms | min ms | max ms | CPU ms (mean) |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    echo "| 1 step | $(ms "$s1") | $(ms "$s1min") | $(ms "$s1max") | $(ms "$s1cpu") |"
    echo "| $STEPS steps | $(ms "$sn") | $(ms "$snmin") | $(ms "$snmax") | $(ms "$sncpu") |"
    echo
    echo "**per step: $per ms wall** (marginal), $cpuper ms CPU"
    echo
    echo "### 2. 1-file step on a base of N files (buildah)"
    echo
    echo "| N files in base | base build (once) ms | 1-file step build, median ms | min ms | max ms | CPU ms (mean) |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
    for n in 0 $SIZES; do
      if [ "$n" = 0 ]; then
        base=localhost/busybox:bench; tb="-"
      else
        base="localhost/base:n$n"
        tree_dockerfile localhost/busybox:bench "$n" >"$ctx/tree$n/Containerfile"
        tb=$(ms "$(once "${H[@]}" -t "$base" -f "$ctx/tree$n/Containerfile" "$ctx/tree$n")")
      fi
      printf 'FROM %s\nRUN echo x > /one-file\n' "$base" >"$ctx/one$n/Containerfile"
      read -r t tmin tmax tcpu < <(time_median "h-one$n" "${H[@]}" --no-cache -f "$ctx/one$n/Containerfile" "$ctx/one$n")
      echo "| $n | $tb | $(ms "$t") | $(ms "$tmin") | $(ms "$tmax") | $(ms "$tcpu") |"
    done
    echo
  fi
fi

# --- the same as an unprivileged user ----------------------------------------------------------
if [ -n "${AS_USER:-}" ] && [ "$(id -u)" = 0 ]; then
  u="$(mktemp -d /tmp/bench-as-user.XXXXXX)"
  cp "$BUILDER" "$u/builder"
  cp "${BASH_SOURCE[0]}" "$u/run_overhead.sh"
  cp "$here/lib.sh" "$u/lib.sh"
  cp "$BUSYBOX" "$u/busybox"
  chmod 755 "$u/builder" "$u/run_overhead.sh" "$u/lib.sh" "$u/busybox"
  chown "$AS_USER" "$u" # its TMPDIR and HOME
  runuser -u "$AS_USER" -- env -i PATH="$PATH" HOME="$u" TMPDIR="$u" \
    BUILDER="$u/builder" BUSYBOX="$u/busybox" RUNS="$RUNS" STEPS="$STEPS" SIZES="$SIZES" \
    TIMER="$TIMER" BUILDAH="${AS_USER_BUILDAH:-0}" KEEP="$KEEP" bash "$u/run_overhead.sh" || {
    echo "the run as $AS_USER failed (exit $?)"
  }
  [ "$KEEP" = 1 ] || rm -rf "$u"
fi
