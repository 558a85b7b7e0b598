# bench/lib.sh: timing helpers shared by the benchmark scripts (sourced, not run).
#
# The caller sets: work (a temp dir), log (a file collecting every command's output),
# RUNS (timed runs per measurement), TIMER (hyperfine | date).

# ms with one decimal from nanoseconds ("-" stays "-")
ms() { awk -v n="$1" 'BEGIN { if (n == "-") print "-"; else printf "%.1f", n / 1e6 }'; }

# time_median NAME CMD...: runs CMD once to warm up, then RUNS times; prints "median min max" wall,
# nanoseconds, then the mean CPU time (user + system, children included) with hyperfine, else "-".
# A failing CMD aborts with its log.
time_median() {
  local name="$1"; shift
  if [ "$TIMER" = hyperfine ]; then
    local json="$work/$name.json" quoted=""
    for a in "$@"; do quoted+=" $(printf '%q' "$a")"; done
    if ! hyperfine -N --style none --warmup 1 --runs "$RUNS" --export-json "$json" -- "${quoted# }" \
      >>"$log" 2>&1; then
      echo "FAILED: $*" >&2; tail -30 "$log" >&2; exit 1
    fi
    python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
t = r["times"]
cpu = (r.get("user", 0) + r.get("system", 0)) * 1e9
print(int(r["median"] * 1e9), int(min(t) * 1e9), int(max(t) * 1e9), int(cpu))
PY
  else
    local i t0 t1 times=()
    "$@" >>"$log" 2>&1 || { echo "FAILED: $*" >&2; tail -30 "$log" >&2; exit 1; }
    for ((i = 0; i < RUNS; i++)); do
      t0=$(date +%s%N)
      "$@" >>"$log" 2>&1 || { echo "FAILED: $*" >&2; tail -30 "$log" >&2; exit 1; }
      t1=$(date +%s%N)
      times+=($((t1 - t0)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)], a[1], a[NR], "-" }'
  fi
}

# once CMD...: runs CMD once and prints its wall time in ns (for one-off base builds)
once() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >>"$log" 2>&1 || { echo "FAILED: $*" >&2; tail -30 "$log" >&2; exit 1; }
  t1=$(date +%s%N)
  echo $((t1 - t0))
}

# median NUMBERS...: the middle value (the lower middle for an even count)
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# run_tool TOOL ARGS...: one run of ${TOOL}_build ARGS (a function the calling script defines),
# its output appended to $log; prints the wall time in ns. A failure aborts with the log's tail.
run_tool() {
  local t="$1" t0 t1; shift
  t0=$(date +%s%N)
  "${t}_build" "$@" >>"$log" 2>&1 || { echo "FAILED: $t $*" >&2; tail -30 "$log" >&2; exit 1; }
  t1=$(date +%s%N)
  echo $((t1 - t0))
}

# ratio A B: A ÷ B with two decimals; "-" when either is missing or B is 0
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

# load: the 1, 5 and 15 minute load averages, printed beside timings taken on a shared machine
load() { cut -d' ' -f1-3 /proc/loadavg; }

# large_files DIR MIB: ten MIB-MiB files blob0.bin..blob9.bin in DIR (made), half random, half
# text, like binaries and data files: the large-file case of copy_speed.sh and large_ab.sh.
large_files() {
  mkdir -p "$1"
  python3 - "$1" "$2" <<'PY'
import os, sys
d, mib = sys.argv[1], int(sys.argv[2])
text = b"".join(b"row %d value=%d name=item%d\n" % (i, i * 7, i % 97) for i in range(4000))[:65536]
for k in range(10):
    with open(os.path.join(d, f"blob{k}.bin"), "wb") as f:
        for i in range(mib * 16):
            f.write(os.urandom(65536) if i % 2 == 0 else text)
PY
}
