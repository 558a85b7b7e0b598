//! `--platform` other than the host's (issue #18): `BUILDPLATFORM` stays the host's, a RUN step
//! for a foreign platform runs through its binfmt_misc emulator, and where none is registered it
//! fails before running, naming the platform and how to install one: never a native run.

mod common;

use std::fs;
use std::path::Path;

use common::{Env, busybox_path};

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A handler for qemu's name of an architecture is registered.
fn emulated(qemu: &str) -> bool {
    Path::new(BINFMT).join(format!("qemu-{qemu}")).exists()
}

#[test]
fn build_platform_is_the_host_and_target_platform_the_one_asked_for() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nARG BUILDPLATFORM TARGETPLATFORM TARGETARCH BUILDARCH\n\
             LABEL build=$BUILDPLATFORM target=$TARGETPLATFORM barch=$BUILDARCH tarch=$TARGETARCH\n",
        )],
    );
    env.build_ok(&ctx, &["--platform", "linux/s390x", "-t", "p:1"]);
    let labels = env.inspect("p:1")["config"]["Labels"].clone();
    assert_eq!(labels["build"], format!("linux/{}", host_arch()));
    assert_eq!(labels["barch"], host_arch());
    assert_eq!(labels["target"], "linux/s390x");
    assert_eq!(labels["tarch"], "s390x");
}

#[test]
fn a_run_step_without_an_emulator_fails_before_running() {
    // A platform no handler is registered for on this machine.
    let candidates = [
        ("linux/loong64", "loongarch64"),
        ("linux/s390x", "s390x"),
        ("linux/ppc64le", "ppc64le"),
        ("linux/riscv64", "riscv64"),
        ("linux/mips64le", "mips64el"),
    ];
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"touch\", \"/ran\"]\n",
        )],
    );
    fs::copy(busybox_path(), ctx.join("busybox")).unwrap();
    let refused = |platform: &str, says: &str| {
        let out = env.build(&ctx, &["--platform", platform]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{log}");
        assert!(
            log.contains(&format!("RUN step for {platform}")) && log.contains(says),
            "{log}"
        );
        // #2 is the RUN step (#1 the COPY): it never ran, natively or otherwise.
        assert!(
            !log.lines().any(|l| l.starts_with("#2 DONE")),
            "the step did not run natively: {log}"
        );
    };
    // No emulator exists for it at all.
    refused("linux/wasm", "no emulator is known");
    match candidates.iter().find(|(_, q)| !emulated(q)) {
        Some((platform, _)) => refused(platform, "qemu-user-static"),
        None => eprintln!("SKIP (in part): every candidate platform has an emulator registered"),
    }
}

/// With Debian's qemu-user-static registered and an arm64 busybox (CI downloads
/// `busybox-static:arm64` and names it in BUILDER_TEST_ARM64_BUSYBOX), the step really runs as
/// arm64.
#[test]
fn an_arm64_run_step_runs_emulated() {
    let Some(busybox) = std::env::var_os("BUILDER_TEST_ARM64_BUSYBOX") else {
        eprintln!("SKIP: BUILDER_TEST_ARM64_BUSYBOX is not set");
        return;
    };
    if !emulated("aarch64") || host_arch() == "arm64" {
        eprintln!("SKIP: no qemu-aarch64 handler registered (or an arm64 host)");
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /arch\"]\n",
        )],
    );
    fs::copy(&busybox, ctx.join("busybox")).unwrap();
    let out = env.build_local(&ctx, "out", &["--platform", "linux/arm64"]);
    assert_eq!(fs::read_to_string(out.join("arch")).unwrap(), "aarch64\n");
}
