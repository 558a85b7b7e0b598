#!/usr/bin/env bash
# bench/sbom_layer_cache.sh: issue #21 (item 5), what the per-layer SBOM scan cache saves.
#
# A Debian minbase image (`ADD rootfs.tar /` onto scratch, ~200 MB in one layer) plus a small
# COPY, built once with --sbom=true; then the same build again, unchanged (every step cached),
# timed with the stored scans (`sbom-scans/` kept) and without them (removed before each run,
# so the SBOM reads every layer again, as before the cache). The difference is the saving.
#
#   BUILDER=path/to/builder ROOTFS=/var/tmp/bench/rootfs.tar RUNS=5 bench/sbom_layer_cache.sh
#
# BUILDER defaults to the release binary under $CARGO_TARGET_DIR (built if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-5}
TIMER=date
ROOTFS=${ROOTFS:-/var/tmp/bench/rootfs.tar}
if [ -z "${BUILDER:-}" ]; then
  (cd "$here/.." && cargo build --release --bin builder >&2)
  BUILDER=${CARGO_TARGET_DIR:-$here/../target}/release/builder
fi
work=$(mktemp -d "${TMPDIR:-/var/tmp}/sbom-bench.XXXXXX")
log="$work/log"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
# shellcheck source=lib.sh
. "$here/lib.sh"

ctx="$work/ctx"
mkdir -p "$ctx/six-1.16.0.dist-info"
ln "$ROOTFS" "$ctx/rootfs.tar" 2>/dev/null || cp "$ROOTFS" "$ctx/rootfs.tar"
printf 'Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n' >"$ctx/six-1.16.0.dist-info/METADATA"
printf 'FROM scratch\nADD rootfs.tar /\nCOPY six-1.16.0.dist-info /usr/lib/python3/dist-packages/six-1.16.0.dist-info\n' \
  >"$ctx/Dockerfile"
export BUILDER_ROOT="$work/root"
build() { "$BUILDER" build --progress=quiet --sbom=true -o "type=oci,dest=$work/out,tar=false" "$ctx"; }
uncached() { rm -rf "$BUILDER_ROOT/sbom-scans"; build; }

first=$(once build)
read -r with _ _ _ < <(time_median kept build)
read -r without _ _ _ < <(time_median removed uncached)
echo "builder: $BUILDER"
echo "layers: $(ls "$BUILDER_ROOT/sbom-scans" | wc -l) stored scans, $(du -sh "$BUILDER_ROOT/sbom-scans" | cut -f1)"
printf '| build | wall ms (median of %s) |\n| --- | --- |\n' "$RUNS"
printf '| first build (cold, scans stored) | %s |\n' "$(ms "$first")"
printf '| unchanged rebuild, scans reused | %s |\n' "$(ms "$with")"
printf '| unchanged rebuild, scans removed (every layer read again) | %s |\n' "$(ms "$without")"
printf '| **saving per rebuild** | **%s** |\n' "$(ms $((without - with)))"
