//! Dispatch-time expansion (`Instruction::expand`) and the shell lexer's extra forms.

use std::collections::{BTreeMap, HashMap};

use builder_frontend::shell::{EnvLookup, Lexer};
use builder_frontend::*;

fn s(v: &str) -> String {
    v.to_string()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (s(k), s(v))).collect()
}

fn instruction(line: &str) -> Instruction {
    let src = format!("FROM a\n{line}\n");
    let mut d = parse_dockerfile(src.as_bytes(), "Dockerfile").unwrap_or_else(|e| panic!("{e}"));
    d.stages.remove(0).instructions.remove(0)
}

fn expand(line: &str, vars: &[(&str, &str)]) -> (InstructionKind, Vec<String>) {
    let (i, refs) = instruction(line)
        .expand(&Lexer::new('\\'), &env(vars))
        .unwrap_or_else(|e| panic!("{e}"));
    (i.kind, refs.into_iter().collect())
}

#[test]
fn env_values_are_unquoted_and_expanded() {
    let (kind, refs) = expand("ENV A=\"$X y\" B=${Y:-d}\\ e", &[("X", "x")]);
    assert_eq!(
        kind,
        InstructionKind::Env(vec![
            KeyValue {
                key: s("A"),
                value: s("x y")
            },
            KeyValue {
                key: s("B"),
                value: s("d e")
            }
        ])
    );
    assert_eq!(refs, ["X", "Y"]);
}

#[test]
fn copy_paths_and_flags_expand_run_command_does_not() {
    let (kind, refs) = expand(
        "COPY --from=b --chown=$U:$U src/$V /app/$V",
        &[("U", "1000"), ("V", "1")],
    );
    let InstructionKind::Copy(c) = kind else {
        panic!()
    };
    assert_eq!(
        (c.from.as_deref(), c.chown.as_deref()),
        (Some("b"), Some("1000:1000"))
    );
    assert_eq!((c.sources, c.dest), (vec![s("src/1")], s("/app/1")));
    assert_eq!(refs, ["U", "V"]);

    let (kind, refs) = expand(
        "RUN --mount=type=cache,target=$D,id=c-$V echo $V",
        &[("D", "/cache"), ("V", "2")],
    );
    let InstructionKind::Run(run) = kind else {
        panic!()
    };
    assert_eq!(run.command, CommandForm::Shell(s("echo $V")));
    assert_eq!(run.mounts[0].cache_id(), Some("c-2"));
    assert_eq!(refs, ["D", "V"]);

    let (kind, _) = expand(
        "RUN --mount=type=secret,id=tok,uid=$UID,mode=$MODE true",
        &[("UID", "1000"), ("MODE", "0440")],
    );
    let InstructionKind::Run(run) = kind else {
        panic!()
    };
    assert_eq!(
        run.mounts,
        [Mount::Secret {
            id: s("tok"),
            target: None,
            env: None,
            required: false,
            mode: Some(0o440),
            uid: Some(1000),
            gid: None
        }]
    );
    let e = instruction("RUN --mount=type=cache,target=/c,uid=$UID true")
        .expand(&Lexer::new('\\'), &env(&[("UID", "x")]))
        .unwrap_err();
    assert_eq!(
        e.message,
        "failed to process \"type=cache,target=/c,uid=$UID\": invalid value x for uid"
    );

    let (kind, refs) = expand("CMD echo $HOME", &[("HOME", "/root")]);
    assert_eq!(
        kind,
        InstructionKind::Cmd(CommandForm::Shell(s("echo $HOME")))
    );
    assert!(refs.is_empty());
}

#[test]
fn heredoc_bodies_expand_unless_quoted() {
    // BuildKit applies `\` escapes in expanded bodies too (so `\n` loses its backslash).
    let src = "FROM a\nCOPY <<EOF /a\nv=$V \"q\" \\$lit \\n\nEOF\nCOPY <<'EOF' /b\nv=$V\nEOF\n";
    let d = parse_dockerfile(src.as_bytes(), "Dockerfile").unwrap();
    let vars = env(&[("V", "1")]);
    let lexer = Lexer::new('\\');
    let (a, _) = d.stages[0].instructions[0].expand(&lexer, &vars).unwrap();
    let InstructionKind::Copy(a) = a.kind else {
        panic!()
    };
    assert_eq!(a.heredocs[0].content, "v=1 \"q\" $lit n\n");
    let (b, refs) = d.stages[0].instructions[1].expand(&lexer, &vars).unwrap();
    let InstructionKind::Copy(b) = b.kind else {
        panic!()
    };
    assert_eq!(b.heredocs[0].content, "v=$V\n");
    assert!(refs.is_empty());
}

#[test]
fn other_kinds() {
    assert_eq!(
        expand("WORKDIR /src/$P", &[("P", "x")]).0,
        InstructionKind::Workdir(s("/src/x"))
    );
    assert_eq!(
        expand("USER ${U:-app}", &[]).0,
        InstructionKind::User(s("app"))
    );
    assert_eq!(
        expand("STOPSIGNAL $S", &[("S", "SIGINT")]).0,
        InstructionKind::StopSignal(s("SIGINT"))
    );
    assert_eq!(
        expand("EXPOSE $PORTS 9000", &[("PORTS", "80 443")]).0,
        InstructionKind::Expose(vec![s("80"), s("443"), s("9000")])
    );
    assert_eq!(
        expand("VOLUME $V", &[("V", "/data")]).0,
        InstructionKind::Volume(vec![s("/data")])
    );
    assert_eq!(
        expand("LABEL \"$K\"=\"$V\"", &[("K", "k"), ("V", "v w")]).0,
        InstructionKind::Label(vec![KeyValue {
            key: s("k"),
            value: s("v w")
        }])
    );
    assert_eq!(
        expand("ARG A=${B}x C", &[("B", "b")]).0,
        InstructionKind::Arg(vec![
            ArgDecl {
                name: s("A"),
                default: Some(s("bx"))
            },
            ArgDecl {
                name: s("C"),
                default: None
            }
        ])
    );
    assert_eq!(
        expand("ONBUILD RUN echo $X", &[("X", "1")]).0,
        InstructionKind::Onbuild(s("RUN echo $X"))
    );
    assert_eq!(
        expand("SHELL [\"$X\"]", &[("X", "1")]).0,
        InstructionKind::Shell(vec![s("$X")])
    );
}

#[test]
fn expansion_errors_carry_the_line() {
    let e = instruction("WORKDIR ${DIR:?must be set}")
        .expand(&Lexer::new('\\'), &env(&[]))
        .unwrap_err();
    assert_eq!(e.line, 2);
    assert_eq!(
        e.message,
        "failed to process \"${DIR:?must be set}\": DIR: must be set"
    );
    assert_eq!(
        e.source_line.as_deref(),
        Some("WORKDIR ${DIR:?must be set}")
    );
    assert!(
        e.with_file("x/Dockerfile")
            .to_string()
            .starts_with("x/Dockerfile:2:1: ")
    );
}

#[test]
fn lexer_pattern_forms() {
    let vars = env(&[("P", "linux/arm/v7"), ("F", "archive.tar.gz"), ("E", "")]);
    let l = Lexer::new('\\');
    let w = |word: &str| {
        l.process_word(word, &vars)
            .unwrap_or_else(|e| panic!("{word}: {e}"))
    };
    assert_eq!(w("${P#*/}"), "arm/v7");
    assert_eq!(w("${P##*/}"), "v7");
    assert_eq!(w("${P%/*}"), "linux/arm");
    assert_eq!(w("${P%%/*}"), "linux");
    assert_eq!(w("${F/.tar/}"), "archive.gz");
    assert_eq!(w("${F//a/A}"), "Archive.tAr.gz");
    assert_eq!(w("${F/a/A}"), "Archive.tar.gz");
    assert_eq!(w("${F/.*/}"), "archive");
    assert_eq!(
        l.process_word("${F/a}", &vars).unwrap_err().message,
        "syntax error: missing '/' in ${}"
    );
    assert_eq!(
        l.process_word("${F:#a}", &vars).unwrap_err().message,
        "unsupported modifier (:#) in substitution"
    );
    assert_eq!(
        l.process_word("${F:=a}", &vars).unwrap_err().message,
        "unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        l.process_word("${F#\\x}", &vars).unwrap_err().message,
        "invalid pattern (\\x) in substitution: invalid escape '\\x'"
    );
    assert_eq!(w("${E-def}|${U-def}|${E+set}|${U+set}"), "|def|set|");
    assert_eq!(w("${E:-def}|${E:+set}"), "def|");
    assert_eq!(
        l.process_word("${U?unset!}", &vars).unwrap_err().message,
        "U: unset!"
    );
    assert_eq!(
        l.process_word("${E:?}", &vars).unwrap_err().message,
        "E: is not allowed to be empty"
    );
}

#[test]
fn lexer_escape_char_and_env_impls() {
    let bt = Lexer::new('`');
    let vars: Vec<(String, String)> = vec![(s("A"), s("1")), (s("A"), s("2"))];
    assert_eq!(vars.lookup("A"), Some("2")); // last wins
    assert_eq!(
        bt.process_word("C:\\dir `$A $A", &vars).unwrap(),
        "C:\\dir $A 2"
    );
    assert_eq!(bt.process_words("a` b c", &vars).unwrap(), ["a b", "c"]);
    let hm: HashMap<String, String> = [(s("X"), s("y"))].into();
    assert_eq!(Lexer::new('\\').process_word("$X", &hm).unwrap(), "y");
    let (v, refs) = Lexer::new('\\')
        .process_word_with_matches("$X${NOPE:-z}", &hm)
        .unwrap();
    assert_eq!(v, "yz");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["NOPE", "X"]);
}

/// BuildKit (testDockerfileCopyFromArgs): `--from` decides which stage a step depends on
/// before any variable has a value, so a variable in it is refused (quotes around the value
/// are the flag parser's, removed before, as in BuildKit).
#[test]
fn copy_from_must_be_literal() {
    for line in ["COPY --from=$FOO . .", "COPY --from=${STAGE} . ."] {
        let src = format!("FROM a\n{line}\n");
        let e = parse_dockerfile(src.as_bytes(), "Dockerfile").unwrap_err();
        assert_eq!(
            e.message,
            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
            "{line}"
        );
    }
    instruction("COPY --from=base-1.2_x . .");
    instruction("COPY --from=\"base\" . .");
}
