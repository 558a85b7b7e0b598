//! Dispatch-time variable expansion of instructions, following which fields docker expands:
//! ENV/LABEL keys and values, ARG names and defaults, ADD/COPY sources, destination and flags
//! (`--chown --chmod --checksum --exclude`; `--from` must be literal, as in BuildKit) and
//! expandable heredoc bodies, EXPOSE,
//! VOLUME, USER, WORKDIR, STOPSIGNAL and the free-text fields of `RUN --mount`. RUN/CMD/
//! ENTRYPOINT command text, SHELL, ONBUILD, HEALTHCHECK and MAINTAINER are left untouched.

use std::collections::BTreeSet;

use crate::Heredoc;
use crate::error::FrontendError;
use crate::instructions::{Instruction, InstructionKind};
use crate::line_parsers;
use crate::mount::{Mount, parse_mount_with};
use crate::shell::{EnvLookup, Lexer};

struct Expander<'a> {
    lexer: &'a Lexer,
    env: &'a dyn EnvLookup,
    refs: BTreeSet<String>,
    instruction: &'a Instruction,
}

impl Expander<'_> {
    fn error(&self, word: &str, e: impl std::fmt::Display) -> FrontendError {
        let first_line = self.instruction.original.lines().next();
        FrontendError::new(
            self.instruction.location.start_line,
            1,
            format!("failed to process {word:?}: {e}"),
        )
        .with_source_line(first_line)
    }

    fn word(&mut self, word: &str) -> Result<String, FrontendError> {
        let (value, refs) = self
            .lexer
            .process_word_with_matches(word, self.env)
            .map_err(|e| self.error(word, e))?;
        self.refs.extend(refs);
        Ok(value)
    }

    fn opt(&mut self, word: &Option<String>) -> Result<Option<String>, FrontendError> {
        word.as_deref().map(|w| self.word(w)).transpose()
    }

    fn all(&mut self, words: &[String]) -> Result<Vec<String>, FrontendError> {
        words.iter().map(|w| self.word(w)).collect()
    }

    /// Expands an unquoted-delimiter heredoc body like BuildKit: quotes are literal, but `$`
    /// expansions and `\` escapes apply (always with `\`, whatever the escape directive).
    fn heredocs(&mut self, docs: &[Heredoc]) -> Result<Vec<Heredoc>, FrontendError> {
        let body_lexer = self
            .lexer
            .clone()
            .with_escape('\\')
            .with_skip_process_quotes(true);
        docs.iter()
            .map(|doc| {
                if !doc.expand {
                    return Ok(doc.clone());
                }
                let (content, refs) = body_lexer
                    .process_word_with_matches(&doc.content, self.env)
                    .map_err(|e| self.error(&doc.name, e))?;
                self.refs.extend(refs);
                Ok(Heredoc {
                    content,
                    ..doc.clone()
                })
            })
            .collect()
    }
}

impl Expander<'_> {
    /// Re-parses the `--mount` values from the instruction text with each field value expanded
    /// first, as BuildKit does at dispatch (so `uid=$UID` works). Falls back to expanding the
    /// text fields of the parsed mounts when the text does not hold them (hand-built values).
    fn mounts(&mut self, parsed: &[Mount]) -> Result<Vec<Mount>, FrontendError> {
        let (_, flags, _) = line_parsers::split_command(&self.instruction.original);
        let specs: Vec<&str> = flags
            .iter()
            .filter_map(|f| f.strip_prefix("--mount="))
            .collect();
        if specs.len() != parsed.len() {
            let mut out = parsed.to_vec();
            for mount in &mut out {
                mount.map_strings(|s| self.word(s))?;
            }
            return Ok(out);
        }
        let (lexer, env) = (self.lexer, self.env);
        let mut refs = BTreeSet::new();
        let mut out = Vec::new();
        for spec in specs {
            let mut expand = |v: &str| -> Result<String, String> {
                let (value, r) = lexer
                    .process_word_with_matches(v, env)
                    .map_err(|e| e.message)?;
                refs.extend(r);
                Ok(value)
            };
            out.push(parse_mount_with(spec, Some(&mut expand)).map_err(|e| self.error(spec, e))?);
        }
        self.refs.extend(refs);
        Ok(out)
    }
}

impl Instruction {
    /// Expands variables the way docker does for this instruction kind at dispatch time and
    /// returns the expanded instruction plus every variable name referenced (set or not), so
    /// the solver can tell which build args a step depends on.
    pub fn expand(
        &self,
        lexer: &Lexer,
        env: &dyn EnvLookup,
    ) -> Result<(Instruction, BTreeSet<String>), FrontendError> {
        let mut x = Expander {
            lexer,
            env,
            refs: BTreeSet::new(),
            instruction: self,
        };
        let kind = match &self.kind {
            InstructionKind::Run(run) => {
                let mut run = run.clone();
                run.mounts = x.mounts(&run.mounts)?;
                InstructionKind::Run(run)
            }
            InstructionKind::Copy(c) => {
                let mut c = c.clone();
                c.sources = x.all(&c.sources)?;
                c.dest = x.word(&c.dest)?;
                c.chown = x.opt(&c.chown)?;
                c.chmod = x.opt(&c.chmod)?;
                c.exclude = x.all(&c.exclude)?;
                c.heredocs = x.heredocs(&c.heredocs)?;
                InstructionKind::Copy(c)
            }
            InstructionKind::Add(a) => {
                let mut a = a.clone();
                a.sources = x.all(&a.sources)?;
                a.dest = x.word(&a.dest)?;
                a.chown = x.opt(&a.chown)?;
                a.chmod = x.opt(&a.chmod)?;
                a.checksum = x.opt(&a.checksum)?;
                a.exclude = x.all(&a.exclude)?;
                a.heredocs = x.heredocs(&a.heredocs)?;
                InstructionKind::Add(a)
            }
            InstructionKind::Env(kvs) | InstructionKind::Label(kvs) => {
                let mut out = kvs.clone();
                for kv in &mut out {
                    kv.key = x.word(&kv.key)?;
                    kv.value = x.word(&kv.value)?;
                }
                if matches!(self.kind, InstructionKind::Env(_)) {
                    InstructionKind::Env(out)
                } else {
                    InstructionKind::Label(out)
                }
            }
            InstructionKind::Arg(decls) => {
                let mut out = decls.clone();
                for d in &mut out {
                    d.name = x.word(&d.name)?;
                    d.default = x.opt(&d.default)?;
                }
                InstructionKind::Arg(out)
            }
            InstructionKind::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    let (words, refs) = (
                        lexer.process_words(p, env).map_err(|e| x.error(p, e))?,
                        lexer
                            .process_word_with_matches(p, env)
                            .map(|r| r.1)
                            .unwrap_or_default(),
                    );
                    x.refs.extend(refs);
                    out.extend(words);
                }
                InstructionKind::Expose(out)
            }
            InstructionKind::Volume(v) => InstructionKind::Volume(x.all(v)?),
            InstructionKind::User(u) => InstructionKind::User(x.word(u)?),
            InstructionKind::Workdir(w) => InstructionKind::Workdir(x.word(w)?),
            InstructionKind::StopSignal(s) => InstructionKind::StopSignal(x.word(s)?),
            InstructionKind::Cmd(_)
            | InstructionKind::Entrypoint(_)
            | InstructionKind::Onbuild(_)
            | InstructionKind::Healthcheck(_)
            | InstructionKind::Shell(_)
            | InstructionKind::Maintainer(_) => self.kind.clone(),
        };
        let refs = std::mem::take(&mut x.refs);
        Ok((
            Instruction {
                kind,
                location: self.location,
                original: self.original.clone(),
            },
            refs,
        ))
    }
}
