//! End to end: `builder run` applies docker's CMD/ENTRYPOINT table row by row, and passes the
//! exit status, env, workdir and user through.

mod common;

use common::Env;

/// Builds an image from busybox:test with the given ENTRYPOINT/CMD lines.
fn image(env: &Env, tag: &str, lines: &str) {
    let ctx = env.context(
        tag,
        &[("Dockerfile", &format!("FROM busybox:test\n{lines}"))],
    );
    env.ok(&[
        "build",
        "--progress=quiet",
        "-t",
        tag,
        ctx.to_str().unwrap(),
    ]);
}

fn run(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    env.ok(&all)
}

#[test]
fn cmd_entrypoint_table() {
    let env = Env::new();
    env.busybox_base();
    // No ENTRYPOINT, exec CMD: CMD runs; arguments replace it.
    image(&env, "t1", "CMD [\"echo\", \"from-cmd\"]\n");
    assert_eq!(run(&env, &["t1"]), "from-cmd\n");
    assert_eq!(run(&env, &["t1", "echo", "from-args"]), "from-args\n");
    // No ENTRYPOINT, shell CMD: /bin/sh -c.
    image(&env, "t2", "CMD echo shell $((1+1))\n");
    assert_eq!(run(&env, &["t2"]), "shell 2\n");
    // Exec ENTRYPOINT, no CMD: arguments are appended.
    image(&env, "t3", "ENTRYPOINT [\"echo\", \"entry\"]\n");
    assert_eq!(run(&env, &["t3"]), "entry\n");
    assert_eq!(run(&env, &["t3", "arg"]), "entry arg\n");
    // Exec ENTRYPOINT + exec CMD: CMD is the default arguments.
    image(
        &env,
        "t4",
        "ENTRYPOINT [\"echo\", \"entry\"]\nCMD [\"default\"]\n",
    );
    assert_eq!(run(&env, &["t4"]), "entry default\n");
    assert_eq!(run(&env, &["t4", "given"]), "entry given\n");
    // Exec ENTRYPOINT + shell CMD: the shell form is passed as arguments.
    image(
        &env,
        "t5",
        "ENTRYPOINT [\"echo\", \"entry\"]\nCMD default-shell\n",
    );
    assert_eq!(run(&env, &["t5"]), "entry /bin/sh -c default-shell\n");
    // Shell ENTRYPOINT ignores CMD and arguments.
    image(
        &env,
        "t6",
        "ENTRYPOINT echo shell-entry\nCMD [\"ignored\"]\n",
    );
    assert_eq!(run(&env, &["t6"]), "shell-entry\n");
    assert_eq!(run(&env, &["t6", "also-ignored"]), "shell-entry\n");
    // An ENTRYPOINT set after a base CMD clears the inherited CMD.
    image(&env, "t7base", "CMD [\"inherited\"]\n");
    let ctx = env.context(
        "t7",
        &[("Dockerfile", "FROM t7base\nENTRYPOINT [\"echo\", \"e\"]\n")],
    );
    env.ok(&[
        "build",
        "--progress=quiet",
        "-t",
        "t7",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(run(&env, &["t7"]), "e\n");
    // --entrypoint replaces ENTRYPOINT and drops CMD.
    assert_eq!(run(&env, &["--entrypoint", "echo", "t4"]), "\n");
    assert_eq!(run(&env, &["--entrypoint", "echo", "t4", "x"]), "x\n");
}

#[test]
fn exit_status_env_workdir_and_user() {
    let env = Env::new();
    env.busybox_base();
    image(
        &env,
        "e1",
        "ENV A=from-image\nWORKDIR /srv\nCMD [\"sh\", \"-c\", \"exit 7\"]\n",
    );
    let out = env.run(&["run", "--rm", "e1"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        run(&env, &["e1", "sh", "-c", "echo $A $(pwd)"]),
        "from-image /srv\n"
    );
    assert_eq!(
        run(
            &env,
            &[
                "-e",
                "A=over",
                "-w",
                "/tmp",
                "e1",
                "sh",
                "-c",
                "echo $A $(pwd)"
            ]
        ),
        "over /tmp\n"
    );
    assert_eq!(run(&env, &["-u", "1234:5678", "e1", "id", "-u"]), "1234\n");
    let out = env.run(&["run", "--rm", "e1", "/no/such/binary"]);
    assert!(!out.status.success());
}
