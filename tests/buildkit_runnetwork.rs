//! End to end: ports of BuildKit's RUN --network integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_runnetwork_test.go), each asserting what the Go test asserts
//! for a rootless BuildKit, which builder's networking follows (the host's network by default).
//! testRunHostNetwork is tests/entitlements_gate_privileged_run_steps.rs.

mod common;

use std::io::Write;
use std::net::TcpListener;

use common::Env;

/// testRunNoNetwork (rootless): `--network=none` leaves a RUN step without eth0.
#[test]
fn run_no_network() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN --network=none ! ip link show eth0\n",
        )],
    );
    env.build_ok(&ctx, &[]);
}

/// testRunGlobalNetwork: with the build's network set to host (and network.host allowed), a RUN
/// reaches a server on the host's 127.0.0.1; `RUN --network=none` does not. (Debian's busybox
/// `nc` has no `-z`: the refused connection is checked with `nc -w 1`.)
#[test]
fn run_global_network() {
    let env = Env::new();
    env.busybox_base();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.write_all(b"foo\n");
        }
    });
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox:test\nRUN nc 127.0.0.1 {port} | grep foo\n\
                 RUN --network=none ! nc -w 1 127.0.0.1 {port} </dev/null\n"
            ),
        )],
    );
    env.build_ok(&ctx, &["--network", "host", "--allow", "network.host"]);
}
