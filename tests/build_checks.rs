//! Build checks (BuildKit's Dockerfile linter) end to end: `--check` reports each rule and
//! exits 1, the fixed Dockerfile is quiet and exits 0; builds print the warnings at their end,
//! `# check=` and `BUILDKIT_DOCKERFILE_CHECK` configure them, `error=true` fails the build.
//! Cases come from BuildKit's lint tests and rule documentation.

mod common;

use common::Env;

struct Case {
    rule: &'static str,
    bad: &'static str,
    message: &'static str,
    fixed: &'static str,
}

const CASES: &[Case] = &[
    Case {
        rule: "StageNameCasing",
        bad: "FROM scratch AS BaseImage\n",
        message: "Stage name 'BaseImage' should be lowercase",
        fixed: "FROM scratch AS base-image\n",
    },
    Case {
        rule: "FromAsCasing",
        bad: "FROM scratch as base\n",
        message: "'as' and 'FROM' keywords' casing do not match",
        fixed: "FROM scratch AS base\n",
    },
    Case {
        rule: "NoEmptyContinuation",
        bad: "FROM scratch\nLABEL a=1 \\\n\n  b=2\n",
        message: "Empty continuation line",
        fixed: "FROM scratch\nLABEL a=1 \\\n  b=2\n",
    },
    Case {
        rule: "ConsistentInstructionCasing",
        bad: "FROM scratch\nlabel a=1\nLABEL b=2\n",
        message: "Command 'label' should match the case of the command majority (uppercase)",
        fixed: "FROM scratch\nLABEL a=1\nLABEL b=2\n",
    },
    Case {
        rule: "DuplicateStageName",
        bad: "FROM scratch AS b\nFROM scratch AS b\n",
        message: "Duplicate stage name \"b\", stage names should be unique",
        fixed: "FROM scratch AS b\nFROM scratch AS c\n",
    },
    Case {
        rule: "ReservedStageName",
        bad: "FROM scratch AS scratch\n",
        message: "Stage name should not use the same name as reserved stage \"scratch\"",
        fixed: "FROM scratch AS base\n",
    },
    Case {
        rule: "JSONArgsRecommended",
        bad: "FROM scratch\nENTRYPOINT my-program start\n",
        message: "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals",
        fixed: "FROM scratch\nENTRYPOINT [\"my-program\", \"start\"]\n",
    },
    Case {
        rule: "MaintainerDeprecated",
        bad: "FROM scratch\nMAINTAINER moby@example.com\n",
        message: "Maintainer instruction is deprecated in favor of using label",
        fixed: "FROM scratch\nLABEL org.opencontainers.image.authors=\"moby@example.com\"\n",
    },
    Case {
        rule: "UndefinedArgInFrom",
        bad: "ARG VERSION=latest\nFROM scratch${VERSIONN}\n",
        message: "FROM argument 'VERSIONN' is not declared (did you mean VERSION?)",
        fixed: "ARG VERSION=\nFROM scratch${VERSION}\n",
    },
    Case {
        rule: "WorkdirRelativePath",
        bad: "FROM scratch\nWORKDIR app/\n",
        message: "Relative workdir \"app/\" can have unexpected results if the base image changes",
        fixed: "FROM scratch\nWORKDIR /app\nWORKDIR sub\n",
    },
    Case {
        rule: "UndefinedVar",
        bad: "FROM scratch\nENV PATH=$PAHT:/opt/bin\n",
        message: "Usage of undefined variable '$PAHT' (did you mean $PATH?)",
        fixed: "FROM scratch\nENV PATH=$PATH:/opt/bin\n",
    },
    Case {
        rule: "MultipleInstructionsDisallowed",
        bad: "FROM scratch\nCMD [\"a\"]\nCMD [\"b\"]\n",
        message: "Multiple CMD instructions should not be used in the same stage because only the last one will be used",
        fixed: "FROM scratch\nCMD [\"b\"]\n",
    },
    Case {
        rule: "LegacyKeyValueFormat",
        bad: "FROM scratch\nENV MY_VAR my-value\n",
        message: "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format",
        fixed: "FROM scratch\nENV MY_VAR=my-value\n",
    },
    Case {
        rule: "RedundantTargetPlatform",
        bad: "FROM --platform=$TARGETPLATFORM scratch\n",
        message: "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
        fixed: "FROM scratch\n",
    },
    Case {
        rule: "SecretsUsedInArgOrEnv",
        bad: "FROM scratch\nARG AWS_SECRET_ACCESS_KEY\n",
        message: "Do not use ARG or ENV instructions for sensitive data (ARG \"AWS_SECRET_ACCESS_KEY\")",
        fixed: "FROM scratch\nARG AWS_REGION\n",
    },
    Case {
        rule: "InvalidDefaultArgInFrom",
        bad: "ARG IMAGE\nFROM ${IMAGE}\n",
        message: "Default value for ARG ${IMAGE} results in empty or invalid base image name",
        fixed: "ARG IMAGE=scratch\nFROM ${IMAGE}\n",
    },
    Case {
        rule: "FromPlatformFlagConstDisallowed",
        bad: "FROM --platform=linux/amd64 scratch AS builder\n",
        message: "FROM --platform flag should not use constant value \"linux/amd64\"",
        fixed: "FROM --platform=linux/amd64 scratch AS builder-amd64\n",
    },
    Case {
        rule: "ExposeProtoCasing",
        bad: "FROM scratch\nEXPOSE 80/TcP\n",
        message: "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase",
        fixed: "FROM scratch\nEXPOSE 80/tcp\n",
    },
    Case {
        rule: "ExposeInvalidFormat",
        bad: "FROM scratch\nEXPOSE 127.0.0.1:80:80\n",
        message: "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'",
        fixed: "FROM scratch\nEXPOSE 80\n",
    },
    Case {
        rule: "InvalidDefinitionDescription",
        bad: "# check=experimental=InvalidDefinitionDescription\n# bar this is the bar\nARG foo=bar\nFROM scratch\n",
        message: "Comment for ARG should follow the format: `# foo <description>`",
        fixed: "# check=experimental=InvalidDefinitionDescription\n# foo this is the foo\nARG foo=bar\nFROM scratch\n",
    },
];

fn check(env: &Env, name: &str, dockerfile: &str, extra: &[&str]) -> (i32, String, String) {
    let ctx = env.context(name, &[("Dockerfile", dockerfile)]);
    let out = env
        .cmd()
        .args(["build", "--progress=plain", "--check"])
        .args(extra)
        .arg(&ctx)
        .output()
        .expect("spawn builder");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_rule_fires_and_its_fix_is_quiet() {
    let env = Env::new();
    for (i, case) in CASES.iter().enumerate() {
        let (code, out, err) = check(&env, &format!("bad{i}"), case.bad, &[]);
        assert_eq!(
            code, 1,
            "{}: --check should exit 1\n{out}\n{err}",
            case.rule
        );
        assert!(
            out.contains(&format!(
                "WARNING: {} - https://docs.docker.com/go/dockerfile/rule/",
                case.rule
            )),
            "{}: no warning header in:\n{out}",
            case.rule
        );
        assert!(
            out.contains(case.message),
            "{}: message missing in:\n{out}",
            case.rule
        );
        assert!(
            out.starts_with("Check complete, 1 warning has been found!\n"),
            "{}: {out}",
            case.rule
        );
        let (code, out, err) = check(&env, &format!("fixed{i}"), case.fixed, &[]);
        assert_eq!(
            code, 0,
            "{}: the fixed Dockerfile warns:\n{out}\n{err}",
            case.rule
        );
        assert_eq!(out, "Check complete, no warnings found.\n", "{}", case.rule);
    }
}

#[test]
fn check_prints_a_source_excerpt_and_json() {
    let env = Env::new();
    let (_, out, _) = check(&env, "a", "FROM scratch\nCMD echo hi\n", &[]);
    assert!(
        out.contains(
            "Dockerfile:2\n--------------------\n   1 |     FROM scratch\n   2 | >>> CMD echo hi\n"
        ),
        "{out}"
    );
    let (code, out, _) = check(
        &env,
        "b",
        "FROM scratch\nCMD echo hi\n",
        &["--call=check,format=json"],
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["warnings"][0]["ruleName"], "JSONArgsRecommended");
    assert_eq!(
        v["warnings"][0]["location"]["ranges"][0]["start"]["line"],
        2
    );
    assert_eq!(v["sources"][0]["filename"], "Dockerfile");
    let (code, _, _) = check(
        &env,
        "c",
        "FROM scratch\nCMD echo hi\n",
        &["--call=check,ignorestatus=true"],
    );
    assert_eq!(code, 0);
}

#[test]
fn check_directive_and_build_arg_configure_rules() {
    let env = Env::new();
    let df = "# check=skip=JSONArgsRecommended\nFROM scratch\nCMD echo hi\nMAINTAINER me\n";
    let (code, out, _) = check(&env, "a", df, &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("MaintainerDeprecated") && !out.contains("JSONArgsRecommended"),
        "{out}"
    );
    // The build arg replaces the directive.
    let (code, out, _) = check(
        &env,
        "b",
        df,
        &["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all"],
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "Check complete, no warnings found.\n")
    );
    // A comment above one instruction configures that instruction only.
    let df = "FROM scratch\n# check=skip=JSONArgsRecommended\nCMD echo a\nENTRYPOINT echo b\n";
    let (_, out, _) = check(&env, "c", df, &[]);
    assert!(
        out.contains("JSON arguments recommended for ENTRYPOINT"),
        "{out}"
    );
    assert!(!out.contains("for CMD"), "{out}");
    let (code, _, err) = check(&env, "d", "# check=bogus\nFROM scratch\n", &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("failed to parse check options: invalid check option \"bogus\""),
        "{err}"
    );
}

#[test]
fn builds_print_warnings_at_the_end_and_error_true_fails() {
    let env = Env::new();
    let ctx = env.context(
        "w",
        &[("Dockerfile", "FROM scratch AS BUILD\nCMD echo hi\n")],
    );
    let log = env.build_ok(&ctx, &[]);
    let tail = &log[log.find("2 warnings found:").expect(&log)..];
    assert!(tail.contains(
        "WARNING: StageNameCasing: Stage name 'BUILD' should be lowercase (line 1)\nStage names should be lowercase\nMore info: https://docs.docker.com/go/dockerfile/rule/stage-name-casing/\nDockerfile:1\n"
    ), "{log}");
    assert!(tail.contains("WARNING: JSONArgsRecommended: "), "{log}");
    // rawjson carries them as objects.
    let out = env
        .cmd()
        .args(["build", "--progress=rawjson"])
        .arg(&ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "warning")
        .collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert_eq!(warnings[0]["rule"], "StageNameCasing");
    assert_eq!(warnings[0]["line"], 1);
    // --metadata-file gets them with BUILDX_METADATA_WARNINGS, as buildx.
    let meta = env.path("meta.json");
    let out = env
        .cmd()
        .env("BUILDX_METADATA_WARNINGS", "1")
        .args(["build", "--progress=quiet", "--metadata-file"])
        .arg(&meta)
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(
        v["buildx.build.warnings"].as_array().map(Vec::len),
        Some(2),
        "{v}"
    );
    // error=true: the build stops before building, naming the rules.
    let ctx = env.context(
        "e",
        &[(
            "Dockerfile",
            "# check=error=true\nFROM scratch\nCMD echo hi\n",
        )],
    );
    let out = env.build(&ctx, &["-t", "never:1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lint violation found for rules: JSONArgsRecommended"),
        "{err}"
    );
    assert!(err.contains("WARNING: JSONArgsRecommended"), "{err}");
    assert!(!env.run(&["inspect", "never:1"]).status.success());
    // The same Dockerfile builds with error=false from the build arg, which the build counts
    // as consumed.
    let log = env.build_ok(
        &ctx,
        &["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=error=false"],
    );
    assert!(!log.contains("were not consumed"), "{log}");
}

#[test]
fn copy_ignored_file_reads_the_dockerignore() {
    let env = Env::new();
    let files = [
        (
            "Dockerfile",
            "FROM scratch\nCOPY ./Dockerfile .\nADD bar .\nCOPY kept .\n",
        ),
        (".dockerignore", "Dockerfile\nbar\n"),
        ("bar", "x"),
        ("kept", "x"),
    ];
    let ctx = env.context("ci", &files);
    let out = env
        .cmd()
        .args(["build", "--check"])
        .arg(&ctx)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Attempting to Copy file \"Dockerfile\" that is excluded by .dockerignore"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Attempting to Add file \"bar\" that is excluded by .dockerignore"),
        "{stdout}"
    );
    assert!(!stdout.contains("\"kept\""), "{stdout}");
}

#[test]
fn invalid_base_image_platform_uses_the_resolved_image() {
    let env = Env::new();
    let base = env.context("base", &[("Dockerfile", "FROM scratch\nLABEL a=b\n")]);
    env.build_ok(&base, &["--platform", "linux/arm64", "-t", "armbase:1"]);
    let ctx = env.context("use", &[("Dockerfile", "FROM armbase:1\nLABEL c=d\n")]);
    let out = env
        .cmd()
        .args(["build", "--check", "--platform", "linux/amd64"])
        .arg(&ctx)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Base image armbase:1 was pulled with platform \"linux/arm64\", expected \"linux/amd64\" for current build"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env
        .cmd()
        .args(["build", "--check", "--platform", "linux/arm64"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Check complete, no warnings found.\n"
    );
}

#[test]
fn parse_errors_suggest_the_closest_name() {
    let env = Env::new();
    let ctx = env.context("t", &[("Dockerfile", "FROM scratch\nRUNN true\n")]);
    let out = env.build(&ctx, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown instruction: RUNN (did you mean RUN?)"),
        "{err}"
    );
    let ctx = env.context(
        "f",
        &[("Dockerfile", "FROM scratch\nCOPY --chmood=755 a /\n")],
    );
    let err = String::from_utf8_lossy(&env.build(&ctx, &[]).stderr).into_owned();
    assert!(
        err.contains("unknown flag: --chmood (did you mean chmod?)"),
        "{err}"
    );
    let ctx = env.context(
        "s",
        &[("Dockerfile", "FROM scratch AS build\nFROM scratch\n")],
    );
    let err = String::from_utf8_lossy(&env.build(&ctx, &["--target", "biuld"]).stderr).into_owned();
    assert!(
        err.contains("target stage \"biuld\" could not be found (did you mean build?)"),
        "{err}"
    );
}

#[test]
fn warnings_before_a_parse_error_still_show() {
    let env = Env::new();
    let df = "FROM scratch AS BadStageName\nMAINTAINER me@example.org\nBADCMD\n";
    let (code, out, err) = check(&env, "c", df, &[]);
    assert_ne!(code, 0);
    assert!(
        out.starts_with("Check complete, 2 warnings have been found!\n"),
        "{out}"
    );
    assert!(
        out.contains("WARNING: StageNameCasing") && out.contains("WARNING: MaintainerDeprecated"),
        "{out}"
    );
    assert!(err.contains("unknown instruction: BADCMD"), "{err}");
    let ctx = env.context("b", &[("Dockerfile", df)]);
    let out = env.build(&ctx, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let warned = err.find("WARNING: StageNameCasing").expect(&err);
    let failed = err.rfind("unknown instruction: BADCMD").expect(&err);
    assert!(warned < failed, "{err}");
}

#[test]
fn a_named_image_context_is_the_base_the_checks_see() {
    let env = Env::new();
    let base = env.context("base", &[("Dockerfile", "FROM scratch\nENV FOO=1\n")]);
    env.build_ok(&base, &["-t", "ctxbase:1"]);
    let ctx = env.context("use", &[("Dockerfile", "FROM base\nENV X=$FOOO\n")]);
    let out = env
        .cmd()
        .args([
            "build",
            "--check",
            "--build-context",
            "base=docker-image://ctxbase:1",
        ])
        .arg(&ctx)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Usage of undefined variable '$FOOO' (did you mean $FOO?)"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
