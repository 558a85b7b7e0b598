#!/bin/sh
# Run the builder-sandbox test suite as root AND as unprivileged users, as CI does.
#
# Must be started as root from the workspace root. Builds the tests once (as root), then runs
# the prebuilt test binaries as:
#   builduser  - has a /etc/subuid + /etc/subgid range  -> MappedRange user namespace
#   nosubuser  - has no subordinate ids                  -> SingleId user namespace fallback
# The users are created if missing. Needs: busybox-static (/bin/busybox), uidmap
# (newuidmap/newgidmap), passwd (useradd/usermod), util-linux (su).
set -eu

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-sandbox}"

if ! id builduser >/dev/null 2>&1; then
    useradd -m -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 builduser
    usermod --add-subuids 100000-165535 --add-subgids 100000-165535 builduser
fi
if ! id nosubuser >/dev/null 2>&1; then
    useradd -m -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 nosubuser
fi

# Root run (also builds everything).
cargo test -p builder-sandbox

# The test binaries embed the harness path (CARGO_BIN_EXE_*), which lives in the target dir;
# it must be readable by the unprivileged users (default umask 022 makes it so).
bins=$(cargo test -p builder-sandbox --no-run --message-format=json 2>/dev/null \
    | grep '"test":true' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
[ -n "$bins" ] || { echo "no test binaries found" >&2; exit 1; }

for user in builduser nosubuser; do
    for bin in $bins; do
        echo "== $user: $bin"
        su "$user" -s /bin/sh -c "cd /tmp && '$bin'"
    done
done
