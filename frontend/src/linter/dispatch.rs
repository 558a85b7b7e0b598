//! Rules BuildKit checks while dispatching the instructions of the stages a build needs:
//! UndefinedVar, SecretsUsedInArgOrEnv, LegacyKeyValueFormat, JSONArgsRecommended,
//! MultipleInstructionsDisallowed, WorkdirRelativePath, ExposeProtoCasing, ExposeInvalidFormat,
//! CopyIgnoredFile and InvalidBaseImagePlatform.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

use super::from_rules::Globals;
use super::{CheckConfig, LintOptions, Parsed, Sink, command_word, lines, rules, suggest};
use crate::dockerignore::IgnoreMatcher;
use crate::shell::Lexer;
use crate::{Instruction, InstructionKind, Mount};

/// ARGs BuildKit never puts in the environment (its SBOM scanner's settings).
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// docker's PATH for images that set none: every stage has a PATH.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a stage's image holds at some point of its dispatch, as far as the rules care.
#[derive(Clone, Default)]
struct State {
    env: BTreeMap<String, String>,
    /// False when the base image could not be looked up: its variables are unknown, so
    /// UndefinedVar is not evaluated rather than guessed.
    env_known: bool,
    shell: bool,
    workdir_set: bool,
}

pub(crate) fn check(
    parsed: &Parsed,
    config: &CheckConfig,
    opts: &LintOptions,
    globals: &Globals,
    sink: &mut Sink,
) {
    let lexer = Lexer::new(parsed.dockerfile.escape);
    let stages = &parsed.dockerfile.stages;
    let names: Vec<Option<&str>> = stages.iter().map(|s| s.name.as_deref()).collect();
    let stage_named = |name: &str, before: usize| -> Option<usize> {
        let wanted = name.to_lowercase();
        names
            .iter()
            .take(before)
            .position(|n| *n == Some(wanted.as_str()))
    };
    let base_names: Vec<String> = stages
        .iter()
        .map(|s| {
            lexer
                .process_word(&s.base, &globals.env)
                .unwrap_or_default()
        })
        .collect();
    let parents: Vec<Option<usize>> = base_names
        .iter()
        .enumerate()
        .map(|(i, b)| stage_named(b, i))
        .collect();
    let reachable = reachable(parsed, opts, &parents, &stage_named);
    let ignore = opts.dockerignore.and_then(|text| {
        let has_exclusions = text.lines().any(|l| l.trim().starts_with('!'));
        let matcher = IgnoreMatcher::parse(text).ok()?;
        let root_ignored = text
            .lines()
            .any(|l| matches!(l.trim(), "*" | "**" | "**/*"));
        // With `!` exceptions a directory may be excluded and a file in it not: BuildKit does
        // not guess, nor do we.
        (!has_exclusions && !matcher.is_empty()).then_some((matcher, root_ignored))
    });
    let mut finals: Vec<Option<State>> = vec![None; stages.len()];
    for (index, stage) in stages.iter().enumerate() {
        if !reachable.contains(&index) {
            continue;
        }
        let from_config = config.with_comments(&parsed.comments[parsed.stage_nodes[index]]);
        let at = parsed.stage_lines(index);
        let mut state = match parents[index].and_then(|p| finals[p].clone()) {
            Some(parent) => parent,
            None => {
                let base = &base_names[index];
                let target = opts
                    .platform_args
                    .get("TARGETPLATFORM")
                    .cloned()
                    .unwrap_or_default();
                let expected = stage
                    .platform
                    .as_ref()
                    .and_then(|p| lexer.process_word(p, &globals.env).ok())
                    .unwrap_or(target);
                let mut state = State {
                    env_known: true,
                    ..State::default()
                };
                // A malformed platform fails the build before any image is looked up.
                let platform_ok = expected.split('/').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                });
                if !platform_ok {
                    state.env_known = false;
                } else if !base.eq_ignore_ascii_case("scratch") {
                    match (opts.base_images)(base, &expected) {
                        Some(image) => {
                            state.shell = image.shell;
                            for key in image.env {
                                state.env.insert(key, String::new());
                            }
                            let os_arch = |p: &str| {
                                let mut it = p.split('/');
                                (it.next().map(str::to_owned), it.next().map(str::to_owned))
                            };
                            if !image.platform.is_empty()
                                && os_arch(&image.platform) != os_arch(&expected)
                            {
                                sink.report(
                                    &from_config,
                                    &rules::INVALID_BASE_IMAGE_PLATFORM,
                                    format!(
                                        "Base image {base} was pulled with platform {:?}, expected {expected:?} for current build",
                                        image.platform
                                    ),
                                    at,
                                );
                            }
                        }
                        None => state.env_known = false,
                    }
                }
                state
                    .env
                    .entry("PATH".into())
                    .or_insert_with(|| DEFAULT_PATH.into());
                state
            }
        };
        let mut stage_args: BTreeSet<String> = BTreeSet::new();
        let mut seen: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (k, instruction) in stage.instructions.iter().enumerate() {
            let node_index = parsed.instruction_nodes[index][k];
            let node = &parsed.nodes[node_index];
            let config = config.with_comments(&parsed.comments[node_index]);
            let at = lines(node);
            let word = command_word(node);
            if let InstructionKind::Arg(decls) = &instruction.kind {
                for decl in decls {
                    secret_name("ARG", &decl.name, &config, at, sink);
                    let value = if let Some(v) = opts.build_args.get(&decl.name) {
                        Some(v.clone())
                    } else if let Some(default) = &decl.default {
                        match lexer.process_word_with_matches(default, &state.env) {
                            Ok((v, refs)) => {
                                undefined(refs, &state, &stage_args, &config, at, sink);
                                Some(v)
                            }
                            Err(_) => None,
                        }
                    } else {
                        globals.env.get(&decl.name).cloned()
                    };
                    if let Some(v) = value
                        && !NON_ENV_ARGS.contains(&decl.name.as_str())
                    {
                        state.env.insert(decl.name.clone(), v);
                    }
                    stage_args.insert(decl.name.clone());
                }
                continue;
            }
            let Ok((expanded, refs)) = instruction.expand(&lexer, &state.env) else {
                continue;
            };
            undefined(refs, &state, &stage_args, &config, at, sink);
            match &expanded.kind {
                InstructionKind::Env(kvs) => {
                    legacy_key_value(node, word, &config, sink);
                    for kv in kvs {
                        secret_name("ENV", &kv.key, &config, at, sink);
                        state.env.insert(kv.key.clone(), kv.value.clone());
                    }
                }
                InstructionKind::Label(_) => legacy_key_value(node, word, &config, sink),
                InstructionKind::Cmd(form) | InstructionKind::Entrypoint(form) => {
                    used_once(&mut seen, node, word, &config, sink);
                    if form.prepends_shell() && !state.shell {
                        sink.report(
                            &config,
                            &rules::JSON_ARGS_RECOMMENDED,
                            format!(
                                "JSON arguments recommended for {word} to prevent unintended behavior related to OS signals"
                            ),
                            at,
                        );
                    }
                }
                InstructionKind::Healthcheck(_) => used_once(&mut seen, node, word, &config, sink),
                InstructionKind::Shell(_) => state.shell = true,
                InstructionKind::Workdir(path) => {
                    if !state.workdir_set && !path.starts_with('/') {
                        sink.report(
                            &config,
                            &rules::WORKDIR_RELATIVE_PATH,
                            format!(
                                "Relative workdir {path:?} can have unexpected results if the base image changes"
                            ),
                            at,
                        );
                    }
                    state.workdir_set = true;
                }
                InstructionKind::Expose(ports) => {
                    for port in ports.iter().flat_map(|p| p.split_whitespace()) {
                        expose(port, &config, at, sink);
                    }
                }
                InstructionKind::Copy(copy) if copy.from.is_none() => {
                    if let Some((matcher, root)) = &ignore {
                        for src in &copy.sources {
                            ignored("Copy", src, matcher, *root, &config, at, sink);
                        }
                    }
                }
                InstructionKind::Add(add) => {
                    if let Some((matcher, root)) = &ignore {
                        for src in add.sources.iter().filter(|s| !is_remote(s)) {
                            ignored("Add", src, matcher, *root, &config, at, sink);
                        }
                    }
                }
                _ => {}
            }
        }
        finals[index] = Some(state);
    }
}

/// UndefinedVar: variables an instruction expands that are neither in the stage's environment
/// nor declared by an ARG of the stage.
fn undefined(
    refs: BTreeSet<String>,
    state: &State,
    stage_args: &BTreeSet<String>,
    config: &CheckConfig,
    at: (usize, usize),
    sink: &mut Sink,
) {
    if !state.env_known {
        return;
    }
    let options: Vec<&str> = state.env.keys().map(String::as_str).collect();
    for name in refs {
        if state.env.contains_key(&name)
            || stage_args.contains(&name)
            || NON_ENV_ARGS.contains(&name.as_str())
        {
            continue;
        }
        let mut message = format!("Usage of undefined variable '${name}'");
        if let Some(hint) = suggest::search(&name, &options, true) {
            message.push_str(&format!(" (did you mean ${hint}?)"));
        }
        sink.report(config, &rules::UNDEFINED_VAR, message, at);
    }
}

/// The stages the build dispatches: the target and everything it needs (every stage when
/// asked to check them all).
fn reachable(
    parsed: &Parsed,
    opts: &LintOptions,
    parents: &[Option<usize>],
    stage_named: &dyn Fn(&str, usize) -> Option<usize>,
) -> BTreeSet<usize> {
    let stages = &parsed.dockerfile.stages;
    if opts.all_stages {
        return (0..stages.len()).collect();
    }
    let target = match opts.target {
        Some(t) => match stage_named(t, stages.len()) {
            Some(i) => i,
            None => return BTreeSet::new(),
        },
        None => stages.len().saturating_sub(1),
    };
    let mut out = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !out.insert(i) {
            continue;
        }
        todo.extend(parents[i]);
        for instruction in &stages[i].instructions {
            for from in from_refs(instruction) {
                let dep = match from.parse::<usize>() {
                    Ok(n) if n < i => Some(n),
                    _ => stage_named(from, i),
                };
                todo.extend(dep);
            }
        }
    }
    out
}

/// The `--from` of COPY and the `from=` of RUN mounts: other stages a stage reads.
fn from_refs(instruction: &Instruction) -> Vec<&str> {
    match &instruction.kind {
        InstructionKind::Copy(c) => c.from.as_deref().into_iter().collect(),
        InstructionKind::Run(r) => r
            .mounts
            .iter()
            .filter_map(|m| match m {
                Mount::Bind { from, .. } | Mount::Cache { from, .. } => from.as_deref(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// MultipleInstructionsDisallowed: only the last CMD, ENTRYPOINT or HEALTHCHECK of a stage
/// counts, so the earlier one is flagged.
fn used_once(
    seen: &mut BTreeMap<&'static str, (usize, usize)>,
    node: &crate::ast::Node,
    word: &str,
    config: &CheckConfig,
    sink: &mut Sink,
) {
    let key = match node.value.as_str() {
        "cmd" => "cmd",
        "entrypoint" => "entrypoint",
        _ => "healthcheck",
    };
    if let Some(previous) = seen.insert(key, lines(node)) {
        sink.report(
            config,
            &rules::MULTIPLE_INSTRUCTIONS_DISALLOWED,
            format!(
                "Multiple {word} instructions should not be used in the same stage because only the last one will be used"
            ),
            previous,
        );
    }
}

/// LegacyKeyValueFormat: `ENV key value` (no `=`) instead of `ENV key=value`.
fn legacy_key_value(node: &crate::ast::Node, word: &str, config: &CheckConfig, sink: &mut Sink) {
    let rest = node.original.trim_start()[word.len()..].trim_start();
    let first = rest.split_whitespace().next().unwrap_or_default();
    if !first.is_empty() && !first.contains('=') {
        sink.report(
            config,
            &rules::LEGACY_KEY_VALUE_FORMAT,
            format!(
                "\"{word} key=value\" should be used instead of legacy \"{word} key value\" format"
            ),
            lines(node),
        );
    }
}

static SECRET_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        "(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)",
    )
    .expect("valid pattern")
});
static PUBLIC_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("(?i)(?:_|^)(?:public|file|version)(?:_|$)").expect("valid pattern")
});

/// SecretsUsedInArgOrEnv: a name that says it holds a secret (`API_KEY`, `DB_PASSWORD`) and
/// not that it is public (`PUBLIC_KEY`, `KEY_FILE`).
fn secret_name(
    instruction: &str,
    key: &str,
    config: &CheckConfig,
    at: (usize, usize),
    sink: &mut Sink,
) {
    if SECRET_WORD.is_match(key) && !PUBLIC_WORD.is_match(key) {
        sink.report(
            config,
            &rules::SECRETS_USED_IN_ARG_OR_ENV,
            format!(
                "Do not use ARG or ENV instructions for sensitive data ({instruction} {key:?})"
            ),
            at,
        );
    }
}

/// ExposeProtoCasing and ExposeInvalidFormat for one `[ip:][hostPort:]port[/proto]`.
fn expose(raw: &str, config: &CheckConfig, at: (usize, usize), sink: &mut Sink) {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let (ip, host_port, container) = match n {
        1 => ("".to_string(), "", parts[0]),
        2 => ("".to_string(), parts[0], parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let (port, proto) = container.split_once('/').unwrap_or((container, ""));
    // An invalid port or protocol is the build's error, not a lint.
    if port.is_empty() || !matches!(proto.to_lowercase().as_str(), "" | "tcp" | "udp" | "sctp") {
        return;
    }
    if proto != proto.to_lowercase() {
        sink.report(
            config,
            &rules::EXPOSE_PROTO_CASING,
            format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase"),
            at,
        );
    }
    if !ip.is_empty() || !host_port.is_empty() {
        sink.report(
            config,
            &rules::EXPOSE_INVALID_FORMAT,
            format!(
                "EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"
            ),
            at,
        );
    }
}

fn is_remote(src: &str) -> bool {
    src.starts_with("http://")
        || src.starts_with("https://")
        || src.starts_with("git@")
        || src.starts_with("git://")
}

/// Go's `path.Clean` for slash paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// CopyIgnoredFile: a source the .dockerignore excludes can never be copied.
fn ignored(
    cmd: &str,
    src: &str,
    matcher: &IgnoreMatcher,
    root_ignored: bool,
    config: &CheckConfig,
    at: (usize, usize),
    sink: &mut Sink,
) {
    let src = clean(src);
    let hit = if src == "." || src == "/" {
        // The context root itself is only "ignored" when everything in it is.
        root_ignored
    } else {
        matcher.is_excluded(&src)
    };
    if hit {
        sink.report(
            config,
            &rules::COPY_IGNORED_FILE,
            format!("Attempting to {cmd} file {src:?} that is excluded by .dockerignore"),
            at,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn clean_like_go() {
        assert_eq!(clean("./a/../b/"), "b");
        assert_eq!(clean("/x/./y"), "/x/y");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("/.."), "/");
    }
}
