//! End to end: the `docker buildx build` flags that scripts pass along with the usual ones —
//! `--add-host`, `--network`, `--shm-size` and `--ulimit` for RUN steps (and `builder run`),
//! `--platform`, `--load`, `--provenance=false`, `--sbom=false`.

mod common;

use common::Env;

/// Builds `dockerfile` in a context of its own.
fn build(env: &Env, dockerfile: &str, args: &[&str]) -> std::process::Output {
    env.build(&env.context("ctx", &[("Dockerfile", dockerfile)]), args)
}

fn build_ok(env: &Env, dockerfile: &str, args: &[&str]) -> String {
    env.build_ok(&env.context("ctx", &[("Dockerfile", dockerfile)]), args)
}

#[test]
fn add_host_entries_are_in_every_run_steps_hosts_file_and_in_its_cache_key() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile =
        "FROM busybox:test\nRUN cat /etc/hosts > /hosts.txt\nRUN grep -c . /etc/hosts > /count\n";
    build_ok(
        &env,
        dockerfile,
        &[
            "-t",
            "hosts:1",
            "--add-host",
            "registry.internal:10.1.2.3",
            "--add-host",
            "v6=[fd00::1]",
        ],
    );
    let hosts = env.ok(&["run", "--rm", "hosts:1", "cat", "/hosts.txt"]);
    assert!(hosts.starts_with("127.0.0.1\tlocalhost"), "{hosts}");
    assert!(
        hosts.ends_with("10.1.2.3\tregistry.internal\nfd00::1\tv6\n"),
        "{hosts}"
    );
    assert_eq!(env.ok(&["run", "--rm", "hosts:1", "cat", "/count"]), "4\n");
    // The sandbox's hosts file is its own: the image keeps none of the entries.
    let image_hosts = env.ok(&["run", "--rm", "hosts:1", "cat", "/etc/hosts"]);
    assert!(!image_hosts.contains("registry.internal"), "{image_hosts}");

    // Another address is another step: not served from the cache.
    let log = build_ok(
        &env,
        dockerfile,
        &["-t", "hosts:2", "--add-host", "registry.internal:10.9.9.9"],
    );
    assert!(!log.contains("CACHED"), "{log}");
    let hosts = env.ok(&["run", "--rm", "hosts:2", "cat", "/hosts.txt"]);
    assert!(hosts.ends_with("10.9.9.9\tregistry.internal\n"), "{hosts}");
    // The same flags again: everything cached.
    let log = build_ok(
        &env,
        dockerfile,
        &["-t", "hosts:3", "--add-host", "registry.internal:10.9.9.9"],
    );
    assert_eq!(log.matches("CACHED").count(), 2, "{log}");

    // `builder run` takes the flag too.
    let hosts = env.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db:10.7.7.7",
        "hosts:1",
        "cat",
        "/etc/hosts",
    ]);
    assert!(hosts.ends_with("10.7.7.7\tdb\n"), "{hosts}");
}

#[test]
fn network_none_is_the_default_of_run_steps_that_do_not_choose() {
    let env = Env::new();
    env.busybox_base();
    let devs = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
    build_ok(
        &env,
        &format!("FROM busybox:test\nRUN {devs} > /default\nRUN --network=host {devs} > /host\n"),
        &[
            "-t",
            "net:1",
            "--network",
            "none",
            "--allow",
            "network.host",
        ],
    );
    assert_eq!(env.ok(&["run", "--rm", "net:1", "cat", "/default"]), "lo\n");
    let host = env.ok(&["run", "--rm", "net:1", "cat", "/host"]);
    let host_devs = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert_eq!(
        host.lines().count(),
        host_devs.lines().count() - 2,
        "RUN --network=host still shares the host's network: {host}"
    );
    // `builder run --network none` likewise; its default is the host's.
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend(["net:1", "sh", "-c", devs]);
        env.ok(&args)
    };
    assert_eq!(run(&["--network", "none"]), "lo\n");
    assert_eq!(run(&[]), host, "run's default network is the host's");
    assert_eq!(run(&["--network", "host"]), host);
}

#[test]
fn platform_sets_the_image_platform_and_the_target_platform_args() {
    let env = Env::new();
    let dockerfile = "FROM scratch\nARG TARGETPLATFORM\nARG TARGETARCH\nARG TARGETVARIANT\n\
        LABEL p=$TARGETPLATFORM a=$TARGETARCH v=$TARGETVARIANT\nCOPY Dockerfile /\n";
    build_ok(
        &env,
        dockerfile,
        &["-t", "plat:1", "--platform", "linux/arm/v7"],
    );
    let config = env.inspect("plat:1");
    assert_eq!(config["architecture"], "arm");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["variant"], "v7");
    assert_eq!(config["config"]["Labels"]["p"], "linux/arm/v7");
    assert_eq!(config["config"]["Labels"]["a"], "arm");
    assert_eq!(config["config"]["Labels"]["v"], "v7");
    let out = build(&env, dockerfile, &["--platform", "nonsense/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--platform"));
    // Several platforms make an image index (tests/multi_platform_store.rs keeps one under a
    // tag; tests/multi_platform_index.rs exports and pushes them).
    let out = build(&env, dockerfile, &["--platform", "linux/amd64,linux/arm64"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("writing image index"));
}

#[test]
fn shm_size_sets_the_size_of_dev_shm_in_run_steps() {
    let env = Env::new();
    env.busybox_base();
    // 1K-blocks of /dev/shm.
    let dockerfile =
        "FROM busybox:test\nRUN df -k /dev/shm | tail -n 1 | awk '{print $2}' > /shm\n";
    build_ok(&env, dockerfile, &["-t", "shm:1"]);
    assert_eq!(env.ok(&["run", "--rm", "shm:1", "cat", "/shm"]), "65536\n");
    let log = build_ok(&env, dockerfile, &["-t", "shm:2", "--shm-size", "128m"]);
    assert!(
        !log.contains("CACHED"),
        "another size is another step: {log}"
    );
    assert_eq!(env.ok(&["run", "--rm", "shm:2", "cat", "/shm"]), "131072\n");
    let df = env.ok(&[
        "run",
        "--rm",
        "--shm-size",
        "32m",
        "shm:1",
        "sh",
        "-c",
        "df -k /dev/shm | tail -n 1 | awk '{print $2}'",
    ]);
    assert_eq!(df, "32768\n");
    let out = build(&env, dockerfile, &["--shm-size", "lots"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--shm-size") && stderr.contains("invalid size \"lots\""),
        "{stderr}"
    );
}

#[test]
fn ulimit_sets_resource_limits_of_run_steps() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test\nRUN echo $(ulimit -Sn) $(ulimit -Hn) > /nofile\n";
    build_ok(
        &env,
        dockerfile,
        &["-t", "ul:1", "--ulimit", "nofile=512:768"],
    );
    assert_eq!(
        env.ok(&["run", "--rm", "ul:1", "cat", "/nofile"]),
        "512 768\n"
    );
    // Another limit is another step.
    let log = build_ok(&env, dockerfile, &["-t", "ul:2", "--ulimit", "nofile=256"]);
    assert!(!log.contains("CACHED"), "{log}");
    assert_eq!(
        env.ok(&["run", "--rm", "ul:2", "cat", "/nofile"]),
        "256 256\n"
    );
    let run = env.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=300:400",
        "ul:1",
        "sh",
        "-c",
        "echo $(ulimit -Sn) $(ulimit -Hn)",
    ]);
    assert_eq!(run, "300 400\n");
    for (arg, message) in [
        ("nofiles=1", "unknown limit"),
        ("nofile=2:1", "above the hard one"),
        ("nofile", "expected NAME=SOFT[:HARD]"),
        ("nofile=lots", "is not a number"),
    ] {
        let out = build(&env, dockerfile, &["--ulimit", arg]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {stderr}");
        assert!(stderr.contains(message), "{arg}: {stderr}");
    }
}

#[test]
fn buildx_only_flags_are_accepted_when_they_ask_for_nothing_builder_lacks() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test\nRUN echo hi > /hi\n";
    build_ok(
        &env,
        dockerfile,
        &[
            "-t",
            "flags:1",
            "--load",
            "--provenance=false",
            "--sbom=false",
            "--network=default",
        ],
    );
    assert_eq!(env.ok(&["run", "--rm", "flags:1", "cat", "/hi"]), "hi\n");

    for (args, message) in [
        // Attestations need an index, which the store cannot hold (tests/attestations.rs).
        (&["--provenance=mode=max"][..], "image store cannot hold"),
        (&["--sbom=true"][..], "image store cannot hold"),
        (&["--add-host", "gw:host-gateway"][..], "host-gateway"),
        (&["--add-host", "nohost"][..], "expected NAME:ADDRESS"),
        (&["--add-host", "db:not-an-ip"][..], "is not an IP address"),
        (
            &["--network", "bridge"][..],
            "expected default, host or none",
        ),
    ] {
        let out = build(&env, dockerfile, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
