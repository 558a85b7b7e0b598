#!/usr/bin/env bash
# bench/real_projects.sh: issue #17 item 3, builder against BuildKit on two real multi-stage
# builds whose time is mostly the compiler's, to see what builder adds on top of it.
#
#   DOCKER_HOST=unix:///var/tmp/dk.sock BASE_TAR=/path/rootfs.tar bench/real_projects.sh   (root)
#
#   rust  ripgrep 13.0.0 (its published crate and Cargo.lock; dependencies vendored on the host
#         with `cargo vendor --locked`, 6,300 files / 163 MB of context), `COPY . .` and
#         `cargo build --release --offline` in a toolchain stage, the binary copied into a
#         Debian stage that runs it;
#   node  a TypeScript API (express, zod, date-fns, pino; typescript, eslint and @types as dev
#         dependencies): `npm ci`, `tsc`, `npm prune --omit=dev` in a build stage, node_modules
#         and dist copied into the final stage.
# Each is timed cold (--no-cache) and after a one-line edit of a source file (the compile and
# the steps after it rerun), builder and BuildKit interleaved RUNS times after a warm-up;
# medians and ratios (builder ÷ BuildKit) are printed as a Markdown table.
#
# Both tools pull the same base images from a registry this script serves on 127.0.0.1:$PORT
# (Debian's docker-registry): a Debian image made from BASE_TAR (a debootstrap --variant=minbase
# rootfs tarball; .ci/run makes one) and a toolchain image on it (`apt-get install cargo nodejs
# npm` from the mirror the rootfs's apt sources name, over the host network). Needs network
# access to that mirror, to crates.io (the crate and `cargo vendor` on the host) and to the npm
# registry (`npm ci` in the build). Knobs: RUNS (2), PORT (5055), ONLY="rust node",
# CASES="cold edit", CA_BUNDLE (the host's CAs, for npm behind a TLS proxy), KEEP=1,
# TMPDIR (work dir, default /var/tmp). Progress on stderr, command output in $work/log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
RUNS="${RUNS:-2}" PORT="${PORT:-5055}" KEEP="${KEEP:-0}" ONLY="${ONLY:-rust node}"
CASES="${CASES:-cold edit}"
BASE_TAR="${BASE_TAR:-/var/tmp/builder-ci-attest/rootfs.tar}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/tmp/dk.sock}" DOCKER_BUILDKIT=1
DOCKER="${DOCKER:-/usr/bin/docker}"
only() { [[ " $ONLY " == *" $1 "* ]]; }
[ -r "$BASE_TAR" ] || { echo "BASE_TAR=$BASE_TAR: a Debian rootfs tarball is needed" >&2; exit 2; }
command -v docker-registry >/dev/null || { echo "apt-get install docker-registry" >&2; exit 2; }
"$DOCKER" version >/dev/null 2>&1 || { echo "no docker daemon at $DOCKER_HOST" >&2; exit 2; }

echo "building the release binary..." >&2
(cd "$repo" && cargo build --release --quiet --bin builder)
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
BUILDER="$target/release/builder"

work="$(mktemp -d "${TMPDIR:-/var/tmp}/bench-real.XXXXXX")"
log="$work/log"
export BUILDER_ROOT="$work/store"
reg="127.0.0.1:$PORT"
tag="bench-real-$$"
cleanup() {
  [ -n "${reg_pid:-}" ] && kill "$reg_pid" 2>/dev/null
  "$DOCKER" image rm -f "localhost/$tag-rust" "localhost/$tag-node" "$reg/debian:bench" \
    "$reg/toolchain:bench" >/dev/null 2>&1 || true
  if [ "$KEEP" = 1 ]; then echo "kept $work" >&2; return; fi
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

mkdir -p "$work/registry"
cat >"$work/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $reg
EOF
docker-registry serve "$work/registry.yml" >>"$log" 2>&1 &
reg_pid=$!
for _ in $(seq 50); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.2; done

echo "preparing the base images in $work..." >&2
mkdir -p "$work/base" "$work/toolchain"
cp "$BASE_TAR" "$work/base/rootfs.tar"
printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' >"$work/base/Dockerfile"
"$BUILDER" build --progress=quiet -t "$reg/debian:bench" --push "$work/base" >>"$log" 2>&1
rm -f "$work/base/rootfs.tar"
printf 'FROM %s/debian:bench\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cargo nodejs npm ca-certificates && rm -rf /var/lib/apt/lists/*\n' \
  "$reg" >"$work/toolchain/Dockerfile"
"$BUILDER" build --progress=quiet --network host -t "$reg/toolchain:bench" --push "$work/toolchain" >>"$log" 2>&1
"$DOCKER" pull -q "$reg/debian:bench" >>"$log" 2>&1
"$DOCKER" pull -q "$reg/toolchain:bench" >>"$log" 2>&1

# --- the projects -----------------------------------------------------------------------------
rust="$work/rust"
if only rust; then
  mkdir -p "$rust"
  curl -sSfL https://static.crates.io/crates/ripgrep/ripgrep-13.0.0.crate | tar xz -C "$rust" --strip-components=1
  mkdir -p "$rust/.cargo"
  (cd "$rust" && cargo vendor --locked vendor >.cargo/config.toml 2>>"$log")
  grep -q vendored-sources "$rust/.cargo/config.toml" || { echo "cargo vendor wrote no source replacement" >&2; exit 1; }
  printf 'target\n' >"$rust/.dockerignore"
  cat >"$rust/Dockerfile" <<EOF
FROM $reg/toolchain:bench AS build
WORKDIR /src
COPY . .
RUN cargo build --release --offline --locked

FROM $reg/debian:bench
COPY --from=build /src/target/release/rg /usr/local/bin/rg
RUN rg --version
EOF
fi
node="$work/node"
if only node; then
  mkdir -p "$node/src"
  cat >"$node/package.json" <<'EOF'
{
  "name": "bench-api",
  "version": "1.0.0",
  "private": true,
  "main": "dist/index.js",
  "dependencies": { "express": "^4.19.2", "zod": "^3.23.8", "date-fns": "^3.6.0", "pino": "^9.3.2" },
  "devDependencies": { "typescript": "^5.5.4", "@types/express": "^4.17.21", "@types/node": "^20.14.0", "eslint": "^8.57.0" }
}
EOF
  cat >"$node/tsconfig.json" <<'EOF'
{ "compilerOptions": { "target": "es2020", "module": "commonjs", "outDir": "dist", "rootDir": "src", "strict": true, "esModuleInterop": true } }
EOF
  cat >"$node/src/index.ts" <<'EOF'
import express from "express";
import { z } from "zod";
import { formatISO } from "date-fns";
import pino from "pino";
import { route } from "./route";

const log = pino();
const app = express();
const Item = z.object({ name: z.string(), count: z.number().int() });
app.use(express.json());
app.post("/items", (req, res) => {
  const parsed = Item.safeParse(req.body);
  if (!parsed.success) { res.status(400).json(parsed.error.issues); return; }
  res.json({ ...parsed.data, at: formatISO(new Date()) });
});
app.get("/health", route);
app.listen(8080, () => log.info("listening"));
EOF
  cat >"$node/src/route.ts" <<'EOF'
import type { Request, Response } from "express";
export function route(_req: Request, res: Response): void {
  res.json({ ok: true });
}
EOF
  (cd "$node" && npm install --package-lock-only --ignore-scripts --no-audit --no-fund >>"$log" 2>&1)
  printf 'node_modules\ndist\n' >"$node/.dockerignore"
  # npm checks TLS against the image's CAs; where the host reaches the registry through a
  # proxy with its own CA, the host's bundle is bind-mounted into the npm ci step (both tools).
  cp "$CA_BUNDLE" "$node/host-ca.crt"
  cat >"$node/Dockerfile" <<EOF
FROM $reg/toolchain:bench AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=bind,source=host-ca.crt,target=/etc/ssl/host-ca.crt \\
    NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca.crt npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p .
RUN npm prune --omit=dev

FROM $reg/toolchain:bench
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
CMD ["node", "dist/index.js"]
EOF
fi

# --- timing -----------------------------------------------------------------------------------
b_build() { "$BUILDER" build --progress=plain --network host -t "localhost/$tag-$1" "${@:2}"; }
k_build() { "$DOCKER" build --progress=plain --network host -t "localhost/$tag-$1" "${@:2}"; }
# shellcheck source=lib.sh
. "$here/lib.sh"
s() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1e9 }'; }

declare -A T
# measure NAME PREP PROJECT ARGS...: RUNS+1 interleaved rounds, the first a warm-up
measure() {
  local name="$1" prep="$2" project="$3" r t ns; shift 3
  declare -A acc=()
  for ((r = 0; r <= RUNS; r++)); do
    for t in b k; do
      "$prep" "$project"
      ns=$(run_tool "$t" "$project" "$@")
      [ "$r" = 0 ] || acc[$t]+=" $ns"
    done
  done
  for t in b k; do
    # shellcheck disable=SC2086
    T[$name,$t]=$(median ${acc[$t]})
  done
  echo "  $name: builder $(s "${T[$name,b]}") s, BuildKit $(s "${T[$name,k]}") s (load $(load))" >&2
}
nop() { :; }
edit_n=0
edit() {
  edit_n=$((edit_n + 1))
  case "$1" in
    rust) echo "// edit $edit_n" >>"$rust/crates/core/main.rs" ;;
    node) echo "// edit $edit_n" >>"$node/src/route.ts" ;;
  esac
}

echo "# bench/real_projects.sh"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "- machine: $(nproc) cores, $(free -h | awk '/^Mem:/ { print $2 }') RAM; BuildKit of dockerd $("$DOCKER" version --format '{{.Server.Version}}')"
echo "- median of $RUNS interleaved runs after 1 warm-up; load average at start: $(load)"
echo
for p in rust node; do
  only "$p" || continue
  [[ " $CASES " == *" cold "* ]] && measure "$p-cold" nop "$p" --no-cache "$work/$p"
  [[ " $CASES " == *" edit "* ]] && measure "$p-edit" edit "$p" "$work/$p"
done
echo "| case | builder | BuildKit | builder ÷ BuildKit |"
echo "| --- | --- | --- | --- |"
for p in rust node; do
  only "$p" || continue
  for c in $CASES; do
    echo "| $p $c | $(s "${T[$p-$c,b]}") s | $(s "${T[$p-$c,k]}") s | $(ratio "${T[$p-$c,b]}" "${T[$p-$c,k]}") |"
  done
done
