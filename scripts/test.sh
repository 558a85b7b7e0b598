#!/usr/bin/env bash
# The project's test command (README.md): format and lint checks, every crate's tests as the
# current user, then — when run as root — the end-to-end and sandbox suites again as an
# unprivileged user with /etc/subuid ranges, which is the rootless path users take.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

if [ "$(id -u)" != 0 ]; then
  exit 0
fi

# --- rootless pass -------------------------------------------------------------------------
user=builder-ci
if ! id "$user" >/dev/null 2>&1; then
  useradd -m -s /bin/bash "$user"
fi
grep -q "^$user:" /etc/subuid || usermod --add-subuids 200000-265535 "$user"
grep -q "^$user:" /etc/subgid || usermod --add-subgids 200000-265535 "$user"

stage=$(mktemp -d /tmp/builder-rootless.XXXXXX)
chmod 755 "$stage"
# Test executables of the suites that exercise the rootless path.
cargo test --workspace --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys
keep = {"build_scratch", "errors", "run_steps", "run_cmd", "sandbox"}
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] != ["bin"] and m["profile"]["test"]:
        if m["target"]["name"] in keep:
            print(m["target"]["name"], m["executable"])
' > "$stage/tests.txt"
builder_bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/builder"
mkdir -p "$stage/bin"
cp "$builder_bin" "$stage/bin/builder"
cp -r tests/fixtures "$stage/fixtures"
while read -r name exe; do cp "$exe" "$stage/bin/test-$name"; done < "$stage/tests.txt"
chown -R "$user:$user" "$stage"

status=0
while read -r name _; do
  echo "=== rootless: $name (as $user) ==="
  su "$user" -s /bin/bash -c "cd '$stage' && BUILDER_BIN='$stage/bin/builder' BUILDER_FIXTURES='$stage/fixtures' HOME='$stage' '$stage/bin/test-$name' --test-threads=2" || status=1
done < "$stage/tests.txt"
rm -rf "$stage"
exit $status
