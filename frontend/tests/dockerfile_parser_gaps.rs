//! Measures why builder replaced the `dockerfile-parser` crate (0.9): the same inputs go
//! through both parsers; docker's behaviour is what our parser produces.

use builder_frontend::{CommandForm, InstructionKind, parse_dockerfile};
use dockerfile_parser::{
    Dockerfile as DpDockerfile, Instruction as DpInstruction, ShellOrExecExpr,
};

fn ours(src: &str) -> Vec<InstructionKind> {
    let d = parse_dockerfile(src.as_bytes(), "Dockerfile").unwrap_or_else(|e| panic!("{e}"));
    d.stages
        .into_iter()
        .flat_map(|s| s.instructions)
        .map(|i| i.kind)
        .collect()
}

fn report(what: &str, src: &str) -> Result<DpDockerfile, String> {
    let r = DpDockerfile::parse(src).map_err(|e| e.to_string());
    println!(
        "dockerfile-parser on {what}: {}",
        match &r {
            Ok(d) => format!("ok, {} instructions", d.instructions.len()),
            Err(e) => format!("error: {}", e.lines().next().unwrap_or_default()),
        }
    );
    r
}

#[test]
fn escape_directive() {
    let src = "# escape=`\nFROM a\nRUN echo a `\n  b\n";
    let theirs = report("# escape=`", src);
    assert!(
        theirs.map(|d| d.instructions.len() != 2).unwrap_or(true),
        "dockerfile-parser now handles # escape"
    );
    assert_eq!(ours(src), vec![run_shell("echo a   b")]);
}

#[test]
fn heredoc() {
    let src = "FROM a\nRUN <<EOF\necho hi\nEOF\n";
    let theirs = report("a heredoc", src);
    assert!(
        theirs.map(|d| d.instructions.len() != 2).unwrap_or(true),
        "dockerfile-parser now handles heredocs"
    );
    let InstructionKind::Run(run) = &ours(src)[0] else {
        panic!()
    };
    assert_eq!(run.heredocs[0].content, "echo hi\n");
}

#[test]
fn utf8_bom() {
    let src = "\u{feff}FROM a\nRUN true\n";
    assert!(
        report("a UTF-8 BOM", src).is_err(),
        "dockerfile-parser now accepts a BOM"
    );
    assert_eq!(ours(src).len(), 1);
}

#[test]
fn run_mount_flags_stay_in_the_command() {
    let src = "FROM a\nRUN --mount=type=cache,target=/c make\n";
    let theirs = report("RUN --mount", src).expect("dockerfile-parser parses RUN --mount");
    let Some(DpInstruction::Run(run)) = theirs.instructions.get(1) else {
        panic!("{theirs:?}")
    };
    let ShellOrExecExpr::Shell(cmd) = &run.expr else {
        panic!()
    };
    assert!(
        cmd.to_string().contains("--mount"),
        "dockerfile-parser now splits off RUN flags"
    );
    let InstructionKind::Run(run) = &ours(src)[0] else {
        panic!()
    };
    assert_eq!(run.command, CommandForm::Shell("make".into()));
    assert_eq!(run.mounts.len(), 1);
}

#[test]
fn single_quoted_array_is_shell_form() {
    let src = "FROM a\nCMD [ 'x' ]\n";
    let theirs = report("CMD [ 'x' ]", src).expect("dockerfile-parser parses CMD [ 'x' ]");
    let Some(DpInstruction::Cmd(cmd)) = theirs.instructions.get(1) else {
        panic!("{theirs:?}")
    };
    assert!(
        matches!(cmd.expr, ShellOrExecExpr::Exec(_)),
        "dockerfile-parser now treats it as shell form"
    );
    assert_eq!(
        ours(src),
        vec![InstructionKind::Cmd(CommandForm::Shell("[ 'x' ]".into()))]
    );
}

#[test]
fn untyped_misc_instructions() {
    let src = "FROM a\nHEALTHCHECK CMD true\nUSER app\nWORKDIR /w\n";
    let theirs = report("HEALTHCHECK/USER/WORKDIR", src).expect("parses");
    assert!(
        theirs.instructions[1..]
            .iter()
            .all(|i| matches!(i, DpInstruction::Misc(_)))
    );
    let k = ours(src);
    assert!(matches!(k[0], InstructionKind::Healthcheck(_)));
    assert_eq!(k[1], InstructionKind::User("app".into()));
    assert_eq!(k[2], InstructionKind::Workdir("/w".into()));
}

fn run_shell(cmd: &str) -> InstructionKind {
    InstructionKind::Run(builder_frontend::Run {
        command: CommandForm::Shell(cmd.into()),
        heredocs: vec![],
        mounts: vec![],
        network: Default::default(),
        security: Default::default(),
    })
}
