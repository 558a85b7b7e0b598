//! BuildKit's Dockerfile checks (`docker build --check`, and the warnings every build prints):
//! the same rules, names, messages and `# check=` configuration, evaluated on our parse of the
//! Dockerfile before anything is built.
//!
//! Rules that BuildKit evaluates while dispatching instructions (UndefinedVar,
//! WorkdirRelativePath, JSONArgsRecommended, ...) are checked for the stages the build needs
//! (every stage for `--check` without `--target`), as in BuildKit. What they need from base
//! images (their environment, shell and platform) comes from the caller through [`BaseImages`].

mod config;
mod dispatch;
mod from_rules;
pub mod outline;
mod parse_rules;
mod reference;
pub mod rules;
mod source;
pub mod suggest;

use std::collections::BTreeMap;

pub use config::{CheckConfig, CheckOptionError};
pub use rules::Rule;
pub use source::excerpt;

use crate::ast::{self, Node};
use crate::error::FrontendError;
use crate::{Dockerfile, parse_dockerfile};

/// One warning: a rule, its message, and the source lines it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: &'static Rule,
    pub message: String,
    pub start_line: usize,
    pub end_line: usize,
}

impl Warning {
    /// BuildKit's short form: `Rule: message (line N)`.
    pub fn short(&self) -> String {
        format!(
            "{}: {} (line {})",
            self.rule.name, self.message, self.start_line
        )
    }
}

/// What the linter knows about an image a stage starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImage {
    /// Names of the variables in the image's `Env`.
    pub env: Vec<String>,
    /// The image sets `SHELL`.
    pub shell: bool,
    /// `os/arch[/variant]` of the image that was resolved.
    pub platform: String,
}

/// Looks up a base image by its (expanded) reference for a platform (`os/arch[/variant]`).
/// `None` when it cannot be known: the rules that need it are then not evaluated for that stage
/// rather than guessed.
pub type BaseImages<'a> = &'a dyn Fn(&str, &str) -> Option<BaseImage>;

/// Inputs of a lint besides the Dockerfile itself.
pub struct LintOptions<'a> {
    pub file_name: &'a str,
    /// `--build-arg` values.
    pub build_args: &'a BTreeMap<String, String>,
    /// The automatic platform args (`BUILDPLATFORM`, `TARGETPLATFORM`, `TARGETOS`, ...).
    pub platform_args: BTreeMap<String, String>,
    pub target: Option<&'a str>,
    /// Check every stage, not only those the target needs (`--check` without `--target`).
    pub all_stages: bool,
    /// The `.dockerignore` text, for CopyIgnoredFile.
    pub dockerignore: Option<&'a str>,
    pub base_images: BaseImages<'a>,
}

/// The result of [`lint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintReport {
    /// In source order.
    pub warnings: Vec<Warning>,
    /// `error=true` was asked for: warnings fail the build.
    pub error_on_warnings: bool,
}

impl LintReport {
    /// BuildKit's error when `error=true` and a rule fired.
    pub fn violation_error(&self) -> Option<String> {
        if !self.error_on_warnings || self.warnings.is_empty() {
            return None;
        }
        let mut names: Vec<&str> = self.warnings.iter().map(|w| w.rule.name).collect();
        names.sort_unstable();
        names.dedup();
        Some(format!(
            "lint violation found for rules: {}",
            names.join(", ")
        ))
    }
}

/// Where warnings go while rules run: each is kept only if the config in effect enables it.
pub(crate) struct Sink {
    warnings: Vec<Warning>,
}

impl Sink {
    pub(crate) fn report(
        &mut self,
        config: &CheckConfig,
        rule: &'static Rule,
        message: String,
        lines: (usize, usize),
    ) {
        if config.enabled(rule) {
            self.warnings.push(Warning {
                rule,
                message,
                start_line: lines.0,
                end_line: lines.1,
            });
        }
    }
}

/// The parse tree and typed Dockerfile, side by side, with what the rules need of each node.
pub(crate) struct Parsed {
    pub(crate) nodes: Vec<Node>,
    pub(crate) comments: Vec<Vec<String>>,
    pub(crate) dockerfile: Dockerfile,
    /// For each stage, the index of its FROM node.
    pub(crate) stage_nodes: Vec<usize>,
    /// For each meta ARG (before the first FROM), its node index.
    pub(crate) meta_nodes: Vec<usize>,
    /// For each stage, the node index of each of its instructions.
    pub(crate) instruction_nodes: Vec<Vec<usize>>,
}

/// The instruction word as written (`FROM`, `from`, `From`).
pub(crate) fn command_word(node: &Node) -> &str {
    node.original.split_whitespace().next().unwrap_or("")
}

pub(crate) fn lines(node: &Node) -> (usize, usize) {
    (node.start_line, node.end_line)
}

impl Parsed {
    /// The lines of stage `index`'s FROM instruction: where BuildKit locates a stage.
    pub(crate) fn stage_lines(&self, index: usize) -> (usize, usize) {
        lines(&self.nodes[self.stage_nodes[index]])
    }
}

/// The parse tree with the comments above each node: what parse-time rules need, available
/// even when the typed parse fails further down.
pub(crate) struct Tree {
    pub(crate) nodes: Vec<Node>,
    pub(crate) comments: Vec<Vec<String>>,
    pub(crate) empty_continuations: Vec<usize>,
    pub(crate) check_directive: Option<String>,
}

pub(crate) fn parse_tree(source: &[u8], file_name: &str) -> Result<Tree, FrontendError> {
    let text = String::from_utf8_lossy(source);
    let tree = ast::parse(source).map_err(|e| e.with_file(file_name))?;
    let nodes = tree.root.children;
    let comments = source::comments_above(&text, &nodes);
    Ok(Tree {
        nodes,
        comments,
        empty_continuations: tree.empty_continuations,
        check_directive: tree.check,
    })
}

fn typed(tree: Tree, dockerfile: Dockerfile) -> Parsed {
    let mut stage_nodes = Vec::new();
    let mut meta_nodes = Vec::new();
    let mut instruction_nodes: Vec<Vec<usize>> = Vec::new();
    for (i, node) in tree.nodes.iter().enumerate() {
        if node.value == "from" {
            stage_nodes.push(i);
            instruction_nodes.push(Vec::new());
        } else if let Some(current) = instruction_nodes.last_mut() {
            current.push(i);
        } else {
            meta_nodes.push(i);
        }
    }
    Parsed {
        nodes: tree.nodes,
        comments: tree.comments,
        dockerfile,
        stage_nodes,
        meta_nodes,
        instruction_nodes,
    }
}

pub(crate) fn parse(source: &[u8], file_name: &str) -> Result<Parsed, FrontendError> {
    let tree = parse_tree(source, file_name)?;
    let dockerfile = parse_dockerfile(source, file_name)?;
    Ok(typed(tree, dockerfile))
}

/// The check configuration: `BUILDKIT_DOCKERFILE_CHECK` when given, else the `# check=`
/// directive. Errors are worded as BuildKit's.
pub fn check_config(
    directive: Option<&str>,
    build_args: &BTreeMap<String, String>,
) -> Result<CheckConfig, String> {
    if let Some(v) = build_args.get("BUILDKIT_DOCKERFILE_CHECK") {
        return CheckConfig::parse(v)
            .map_err(|e| format!("failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK: {e}"));
    }
    CheckConfig::parse(directive.unwrap_or(""))
        .map_err(|e| format!("failed to parse check options: {e}"))
}

/// Why nothing could be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LintError {
    /// The Dockerfile does not parse (the build reports the same error). `warnings` are those
    /// of the instructions before the error, as BuildKit reports them alongside it.
    #[error("{error}")]
    Dockerfile {
        error: FrontendError,
        warnings: Vec<Warning>,
    },
    /// `# check=` or `BUILDKIT_DOCKERFILE_CHECK` is malformed.
    #[error("{0}")]
    Config(String),
}

/// Runs every rule over `source`.
pub fn lint(source: &[u8], opts: &LintOptions) -> Result<LintReport, LintError> {
    let tree = parse_tree(source, opts.file_name).map_err(|error| LintError::Dockerfile {
        error,
        warnings: Vec::new(),
    })?;
    let config = check_config(tree.check_directive.as_deref(), opts.build_args)
        .map_err(LintError::Config)?;
    let mut sink = Sink {
        warnings: Vec::new(),
    };
    let dockerfile = match parse_dockerfile(source, opts.file_name) {
        Ok(d) => d,
        Err(error) => {
            // What BuildKit checked before it reached the bad instruction still counts.
            parse_rules::check_nodes(&tree, &config, &mut sink, Some(error.line));
            let mut warnings = sink.warnings;
            warnings.sort_by_key(|w| w.start_line);
            return Err(LintError::Dockerfile { error, warnings });
        }
    };
    parse_rules::check_nodes(&tree, &config, &mut sink, None);
    let parsed = typed(tree, dockerfile);
    parse_rules::check(&parsed, &config, &mut sink);
    let globals = from_rules::check(&parsed, &config, opts, &mut sink);
    dispatch::check(&parsed, &config, opts, &globals, &mut sink);
    let mut warnings = sink.warnings;
    warnings.sort_by_key(|w| w.start_line);
    Ok(LintReport {
        warnings,
        error_on_warnings: config.error,
    })
}

#[cfg(test)]
mod tests;
