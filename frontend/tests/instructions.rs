//! Typed instruction parsing: every instruction kind, flags, forms and located errors.

use std::collections::BTreeMap;
use std::time::Duration;

use builder_frontend::shell::Lexer;
use builder_frontend::*;

fn parse(src: &str) -> Dockerfile {
    parse_dockerfile(src.as_bytes(), "Dockerfile").unwrap_or_else(|e| panic!("{e}"))
}

fn err(src: &str) -> FrontendError {
    match parse_dockerfile(src.as_bytes(), "Dockerfile") {
        Ok(d) => panic!("expected an error, parsed {d:?}"),
        Err(e) => e,
    }
}

/// The kinds of the first stage's instructions.
fn kinds(src: &str) -> Vec<InstructionKind> {
    parse(src)
        .stages
        .remove(0)
        .instructions
        .into_iter()
        .map(|i| i.kind)
        .collect()
}

fn one(src: &str) -> InstructionKind {
    let mut k = kinds(src);
    assert_eq!(k.len(), 1, "{k:?}");
    k.remove(0)
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn stages_meta_args_and_names() {
    let d = parse(
        "ARG BASE=alpine\nARG V\nFROM --platform=$BUILDPLATFORM ${BASE}:3 AS Build\nRUN make\n\nFROM scratch\nCOPY --from=build /out /\n",
    );
    assert_eq!(d.meta_args.len(), 2);
    assert_eq!(d.stages.len(), 2);
    let build = &d.stages[0];
    assert_eq!(build.name.as_deref(), Some("build"));
    assert_eq!(build.base, "${BASE}:3");
    assert_eq!(build.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(
        build.location,
        Location {
            start_line: 3,
            end_line: 4
        }
    );
    assert_eq!(d.stages[1].name, None);
    let env: BTreeMap<String, String> = [(s("BASE"), s("debian"))].into();
    let (base, refs) = build.expand_base(&Lexer::new('\\'), &env).unwrap();
    assert_eq!(base, "debian:3");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["BASE"]);
}

#[test]
fn run_forms_flags_and_mounts() {
    let InstructionKind::Run(run) = one(
        "FROM a\nRUN --mount=type=cache,target=/c --mount=type=secret,id=t --network=none --security=insecure make all\n",
    ) else {
        panic!()
    };
    assert_eq!(run.command, CommandForm::Shell(s("make all")));
    assert!(run.command.prepends_shell());
    assert_eq!(run.mounts.len(), 2);
    assert_eq!(run.mounts[0].cache_id(), Some("/c"));
    assert_eq!(run.network, NetworkMode::None);
    assert_eq!(run.security, Security::Insecure);
    let InstructionKind::Run(run) = one("FROM a\nRUN [\"echo\", \"hi\"]\n") else {
        panic!()
    };
    assert_eq!(run.command, CommandForm::Exec(vec![s("echo"), s("hi")]));
    assert_eq!(run.network, NetworkMode::Default);
    assert_eq!(
        run.command.to_argv(&[s("/bin/sh"), s("-c")]),
        ["echo", "hi"]
    );
}

/// As in BuildKit, an empty shell form is a command: `RUN` alone is `/bin/sh -c ""`.
#[test]
fn empty_run_is_an_empty_shell_command() {
    let InstructionKind::Run(run) = one("FROM a\nRUN\n") else {
        panic!()
    };
    assert_eq!(run.command, CommandForm::Shell(String::new()));
    assert_eq!(
        run.command.to_argv(&[s("/bin/sh"), s("-c")]),
        ["/bin/sh", "-c", ""]
    );
}

#[test]
fn run_heredocs() {
    let InstructionKind::Run(run) = one("FROM a\nRUN python3 <<EOF\nprint('hi')\nEOF\n") else {
        panic!()
    };
    assert_eq!(run.command, CommandForm::Shell(s("python3 <<EOF")));
    assert_eq!(run.heredocs[0].content, "print('hi')\n");
    assert_eq!(run.script().unwrap(), "python3 <<EOF\nprint('hi')\nEOF");
    let InstructionKind::Run(run) = one("FROM a\nRUN <<-\"A\" cat - <<B\n\tx $y\n\tA\nb\nB\n")
    else {
        panic!()
    };
    assert_eq!(run.heredocs.len(), 2);
    assert!(!run.heredocs[0].expand && run.heredocs[0].chomp_tabs);
    assert!(run.heredocs[1].expand && !run.heredocs[1].chomp_tabs);
    assert_eq!(run.script().unwrap(), "<<-\"A\" cat - <<B\n\tx $y\nA\nb\nB");
    // A RUN that is only a heredoc runs the body itself.
    let InstructionKind::Run(run) = one("FROM a\nRUN <<-EOF\n\techo one\n\techo two\n\tEOF\n")
    else {
        panic!()
    };
    assert_eq!(run.script().unwrap(), "echo one\necho two\n");
    let InstructionKind::Run(run) = one("FROM a\nRUN [\"sh\"]\n") else {
        panic!()
    };
    assert_eq!(run.script(), None);
}

#[test]
fn cmd_entrypoint_invalid_json_is_shell_form() {
    assert_eq!(
        one("FROM a\nCMD [ 'x' ]\n"),
        InstructionKind::Cmd(CommandForm::Shell(s("[ 'x' ]")))
    );
    assert_eq!(
        one("FROM a\nCMD []\n"),
        InstructionKind::Cmd(CommandForm::Exec(vec![]))
    );
    assert_eq!(
        one("FROM a\nENTRYPOINT [\"a\", \"b\"]\n"),
        InstructionKind::Entrypoint(CommandForm::Exec(vec![s("a"), s("b")]))
    );
}

#[test]
fn copy_and_add() {
    let InstructionKind::Copy(c) = one(
        "FROM a\nCOPY --from=b --chown=1:1 --chmod=644 --link --parents --exclude=*.md --exclude=x a b /d/\n",
    ) else {
        panic!()
    };
    assert_eq!(c.sources, ["a", "b"]);
    assert_eq!(c.dest, "/d/");
    assert_eq!(c.from.as_deref(), Some("b"));
    assert_eq!(c.chown.as_deref(), Some("1:1"));
    assert_eq!(c.chmod.as_deref(), Some("644"));
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.md", "x"]);
    let InstructionKind::Copy(c) = one("FROM a\nCOPY [\"a b\", \"/c\"]\n") else {
        panic!()
    };
    assert_eq!(c.sources, ["a b"]);
    let InstructionKind::Copy(c) = one("FROM a\nCOPY <<EOF /etc/x.conf\nk=$v\nEOF\n") else {
        panic!()
    };
    assert!(c.sources.is_empty());
    assert_eq!(c.dest, "/etc/x.conf");
    assert_eq!(c.heredocs[0].content, "k=$v\n");
    let InstructionKind::Add(a) =
        one("FROM a\nADD --checksum=sha256:abc --keep-git-dir=true https://x/y.tgz /y\n")
    else {
        panic!()
    };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert!(a.keep_git_dir && !a.link);
    assert_eq!(a.sources, ["https://x/y.tgz"]);
}

#[test]
fn env_label_arg_expose_volume() {
    assert_eq!(
        one("FROM a\nENV A=1 B=\"two words\"\n"),
        InstructionKind::Env(vec![
            KeyValue {
                key: s("A"),
                value: s("1")
            },
            KeyValue {
                key: s("B"),
                value: s("\"two words\"")
            }
        ])
    );
    assert_eq!(
        one("FROM a\nENV A legacy form\n"),
        InstructionKind::Env(vec![KeyValue {
            key: s("A"),
            value: s("legacy form")
        }])
    );
    assert_eq!(
        one("FROM a\nLABEL a=b c=d\n"),
        InstructionKind::Label(vec![
            KeyValue {
                key: s("a"),
                value: s("b")
            },
            KeyValue {
                key: s("c"),
                value: s("d")
            }
        ])
    );
    assert_eq!(
        one("FROM a\nARG X Y=1 Z=\n"),
        InstructionKind::Arg(vec![
            ArgDecl {
                name: s("X"),
                default: None
            },
            ArgDecl {
                name: s("Y"),
                default: Some(s("1"))
            },
            ArgDecl {
                name: s("Z"),
                default: Some(s(""))
            }
        ])
    );
    assert_eq!(
        one("FROM a\nEXPOSE 80 443/tcp\n"),
        InstructionKind::Expose(vec![s("80"), s("443/tcp")])
    );
    assert_eq!(
        one("FROM a\nVOLUME [\"/a\", \"/b\"]\n"),
        InstructionKind::Volume(vec![s("/a"), s("/b")])
    );
    assert_eq!(
        one("FROM a\nVOLUME /a /b\n"),
        InstructionKind::Volume(vec![s("/a"), s("/b")])
    );
}

#[test]
fn simple_string_instructions() {
    assert_eq!(
        one("FROM a\nUSER app:app\n"),
        InstructionKind::User(s("app:app"))
    );
    assert_eq!(
        one("FROM a\nWORKDIR /src\n"),
        InstructionKind::Workdir(s("/src"))
    );
    assert_eq!(
        one("FROM a\nSTOPSIGNAL SIGTERM\n"),
        InstructionKind::StopSignal(s("SIGTERM"))
    );
    assert_eq!(
        one("FROM a\nSHELL [\"/bin/bash\", \"-c\"]\n"),
        InstructionKind::Shell(vec![s("/bin/bash"), s("-c")])
    );
    let d = parse("FROM a\nMAINTAINER me\n");
    assert_eq!(
        d.stages[0].instructions[0].kind,
        InstructionKind::Maintainer(s("me"))
    );
    // Reported by the linter (MaintainerDeprecated), not as a parse warning.
    assert!(d.warnings.is_empty());
}

#[test]
fn onbuild_triggers() {
    assert_eq!(
        one("FROM a\nONBUILD RUN echo hi\n"),
        InstructionKind::Onbuild(s("RUN echo hi"))
    );
    assert_eq!(
        one("FROM a\nonbuild   COPY . /app\n"),
        InstructionKind::Onbuild(s("COPY . /app"))
    );
    assert_eq!(
        err("FROM a\nONBUILD ONBUILD RUN x\n").message,
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        err("FROM a\nONBUILD FROM x\n").message,
        "FROM isn't allowed as an ONBUILD trigger"
    );
    let t = parse_onbuild_trigger("RUN echo hi", '\\').unwrap();
    assert_eq!(
        t.kind,
        InstructionKind::Run(Run {
            command: CommandForm::Shell(s("echo hi")),
            heredocs: vec![],
            mounts: vec![],
            network: NetworkMode::Default,
            security: Security::Sandbox
        })
    );
    assert!(parse_onbuild_trigger("MAINTAINER x", '\\').is_err());
    // Heredoc bodies are kept in the trigger and parsed again by the child build.
    let InstructionKind::Onbuild(trigger) = one("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n") else {
        panic!()
    };
    assert_eq!(trigger, "RUN <<EOF\necho hi\nEOF");
    let InstructionKind::Run(run) = parse_onbuild_trigger(&trigger, '\\').unwrap().kind else {
        panic!()
    };
    assert_eq!(run.script().unwrap(), "echo hi\n");
    let t = parse_onbuild_trigger("COPY a `\n  b", '`').unwrap();
    assert_eq!(
        t.location,
        Location {
            start_line: 1,
            end_line: 2
        }
    );
    assert!(matches!(t.kind, InstructionKind::Copy(_)));
    assert!(parse_onbuild_trigger("ONBUILD RUN x", '\\').is_err());
    assert!(parse_onbuild_trigger("BOGUS x", '\\').is_err());
}

#[test]
fn healthcheck() {
    assert_eq!(
        one("FROM a\nHEALTHCHECK NONE\n"),
        InstructionKind::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one(
            "FROM a\nHEALTHCHECK --interval=1m30s --timeout=3s --start-period=500ms --start-interval=1s --retries=3 CMD curl -f http://x/\n"
        ),
        InstructionKind::Healthcheck(Healthcheck::Check {
            test: CommandForm::Shell(s("curl -f http://x/")),
            interval: Some(Duration::from_secs(90)),
            timeout: Some(Duration::from_secs(3)),
            start_period: Some(Duration::from_millis(500)),
            start_interval: Some(Duration::from_secs(1)),
            retries: Some(3)
        })
    );
    let InstructionKind::Healthcheck(Healthcheck::Check { test, interval, .. }) =
        one("FROM a\nHEALTHCHECK CMD [\"/ok\"]\n")
    else {
        panic!()
    };
    assert_eq!(test, CommandForm::Exec(vec![s("/ok")]));
    assert_eq!(interval, None);
    assert_eq!(
        err("FROM a\nHEALTHCHECK CMD\n").message,
        "Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK NONE x\n").message,
        "HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK CONNECT x\n").message,
        "Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"
    );
    let e = err("FROM a\nHEALTHCHECK --interval=10 CMD x\n");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (2, 13, "time: missing unit in duration \"10\"")
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK --retries=-1 CMD x\n").message,
        "--retries cannot be negative (-1)"
    );
}

#[test]
fn located_errors_quote_the_line() {
    let e = err("FROM a\nRUN x\nFOOBAR x\n");
    assert_eq!(
        e.to_string(),
        "Dockerfile:3:1: unknown instruction: FOOBAR\n   3 | FOOBAR x"
    );
    let e = err("FROM a\nCOPY --nope=1 a b\n");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (2, 6, "unknown flag: --nope")
    );
    let e = err("FROM a\nCOPY --from=a --from=b x y\n");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (2, 6, "Duplicate flag specified: from")
    );
    let e = err("FROM a\nRUN --mount=type=bogus,target=/x true\n");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (2, 13, "unsupported mount type \"bogus\"")
    );
    let e = err("FROM a\n  RUN \\\n    --network=wat true\n");
    assert_eq!((e.line, e.column), (3, 5));
    assert_eq!(e.source_line.as_deref(), Some("    --network=wat true"));
    assert_eq!(err("FROM a\nENV --x=1 a=b\n").message, "unknown flag: --x");
    assert_eq!(
        err("FROM a\nCOPY onlyone\n").message,
        "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(
        err("FROM a\nUSER\n").message,
        "USER requires exactly one argument"
    );
    assert_eq!(
        err("FROM a\nEXPOSE\n").message,
        "EXPOSE requires at least one argument"
    );
    assert_eq!(
        err("FROM a\nSHELL /bin/sh -c\n").message,
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        err("FROM a\nENV PATH\n").message,
        "ENV must have two arguments"
    );
    assert_eq!(
        err("FROM a\nCMD [\"a\", 1]\n").message,
        "when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(
        err("FROM a b c d\n").message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a AS 1x\n").message,
        "invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
    );
    assert_eq!(err("FROM --plat=x a\n").message, "unknown flag: --plat");
    assert_eq!(
        err("FROM --platfrom=x a\n").message,
        "unknown flag: --platfrom (did you mean platform?)"
    );
    assert_eq!(
        err("FROM a\nRUNN x\n").message,
        "unknown instruction: RUNN (did you mean RUN?)"
    );
    assert_eq!(
        err("FROM a\ncopyy x y\n").message,
        "unknown instruction: copyy (did you mean copy?)"
    );
    assert_eq!(
        err("FROM a\nARG =x\n").message,
        "ARG names can not be blank"
    );
    assert_eq!(
        err("FROM a\nENV =x\n").message,
        "ENV names can not be blank"
    );
    let e = parse_dockerfile(b"RUN x\nFROM a\n", "build/Dockerfile.dev").unwrap_err();
    assert_eq!(
        e.to_string(),
        "build/Dockerfile.dev:1:1: no build stage in current context\n   1 | RUN x"
    );
    assert_eq!(err("").message, "the Dockerfile cannot be empty");
    assert_eq!(
        err("# just a comment\n\n").message,
        "file with no instructions"
    );
    assert_eq!(
        err("ARG A\n").message,
        "dockerfile contains no stages to build"
    );
}

#[test]
fn directives_bom_crlf_escape() {
    let d = parse(
        "\u{feff}# syntax=docker/dockerfile:1\r\n# escape=`\r\nFROM a\r\nRUN echo a `\r\n  b\r\nCOPY C:\\x C:\\y\r\n",
    );
    assert_eq!(d.escape, '`');
    assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
    let k: Vec<_> = d.stages[0]
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect();
    assert_eq!(
        k[0],
        InstructionKind::Run(Run {
            command: CommandForm::Shell(s("echo a   b")),
            heredocs: vec![],
            mounts: vec![],
            network: NetworkMode::Default,
            security: Security::Sandbox
        })
    );
    let InstructionKind::Copy(c) = &k[1] else {
        panic!()
    };
    assert_eq!(c.sources, ["C:\\x"]);
    assert_eq!(
        d.stages[0].instructions[0].location,
        Location {
            start_line: 4,
            end_line: 5
        }
    );
}

#[test]
fn continuation_at_eof_and_comments_inside() {
    let k = kinds("FROM a\nRUN a \\\n# inside\n  b \\\n");
    assert_eq!(
        k,
        vec![InstructionKind::Run(Run {
            command: CommandForm::Shell(s("a   b")),
            heredocs: vec![],
            mounts: vec![],
            network: NetworkMode::Default,
            security: Security::Sandbox
        })]
    );
}
