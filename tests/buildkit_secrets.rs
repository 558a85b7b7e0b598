//! End to end: ports of BuildKit's secret mount integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_secrets_test.go), each asserting what the Go test asserts; the
//! secret is given as buildx gives it, `--secret id=mysecret,src=FILE`.
//! testSecretRequiredWithoutValue is in tests/buildkit_run.rs; testSecretAsEnviron in
//! tests/run_steps.rs and tests/step_names.rs.

mod common;

use common::Env;

/// A build of `dockerfile` with the secret `mysecret` = "pw".
fn build_with_secret(dockerfile: &str) {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let file = env.path("secret.txt");
    std::fs::write(&file, "pw").unwrap();
    let secret = format!("id=mysecret,src={}", file.display());
    env.build_ok(&ctx, &["--secret", &secret]);
}

/// testSecretFileParams: a secret mount's id defaults to its target's file name; `mode`, `uid`
/// and `gid` shape the file; no mount point is left in the image.
#[test]
fn secret_file_params() {
    build_with_secret(
        "FROM busybox:test\n\
         RUN --mount=type=secret,required=false,mode=741,uid=100,gid=102,target=/mysecret [ \"$(stat -c \"%u %g %f\" /mysecret)\" = \"100 102 81e1\" ]\n\
         RUN [ ! -f /mysecret ] # check no stub left behind\n",
    );
}

/// testSecretAsEnvironWithFileMount: one secret both as a file at `target` and as `env`.
#[test]
fn secret_as_environ_with_file_mount() {
    build_with_secret(
        "FROM busybox:test\n\
         RUN --mount=type=secret,id=mysecret,target=/run/secrets/secret,env=SECRET_ENV [ \"$SECRET_ENV\" == \"pw\" ] && [ -f /run/secrets/secret ] || false\n",
    );
}
