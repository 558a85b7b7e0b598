//! End to end: `RUN --mount=type=ssh` with `--ssh ID=SOCKET` gives the step an agent socket of
//! its own (BuildKit's default path, owner and mode, or the mount's), sets SSH_AUTH_SOCK, and
//! leaves nothing in the image. The relaying itself is unit-tested in solver/src/ssh_agent.rs
//! (the busybox image has no unix-socket client).

mod common;

use std::os::unix::net::UnixListener;

use common::{Env, image_layers};

#[test]
fn ssh_mounts_get_a_forwarded_socket_and_leave_no_trace() {
    let env = Env::new();
    env.busybox_base();
    let agent = env.path("agent.sock");
    let _listener = UnixListener::bind(&agent).unwrap();
    let ctx = env.context(
        "ssh",
        &[(
            "Dockerfile",
            "FROM busybox:test\n\
             RUN --mount=type=ssh [ -S \"$SSH_AUTH_SOCK\" ] && echo \"$SSH_AUTH_SOCK $(stat -c '%a %u' \"$SSH_AUTH_SOCK\")\" > /first\n\
             RUN --mount=type=ssh,id=deploy,target=/agent.sock,uid=1000,mode=0660 [ \"$SSH_AUTH_SOCK\" = /agent.sock ] && stat -c '%a %u' /agent.sock > /second\n\
             RUN echo \"${SSH_AUTH_SOCK:-unset}\" > /after\n",
        )],
    );
    let agent_arg = |id: &str| format!("{id}={}", agent.display());
    env.ok(&[
        "build",
        "--progress=plain",
        "--ssh",
        &agent_arg("default"),
        "--ssh",
        &agent_arg("deploy"),
        "-t",
        "ssh:1",
        ctx.to_str().unwrap(),
    ]);
    let show = |file: &str| env.ok(&["run", "--rm", "ssh:1", "cat", file]);
    assert_eq!(show("/first"), "/run/buildkit/ssh_agent.0 600 0\n");
    assert_eq!(show("/second"), "660 1000\n");
    assert_eq!(show("/after"), "unset\n");
    let config = env.inspect("ssh:1");
    assert!(
        !config["config"]["Env"]
            .to_string()
            .contains("SSH_AUTH_SOCK")
    );
    for layer in image_layers(&env, "ssh:1") {
        for entry in layer {
            assert!(
                !entry.0.contains("ssh_agent") && !entry.0.contains("agent.sock"),
                "socket mount point leaked into a layer: {}",
                entry.0
            );
        }
    }
}

#[test]
fn ssh_errors_are_clear() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ssh",
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN --mount=type=ssh,required=true true\n",
        )],
    );
    let ctx = ctx.to_str().unwrap();
    let out = env.run(&["build", "--progress=plain", ctx]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:2") && stderr.contains("ssh agent \"default\" is required"),
        "{stderr}"
    );

    // --ssh default needs an agent; a file that is no key is not one either.
    let out = env
        .cmd()
        .env_remove("SSH_AUTH_SOCK")
        .args(["build", "--ssh", "default", ctx])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SSH_AUTH_SOCK is not set"));
    let key = env.path("id_ed25519");
    std::fs::write(&key, "not a socket").unwrap();
    let out = env.run(&["build", "--ssh", &format!("default={}", key.display()), ctx]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("is neither an agent socket nor an OpenSSH private key")
    );
}
