#!/usr/bin/env bash
# scripts/compare_with_buildkit.sh: issue #14 (b), "same Dockerfile, same image", one command.
#
#   scripts/compare_with_buildkit.sh [NAME...]       (as root, from anywhere)
#
# Builds every realistic Dockerfile in tests/fixtures/real_projects/<name>/ (or the NAMEs given)
# with BuildKit (the dockerd at $DOCKER_HOST, default unix:///var/tmp/dk.sock, through
# `DOCKER_BUILDKIT=1 docker build --network host`) and with builder, then diffs the two images'
# file trees with scripts/compare_trees.py: paths, types, owners, modes, symlink targets, device
# numbers, xattrs and file contents (what it ignores, each with its reason, is listed there).
# BuildKit's tree comes from `docker save` (layers applied in order, whiteouts honoured),
# builder's from `--output type=tar`.
#
# The Debian base both build on: `FROM scratch` + `ADD rootfs.tar /` of $BASE_TAR (default
# /var/tmp/bench/rootfs.tar, a debootstrap minbase of bookworm), built by each tool and named
# localhost/compare/debian:bookworm, so the base's own tree is compared too.
# Each fixture is copied to a work dir with group-writable files and directories first, as a
# checkout made under umask 002 has them (the case where COPY of a directory used to differ).
#
# Behind a TLS-intercepting proxy (whose CA the Debian image does not trust), set
# PIP_TRUSTED_HOST="pypi.org files.pythonhosted.org" and NPM_CONFIG_STRICT_SSL=false: each is
# passed to both tools as a build arg when set (the fixtures that fetch over https declare them).
# Knobs: BUILDER (a builder binary; default: `cargo build --bin builder`, $CARGO_TARGET_DIR
# honoured), DOCKER (the client, default /usr/bin/docker: it builds with the daemon's BuildKit),
# TMPDIR (work dir parent, default /var/tmp), KEEP=1 keeps the work dir (archives and diffs).
# Output: a Markdown table on stdout (progress on stderr; logs and diffs in the work dir).
# Exit status: 0 when every tree matched, 1 otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
fixtures="$repo/tests/fixtures/real_projects"
BASE_TAR="${BASE_TAR:-/var/tmp/bench/rootfs.tar}"
KEEP="${KEEP:-0}"
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/tmp/dk.sock}" DOCKER_BUILDKIT=1
DOCKER="${DOCKER:-/usr/bin/docker}"
docker() { "$DOCKER" "$@"; }

[ -r "$BASE_TAR" ] || { echo "no base rootfs tarball at $BASE_TAR (set BASE_TAR)" >&2; exit 2; }
docker version >/dev/null 2>&1 || { echo "no docker daemon at $DOCKER_HOST" >&2; exit 2; }
if [ -z "${BUILDER:-}" ]; then
  echo "building builder..." >&2
  (cd "$repo" && cargo build --quiet --bin builder)
  target="${CARGO_TARGET_DIR:-$repo/target}"
  case "$target" in /*) ;; *) target="$repo/$target" ;; esac
  BUILDER="$target/debug/builder"
fi

work="$(mktemp -d "${TMPDIR:-/var/tmp}/compare-bk.XXXXXX")"
export BUILDER_ROOT="$work/store"
base=localhost/compare/debian:bookworm
# build args taken from the environment (KEY alone: both tools read its value from there)
build_args=()
for a in PIP_TRUSTED_HOST NPM_CONFIG_STRICT_SSL; do
  [ -n "${!a:-}" ] && build_args+=(--build-arg "$a")
done
names=()
cleanup() {
  for n in "${names[@]}"; do docker image rm -f "localhost/compare/$n" >/dev/null 2>&1 || true; done
  docker image rm -f "$base" >/dev/null 2>&1 || true
  if [ "$KEEP" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "base image from $BASE_TAR..." >&2
mkdir -p "$work/base"
ln "$BASE_TAR" "$work/base/rootfs.tar" 2>/dev/null || cp "$BASE_TAR" "$work/base/rootfs.tar"
printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' >"$work/base/Dockerfile"
"$BUILDER" build --progress=plain -t "$base" "$work/base" >"$work/base.builder.log" 2>&1
docker build --network host -t "$base" "$work/base" >"$work/base.buildkit.log" 2>&1

if [ $# -gt 0 ]; then set -- "$@"; else set -- $(cd "$fixtures" && ls); fi
echo "| project | BuildKit | builder | file trees |"
echo "| --- | --- | --- | --- |"
status=0
for name in "$@"; do
  names+=("$name")
  ctx="$work/ctx/$name"
  mkdir -p "$ctx"
  cp -a "$fixtures/$name/." "$ctx/"
  chmod -R g+w "$ctx"
  echo "$name: BuildKit..." >&2
  bk=ok b=ok result="-"
  if docker build --network host "${build_args[@]}" -t "localhost/compare/$name" "$ctx" >"$work/$name.buildkit.log" 2>&1; then
    docker save "localhost/compare/$name" >"$work/$name.buildkit.tar"
  else
    bk="failed: $(grep -v '^\s*$' "$work/$name.buildkit.log" | tail -1 | cut -c1-120 || true)"
  fi
  echo "$name: builder..." >&2
  if ! "$BUILDER" build --progress=plain "${build_args[@]}" -t "localhost/compare/$name" \
    --output "type=tar,dest=$work/$name.builder.tar" "$ctx" >"$work/$name.builder.log" 2>&1; then
    b="failed: $(grep -v '^\s*$' "$work/$name.builder.log" | tail -1 | cut -c1-120 || true)"
  fi
  if [ "$bk" = ok ] && [ "$b" = ok ]; then
    # RUN mounts' targets (absolute ones; the fixtures use no relative targets)
    stubs=()
    for t in $(grep -o -- '--mount=[^ ]*' "$ctx/Dockerfile" | grep -o '\(target\|dst\|destination\)=/[^, ]*' | cut -d= -f2); do
      stubs+=(--mount-stub "$t")
    done
    if python3 "$here/compare_trees.py" "${stubs[@]}" "$work/$name.buildkit.tar" "$work/$name.builder.tar" \
      >"$work/$name.diff" 2>"$work/$name.diff.summary"; then
      result="same ($(cut -d' ' -f1 "$work/$name.diff.summary") paths"
      n=$(grep -c '(not counted)' "$work/$name.diff" || true)
      [ "$n" = 0 ] && result+=")" || result+="; $n mount point stubs only the old BuildKit leaves)"
    else
      result="**$(grep -vc '(not counted)' "$work/$name.diff") differences** (first: \`$(head -1 "$work/$name.diff" | cut -c1-100)\`)"
      status=1
    fi
  else
    status=1
  fi
  echo "| $name | $bk | $b | $result |"
  # the archives are large: kept only with KEEP=1
  [ "$KEEP" = 1 ] || rm -f "$work/$name.buildkit.tar" "$work/$name.builder.tar"
done
exit "$status"
