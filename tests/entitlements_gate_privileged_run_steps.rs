//! End to end: `RUN --security=insecure` and `RUN --network=host` run only when the user grants
//! the entitlement with `build --allow security.insecure` / `--allow network.host`, as with
//! BuildKit; granted, the insecure step holds every capability the builder has and no
//! `no_new_privs`. `--allow` itself never changes a cache key.

mod common;

use common::Env;

fn build(env: &Env, dockerfile: &str, args: &[&str]) -> std::process::Output {
    env.build(&env.context("ctx", &[("Dockerfile", dockerfile)]), args)
}

fn build_ok(env: &Env, dockerfile: &str, args: &[&str]) -> String {
    env.build_ok(&env.context("ctx", &[("Dockerfile", dockerfile)]), args)
}

/// The value of `Key:` in a /proc/<pid>/status dump.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("{key} missing in:\n{status}"))
        .trim()
}

fn refused(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "expected a refusal:\n{stderr}");
    stderr
}

#[test]
fn insecure_run_is_refused_without_allow_security_insecure() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile =
        "FROM busybox:test\nRUN echo ok\nRUN --security=insecure cat /proc/self/status > /status\n";
    let stderr = refused(&build(&env, dockerfile, &[]));
    assert!(stderr.contains("Dockerfile:3"), "names the line: {stderr}");
    assert!(
        stderr.contains("--allow security.insecure"),
        "names the flag: {stderr}"
    );
    // Another entitlement is not this one.
    let stderr = refused(&build(&env, dockerfile, &["--allow", "network.host"]));
    assert!(stderr.contains("--allow security.insecure"), "{stderr}");
}

#[test]
fn insecure_run_with_allow_gets_every_capability_and_no_no_new_privs() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test\n\
         RUN cat /proc/self/status > /status-sandbox\n\
         RUN --security=insecure cat /proc/self/status > /status-insecure \
             && mkdir -p /m && (mount -t tmpfs none /m && echo mounted || echo refused) > /mount\n";
    let log = build_ok(
        &env,
        dockerfile,
        &["-t", "insecure:1", "--allow", "security.insecure"],
    );
    let cat = |file: &str| env.ok(&["run", "--rm", "insecure:1", "cat", file]);

    let insecure = cat("/status-insecure");
    assert_eq!(status_field(&insecure, "NoNewPrivs"), "0", "{insecure}");
    // Every capability the builder holds: the step's sets are its whole bounding set, which
    // holds at least every capability this test inherited (rootless, the builder's user
    // namespace may hold more than the su session that started the test, never less).
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = |v: &str| u64::from_str_radix(v, 16).unwrap();
    let own_bounding = hex(status_field(&own, "CapBnd"));
    let bounding = status_field(&insecure, "CapBnd");
    assert_eq!(hex(bounding) & own_bounding, own_bounding, "{insecure}");
    assert_eq!(status_field(&insecure, "CapEff"), bounding, "{insecure}");
    assert_eq!(status_field(&insecure, "CapPrm"), bounding, "{insecure}");
    assert_eq!(status_field(&insecure, "CapAmb"), "0000000000000000");
    // CAP_SYS_ADMIN (of the step's own user namespace) really is there: a tmpfs mounts.
    assert_eq!(cat("/mount"), "mounted\n");

    // The other steps keep the sandbox.
    let sandbox = cat("/status-sandbox");
    assert_eq!(status_field(&sandbox, "NoNewPrivs"), "1");
    assert_eq!(status_field(&sandbox, "CapEff"), "00000000a80425fb");
    assert!(!log.contains("CACHED"), "{log}");

    // --allow is no part of a cache key: granting more (or the same again) keeps every step.
    let log = build_ok(
        &env,
        dockerfile,
        &[
            "-t",
            "insecure:2",
            "--allow",
            "security.insecure,network.host",
        ],
    );
    assert_eq!(log.matches("CACHED").count(), 2, "{log}");
    // And a step that asks for nothing is cached whether or not anything was allowed.
    let log = build_ok(
        &env,
        "FROM busybox:test\nRUN cat /proc/self/status > /status-sandbox\n",
        &["-t", "plain:1"],
    );
    assert_eq!(log.matches("CACHED").count(), 1, "{log}");
}

#[test]
fn host_network_run_needs_allow_network_host() {
    let env = Env::new();
    env.busybox_base();
    let devs = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
    let dockerfile = format!("FROM busybox:test\nRUN --network=host {devs} > /host\n");
    let stderr = refused(&build(&env, &dockerfile, &["--network", "none"]));
    assert!(stderr.contains("Dockerfile:2"), "names the line: {stderr}");
    assert!(
        stderr.contains("--allow network.host"),
        "names the flag: {stderr}"
    );
    let stderr = refused(&build(&env, &dockerfile, &[]));
    assert!(stderr.contains("--allow network.host"), "{stderr}");

    // Granted, the step shares the host's network even where the build default is none.
    build_ok(
        &env,
        &dockerfile,
        &[
            "-t",
            "net:1",
            "--network",
            "none",
            "--allow",
            "network.host",
        ],
    );
    let host = env.ok(&["run", "--rm", "net:1", "cat", "/host"]);
    let host_devs = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert_eq!(
        host.lines().count(),
        host_devs.lines().count() - 2,
        "{host}"
    );

    // As with buildx, `--network host` on the command line asks for (and so grants) it.
    build_ok(&env, &dockerfile, &["-t", "net:2", "--network", "host"]);
    // A RUN without --network=host needs nothing, and the default network is unchanged.
    build_ok(
        &env,
        &format!("FROM busybox:test\nRUN {devs} > /default\n"),
        &["-t", "net:3"],
    );
    let default = env.ok(&["run", "--rm", "net:3", "cat", "/default"]);
    assert_eq!(default, host, "the default network is still the host's");
}

#[test]
fn unknown_allow_values_are_refused() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM scratch\n")]);
    for value in ["device", "network.hostx", "security.insecure,bogus"] {
        let out = env.build(&ctx, &["--allow", value]);
        let stderr = refused(&out);
        assert!(stderr.contains("--allow"), "{value}: {stderr}");
        assert!(stderr.contains("unknown entitlement"), "{value}: {stderr}");
    }
}
