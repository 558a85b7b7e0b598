//! builder-frontend: the Dockerfile frontend of builder.
//!
//! Layers, following BuildKit's separation:
//! - [`ast`]: parser directives, line continuations, comments, heredocs → a BuildKit-compatible
//!   [`ast::Node`] tree (its [`ast::Node::dump`] matches BuildKit's conformance vectors byte for byte);
//! - `instructions` (re-exported here): typed [`Instruction`]s with validated flags, mounts,
//!   durations and forms, grouped into [`Stage`]s by [`parse_dockerfile`];
//! - [`shell`]: the word lexer/expander docker applies at dispatch time ([`Instruction::expand`]);
//! - [`dockerignore`]: `.dockerignore` pattern matching.
//!
//! Why our own parser: the `dockerfile-parser` crate (0.9) was measured to fall short of what
//! docker accepts. It rejects `# escape=` directives, heredocs and a UTF-8 BOM, leaves
//! `RUN --mount` flags inside the command text, takes `CMD [ 'x' ]` as exec form (docker: shell
//! form, since it is not valid JSON), and files ONBUILD/HEALTHCHECK/SHELL/USER/WORKDIR as untyped
//! "misc" instructions. `tests/dockerfile_parser_gaps.rs` keeps measuring those gaps against
//! this parser. We model ours on BuildKit's line-based parser instead.
//!
//! Typical use: parse, then expand each instruction just before dispatching it, with a lexer
//! built from the file's escape character and the variables in scope at that point.
//!
//! ```
//! use std::collections::BTreeMap;
//! use builder_frontend::{parse_dockerfile, shell::Lexer, InstructionKind};
//!
//! let df = parse_dockerfile(b"ARG TAG=3.20\nFROM alpine:${TAG}\nARG DIR=/app\nWORKDIR $DIR/src\n", "Dockerfile")?;
//! let lexer = Lexer::new(df.escape);
//! let meta: BTreeMap<String, String> = [("TAG".to_string(), "3.21".to_string())].into();
//! let (base, used) = df.stages[0].expand_base(&lexer, &meta)?;
//! assert_eq!(base, "alpine:3.21");
//! assert!(used.contains("TAG"));
//! let scope: BTreeMap<String, String> = [("DIR".to_string(), "/srv".to_string())].into();
//! let (workdir, used) = df.stages[0].instructions[1].expand(&lexer, &scope)?;
//! assert_eq!(workdir.kind, InstructionKind::Workdir("/srv/src".to_string()));
//! assert!(used.contains("DIR"));
//! # Ok::<(), builder_frontend::FrontendError>(())
//! ```

pub mod ast;
pub mod dockerignore;
mod duration;
pub mod error;
mod expand;
mod flags;
mod gostr;
mod instructions;
mod line_parsers;
pub mod linter;
mod mount;
pub mod shell;
mod shell_pattern;
pub mod syntax;

use std::collections::BTreeSet;

pub use ast::Heredoc;
pub use duration::parse_go_duration;
pub use error::{FrontendError, ShellError};
pub use instructions::{
    Add, ArgDecl, CommandForm, Copy, Healthcheck, Instruction, InstructionKind, KeyValue, Location,
    NetworkMode, Run, Security,
};
pub use mount::{CacheSharing, Mount, parse_mount};

use instructions::{Ctx, SourceLines, instruction_from_node};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub escape: char,
    /// The `# syntax=` directive, if present (builder always uses its own frontend).
    pub syntax: Option<String>,
    /// `ARG`s before the first `FROM`; they may be used in `FROM` lines.
    pub meta_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
    pub warnings: Vec<String>,
}

/// One build stage: a `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The `AS` name, lowercased.
    pub name: Option<String>,
    /// The base image reference as written (may contain `$VAR`s from meta args).
    pub base: String,
    /// `--platform=` as written.
    pub platform: Option<String>,
    pub instructions: Vec<Instruction>,
    pub location: Location,
}

impl Stage {
    /// Expands the base image reference with the meta args, returning the names it used.
    pub fn expand_base(
        &self,
        lexer: &shell::Lexer,
        env: &dyn shell::EnvLookup,
    ) -> Result<(String, BTreeSet<String>), FrontendError> {
        expand_stage_word(self, &self.base, lexer, env)
    }

    /// Expands `--platform` (if any) with the meta args (plus the caller's automatic
    /// platform args such as `BUILDPLATFORM`).
    pub fn expand_platform(
        &self,
        lexer: &shell::Lexer,
        env: &dyn shell::EnvLookup,
    ) -> Result<Option<(String, BTreeSet<String>)>, FrontendError> {
        self.platform
            .as_ref()
            .map(|p| expand_stage_word(self, p, lexer, env))
            .transpose()
    }
}

fn expand_stage_word(
    stage: &Stage,
    word: &str,
    lexer: &shell::Lexer,
    env: &dyn shell::EnvLookup,
) -> Result<(String, BTreeSet<String>), FrontendError> {
    let (value, refs) = lexer.process_word_with_matches(word, env).map_err(|e| {
        FrontendError::new(
            stage.location.start_line,
            1,
            format!("failed to process {word:?}: {e}"),
        )
    })?;
    if value.is_empty() {
        return Err(FrontendError::new(
            stage.location.start_line,
            1,
            format!("base name ({word}) should not be blank"),
        ));
    }
    Ok((value, refs))
}

/// Parses a Dockerfile. `file_name` only labels errors.
pub fn parse_dockerfile(source: &[u8], file_name: &str) -> Result<Dockerfile, FrontendError> {
    // BuildKit's wording for each way a Dockerfile can have nothing to build: an empty file,
    // only comments (the parser's), only ARGs, an instruction before the first FROM.
    if source.is_empty() {
        return Err(FrontendError::new(1, 1, "the Dockerfile cannot be empty").with_file(file_name));
    }
    let parsed = ast::parse(source).map_err(|e| e.with_file(file_name))?;
    let text = String::from_utf8_lossy(source);
    let src = SourceLines::new(&text);
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    // Empty continuation lines and MAINTAINER are reported by the linter (NoEmptyContinuation,
    // MaintainerDeprecated) with the other checks, not here.
    let warnings = Vec::new();
    for node in &parsed.root.children {
        let ctx = Ctx { src: &src, node };
        if node.value == "from" {
            stages.push(stage_from_node(&ctx).map_err(|e| e.with_file(file_name))?);
            continue;
        }
        let instruction =
            instruction_from_node(&ctx, parsed.escape).map_err(|e| e.with_file(file_name))?;
        match stages.last_mut() {
            Some(stage) => {
                stage.location.end_line = instruction.location.end_line;
                stage.instructions.push(instruction);
            }
            None if matches!(instruction.kind, InstructionKind::Arg(_)) => {
                meta_args.push(instruction)
            }
            None => {
                return Err(src
                    .error(node, "no build stage in current context")
                    .with_file(file_name));
            }
        }
    }
    if stages.is_empty() {
        let line = parsed.root.end_line;
        return Err(
            FrontendError::new(line, 1, "dockerfile contains no stages to build")
                .with_file(file_name),
        );
    }
    Ok(Dockerfile {
        escape: parsed.escape,
        syntax: parsed.syntax,
        meta_args,
        stages,
        warnings,
    })
}

fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn stage_from_node(ctx: &Ctx) -> Result<Stage, FrontendError> {
    let node = ctx.node;
    let flags =
        flags::parse_flags(&node.flags, &[("platform", flags::FlagKind::Str)]).map_err(|e| {
            ctx.src
                .error_at(node, e.raw.split('=').next().unwrap_or(&e.raw), e.message)
        })?;
    let name = match node.args.as_slice() {
        [_] => None,
        [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !is_valid_stage_name(&lower) {
                let m = format!(
                    "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                );
                return Err(ctx.src.error_at(node, name, m));
            }
            Some(lower)
        }
        _ => {
            return Err(ctx
                .src
                .error(node, "FROM requires either one or three arguments"));
        }
    };
    Ok(Stage {
        name,
        base: node.args[0].clone(),
        platform: flags.string("platform"),
        instructions: Vec::new(),
        location: Location {
            start_line: node.start_line,
            end_line: node.end_line,
        },
    })
}

/// Parses an ONBUILD trigger (as stored in an image's config) so a child build can run it.
/// Rejects `ONBUILD ONBUILD`, `FROM` and `MAINTAINER` triggers as docker does.
pub fn parse_onbuild_trigger(trigger: &str, escape: char) -> Result<Instruction, FrontendError> {
    // Escape directives cannot appear in a trigger; make sure a leading `#` is not taken as one.
    let text = if escape == '\\' {
        trigger.to_string()
    } else {
        format!("# escape={escape}\n{trigger}")
    };
    let offset = usize::from(escape != '\\');
    // Errors from `ast::parse` count the prepended directive line: report the trigger's own.
    let parsed = ast::parse(text.as_bytes()).map_err(|mut e| {
        e.line = e.line.saturating_sub(offset).max(1);
        e
    })?;
    let [node] = parsed.root.children.as_slice() else {
        return Err(FrontendError::new(
            1,
            1,
            "an ONBUILD trigger must be exactly one instruction",
        ));
    };
    let mut node = node.clone();
    node.start_line -= offset;
    node.end_line -= offset;
    let src = SourceLines::new(trigger);
    let ctx = Ctx {
        src: &src,
        node: &node,
    };
    instructions::validate_trigger(&ctx, escape)?;
    instruction_from_node(&ctx, escape)
}
