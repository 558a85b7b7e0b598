//! Rule logic, one case per rule that fires and its fixed twin, from BuildKit's lint tests
//! and rule documentation.

use std::collections::BTreeMap;

use super::*;

fn lint_with(src: &str, images: BaseImages, all: bool) -> Vec<String> {
    let build_args = BTreeMap::new();
    let opts = LintOptions {
        file_name: "Dockerfile",
        build_args: &build_args,
        platform_args: [
            ("TARGETPLATFORM", "linux/amd64"),
            ("TARGETOS", "linux"),
            ("TARGETARCH", "amd64"),
            ("BUILDPLATFORM", "linux/amd64"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        target: None,
        all_stages: all,
        dockerignore: None,
        base_images: images,
    };
    lint(src.as_bytes(), &opts)
        .unwrap()
        .warnings
        .iter()
        .map(Warning::short)
        .collect()
}

fn busybox(_: &str, _: &str) -> Option<BaseImage> {
    Some(BaseImage {
        env: vec!["PATH".into()],
        shell: false,
        platform: "linux/amd64".into(),
    })
}

fn warnings(src: &str) -> Vec<String> {
    lint_with(src, &busybox, true)
}

#[track_caller]
fn fires(src: &str, expected: &[&str]) {
    assert_eq!(warnings(src), expected, "for:\n{src}");
}

#[test]
fn stage_name_casing() {
    fires(
        "FROM scratch AS BaseImage\nFROM scratch AS base\n",
        &["StageNameCasing: Stage name 'BaseImage' should be lowercase (line 1)"],
    );
}

#[test]
fn from_as_casing() {
    fires(
        "FROM scratch as base\nFROM scratch AS base2\n",
        &["FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)"],
    );
    fires("from scratch as base\n", &[]);
}

#[test]
fn no_empty_continuation() {
    fires(
        "FROM scratch\nCOPY Dockerfile \\\n\n  .\nCOPY Dockerfile /a\n",
        &["NoEmptyContinuation: Empty continuation line (line 4)"],
    );
}

#[test]
fn consistent_instruction_casing() {
    fires(
        "FROM scratch\ncopy Dockerfile /a\nCOPY Dockerfile /b\n",
        &[
            "ConsistentInstructionCasing: Command 'copy' should match the case of the command majority (uppercase) (line 2)",
        ],
    );
    fires(
        "from scratch\nCOPY Dockerfile /a\ncopy Dockerfile /b\n",
        &[
            "ConsistentInstructionCasing: Command 'COPY' should match the case of the command majority (lowercase) (line 2)",
        ],
    );
}

#[test]
fn duplicate_and_reserved_stage_names() {
    fires(
        "FROM scratch AS b\nFROM scratch AS b\n",
        &["DuplicateStageName: Duplicate stage name \"b\", stage names should be unique (line 2)"],
    );
    fires(
        "FROM scratch AS scratch\nFROM scratch AS context\n",
        &[
            "ReservedStageName: Stage name should not use the same name as reserved stage \"scratch\" (line 1)",
            "ReservedStageName: Stage name should not use the same name as reserved stage \"context\" (line 2)",
        ],
    );
}

#[test]
fn json_args_recommended() {
    fires(
        "FROM scratch\nCMD mycommand\n",
        &[
            "JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 2)",
        ],
    );
    fires("FROM scratch\nCMD [\"mycommand\"]\n", &[]);
    fires(
        "FROM scratch\nSHELL [\"/bin/sh\", \"-c\"]\nENTRYPOINT mycommand\n",
        &[],
    );
}

#[test]
fn maintainer_deprecated() {
    fires(
        "FROM scratch\nMAINTAINER me@example.com\n",
        &[
            "MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)",
        ],
    );
}

#[test]
fn undefined_arg_in_from() {
    fires(
        "ARG TAG=1\nFROM busybox${TAGG}\n",
        &["UndefinedArgInFrom: FROM argument 'TAGG' is not declared (did you mean TAG?) (line 2)"],
    );
    fires("ARG TAG=1\nFROM busybox:${TAG}\n", &[]);
}

#[test]
fn workdir_relative_path() {
    fires(
        "FROM busybox\nWORKDIR app/\n",
        &[
            "WorkdirRelativePath: Relative workdir \"app/\" can have unexpected results if the base image changes (line 2)",
        ],
    );
    fires("FROM busybox\nWORKDIR /app\nWORKDIR sub\n", &[]);
}

#[test]
fn undefined_var_with_hint() {
    fires(
        "FROM busybox\nENV PATH=$PAHT:/x\n",
        &["UndefinedVar: Usage of undefined variable '$PAHT' (did you mean $PATH?) (line 2)"],
    );
    fires("FROM busybox\nARG foo\nCOPY $foo .\n", &[]);
    // An unknown base image: its environment is unknown, so nothing is claimed.
    assert!(lint_with("FROM busybox\nENV X=$Y\n", &|_: &str, _: &str| None, true).is_empty());
}

#[test]
fn multiple_instructions_disallowed() {
    fires(
        "FROM scratch\nCMD [\"a\"]\nCMD [\"b\"]\n",
        &[
            "MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used (line 2)",
        ],
    );
    fires("FROM scratch AS a\nCMD [\"a\"]\nFROM a\nCMD [\"b\"]\n", &[]);
}

#[test]
fn legacy_key_value_format() {
    fires(
        "FROM scratch\nENV foo bar\n",
        &[
            "LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 2)",
        ],
    );
    fires("FROM scratch\nENV foo=bar\nLABEL a=b\n", &[]);
}

#[test]
fn invalid_base_image_platform() {
    let arm = |_: &str, _: &str| {
        Some(BaseImage {
            env: vec![],
            shell: false,
            platform: "linux/arm64".into(),
        })
    };
    assert_eq!(
        lint_with("FROM busybox\n", &arm, true),
        [
            "InvalidBaseImagePlatform: Base image busybox was pulled with platform \"linux/arm64\", expected \"linux/amd64\" for current build (line 1)"
        ]
    );
    assert!(lint_with("FROM busybox\n", &busybox, true).is_empty());
}

#[test]
fn redundant_target_platform() {
    fires(
        "FROM --platform=$TARGETPLATFORM scratch\n",
        &[
            "RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior (line 1)",
        ],
    );
    fires("FROM --platform=$BUILDPLATFORM scratch\n", &[]);
}

#[test]
fn secrets_used_in_arg_or_env() {
    fires(
        "FROM scratch\nARG SECRET_PASSPHRASE\nENV AWS_SECRET_ACCESS_KEY=x\nENV GITHUB_TOKEN=x\n",
        &[
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"SECRET_PASSPHRASE\") (line 2)",
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"AWS_SECRET_ACCESS_KEY\") (line 3)",
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"GITHUB_TOKEN\") (line 4)",
        ],
    );
    fires("FROM scratch\nARG PUBLIC_KEY\nENV KEY_FILE=x\n", &[]);
}

#[test]
fn invalid_default_arg_in_from() {
    fires(
        "ARG TAG\nFROM busybox:${TAG}\n",
        &[
            "InvalidDefaultArgInFrom: Default value for ARG busybox:${TAG} results in empty or invalid base image name (line 2)",
        ],
    );
    fires("ARG TAG=latest\nFROM busybox:${TAG}\n", &[]);
}

#[test]
fn from_platform_flag_const_disallowed() {
    fires(
        "FROM --platform=linux/amd64 scratch AS build\n",
        &[
            "FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/amd64\" (line 1)",
        ],
    );
    fires("FROM --platform=linux/amd64 scratch AS build_amd64\n", &[]);
}

#[test]
fn copy_ignored_file() {
    let build_args = BTreeMap::new();
    let run = |src: &str, ignore: &str| {
        let opts = LintOptions {
            file_name: "Dockerfile",
            build_args: &build_args,
            platform_args: BTreeMap::new(),
            target: None,
            all_stages: true,
            dockerignore: Some(ignore),
            base_images: &busybox,
        };
        lint(src.as_bytes(), &opts)
            .unwrap()
            .warnings
            .iter()
            .map(Warning::short)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        run(
            "FROM scratch\nCOPY ./Dockerfile .\nADD bar .\n",
            "Dockerfile\nbar\n"
        ),
        [
            "CopyIgnoredFile: Attempting to Copy file \"Dockerfile\" that is excluded by .dockerignore (line 2)",
            "CopyIgnoredFile: Attempting to Add file \"bar\" that is excluded by .dockerignore (line 3)",
        ]
    );
    assert!(
        run(
            "FROM scratch\nCOPY ./Dockerfile .\n",
            "Dockerfile\n!Dockerfile\n"
        )
        .is_empty()
    );
    assert!(run("FROM scratch\nCOPY foo .\n", "Dockerfile\n").is_empty());
}

#[test]
fn invalid_definition_description_is_experimental() {
    let src = "# check=experimental=InvalidDefinitionDescription\n# bar this is the bar\nARG foo=bar\n# BasE this is the BasE image\nFROM scratch AS base\n# foo this is the foo\nARG foo\n";
    fires(
        src,
        &[
            "InvalidDefinitionDescription: Comment for ARG should follow the format: `# foo <description>` (line 3)",
            "InvalidDefinitionDescription: Comment for FROM should follow the format: `# base <description>` (line 5)",
        ],
    );
    fires("# bar this is the bar\nARG foo=bar\nFROM scratch\n", &[]);
}

#[test]
fn expose_rules() {
    fires(
        "FROM scratch\nEXPOSE 80/TCP\nEXPOSE 127.0.0.1:80:80\n",
        &[
            "ExposeProtoCasing: Defined protocol '80/TCP' in EXPOSE instruction should be lowercase (line 2)",
            "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80' (line 3)",
        ],
    );
    fires("FROM scratch\nEXPOSE 80/tcp 8080\n", &[]);
}

#[test]
fn skip_and_error_directives() {
    let src = "# check=skip=JSONArgsRecommended;error=true\nFROM scratch\nCMD a\nMAINTAINER x\n";
    let build_args = BTreeMap::new();
    let opts = LintOptions {
        file_name: "Dockerfile",
        build_args: &build_args,
        platform_args: BTreeMap::new(),
        target: None,
        all_stages: true,
        dockerignore: None,
        base_images: &busybox,
    };
    let report = lint(src.as_bytes(), &opts).unwrap();
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(
        report.violation_error().as_deref(),
        Some("lint violation found for rules: MaintainerDeprecated")
    );
    let args: BTreeMap<String, String> = [(
        "BUILDKIT_DOCKERFILE_CHECK".to_string(),
        "skip=all".to_string(),
    )]
    .into();
    let opts = LintOptions {
        build_args: &args,
        ..opts
    };
    assert!(lint(src.as_bytes(), &opts).unwrap().warnings.is_empty());
}

#[test]
fn only_stages_the_target_needs() {
    let src = "FROM scratch AS unused\nCMD a\nFROM scratch\nCMD [\"b\"]\n";
    assert!(lint_with(src, &busybox, false).is_empty());
    assert_eq!(lint_with(src, &busybox, true).len(), 1);
}

#[test]
fn warnings_before_a_parse_error_are_kept() {
    // BuildKit's testWarningsBeforeError.
    let src = "\nFROM scratch AS BadStageName\nMAINTAINER me@example.org\nBADCMD\n";
    let build_args = BTreeMap::new();
    let opts = LintOptions {
        file_name: "Dockerfile",
        build_args: &build_args,
        platform_args: BTreeMap::new(),
        target: None,
        all_stages: true,
        dockerignore: None,
        base_images: &busybox,
    };
    let Err(LintError::Dockerfile { error, warnings }) = lint(src.as_bytes(), &opts) else {
        panic!("BADCMD must fail the parse");
    };
    assert_eq!(error.line, 4);
    assert_eq!(error.message, "unknown instruction: BADCMD");
    let got: Vec<String> = warnings.iter().map(Warning::short).collect();
    assert_eq!(
        got,
        [
            "StageNameCasing: Stage name 'BadStageName' should be lowercase (line 2)",
            "MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 3)"
        ]
    );
}
