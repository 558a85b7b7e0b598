//! End to end: ports of BuildKit's core Dockerfile integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_core_test.go), each asserting what the Go test asserts;
//! images are read from builder's store (BuildKit's tests read containerd's). Ported elsewhere:
//! testSymlinkDestination (tests/buildkit_copy.rs), testDockerfileLowercase
//! (tests/build_scratch.rs), testUserAdditionalGids (tests/buildkit_run.rs),
//! testDockerfileCheckHostname (tests/sandbox_hostname.rs), testStepNames (tests/step_names.rs).

mod common;

use std::process::Command;

use common::{Env, read_text};

/// What busybox's image has in /etc/passwd and /etc/group (the entries the tests use), which
/// the offline `busybox:test` lacks.
const BUSYBOX_USERS: &str = "RUN printf 'root:x:0:0:root:/root:/bin/sh\\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\\nnobody:x:65534:65534:nobody:/home:/bin/false\\n' > /etc/passwd && \
    printf 'root:x:0:\\ndaemon:x:1:\\nwheel:x:10:root\\nnobody:x:65534:\\n' > /etc/group\n";

/// testDockerfileDirs: the context and Dockerfile given as absolute paths, as `.` from the
/// working directory, and from two different directories.
#[test]
fn dockerfile_dirs() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test\n\
        COPY foo /foo2\n\
        COPY foo /\n\
        RUN echo -n bar > foo3\n\
        RUN test -f foo\n\
        RUN cmp -s foo foo2\n\
        RUN cmp -s foo foo3\n";
    let dir = env.context("ctx", &[("Dockerfile", dockerfile), ("foo", "bar")]);
    env.build_ok(&dir, &["-f", dir.join("Dockerfile").to_str().unwrap()]);

    let run_in = |cwd: &std::path::Path, args: &[&str]| {
        let out: std::process::Output = {
            let mut c: Command = env.cmd();
            c.current_dir(cwd)
                .args(["build", "--progress=plain"])
                .args(args)
                .output()
                .unwrap()
        };
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run_in(&dir, &["-f", "Dockerfile", "."]);

    let dockerfile_dir = env.context("dockerfile-dir", &[("Dockerfile", dockerfile)]);
    let context_dir = env.context("context-dir", &[("foo", "bar")]);
    run_in(
        &dir,
        &[
            "-f",
            dockerfile_dir.join("Dockerfile").to_str().unwrap(),
            context_dir.to_str().unwrap(),
        ],
    );
}

/// testSymlinkedDockerfile: a Dockerfile that is a symlink to another file is read.
#[test]
fn symlinked_dockerfile() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile.web", "FROM scratch\nENV foo bar\n")]);
    std::os::unix::fs::symlink("Dockerfile.web", ctx.join("Dockerfile")).unwrap();
    env.build_ok(&ctx, &[]);
}

/// testContextChangeDirToFile: a context path that was a directory in the last build and is
/// now a file is copied as the file (nothing stale from the cache).
#[test]
fn context_change_dir_to_file() {
    let env = Env::new();
    let dockerfile = "FROM scratch\nCOPY foo /\n";
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", dockerfile), ("foo/bar", "contents")],
    );
    env.build_ok(&ctx, &[]);
    std::fs::remove_dir_all(ctx.join("foo")).unwrap();
    std::fs::write(ctx.join("foo"), "contents2").unwrap();
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("foo")), "contents2");
}

/// testNoSnapshotLeak: building the same thing again adds no cache records.
#[test]
fn no_snapshot_leak() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY foo /\n"),
            ("foo", "contents"),
        ],
    );
    env.build_ok(&ctx, &[]);
    let first = env.ok(&["du", "--verbose"]);
    env.build_ok(&ctx, &[]);
    let second = env.ok(&["du", "--verbose"]);
    let records = |s: &str| s.lines().filter(|l| l.starts_with("ID:")).count();
    assert!(records(&first) > 0, "{first}");
    assert_eq!(records(&first), records(&second), "{first}\n---\n{second}");
}

/// testExposeExpansion: EXPOSE of a variable holding several ports, with and without a
/// protocol.
#[test]
fn expose_expansion() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nARG PORTS=\"3000 4000/udp\"\nEXPOSE $PORTS\nEXPOSE 5000\n",
        )],
    );
    env.build_ok(&ctx, &["-t", "example.com/moby/dockerfileexpansion:test"]);
    let image = env.inspect("example.com/moby/dockerfileexpansion:test");
    let ports = image["config"]["ExposedPorts"].as_object().unwrap();
    let mut names: Vec<&String> = ports.keys().collect();
    names.sort();
    assert_eq!(names, ["3000/tcp", "4000/udp", "5000/tcp"]);
}

/// testLabels: a LABEL and a `--label` both end up in the image's labels.
#[test]
fn labels() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM scratch\nLABEL foo=bar\n")]);
    env.build_ok(
        &ctx,
        &[
            "--label",
            "bar=baz",
            "-t",
            "example.com/moby/dockerfilelabels:test",
        ],
    );
    let labels = &env.inspect("example.com/moby/dockerfilelabels:test")["config"]["Labels"];
    assert_eq!(labels["foo"], "bar");
    assert_eq!(labels["bar"], "baz");
}

/// testUser: the identity RUN steps get for every USER form (name, uid, `user:group` by name
/// and number, supplementary groups from /etc/group, unknown ids), and the image's User.
#[test]
fn user() {
    let env = Env::new();
    env.busybox_base();
    let id = "$(id -u):$(id -g)/$(id -un):$(id -gn)/$(id -G):$(id -Gn)";
    let check = |user: &str, want: &str| format!("USER {user}\nRUN [ \"{id}\" = '{want}' ]\n");
    let mut dockerfile = format!(
        "FROM busybox:test AS base\n{BUSYBOX_USERS}\
         RUN mkdir -m 0777 /out\n\
         RUN id -un > /out/rootuser\n\
         RUN [ \"$(id -u):$(id -g)/$(id -un):$(id -gn)\" = '0:0/root:root' ]\n\
         USER root\n\
         RUN [ \"$(id -G):$(id -Gn)\" = '0 10:root wheel' ]\n\
         RUN echo 'dockerio:x:1001:1001::/bin:/bin/false' >> /etc/passwd && \\\n\
         \techo 'dockerio:x:1001:' >> /etc/group\n"
    );
    dockerfile += &check("dockerio", "1001:1001/dockerio:dockerio/1001:dockerio");
    dockerfile += &format!(
        "USER root\nRUN [ \"{id}\" = '0:0/root:root/0 10:root wheel' ] && \\\n\
         \techo 'supplementary:x:1002:dockerio' >> /etc/group\n"
    );
    for (user, want) in [
        (
            "dockerio",
            "1001:1001/dockerio:dockerio/1001 1002:dockerio supplementary",
        ),
        (
            "1001",
            "1001:1001/dockerio:dockerio/1001 1002:dockerio supplementary",
        ),
        (
            "dockerio:dockerio",
            "1001:1001/dockerio:dockerio/1001:dockerio",
        ),
        ("1001:dockerio", "1001:1001/dockerio:dockerio/1001:dockerio"),
        ("dockerio:1001", "1001:1001/dockerio:dockerio/1001:dockerio"),
        ("1001:1001", "1001:1001/dockerio:dockerio/1001:dockerio"),
        (
            "dockerio:supplementary",
            "1001:1002/dockerio:supplementary/1002:supplementary",
        ),
        (
            "dockerio:1002",
            "1001:1002/dockerio:supplementary/1002:supplementary",
        ),
        (
            "1001:supplementary",
            "1001:1002/dockerio:supplementary/1002:supplementary",
        ),
        (
            "1001:1002",
            "1001:1002/dockerio:supplementary/1002:supplementary",
        ),
        ("1042:1043", "1042:1043/1042:1043/1043:1043"),
    ] {
        dockerfile += &check(user, want);
    }
    dockerfile += "USER daemon\nRUN id -un > /out/daemonuser\n\
        FROM scratch\nCOPY --from=base /out /\nUSER nobody\n";
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("rootuser")), "root\n");
    assert_eq!(read_text(out.join("daemonuser")), "daemon\n");
    env.build_ok(&ctx, &["-t", "example.com/moby/dockerfileuser:test"]);
    assert_eq!(
        env.inspect("example.com/moby/dockerfileuser:test")["config"]["User"],
        "nobody"
    );
}

/// testTargetMistype: a `--target` naming no stage is refused with the nearest stage name.
#[test]
fn target_mistype() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch AS build\nCOPY Dockerfile /out\nFROM scratch\nCOPY --from=build /out /\n",
        )],
    );
    let out = env.build(&ctx, &["--target", "bulid"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("target stage \"bulid\" could not be found (did you mean build?)"),
        "{stderr}"
    );
}
