//! `builder build --call=outline` and `--call=targets`: what a target takes (build args with
//! defaults and `# NAME description` comments, secrets, ssh ids) and which stages there are,
//! in buildx's text layout and BuildKit's JSON; nothing is built.

mod common;

use common::Env;

const DOCKERFILE: &str = "# syntax=docker/dockerfile:1

ARG ALPINE_VERSION=3.20
# GO_VERSION sets the Go toolchain
ARG GO_VERSION=1.22
ARG UNUSED=x

# base is the shared base
FROM scratch${ALPINE_VERSION:+} AS base

# build compiles the binary
FROM base AS build
ARG GO_VERSION
# TARGETNAME the name of the binary
ARG TARGETNAME=app
RUN --mount=type=secret,id=github_token,required=true --mount=type=ssh true

FROM scratch
COPY --from=build /app /app
";

fn call(env: &Env, ctx: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = env
        .cmd()
        .args(["build", "--progress=quiet"])
        .args(args)
        .arg(ctx)
        .output()
        .expect("spawn builder");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn outline_text_lists_args_secrets_and_ssh() {
    let env = Env::new();
    let ctx = env.context("c", &[("Dockerfile", DOCKERFILE)]);
    let (ok, out) = call(&env, &ctx, &["--call=outline", "--target", "build"]);
    assert!(ok);
    assert_eq!(
        out,
        "TARGET:      build\nDESCRIPTION: compiles the binary\n\n\
         BUILD ARG        VALUE   DESCRIPTION\n\
         ALPINE_VERSION   3.20    \n\
         GO_VERSION       1.22    sets the Go toolchain\n\
         TARGETNAME       app     the name of the binary\n\n\
         SECRET         REQUIRED\n\
         github_token   true\n\n\
         SSH       REQUIRED\n\
         default   \n\n"
    );
    // Without a target: the last stage (unnamed), which needs build through COPY --from.
    let (ok, out) = call(
        &env,
        &ctx,
        &["--call=outline", "--build-arg", "GO_VERSION=1.23"],
    );
    assert!(ok);
    assert!(out.starts_with("BUILD ARG "), "{out}");
    assert!(out.contains("GO_VERSION       1.23"), "{out}");
    assert!(!out.contains("UNUSED"), "{out}");
}

#[test]
fn outline_json_has_buildkit_fields() {
    let env = Env::new();
    let ctx = env.context("c", &[("Dockerfile", DOCKERFILE)]);
    let (ok, out) = call(
        &env,
        &ctx,
        &["--call=outline,format=json", "--target=build"],
    );
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["name"], "build");
    assert_eq!(v["description"], "compiles the binary");
    assert_eq!(v["args"][1]["name"], "GO_VERSION");
    assert_eq!(v["args"][1]["value"], "1.22");
    assert_eq!(v["args"][1]["description"], "sets the Go toolchain");
    assert_eq!(v["args"][1]["location"]["ranges"][0]["start"]["line"], 5);
    assert_eq!(
        v["secrets"][0],
        serde_json::json!({"name": "github_token", "required": true, "location": {"ranges": [{"start": {"line": 16}, "end": {"line": 16}}]}})
    );
    assert_eq!(v["ssh"][0]["name"], "default");
    assert!(v["ssh"][0].get("required").is_none());
    let source = v["sources"][0].as_str().unwrap();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(source)
        .unwrap();
    assert_eq!(decoded, DOCKERFILE.as_bytes());
}

#[test]
fn targets_text_and_json() {
    let env = Env::new();
    let ctx = env.context("c", &[("Dockerfile", DOCKERFILE)]);
    let (ok, out) = call(&env, &ctx, &["--call=targets"]);
    assert!(ok);
    assert_eq!(
        out,
        "TARGET    DESCRIPTION\nbase      is the shared base\nbuild     compiles the binary\n(default) \n"
    );
    let (ok, out) = call(&env, &ctx, &["--call", "targets,format=json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3);
    assert_eq!(targets[0]["name"], "base");
    assert_eq!(targets[0]["base"], "scratch${ALPINE_VERSION:+}");
    assert_eq!(targets[2]["default"], true);
    assert!(targets[2].get("name").is_none());
    assert!(targets[0].get("default").is_none());
    assert_eq!(targets[1]["location"]["ranges"][0]["start"]["line"], 12);
}

#[test]
fn bad_calls_are_refused() {
    let env = Env::new();
    let ctx = env.context("c", &[("Dockerfile", DOCKERFILE)]);
    let out = env
        .cmd()
        .args(["build", "--call=describe"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--call=describe: unknown method"));
    let (ok, _) = call(&env, &ctx, &["--call=outline", "--target", "biuld"]);
    assert!(!ok);
    let out = env
        .cmd()
        .args(["build", "--call=outline", "--target", "biuld"])
        .arg(&ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("target stage \"biuld\" could not be found (did you mean build?)"),
        "{err}"
    );
}
