//! Rules about FROM lines, evaluated with the ARGs declared before the first FROM:
//! InvalidDefaultArgInFrom, UndefinedArgInFrom, RedundantTargetPlatform and
//! FromPlatformFlagConstDisallowed.

use std::collections::{BTreeMap, BTreeSet};

use super::{CheckConfig, LintOptions, Parsed, Sink, reference, rules, suggest};
use crate::InstructionKind;
use crate::shell::Lexer;

/// The global (meta) ARGs as the build sees them.
pub(crate) struct Globals {
    /// Automatic platform args plus meta ARGs that have a value, build args applied.
    pub(crate) env: BTreeMap<String, String>,
}

/// The meta ARGs' values: a build arg wins over the default; an ARG with neither is unset.
fn meta_env(
    parsed: &Parsed,
    lexer: &Lexer,
    platform_args: &BTreeMap<String, String>,
    build_args: Option<&BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    let mut env = platform_args.clone();
    if let Some(b) = build_args {
        for (k, v) in env.iter_mut() {
            if let Some(given) = b.get(k) {
                v.clone_from(given);
            }
        }
    }
    for arg in &parsed.dockerfile.meta_args {
        let InstructionKind::Arg(decls) = &arg.kind else {
            continue;
        };
        for decl in decls {
            if let Some(v) = build_args.and_then(|b| b.get(&decl.name)) {
                env.insert(decl.name.clone(), v.clone());
            } else if let Some(default) = &decl.default {
                let value = lexer.process_word(default, &env).ok()?;
                env.insert(decl.name.clone(), value);
            }
        }
    }
    Some(env)
}

fn meta_keys(parsed: &Parsed) -> BTreeSet<String> {
    parsed
        .dockerfile
        .meta_args
        .iter()
        .filter_map(|a| match &a.kind {
            InstructionKind::Arg(decls) => Some(decls.iter().map(|d| d.name.clone())),
            _ => None,
        })
        .flatten()
        .collect()
}

pub(crate) fn check(
    parsed: &Parsed,
    config: &CheckConfig,
    opts: &LintOptions,
    sink: &mut Sink,
) -> Globals {
    let lexer = Lexer::new(parsed.dockerfile.escape);
    // With defaults only: a base name that needs a build arg to be valid is flagged.
    if let Some(defaults) = meta_env(parsed, &lexer, &opts.platform_args, None) {
        for (index, stage) in parsed.dockerfile.stages.iter().enumerate() {
            let Ok(name) = lexer.process_word(&stage.base, &defaults) else {
                break;
            };
            if !reference::is_valid(&name) {
                sink.report(
                    config,
                    &rules::INVALID_DEFAULT_ARG_IN_FROM,
                    format!(
                        "Default value for ARG {} results in empty or invalid base image name",
                        stage.base
                    ),
                    parsed.stage_lines(index),
                );
            }
        }
    }
    let env = meta_env(parsed, &lexer, &opts.platform_args, Some(opts.build_args))
        .unwrap_or_else(|| opts.platform_args.clone());
    let mut declared = meta_keys(parsed);
    declared.extend(env.keys().cloned());
    let declared_list: Vec<&str> = declared.iter().map(String::as_str).collect();
    for (index, stage) in parsed.dockerfile.stages.iter().enumerate() {
        let config = config.with_comments(&parsed.comments[parsed.stage_nodes[index]]);
        let at = parsed.stage_lines(index);
        let undeclared = |refs: &BTreeSet<String>, sink: &mut Sink| {
            for name in refs.iter().filter(|n| !env.contains_key(*n)) {
                if declared.contains(name) {
                    continue;
                }
                let mut message = format!("FROM argument '{name}' is not declared");
                if let Some(hint) = suggest::search(name, &declared_list, true) {
                    message.push_str(&format!(" (did you mean {hint}?)"));
                }
                sink.report(&config, &rules::UNDEFINED_ARG_IN_FROM, message, at);
            }
        };
        if let Ok((_, refs)) = lexer.process_word_with_matches(&stage.base, &env) {
            undeclared(&refs, sink);
        }
        let Some(platform) = &stage.platform else {
            continue;
        };
        let Ok((value, refs)) = lexer.process_word_with_matches(platform, &env) else {
            continue;
        };
        undeclared(&refs, sink);
        let unmatched = refs.iter().any(|r| !env.contains_key(r));
        if refs.len() == 1
            && refs.contains("TARGETPLATFORM")
            && !unmatched
            && env.get("TARGETPLATFORM") == Some(&value)
        {
            sink.report(
                &config,
                &rules::REDUNDANT_TARGET_PLATFORM,
                format!(
                    "Setting platform to predefined {platform} in FROM is redundant as this is the default behavior"
                ),
                at,
            );
        }
        if refs.is_empty() && !value.is_empty() {
            let mut parts = value.split('/');
            let os = parts.next().unwrap_or_default();
            let arch = parts.next().unwrap_or_default();
            let name = stage.name.as_deref().unwrap_or_default();
            // A stage named after its platform (`FROM --platform=linux/amd64 x AS build-amd64`)
            // pins it on purpose.
            if !arch.is_empty() && !name.contains(os) && !name.contains(arch) {
                sink.report(
                    &config,
                    &rules::FROM_PLATFORM_FLAG_CONST_DISALLOWED,
                    format!("FROM --platform flag should not use constant value {value:?}"),
                    at,
                );
            }
        }
    }
    Globals { env }
}
