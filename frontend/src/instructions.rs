//! Typed instructions (BuildKit's `instructions` package): turns [`Node`]s into
//! [`Instruction`]s, checking flags, argument counts and forms, with located errors.

use std::time::Duration;

use crate::ast::{self, Heredoc, Node};
use crate::duration::parse_go_duration;
use crate::error::FrontendError;
use crate::flags::{FlagKind, Flags, parse_flags};
use crate::mount::{Mount, parse_mount};

/// First and last source line (1-based, inclusive) of an instruction or stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub start_line: usize,
    pub end_line: usize,
}

/// One instruction after `FROM`, or an `ARG` before the first `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub kind: InstructionKind,
    pub location: Location,
    /// The instruction's source text with continuation lines joined (BuildKit's `Original`).
    pub original: String,
}

/// What an instruction does. Free-text values are stored as written (quotes, escapes and
/// `$VAR`s intact) until [`Instruction::expand`] applies the build's variables, as docker does
/// at dispatch time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    Run(Run),
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    Copy(Copy),
    Add(Add),
    Env(Vec<KeyValue>),
    Arg(Vec<ArgDecl>),
    Label(Vec<KeyValue>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    /// The trigger text, e.g. `RUN echo hi`, as docker stores it in the image's `OnBuild`.
    Onbuild(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
    StopSignal(String),
    Maintainer(String),
}

/// Shell form (`RUN echo hi`, run through the stage's SHELL) or exec form (`RUN ["echo", "hi"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    Shell(String),
    Exec(Vec<String>),
}

impl CommandForm {
    /// True for the shell form: the command must be prefixed with the stage's SHELL.
    pub fn prepends_shell(&self) -> bool {
        matches!(self, CommandForm::Shell(_))
    }

    /// The argv to execute: `shell + [command]` for the shell form, the array otherwise.
    pub fn to_argv(&self, shell: &[String]) -> Vec<String> {
        match self {
            CommandForm::Shell(cmd) => shell.iter().cloned().chain([cmd.clone()]).collect(),
            CommandForm::Exec(args) => args.clone(),
        }
    }
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    #[default]
    Default,
    None,
    Host,
}

/// `RUN --security=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    #[default]
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub command: CommandForm,
    /// Heredoc bodies referenced by the (shell-form) command, in order.
    pub heredocs: Vec<Heredoc>,
    pub mounts: Vec<Mount>,
    pub network: NetworkMode,
    pub security: Security,
}

impl Run {
    /// The script to hand to the stage's SHELL for a shell-form RUN (`None` for exec form).
    ///
    /// Without heredocs this is the command itself. When the command is nothing but one
    /// heredoc (`RUN <<EOF`), the body (tabs chomped for `<<-`) is the script, as in BuildKit;
    /// a body starting with `#!` is meant to be executed as a file instead. Otherwise the
    /// command is followed by each body and its terminator, so the shell sees the heredocs
    /// exactly as written.
    pub fn script(&self) -> Option<String> {
        let CommandForm::Shell(cmd) = &self.command else {
            return None;
        };
        if let Some(doc) = self.lone_heredoc() {
            return Some(doc.chomped_content());
        }
        let mut script = cmd.clone();
        for doc in &self.heredocs {
            script.push('\n');
            script.push_str(&doc.content);
            if !doc.content.is_empty() && !doc.content.ends_with('\n') {
                script.push('\n');
            }
            script.push_str(&doc.name);
        }
        Some(script)
    }

    /// The heredoc when the shell-form command is nothing but it (`RUN <<EOF`).
    pub fn lone_heredoc(&self) -> Option<&Heredoc> {
        let CommandForm::Shell(cmd) = &self.command else {
            return None;
        };
        match self.heredocs.as_slice() {
            [doc] if matches!(ast::heredoc_from_word(cmd.trim()), Ok(Some(_))) => Some(doc),
            _ => None,
        }
    }

    /// `RUN <<EOF` whose body starts with `#!`: BuildKit runs it as an executable file with
    /// that interpreter rather than as shell text. Returns the file name (the delimiter) and
    /// its content (tabs chomped for `<<-`).
    pub fn shebang_script(&self) -> Option<(&str, String)> {
        let doc = self.lone_heredoc()?;
        let content = doc.chomped_content();
        content
            .starts_with("#!")
            .then_some((doc.name.as_str(), content))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Source paths; heredoc sources (`<<EOF`) are in `heredocs` instead (their files are
    /// named after the delimiter and hold `Heredoc::chomped_content()`).
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// Source paths or URLs; heredoc sources are in `heredocs` instead.
    pub sources: Vec<String>,
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    /// `--unpack=BOOL` (dockerfile 1.17): whether tar archives are extracted. Not given: local
    /// archives are, downloaded ones are not.
    pub unpack: Option<bool>,
    pub exclude: Vec<String>,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    Check {
        test: CommandForm,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

/// The source text, for error locations (1-based lines).
pub(crate) struct SourceLines<'a> {
    lines: Vec<&'a str>,
}

impl<'a> SourceLines<'a> {
    pub(crate) fn new(text: &'a str) -> SourceLines<'a> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        SourceLines {
            lines: text.lines().collect(),
        }
    }

    fn line(&self, n: usize) -> Option<&'a str> {
        n.checked_sub(1).and_then(|i| self.lines.get(i)).copied()
    }

    /// An error at the start of the instruction (its first non-blank column).
    pub(crate) fn error(&self, node: &Node, message: impl Into<String>) -> FrontendError {
        let src = self.line(node.start_line);
        let column = src.map_or(1, |l| {
            l.chars().take_while(|c| c.is_whitespace()).count() + 1
        });
        FrontendError::new(node.start_line, column, message).with_source_line(src)
    }

    /// An error at the first occurrence of `needle` within the instruction's lines.
    pub(crate) fn error_at(
        &self,
        node: &Node,
        needle: &str,
        message: impl Into<String>,
    ) -> FrontendError {
        for n in node.start_line..=node.end_line.max(node.start_line) {
            if let Some(src) = self.line(n)
                && let Some(byte) = src.find(needle)
            {
                let column = src[..byte].chars().count() + 1;
                return FrontendError::new(n, column, message).with_source_line(Some(src));
            }
        }
        self.error(node, message)
    }
}

pub(crate) struct Ctx<'s, 'n> {
    pub(crate) src: &'s SourceLines<'s>,
    pub(crate) node: &'n Node,
}

impl Ctx<'_, '_> {
    fn name(&self) -> String {
        self.node.value.to_uppercase()
    }

    fn err(&self, message: impl Into<String>) -> FrontendError {
        self.src.error(self.node, message)
    }

    fn flags(&self, spec: &[(&'static str, FlagKind)]) -> Result<Flags, FrontendError> {
        parse_flags(&self.node.flags, spec).map_err(|e| {
            let needle = e.raw.split('=').next().unwrap_or(&e.raw).to_string();
            self.src.error_at(self.node, &needle, e.message)
        })
    }

    fn no_flags(&self) -> Result<(), FrontendError> {
        self.flags(&[]).map(|_| ())
    }

    fn at_least(&self, n: usize) -> Result<(), FrontendError> {
        if self.node.args.len() < n {
            let what = if n == 1 {
                "one argument".to_string()
            } else {
                format!("{n} arguments")
            };
            return Err(self.err(format!("{} requires at least {what}", self.name())));
        }
        Ok(())
    }

    fn exactly_one(&self) -> Result<String, FrontendError> {
        match self.node.args.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(self.err(format!("{} requires exactly one argument", self.name()))),
        }
    }

    fn command_form(&self) -> Result<CommandForm, FrontendError> {
        if self.node.json {
            return Ok(CommandForm::Exec(self.node.args.clone()));
        }
        // An empty shell form is no error in BuildKit: `RUN` alone runs `/bin/sh -c ""`.
        Ok(CommandForm::Shell(self.node.args.join(" ")))
    }

    fn location(&self) -> Location {
        Location {
            start_line: self.node.start_line,
            end_line: self.node.end_line,
        }
    }
}

/// Every instruction name, for "did you mean" hints.
const INSTRUCTION_NAMES: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Converts one instruction node (not `FROM`) into a typed [`Instruction`].
pub(crate) fn instruction_from_node(ctx: &Ctx, escape: char) -> Result<Instruction, FrontendError> {
    let node = ctx.node;
    let kind = match node.value.as_str() {
        "run" => InstructionKind::Run(parse_run(ctx)?),
        "cmd" => {
            ctx.no_flags()?;
            InstructionKind::Cmd(ctx.command_form()?)
        }
        "entrypoint" => {
            ctx.no_flags()?;
            InstructionKind::Entrypoint(ctx.command_form()?)
        }
        "copy" => InstructionKind::Copy(parse_copy(ctx, escape)?),
        "add" => InstructionKind::Add(parse_add(ctx)?),
        "env" => InstructionKind::Env(parse_key_values(ctx)?),
        "label" => InstructionKind::Label(parse_key_values(ctx)?),
        "arg" => InstructionKind::Arg(parse_arg(ctx)?),
        "expose" => {
            ctx.no_flags()?;
            ctx.at_least(1)?;
            InstructionKind::Expose(node.args.clone())
        }
        "volume" => InstructionKind::Volume(parse_volume(ctx)?),
        "user" | "workdir" | "stopsignal" | "maintainer" => {
            ctx.no_flags()?;
            let value = ctx.exactly_one()?;
            match node.value.as_str() {
                "user" => InstructionKind::User(value),
                "workdir" => InstructionKind::Workdir(value),
                "stopsignal" => InstructionKind::StopSignal(value),
                _ => InstructionKind::Maintainer(value),
            }
        }
        "onbuild" => InstructionKind::Onbuild(parse_onbuild(ctx, escape)?),
        "healthcheck" => InstructionKind::Healthcheck(parse_healthcheck(ctx)?),
        "shell" => {
            ctx.no_flags()?;
            if !node.json {
                return Err(ctx.err("SHELL requires the arguments to be in JSON form"));
            }
            ctx.at_least(1)?;
            InstructionKind::Shell(node.args.clone())
        }
        "from" => return Err(ctx.err("FROM cannot be used here")),
        _ => {
            let word = node
                .original
                .split_whitespace()
                .next()
                .unwrap_or(&node.value);
            // BuildKit's hint: the closest instruction name, in the case the word was written.
            let message = crate::linter::suggest::wrap(
                format!("unknown instruction: {word}"),
                word,
                &INSTRUCTION_NAMES,
                false,
            );
            return Err(ctx.err(message));
        }
    };
    Ok(Instruction {
        kind,
        location: ctx.location(),
        original: node.original.clone(),
    })
}

fn parse_run(ctx: &Ctx) -> Result<Run, FrontendError> {
    let flags = ctx.flags(&[
        ("mount", FlagKind::List),
        ("network", FlagKind::Str),
        ("security", FlagKind::Str),
    ])?;
    let mut mounts = Vec::new();
    for value in flags.list("mount") {
        let mount = parse_mount(&value).map_err(|m| ctx.src.error_at(ctx.node, &value, m))?;
        mounts.push(mount);
    }
    let flag_err = |name: &str, m: String| {
        ctx.src
            .error_at(ctx.node, flags.raw(name).unwrap_or(name), m)
    };
    let network = match flags.string("network").as_deref() {
        None | Some("default") => NetworkMode::Default,
        Some("none") => NetworkMode::None,
        Some("host") => NetworkMode::Host,
        Some(other) => {
            return Err(flag_err(
                "network",
                format!("network mode {other:?} not supported"),
            ));
        }
    };
    let security = match flags.string("security").as_deref() {
        None | Some("sandbox") => Security::Sandbox,
        Some("insecure") => Security::Insecure,
        Some(other) => {
            return Err(flag_err(
                "security",
                format!("security mode {other:?} not supported"),
            ));
        }
    };
    Ok(Run {
        command: ctx.command_form()?,
        heredocs: ctx.node.heredocs.clone(),
        mounts,
        network,
        security,
    })
}

/// Splits COPY/ADD arguments into plain sources, heredoc sources and the destination. A
/// heredoc source's body is tab-chomped here for `<<-`, as BuildKit does at parse time.
fn sources_and_dest(ctx: &Ctx) -> Result<(Vec<String>, Vec<Heredoc>, String), FrontendError> {
    let args = &ctx.node.args;
    let Some((dest, sources)) = args.split_last().filter(|_| args.len() >= 2) else {
        return Err(ctx.err(format!(
            "{} requires at least two arguments, but only one was provided. Destination could not be determined",
            ctx.name()
        )));
    };
    let heredoc_word = |s: &str| {
        if ctx.node.json {
            None
        } else {
            ast::heredoc_from_word(s).ok().flatten()
        }
    };
    if heredoc_word(dest).is_some() {
        return Err(ctx.src.error_at(
            ctx.node,
            dest,
            format!("{} cannot accept a heredoc as a destination", ctx.name()),
        ));
    }
    let mut paths = Vec::new();
    let mut docs = Vec::new();
    for src in sources {
        match heredoc_word(src) {
            Some(word) => {
                let body = ctx.node.heredocs.iter().find(|d| d.name == word.name);
                let content = body.map(Heredoc::chomped_content).unwrap_or_default();
                docs.push(Heredoc { content, ..word });
            }
            None => paths.push(src.clone()),
        }
    }
    Ok((paths, docs, dest.clone()))
}

fn parse_copy(ctx: &Ctx, escape: char) -> Result<Copy, FrontendError> {
    let flags = ctx.flags(&[
        ("from", FlagKind::Str),
        ("chown", FlagKind::Str),
        ("chmod", FlagKind::Str),
        ("link", FlagKind::Bool),
        ("parents", FlagKind::Bool),
        ("exclude", FlagKind::List),
    ])?;
    let (sources, heredocs, dest) = sources_and_dest(ctx)?;
    let from = flags.string("from");
    // As BuildKit (toCommand): --from names the stage a step depends on before any variable
    // has a value, so it must read the same with none: `$X`, quotes and escapes are refused.
    if let Some(from) = &from {
        let literal = crate::shell::Lexer::new(escape)
            .process_word(from, &std::collections::BTreeMap::new())
            .is_ok_and(|w| w == *from);
        if !literal {
            return Err(ctx.err(
                "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
            ));
        }
    }
    Ok(Copy {
        sources,
        dest,
        from,
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        exclude: flags.list("exclude"),
        heredocs,
    })
}

fn parse_add(ctx: &Ctx) -> Result<Add, FrontendError> {
    let flags = ctx.flags(&[
        ("chown", FlagKind::Str),
        ("chmod", FlagKind::Str),
        ("link", FlagKind::Bool),
        ("checksum", FlagKind::Str),
        ("keep-git-dir", FlagKind::Bool),
        ("unpack", FlagKind::Bool),
        ("exclude", FlagKind::List),
    ])?;
    let (sources, heredocs, dest) = sources_and_dest(ctx)?;
    Ok(Add {
        sources,
        dest,
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir"),
        unpack: flags.opt_bool("unpack"),
        exclude: flags.list("exclude"),
        heredocs,
    })
}

fn parse_key_values(ctx: &Ctx) -> Result<Vec<KeyValue>, FrontendError> {
    ctx.no_flags()?;
    ctx.at_least(1)?;
    // The AST stores (key, value, separator) triples.
    let pairs: Vec<KeyValue> = ctx
        .node
        .args
        .chunks(3)
        .map(|c| KeyValue {
            key: c[0].clone(),
            value: c.get(1).cloned().unwrap_or_default(),
        })
        .collect();
    if pairs.iter().any(|kv| kv.key.is_empty()) {
        return Err(ctx.err(format!("{} names can not be blank", ctx.name())));
    }
    Ok(pairs)
}

fn parse_arg(ctx: &Ctx) -> Result<Vec<ArgDecl>, FrontendError> {
    ctx.no_flags()?;
    ctx.at_least(1)?;
    let mut decls = Vec::new();
    for word in &ctx.node.args {
        let (name, default) = match word.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (word.clone(), None),
        };
        if name.is_empty() {
            return Err(ctx
                .src
                .error_at(ctx.node, word, "ARG names can not be blank"));
        }
        decls.push(ArgDecl { name, default });
    }
    Ok(decls)
}

fn parse_volume(ctx: &Ctx) -> Result<Vec<String>, FrontendError> {
    ctx.no_flags()?;
    ctx.at_least(1)?;
    let volumes: Vec<String> = ctx.node.args.iter().map(|v| v.trim().to_string()).collect();
    if volumes.iter().any(String::is_empty) {
        return Err(ctx.err("VOLUME specified can not be an empty string"));
    }
    Ok(volumes)
}

/// Removes the leading `ONBUILD` keyword from the instruction text.
pub(crate) fn trigger_text(original: &str) -> String {
    let trimmed = original.trim_start();
    let rest = match trimmed.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => &trimmed[7..],
        _ => trimmed,
    };
    rest.trim_start().to_string()
}

/// Checks a trigger node the way docker does before storing it.
pub(crate) fn validate_trigger(ctx: &Ctx, escape: char) -> Result<(), FrontendError> {
    match ctx.node.value.as_str() {
        "onbuild" => Err(ctx.err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")),
        "from" | "maintainer" => Err(ctx.err(format!(
            "{} isn't allowed as an ONBUILD trigger",
            ctx.name()
        ))),
        _ => instruction_from_node(ctx, escape).map(|_| ()),
    }
}

fn parse_onbuild(ctx: &Ctx, escape: char) -> Result<String, FrontendError> {
    ctx.no_flags()?;
    let Some(child) = ctx.node.children.first() else {
        return Err(ctx.err("ONBUILD requires at least one argument"));
    };
    let mut child = child.clone();
    child.start_line = ctx.node.start_line;
    child.end_line = ctx.node.end_line;
    validate_trigger(
        &Ctx {
            src: ctx.src,
            node: &child,
        },
        escape,
    )?;
    // Heredoc bodies travel with the trigger so the child build can parse them again.
    let mut trigger = trigger_text(&ctx.node.original);
    for doc in &ctx.node.heredocs {
        trigger.push('\n');
        trigger.push_str(&doc.content);
        trigger.push_str(&doc.name);
    }
    Ok(trigger)
}

fn parse_healthcheck(ctx: &Ctx) -> Result<Healthcheck, FrontendError> {
    let flags = ctx.flags(&[
        ("interval", FlagKind::Str),
        ("timeout", FlagKind::Str),
        ("start-period", FlagKind::Str),
        ("start-interval", FlagKind::Str),
        ("retries", FlagKind::Str),
    ])?;
    let args = &ctx.node.args;
    let Some(typ) = args.first() else {
        return Err(ctx.err("HEALTHCHECK requires at least one argument"));
    };
    match typ.to_uppercase().as_str() {
        "NONE" if args.len() == 1 => return Ok(Healthcheck::None),
        "NONE" => return Err(ctx.err("HEALTHCHECK NONE takes no arguments")),
        "CMD" => {}
        _ => return Err(ctx.err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)"))),
    }
    let test = match (ctx.node.json, &args[1..]) {
        (_, []) => return Err(ctx.err("Missing command after HEALTHCHECK CMD")),
        (true, rest) => CommandForm::Exec(rest.to_vec()),
        (false, rest) => CommandForm::Shell(rest.join(" ")),
    };
    let duration = |name: &str| -> Result<Option<Duration>, FrontendError> {
        let Some(value) = flags.string(name) else {
            return Ok(None);
        };
        let d = parse_go_duration(&value)
            .map_err(|m| ctx.src.error_at(ctx.node, &format!("--{name}"), m))?;
        if !d.is_zero() && d < Duration::from_millis(1) {
            let m = format!("Interval {name:?} cannot be less than 1ms");
            return Err(ctx.src.error_at(ctx.node, &format!("--{name}"), m));
        }
        Ok(Some(d))
    };
    let retries = match flags.string("retries") {
        None => None,
        Some(v) => Some(v.parse::<u32>().map_err(|_| {
            let m = match v.parse::<i64>() {
                Ok(n) if n < 0 => format!("--retries cannot be negative ({n})"),
                _ => format!("invalid --retries value {v:?}"),
            };
            ctx.src.error_at(ctx.node, "--retries", m)
        })?),
    };
    Ok(Healthcheck::Check {
        test,
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        start_period: duration("start-period")?,
        start_interval: duration("start-interval")?,
        retries,
    })
}
