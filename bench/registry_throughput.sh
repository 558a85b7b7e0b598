#!/usr/bin/env bash
# Push and pull throughput of a 1 GiB single-layer image against a local registry
# (Debian's docker-registry on 127.0.0.1), builder vs `skopeo copy`, with peak RSS of each.
#
#   bench/registry_throughput.sh [SIZE_MIB]        (default 1024; run as root or a rootless user)
#
# Needs: docker-registry, skopeo, GNU time (/usr/bin/time). Uses a release build of builder.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
cargo build --release --quiet
builder="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/builder"

work=$(mktemp -d /var/tmp/builder-bench.XXXXXX)
trap 'kill $reg_pid 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $work/registry } }
http: { addr: 127.0.0.1:$port, secret: bench }
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
host=127.0.0.1:$port

# The image: one layer holding SIZE_MIB of incompressible data (worst case for the wire).
mkdir -p "$work/ctx"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/ctx/big"
printf 'FROM scratch\nCOPY big /big\n' > "$work/ctx/Dockerfile"
export BUILDER_ROOT="$work/root-a"
"$builder" build -q -t "$host/bench/big:1" "$work/ctx" >/dev/null
"$builder" save --format oci -o "$work/oci.tar" "$host/bench/big:1"
mkdir -p "$work/oci" && tar -xf "$work/oci.tar" -C "$work/oci"
layer_bytes=$(du -b "$work/oci/blobs/sha256" | tail -1 | cut -f1)

measure() { # label command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
  read -r secs kib < "$work/time"
  python3 -c "import sys; s=float('$secs'); print(f'| $label | {s:.2f} | {$layer_bytes/1e6/s:.0f} | {$kib/1024:.1f} |')"
}

echo "image: $(numfmt --to=iec "$layer_bytes") of blobs; registry docker-registry $(docker-registry --version 2>/dev/null | awk '{print $3}')"
echo "| operation | seconds | MB/s | peak RSS (MiB) |"
echo "| --- | --- | --- | --- |"
measure "builder push" "$builder" push "$host/bench/big:1"
BUILDER_ROOT="$work/root-b" measure "builder pull (empty store)" "$builder" pull "$host/bench/big:1"
measure "skopeo copy oci: → registry" skopeo copy --quiet --dest-tls-verify=false "oci:$work/oci:1" "docker://$host/bench/skopeo:1"
measure "skopeo copy registry → oci:" skopeo copy --quiet --src-tls-verify=false "docker://$host/bench/skopeo:1" "oci:$work/oci-pulled:1"
