//! Test support: a real `docker-registry` process, a directory blob store that
//! is also an OCI image layout (so skopeo can read it), and small test images.
#![allow(dead_code)]

pub mod fault_proxy;
pub mod image;
pub mod registry;
pub mod store;
pub mod token_server;

/// Runs a command, failing the test with its output if it fails.
pub fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
