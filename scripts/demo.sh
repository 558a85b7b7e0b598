#!/usr/bin/env bash
# The main job, from a fresh machine: install what builder needs, build it, build the example
# multi-stage Dockerfile (examples/hello) and run the image. Nothing comes from a registry: the
# example's base is the static busybox binary from Debian, copied into the build context.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  command -v busybox >/dev/null && command -v newuidmap >/dev/null || {
    apt-get update -qq && apt-get install -y -qq busybox-static uidmap >/dev/null
  }
fi
cargo build --release --quiet
builder="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/builder"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -r examples/hello/. "$ctx/"
cp "$(command -v busybox)" "$ctx/busybox"

"$builder" build -t hello:latest "$ctx"
"$builder" images
"$builder" run --rm hello:latest
"$builder" run --rm hello:latest "$(whoami)"
