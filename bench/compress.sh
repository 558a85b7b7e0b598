#!/usr/bin/env bash
# Layer compression benchmark: a generated 1 GiB layer (mixed text and random
# blocks) through single-threaded gzip (the old write_layer path), parallel gzip
# and multithreaded zstd. Prints throughput, CPU seconds and peak RSS of each.
#
#   bench/compress.sh [MiB] [THREADS]      (defaults: 1024, every core)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
threads=${2:-$(nproc)}
cargo build -q --release -p builder-snapshot --example compress_bench
bin=${CARGO_TARGET_DIR:-target}/release/examples/compress_bench
for mode in none gzip1 pgzip zstd; do
  line=$(/usr/bin/time -v "$bin" "$mode" "$mib" "$threads" 2>/tmp/compress_bench.time.$$)
  # CPU seconds and share too: on a busy machine elapsed time hides the parallelism.
  stats=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} /Percent of CPU/ {p=$2}
    /Maximum resident set size/ {r=$2} END {printf "cpu_s=%.2f cpu=%s peak_rss_kib=%s", u+s, p, r}' \
    /tmp/compress_bench.time.$$)
  echo "$line $stats"
done
rm -f /tmp/compress_bench.time.$$
