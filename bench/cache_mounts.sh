#!/usr/bin/env bash
# Issue #22: a cache mount that travels with the exported cache. A Go build (a program of 120
# generated packages, ~2,000 functions, nothing precompiled) whose compiler
# cache (/root/.cache/go-build) is a cache mount is built on machine A (an empty store), which
# exports its cache with mounts=true; machines B and C (empty stores) import it, B from the
# export with mounts, C from one without, after a source edit, so the compile step runs on both.
# The step's time on B against C is what a CI runner starting empty gains.
#
# Needs: a Debian base tar as $ROOTFS_TAR (debootstrap --variant=minbase bookworm DIR <mirror>,
# then tar -C DIR --exclude='./dev/*' -cf rootfs.tar . : ADD refuses device nodes), network to
# the Debian mirror for apt-get, and the builder binary as $BUILDER (default:
# target/release/builder).
set -euo pipefail
BUILDER=${BUILDER:-target/release/builder}
ROOTFS_TAR=${ROOTFS_TAR:?set ROOTFS_TAR to a Debian rootfs tar}
work=$(mktemp -d /var/tmp/bench-cache-mounts.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/base" "$work/app/hello"
cp "$ROOTFS_TAR" "$work/base/rootfs.tar"
printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' > "$work/base/Dockerfile"
cat > "$work/app/Dockerfile" <<'DF'
FROM debian:bench
RUN apt-get update && apt-get install -y --no-install-recommends golang-go && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY hello/ ./
RUN --mount=type=cache,target=/root/.cache/go-build go build -o /out/hello . && /out/hello
DF
cat > "$work/app/hello/go.mod" <<'GO'
module hello
go 1.19
GO
# 120 packages of generated code: enough compiling for the compiler cache to matter.
imports=""
calls=""
for p in $(seq -w 0 119); do
  mkdir -p "$work/app/hello/p$p"
  {
    echo "package p$p"
    echo 'import "strings"'
    for f in $(seq 1 16); do
      echo "func F$f(s string) string { b := strings.Builder{}; for i := 0; i < $f; i++ { b.WriteString(strings.ToUpper(s)); if i%3 == 0 { b.WriteString(strings.Repeat(\"-\", i)) } }; return b.String() }"
    done
    echo "func All(s string) int { return len(F1(s)+F2(s)+F3(s)+F4(s)+F5(s)+F6(s)+F7(s)+F8(s)+F9(s)+F10(s)+F11(s)+F12(s)+F13(s)+F14(s)+F15(s)+F16(s)) }"
  } > "$work/app/hello/p$p/p.go"
  imports+="	\"hello/p$p\"
"
  calls+="	n += p$p.All(\"x\")
"
done
{
  echo 'package main'
  echo 'import ('
  echo '	"encoding/json"'
  echo '	"fmt"'
  printf '%s' "$imports"
  echo ')'
  echo 'func main() {'
  echo '	n := 0'
  printf '%s' "$calls"
  echo '	b, _ := json.Marshal(map[string]string{"hello": "world", "v": "1"})'
  echo '	fmt.Println(string(b), n)'
  echo '}'
} > "$work/app/hello/main.go"
base() { BUILDER_ROOT="$work/$1" "$BUILDER" build -q -t debian:bench "$work/base" >/dev/null; }
step_seconds() { # log → seconds of the go build step (its DONE line)
  awk '/RUN --mount=type=cache,target=\/root\/.cache\/go-build/ {n=$1} n && $1==n && $2=="DONE" {print $3; exit}' "$1" | tr -d s
}
for m in a b c; do base "store-$m"; done
run() { # store label args...
  local store=$1 label=$2; shift 2
  local start end
  start=$(date +%s.%N)
  BUILDER_ROOT="$work/$store" "$BUILDER" build --progress=plain "$@" "$work/app" >"$work/$label.log" 2>&1
  end=$(date +%s.%N)
  printf '%-44s build %6.1f s   go build step %6s s\n' "$label" "$(echo "$end - $start" | bc)" "$(step_seconds "$work/$label.log")"
}
run store-a "A: cold, exports mounts=true" --cache-to "type=local,dest=$work/cache-mounts,mode=max,mounts=true"
run store-a "A': the same, exported without mounts" --cache-to "type=local,dest=$work/cache-plain,mode=max"
sed -i 's/"v": "1"/"v": "2"/' "$work/app/hello/main.go"
run store-b "B: fresh store, cache with its mount" --cache-from "type=local,src=$work/cache-mounts"
run store-c "C: fresh store, cache without mounts" --cache-from "type=local,src=$work/cache-plain"
grep -h "restored" "$work"/*.log || true
