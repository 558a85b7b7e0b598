//! End to end: RUN steps in the rootless sandbox, on a busybox base the test builds itself.
//! CI runs this file as root and again as an unprivileged user with /etc/subuid ranges.

mod common;

use common::{Env, image_layers};

fn build(env: &Env, dockerfile: &str, extra: &[&str]) -> std::process::Output {
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let mut args = vec!["build", "--progress=plain"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    env.run(&args)
}

fn build_ok(env: &Env, dockerfile: &str, extra: &[&str]) -> String {
    let out = build(env, dockerfile, extra);
    assert!(
        out.status.success(),
        "build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command in an image and returns its stdout.
fn run_in(env: &Env, image: &str, cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", image];
    args.extend_from_slice(cmd);
    env.ok(&args)
}

#[test]
fn files_created_modified_and_deleted_become_whiteouts() {
    let env = Env::new();
    env.busybox_base();
    build_ok(
        &env,
        "FROM busybox:test\n\
         RUN mkdir -p /data/dir && echo one > /data/a && echo two > /data/b && echo x > /data/dir/f\n\
         RUN rm /data/a && echo changed > /data/b && rm -rf /data/dir && mkdir /data/dir && echo y > /data/dir/g\n",
        &["-t", "files:1"],
    );
    let layers = image_layers(&env, "files:1");
    let last = layers.last().unwrap();
    let names: Vec<&str> = last.iter().map(|e| e.0.trim_end_matches('/')).collect();
    assert!(
        names.contains(&"data/.wh.a"),
        "deleted file becomes a whiteout: {names:?}"
    );
    assert!(
        names.contains(&"data/dir/.wh..wh..opq"),
        "recreated dir is opaque: {names:?}"
    );
    assert!(names.contains(&"data/dir/g"), "{names:?}");
    assert!(!names.contains(&"data/dir/f"), "{names:?}");
    let b = last.iter().find(|e| e.0 == "data/b").unwrap();
    assert_eq!(b.5, "changed\n");
    assert_eq!(run_in(&env, "files:1", &["ls", "/data/dir"]), "g\n");
    assert!(!run_in(&env, "files:1", &["ls", "/data"]).contains('a'));
}

#[test]
fn user_workdir_and_ownership() {
    let env = Env::new();
    env.busybox_base();
    build_ok(
        &env,
        "FROM busybox:test\n\
         RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group && mkdir -p /home/app && chown 1000:1000 /home/app\n\
         USER app\n\
         WORKDIR /home/app/work\n\
         RUN id -u > uid && id -g > gid && pwd > pwd && touch mine\n",
        &["-t", "user:1"],
    );
    assert_eq!(
        run_in(
            &env,
            "user:1",
            &[
                "cat",
                "/home/app/work/uid",
                "/home/app/work/gid",
                "/home/app/work/pwd"
            ]
        ),
        "1000\n1000\n/home/app/work\n"
    );
    let layers = image_layers(&env, "user:1");
    let all: Vec<_> = layers.iter().flatten().collect();
    let mine = all
        .iter()
        .find(|e| e.0 == "home/app/work/mine")
        .expect("file created by USER app");
    assert_eq!(
        (mine.2, mine.3),
        (1000, 1000),
        "owned by uid 1000 in the layer"
    );
    let work = all
        .iter()
        .find(|e| e.0.trim_end_matches('/') == "home/app/work")
        .expect("WORKDIR created");
    assert_eq!(
        (work.2, work.3),
        (1000, 1000),
        "WORKDIR is created for the current USER"
    );
    // The config keeps USER and WORKDIR.
    let v = env.inspect("user:1");
    assert_eq!(v["config"]["User"], "app");
    assert_eq!(v["config"]["WorkingDir"], "/home/app/work");
}

#[test]
fn network_none_has_only_loopback() {
    let env = Env::new();
    env.busybox_base();
    build_ok(
        &env,
        "FROM busybox:test\nRUN --network=none tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /netdevs\nRUN tail -n +3 /proc/net/dev | wc -l > /hostdevs\n",
        &["-t", "net:1"],
    );
    assert_eq!(run_in(&env, "net:1", &["cat", "/netdevs"]), "lo\n");
}

#[test]
fn secret_is_visible_during_run_and_absent_from_layers() {
    let env = Env::new();
    env.busybox_base();
    let secret = env.path("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-VALUE").unwrap();
    let log = build_ok(
        &env,
        "FROM busybox:test\nRUN --mount=type=secret,id=tok grep -q SECRET-VAL /run/secrets/tok && echo ok > /seen\n",
        &[
            "-t",
            "secret:1",
            "--secret",
            &format!("id=tok,src={}", secret.display()),
        ],
    );
    assert!(!log.contains("TOP-SECRET-VALUE"));
    assert_eq!(run_in(&env, "secret:1", &["cat", "/seen"]), "ok\n");
    for layer in image_layers(&env, "secret:1") {
        for entry in layer {
            assert!(
                !entry.0.contains("secrets/tok"),
                "secret mount point leaked: {}",
                entry.0
            );
            assert!(!entry.5.contains("TOP-SECRET-VALUE"));
        }
    }
    // A required secret that is not given is a clear error.
    let out = build(
        &env,
        "FROM busybox:test\nRUN --mount=type=secret,id=other,required=true true\n",
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret other: not found"));
}

#[test]
fn secret_as_environment_variable() {
    let env = Env::new();
    env.busybox_base();
    let secret = env.path("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-VALUE").unwrap();
    let log = build_ok(
        &env,
        "FROM busybox:test\n\
         RUN --mount=type=secret,id=tok,env=TOKEN echo \"$TOKEN\" | grep -qx TOP-SECRET-VAL.. && [ ! -e /run/secrets/tok ] && echo ok > /env-only\n\
         RUN --mount=type=secret,id=tok,env=TOKEN,target=/s [ \"$TOKEN\" = \"$(cat /s)\" ] && echo ok > /both\n\
         RUN echo \"${TOKEN:-unset}\" > /after\n",
        &[
            "-t",
            "secretenv:1",
            "--secret",
            &format!("id=tok,src={}", secret.display()),
        ],
    );
    assert!(!log.contains("TOP-SECRET-VALUE"));
    for file in ["/env-only", "/both"] {
        assert_eq!(run_in(&env, "secretenv:1", &["cat", file]), "ok\n");
    }
    assert_eq!(run_in(&env, "secretenv:1", &["cat", "/after"]), "unset\n");
    let config = env.inspect("secretenv:1");
    assert!(!config.to_string().contains("TOP-SECRET-VALUE"));
    assert!(!config["config"]["Env"].to_string().contains("TOKEN"));
    for layer in image_layers(&env, "secretenv:1") {
        assert!(layer.iter().all(|e| !e.5.contains("TOP-SECRET-VALUE")));
    }
}

#[test]
fn cache_mount_persists_between_builds() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test\nARG N\nRUN --mount=type=cache,target=/cache echo $N >> /cache/runs && cat /cache/runs > /seen\n";
    build_ok(
        &env,
        dockerfile,
        &["-t", "cache:1", "--build-arg", "N=first"],
    );
    build_ok(
        &env,
        dockerfile,
        &["-t", "cache:2", "--build-arg", "N=second"],
    );
    assert_eq!(
        run_in(&env, "cache:2", &["cat", "/seen"]),
        "first\nsecond\n"
    );
    // The cache directory, and the mount point made for it, are not part of the image.
    assert_eq!(
        run_in(
            &env,
            "cache:2",
            &["sh", "-c", "test -e /cache && echo present || echo absent"]
        ),
        "absent\n"
    );
}

#[test]
fn run_cannot_reach_the_host_filesystem() {
    let env = Env::new();
    env.busybox_base();
    let marker = env.path("host-marker");
    std::fs::write(&marker, "host").unwrap();
    let m = marker.display().to_string();
    build_ok(
        &env,
        &format!(
            "FROM busybox:test\nRUN if cat {m} 2>/dev/null; then echo LEAK > /result; else echo isolated > /result; fi\nRUN echo hi > /tmp/inside\n"
        ),
        &["-t", "iso:1"],
    );
    assert_eq!(run_in(&env, "iso:1", &["cat", "/result"]), "isolated\n");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "host");
    // Mounting is not allowed inside the sandbox.
    let out = build(
        &env,
        "FROM busybox:test\nRUN mount -t tmpfs none /mnt\n",
        &[],
    );
    assert!(!out.status.success(), "mount must fail in a RUN step");
}

#[test]
fn failing_step_reports_line_exit_code_and_output() {
    let env = Env::new();
    env.busybox_base();
    let out = build(
        &env,
        "FROM busybox:test\nRUN echo about to fail && exit 3\n",
        &["-t", "fail:1"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Dockerfile:2"), "{err}");
    assert!(err.contains("exit code 3"), "{err}");
    assert!(err.contains("about to fail"), "{err}");
    assert!(
        env.run(&["inspect", "fail:1"]).status.code() != Some(0),
        "no image named after a failure"
    );
}

/// BuildKit's parser takes a `RUN` with no command (it runs `/bin/sh -c ""`); real Dockerfiles
/// have one.
#[test]
fn an_empty_run_line_runs_an_empty_shell_command() {
    let env = Env::new();
    env.busybox_base();
    let log = build_ok(&env, "FROM busybox:test\nRUN\nRUN echo after-empty\n", &[]);
    assert!(log.contains("after-empty"), "{log}");
}

#[test]
fn heredoc_run_and_copy_from_stage() {
    let env = Env::new();
    env.busybox_base();
    build_ok(
        &env,
        "FROM busybox:test AS build\nRUN <<EOF\nmkdir -p /out\necho built > /out/artifact\nEOF\n\
         FROM busybox:test\nCOPY --from=build /out/artifact /app/\nRUN cat /app/artifact > /app/copy\n",
        &["-t", "heredoc:1"],
    );
    assert_eq!(run_in(&env, "heredoc:1", &["cat", "/app/copy"]), "built\n");
}

#[test]
fn arg_and_env_reach_run() {
    let env = Env::new();
    env.busybox_base();
    build_ok(
        &env,
        "FROM busybox:test\nARG GREETING=hello\nENV WHO=world\nRUN echo \"$GREETING $WHO\" > /msg\n",
        &["-t", "args:1", "--build-arg", "GREETING=hi"],
    );
    assert_eq!(run_in(&env, "args:1", &["cat", "/msg"]), "hi world\n");
    let v = env.inspect("args:1");
    let env_list = v["config"]["Env"].to_string();
    assert!(
        !env_list.contains("GREETING"),
        "ARG is not persisted: {env_list}"
    );
}

#[test]
fn bind_and_tmpfs_mounts() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "mounts",
        &[
            ("Dockerfile", "FROM busybox:test AS tools\nRUN echo from-stage > /tool.txt\n\
              FROM busybox:test\n\
              RUN --mount=type=bind,source=data,target=/src cat /src/input.txt > /copied && (touch /src/new 2>/dev/null && echo writable || echo read-only) > /bind-mode\n\
              RUN --mount=type=bind,from=tools,source=/tool.txt,target=/t.txt cat /t.txt > /from-stage\n\
              RUN --mount=type=bind,source=data/input.txt,target=/in.txt cat /in.txt > /one-file\n\
              RUN --mount=type=tmpfs,target=/scratch echo temp > /scratch/file && cat /scratch/file > /tmpfs-seen\n"),
            ("data/input.txt", "from-context\n"),
        ],
    );
    env.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "mounts:1",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        run_in(
            &env,
            "mounts:1",
            &[
                "cat",
                "/copied",
                "/bind-mode",
                "/from-stage",
                "/one-file",
                "/tmpfs-seen"
            ]
        ),
        "from-context\nread-only\nfrom-stage\nfrom-context\ntemp\n"
    );
    assert_eq!(
        run_in(
            &env,
            "mounts:1",
            &[
                "sh",
                "-c",
                "test -e /scratch/file && echo kept || echo gone"
            ]
        ),
        "gone\n"
    );
}

#[test]
fn locked_cache_mount_serialises_parallel_stages() {
    let env = Env::new();
    env.busybox_base();
    // Two independent stages use the same locked cache; each appends start/end markers. With the
    // lock their runs cannot interleave.
    let step = |n: &str| {
        format!(
            "FROM busybox:test AS s{n}\nRUN --mount=type=cache,id=shared,target=/c,sharing=locked echo start{n} >> /c/log && sleep 1 && echo end{n} >> /c/log && cp /c/log /log{n}\n"
        )
    };
    let dockerfile = format!(
        "{}{}FROM busybox:test\nCOPY --from=s1 /log1 /\nCOPY --from=s2 /log2 /\n",
        step("1"),
        step("2")
    );
    build_ok(&env, &dockerfile, &["-t", "locked:1"]);
    // The stage that ran second saw both runs in its copy of the log.
    let all = run_in(
        &env,
        "locked:1",
        &[
            "sh",
            "-c",
            "if [ $(wc -l < /log1) -gt $(wc -l < /log2) ]; then cat /log1; else cat /log2; fi",
        ],
    );
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    for pair in lines.chunks(2) {
        assert!(
            pair[0].starts_with("start")
                && pair[1].starts_with("end")
                && pair[0][5..] == pair[1][3..],
            "runs interleaved: {lines:?}"
        );
    }
}

#[test]
fn the_same_base_image_under_another_name_keeps_the_cache() {
    let env = Env::new();
    env.busybox_base();
    env.ok(&["tag", "busybox:test", "mirror.example:5000/lib/busybox:1"]);
    let first = build_ok(&env, "FROM busybox:test\nRUN date > /stamp\n", &[]);
    assert!(!first.contains("CACHED"), "{first}");
    // The key follows the image's content, not the name it was asked for by.
    let second = build_ok(
        &env,
        "FROM mirror.example:5000/lib/busybox:1\nRUN date > /stamp\n",
        &[],
    );
    assert!(second.contains("CACHED"), "{second}");
}

#[test]
fn a_hundred_and_twenty_layers_stack_and_run() {
    // Docker allows 127 layers; each RUN here adds one on top of the busybox base's two. The
    // overlay of the last steps lists them all in one page of mount options.
    let env = Env::new();
    env.busybox_base();
    let mut dockerfile = String::from("FROM busybox:test\n");
    for i in 0..120 {
        dockerfile.push_str(&format!("RUN echo {i} > /layer-{i}\n"));
    }
    dockerfile.push_str("RUN cat /layer-0 /layer-119 > /ends\n");
    build_ok(&env, &dockerfile, &["-t", "deep:1"]);
    assert_eq!(run_in(&env, "deep:1", &["cat", "/ends"]), "0\n119\n");
}
