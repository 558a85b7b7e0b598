//! End to end: where `--secret` takes a value from, as buildx does: `src=FILE`, `env=VAR`,
//! `type=env,src=VAR`, and with neither, the environment variable named like the id when it is
//! set, else the file of that name (relative to the working directory). Malformed specs are
//! refused by name.

mod common;

use common::Env;

const DOCKERFILE: &str = "FROM busybox:test\n\
    RUN --mount=type=secret,id=tok,required=true cat /run/secrets/tok > /seen\n";

/// Builds with `--secret SPEC` from `cwd` with `TOKVAR`/`tok` set as given; returns /seen.
fn seen(env: &Env, spec: &str, cwd: &std::path::Path, vars: &[(&str, &str)]) -> String {
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let mut cmd = env.cmd();
    cmd.current_dir(cwd).env_remove("tok").env_remove("TOKVAR");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["build", "--progress=plain", "--no-cache", "-t", "sec:1"])
        .args(["--secret", spec])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "--secret {spec}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.ok(&["run", "--rm", "sec:1", "cat", "/seen"])
}

#[test]
fn a_secret_without_src_or_env_is_the_variable_named_like_it_else_the_file() {
    let env = Env::new();
    env.busybox_base();
    let cwd = env.path("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(cwd.join("tok"), "from-file").unwrap();
    std::fs::write(cwd.join("other"), "from-src").unwrap();

    // The variable wins over the file of the same name.
    assert_eq!(
        seen(&env, "id=tok", &cwd, &[("tok", "from-env")]),
        "from-env"
    );
    // Without it, the file named like the id.
    assert_eq!(seen(&env, "id=tok", &cwd, &[]), "from-file");
    // type= does not change the fallback.
    assert_eq!(seen(&env, "type=file,id=tok", &cwd, &[]), "from-file");
    // The explicit forms.
    assert_eq!(seen(&env, "id=tok,src=other", &cwd, &[]), "from-src");
    assert_eq!(
        seen(&env, "id=tok,env=TOKVAR", &cwd, &[("TOKVAR", "v1")]),
        "v1"
    );
    assert_eq!(
        seen(
            &env,
            "type=env,id=tok,src=TOKVAR",
            &cwd,
            &[("TOKVAR", "v2")]
        ),
        "v2"
    );

    // Neither the variable nor the file: the error names the file looked for.
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    for (spec, message) in [
        ("id=tok", "tok is not a readable file"),
        (
            "id=tok,env=TOKVAR",
            "environment variable TOKVAR is not set",
        ),
        ("id=tok,colour=red", "key \"colour\" is not supported"),
        ("tok", "\"tok\" is not a KEY=VALUE field"),
        ("type=ssh,id=tok", "type=ssh is not a secret type"),
        ("src=x", "id=NAME is required"),
    ] {
        let out = env
            .cmd()
            .current_dir(&empty)
            .env_remove("tok")
            .env_remove("TOKVAR")
            .args(["build", "--progress=plain", "--secret", spec])
            .arg(&ctx)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {stderr}");
        assert!(stderr.contains(message), "{spec}: {stderr}");
    }
}
