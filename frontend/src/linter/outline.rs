//! What `--call=outline` and `--call=targets` report (BuildKit's `frontend.outline` and
//! `frontend.targets` subrequests): the build args a target uses with their defaults and
//! `# NAME description` comments, its secrets and ssh ids, and every stage with its
//! description.

use std::collections::{BTreeMap, BTreeSet};

use super::{LintOptions, Parsed, parse};
use crate::error::FrontendError;
use crate::shell::Lexer;
use crate::{InstructionKind, Mount};

/// One build arg of the outline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlineArg {
    pub name: String,
    pub description: String,
    pub value: String,
    pub line: usize,
}

/// A secret or ssh id a RUN mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlineMount {
    pub name: String,
    pub required: bool,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outline {
    /// The target stage's name (empty for an unnamed last stage).
    pub name: String,
    pub description: String,
    pub args: Vec<OutlineArg>,
    pub secrets: Vec<OutlineMount>,
    pub ssh: Vec<OutlineMount>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub default: bool,
    pub description: String,
    /// The base image as written.
    pub base: String,
    pub platform: String,
    pub start_line: usize,
    pub end_line: usize,
}

/// BuildKit's doc comment: the comment line that starts with `NAME `, minus that prefix.
fn doc_comment(comments: &[String], name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let prefix = format!("{name} ");
    comments
        .iter()
        .find_map(|c| c.strip_prefix(&prefix))
        .unwrap_or_default()
        .to_string()
}

/// Every stage, in order; the last one is the default.
pub fn targets(source: &[u8], file_name: &str) -> Result<Vec<Target>, FrontendError> {
    let parsed = parse(source, file_name)?;
    let count = parsed.dockerfile.stages.len();
    Ok(parsed
        .dockerfile
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let name = stage.name.clone().unwrap_or_default();
            let (start_line, end_line) = parsed.stage_lines(i);
            Target {
                description: doc_comment(&parsed.comments[parsed.stage_nodes[i]], &name),
                name,
                default: i + 1 == count,
                base: stage.base.clone(),
                platform: stage.platform.clone().unwrap_or_default(),
                start_line,
                end_line,
            }
        })
        .collect())
}

/// The outline of `opts.target` (the last stage without one). Errors: the Dockerfile's, and
/// a target no stage is named after.
pub fn outline(source: &[u8], opts: &LintOptions) -> Result<Outline, FrontendError> {
    let parsed = parse(source, opts.file_name)?;
    let lexer = Lexer::new(parsed.dockerfile.escape);
    let stages = &parsed.dockerfile.stages;
    let target = match opts.target {
        None => stages.len() - 1,
        Some(t) => {
            let wanted = t.to_lowercase();
            stages
                .iter()
                .position(|s| s.name.as_deref() == Some(wanted.as_str()))
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        stages.iter().filter_map(|s| s.name.as_deref()).collect();
                    FrontendError::new(
                        1,
                        1,
                        super::suggest::wrap(
                            format!("target stage {t:?} could not be found"),
                            t,
                            &names,
                            true,
                        ),
                    )
                    .with_file(opts.file_name)
                })?
        }
    };
    let globals = meta_args(&parsed, &lexer, opts);
    let mut used_globals = BTreeSet::new();
    let mut args: BTreeMap<String, OutlineArg> = BTreeMap::new();
    let mut secrets: BTreeMap<String, OutlineMount> = BTreeMap::new();
    let mut ssh: BTreeMap<String, OutlineMount> = BTreeMap::new();
    let env: BTreeMap<String, String> = globals
        .iter()
        .map(|(k, a)| (k.clone(), a.value.clone()))
        .chain(opts.platform_args.clone())
        .collect();
    for index in needed_stages(&parsed, &lexer, &env, target) {
        let stage = &stages[index];
        for word in [Some(&stage.base), stage.platform.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Ok((_, refs)) = lexer.process_word_with_matches(word, &env) {
                used_globals.extend(refs);
            }
        }
        let mut scope = BTreeMap::new();
        for (k, instruction) in stage.instructions.iter().enumerate() {
            let node = parsed.instruction_nodes[index][k];
            match &instruction.kind {
                InstructionKind::Arg(decls) => {
                    for decl in decls {
                        let given = opts.build_args.get(&decl.name).cloned();
                        if decl.default.is_none()
                            && given.is_none()
                            && globals.contains_key(&decl.name)
                        {
                            used_globals.insert(decl.name.clone());
                            continue;
                        }
                        let value = given
                            .or_else(|| {
                                decl.default
                                    .as_ref()
                                    .and_then(|d| lexer.process_word(d, &scope).ok())
                            })
                            .unwrap_or_default();
                        scope.insert(decl.name.clone(), value.clone());
                        // A redeclared ARG is reported where it was last declared.
                        args.insert(
                            decl.name.clone(),
                            OutlineArg {
                                name: decl.name.clone(),
                                description: doc_comment(&parsed.comments[node], &decl.name),
                                value,
                                line: instruction.location.start_line,
                            },
                        );
                    }
                }
                InstructionKind::Run(_) => {
                    // Mount ids may use the stage's ARGs (`id=second${BAR}`).
                    let expanded = instruction
                        .expand(&lexer, &scope)
                        .map(|(i, _)| i)
                        .unwrap_or_else(|_| instruction.clone());
                    let InstructionKind::Run(run) = &expanded.kind else {
                        continue;
                    };
                    for mount in &run.mounts {
                        let (map, id, required) = match mount {
                            Mount::Secret { id, required, .. } => (&mut secrets, id, *required),
                            Mount::Ssh { id, required, .. } => (&mut ssh, id, *required),
                            _ => continue,
                        };
                        map.entry(id.clone()).or_insert(OutlineMount {
                            name: id.clone(),
                            required,
                            line: instruction.location.start_line,
                        });
                    }
                }
                _ => {}
            }
        }
    }
    // A global ARG whose default uses another global uses that one too.
    let mut todo: Vec<String> = used_globals.iter().cloned().collect();
    while let Some(name) = todo.pop() {
        if let Some(arg) = globals.get(&name) {
            for dep in &arg.deps {
                if used_globals.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
            args.entry(name).or_insert_with(|| arg.arg.clone());
        }
    }
    let by_line = |mut v: Vec<OutlineArg>| {
        v.sort_by_key(|a| a.line);
        v
    };
    let mounts = |m: BTreeMap<String, OutlineMount>| {
        let mut v: Vec<OutlineMount> = m.into_values().collect();
        v.sort_by_key(|a| a.line);
        v
    };
    let stage = &stages[target];
    let name = stage.name.clone().unwrap_or_default();
    Ok(Outline {
        description: doc_comment(&parsed.comments[parsed.stage_nodes[target]], &name),
        name,
        args: by_line(args.into_values().collect()),
        secrets: mounts(secrets),
        ssh: mounts(ssh),
    })
}

struct GlobalArg {
    arg: OutlineArg,
    value: String,
    deps: BTreeSet<String>,
}

fn meta_args(parsed: &Parsed, lexer: &Lexer, opts: &LintOptions) -> BTreeMap<String, GlobalArg> {
    let mut env = opts.platform_args.clone();
    let mut out = BTreeMap::new();
    for (i, arg) in parsed.dockerfile.meta_args.iter().enumerate() {
        let InstructionKind::Arg(decls) = &arg.kind else {
            continue;
        };
        let comments = &parsed.comments[parsed.meta_nodes[i]];
        for decl in decls {
            let (value, deps) = match (opts.build_args.get(&decl.name), &decl.default) {
                (Some(v), _) => (v.clone(), BTreeSet::new()),
                (None, Some(d)) => lexer.process_word_with_matches(d, &env).unwrap_or_default(),
                (None, None) => (String::new(), BTreeSet::new()),
            };
            // What the args it uses were defined from counts too (`ARG FOO=${FOO}${ABC}`
            // later redefined as `ARG FOO=${FOO}456` still needs ABC), as in BuildKit.
            let mut deps = deps;
            let inherited: Vec<String> = deps
                .iter()
                .filter_map(|d| out.get(d).map(|a: &GlobalArg| a.deps.clone()))
                .flatten()
                .collect();
            deps.extend(inherited);
            env.insert(decl.name.clone(), value.clone());
            out.insert(
                decl.name.clone(),
                GlobalArg {
                    arg: OutlineArg {
                        name: decl.name.clone(),
                        description: doc_comment(comments, &decl.name),
                        value: value.clone(),
                        line: arg.location.start_line,
                    },
                    value,
                    deps,
                },
            );
        }
    }
    out
}

/// The target and the stages it builds on or copies from.
fn needed_stages(
    parsed: &Parsed,
    lexer: &Lexer,
    env: &BTreeMap<String, String>,
    target: usize,
) -> BTreeSet<usize> {
    let stages = &parsed.dockerfile.stages;
    let named = |name: &str, before: usize| {
        let wanted = name.to_lowercase();
        stages
            .iter()
            .take(before)
            .position(|s| s.name.as_deref() == Some(wanted.as_str()))
    };
    let mut out = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !out.insert(i) {
            continue;
        }
        if let Ok(base) = lexer.process_word(&stages[i].base, env) {
            todo.extend(named(&base, i));
        }
        for instruction in &stages[i].instructions {
            let froms: Vec<&str> = match &instruction.kind {
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
            };
            for from in froms {
                let dep = match from.parse::<usize>() {
                    Ok(n) if n < i => Some(n),
                    _ => named(from, i),
                };
                todo.extend(dep);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outline_lists_args_secrets_and_ssh() {
        let src = "# syntax=docker/dockerfile:1\n\nARG IMAGE=busybox\n# GLOBAL a global arg\nARG GLOBAL=g\nARG UNUSED=u\n# build compiles it\nFROM ${IMAGE} AS build\n# VERSION the version to build\nARG VERSION=1.0\nARG GLOBAL\nRUN --mount=type=secret,id=token,required=true --mount=type=ssh true\nFROM build AS other\n";
        let build_args = BTreeMap::new();
        let opts = LintOptions {
            file_name: "Dockerfile",
            build_args: &build_args,
            platform_args: BTreeMap::new(),
            target: Some("build"),
            all_stages: false,
            dockerignore: None,
            base_images: &|_: &str, _: &str| None,
        };
        let o = outline(src.as_bytes(), &opts).unwrap();
        assert_eq!(o.name, "build");
        assert_eq!(o.description, "compiles it");
        let args: Vec<(&str, &str, &str)> = o
            .args
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str(), a.description.as_str()))
            .collect();
        assert_eq!(
            args,
            [
                ("IMAGE", "busybox", ""),
                ("GLOBAL", "g", "a global arg"),
                ("VERSION", "1.0", "the version to build")
            ]
        );
        assert_eq!(o.secrets[0].name, "token");
        assert!(o.secrets[0].required);
        assert_eq!(o.ssh[0].name, "default");
        assert!(!o.ssh[0].required);
        let err = outline(
            src.as_bytes(),
            &LintOptions {
                target: Some("biuld"),
                ..opts
            },
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "target stage \"biuld\" could not be found (did you mean build?)"
        );
    }

    #[test]
    fn outline_follows_redeclared_and_recursive_args() {
        // BuildKit's testOutlineRecursiveArgs.
        let src = "\nARG FOO=123\nARG ABC=abc\nARG DEF=def\nARG FOO=${FOO}${ABC}\nARG BAR=${FOO}456\nARG FOO=${FOO}456${BAR}\nFROM scratch\nARG FOO\nARG INFOO=123\nARG INBAR=${INFOO}456\nARG INFOO=${INFOO}456${INBAR}\n";
        let build_args = BTreeMap::new();
        let opts = LintOptions {
            file_name: "Dockerfile",
            build_args: &build_args,
            platform_args: BTreeMap::new(),
            target: None,
            all_stages: false,
            dockerignore: None,
            base_images: &|_: &str, _: &str| None,
        };
        let o = outline(src.as_bytes(), &opts).unwrap();
        let args: Vec<(&str, &str)> = o
            .args
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(
            args,
            [
                ("ABC", "abc"),
                ("BAR", "123abc456"),
                ("FOO", "123abc456123abc456"),
                ("INBAR", "123456"),
                ("INFOO", "123456123456")
            ]
        );
    }

    #[test]
    fn outline_of_buildkit_test_outline_args() {
        // BuildKit's testOutlineArgs (its Dockerfile, build arg and expectations).
        let src = "\nARG inherited=box\nARG inherited2=box2\nARG unused=abc${inherited2}\n# sfx is a suffix\nARG sfx=\"usy${inherited}\"\n\nFROM b${sfx} AS first\n# this is not assigned to anything\nARG FOO=123\n# BAR is a number\nARG BAR=456\nRUN true\n\nFROM alpine${unused} AS second\nARG BAZ\nRUN true\n\nFROM scratch AS third\nARG ABC=a\n# check=skip=all\nARG password\n# alternate_password will show up in the outline\n# check=skip=all\nARG alternate_password\n\n# target defines build target\nFROM third AS target\nCOPY --from=first /etc/passwd /\n\nFROM second\n";
        let build_args: BTreeMap<String, String> = [("BAR".to_string(), "678".to_string())].into();
        let opts = LintOptions {
            file_name: "Dockerfile",
            build_args: &build_args,
            platform_args: BTreeMap::new(),
            target: Some("target"),
            all_stages: false,
            dockerignore: None,
            base_images: &|_: &str, _: &str| None,
        };
        let o = outline(src.as_bytes(), &opts).unwrap();
        assert_eq!(
            (o.name.as_str(), o.description.as_str()),
            ("target", "defines build target")
        );
        let args: Vec<(&str, &str, &str, usize)> = o
            .args
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.value.as_str(),
                    a.description.as_str(),
                    a.line,
                )
            })
            .collect();
        assert_eq!(
            args,
            [
                ("inherited", "box", "", 2),
                ("sfx", "usybox", "is a suffix", 6),
                ("FOO", "123", "", 10),
                ("BAR", "678", "is a number", 12),
                ("ABC", "a", "", 20),
                ("password", "", "", 22),
                ("alternate_password", "", "will show up in the outline", 25),
            ]
        );
    }

    #[test]
    fn outline_of_buildkit_test_outline_secrets() {
        // BuildKit's testOutlineSecrets.
        let src = "\nFROM busybox AS first\nRUN --mount=type=secret,target=/etc/passwd,required=true --mount=type=ssh true\n\nFROM alpine AS second\nRUN --mount=type=secret,id=unused --mount=type=ssh,id=ssh2 true\n\nFROM scratch AS third\nARG BAR\nRUN --mount=type=secret,id=second${BAR} true\n\nFROM third AS target\nCOPY --from=first /foo /\nRUN --mount=type=ssh,id=ssh3,required true\n\nFROM second\n";
        let build_args: BTreeMap<String, String> = [("BAR".to_string(), "678".to_string())].into();
        let opts = LintOptions {
            file_name: "Dockerfile",
            build_args: &build_args,
            platform_args: BTreeMap::new(),
            target: Some("target"),
            all_stages: false,
            dockerignore: None,
            base_images: &|_: &str, _: &str| None,
        };
        let o = outline(src.as_bytes(), &opts).unwrap();
        let list = |m: &[OutlineMount]| -> Vec<(String, bool, usize)> {
            m.iter()
                .map(|x| (x.name.clone(), x.required, x.line))
                .collect()
        };
        assert_eq!(
            list(&o.secrets),
            [("passwd".into(), true, 3), ("second678".into(), false, 10)]
        );
        assert_eq!(
            list(&o.ssh),
            [("default".into(), false, 3), ("ssh3".into(), true, 14)]
        );
    }

    #[test]
    fn targets_of_buildkit_test_targets_list() {
        // BuildKit's testTargetsList.
        let src = "\n# build defines stage for compiling the binary\nFROM alpine AS build\nRUN true\n\nFROM busybox as second\nRUN false\n\nFROM alpine\nRUN false\n\n# binary returns the compiled binary\nFROM second AS binary\n";
        let t = targets(src.as_bytes(), "Dockerfile").unwrap();
        let got: Vec<(&str, &str, &str, bool, usize, usize)> = t
            .iter()
            .map(|t| {
                let (n, d, b) = (t.name.as_str(), t.description.as_str(), t.base.as_str());
                (n, d, b, t.default, t.start_line, t.end_line)
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "build",
                    "defines stage for compiling the binary",
                    "alpine",
                    false,
                    3,
                    3
                ),
                ("second", "", "busybox", false, 6, 6),
                ("", "", "alpine", false, 9, 9),
                (
                    "binary",
                    "returns the compiled binary",
                    "second",
                    true,
                    13,
                    13
                ),
            ]
        );
    }

    #[test]
    fn targets_with_descriptions() {
        let src = "# base is the base\nFROM busybox AS base\nFROM base\n";
        let t = targets(src.as_bytes(), "Dockerfile").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].name.as_str(), t[0].description.as_str()),
            ("base", "is the base")
        );
        assert!(t[1].default && !t[0].default);
    }
}
