//! One stage's conversion: its base, then its instructions one by one.

use super::*;

impl<'a> Converter<'a> {
    /// The start of a stage: its base (which may be another stage, then
    /// [`ConvertError::NeedsStage`] until that one is done) and the base image's ONBUILD
    /// triggers, which run first and are not inherited further.
    pub(super) fn start_stage(
        &mut self,
        index: usize,
    ) -> Result<(StageBuild, Vec<Instruction>), ConvertError> {
        let stage: &'a Stage = &self.dockerfile.stages[index];
        let line = stage.location.start_line;
        let display_name = stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{index}"));
        let meta = ScopeEnv {
            env: &[],
            args: &self.meta_args,
        };
        let base = self
            .lexer
            .process_word(&stage.base, &meta)
            .map_err(|e| self.error(line, e.to_string()))?;
        let platform = match &stage.platform {
            Some(p) => {
                let p = self
                    .lexer
                    .process_word(p, &meta)
                    .map_err(|e| self.error(line, e.to_string()))?;
                p.parse::<Platform>()
                    .map_err(|e| self.error(line, e.to_string()))?
            }
            None => self.platform.clone(),
        };
        if base.is_empty() {
            return Err(self.error(
                line,
                format!("base name ({}) should not be blank", stage.base),
            ));
        }
        // `--build-context NAME=docker-image://scratch` makes NAME the empty image, as BuildKit.
        let base = if self.names_scratch(&base) {
            "scratch".to_string()
        } else {
            base
        };
        // BuildKit counts a FROM of an image as the stage's first step (`[1/3] FROM ...`).
        let from_image = base != "scratch" && self.stage_by_ref(&base, index).is_none();
        let parent = self.stage_by_ref(&base, index);
        let replaced = match parent {
            Some(parent) => self.overridden_stage_output(parent, line)?,
            None => None,
        };
        let mut inherited_args = Vec::new();
        let mut inherited_declared = Vec::new();
        let (root, spec) = if let Some(out) = replaced {
            (out.vertex, out.spec)
        } else if base == "scratch" {
            let v = self.graph.add(Vertex {
                op: Op::Scratch,
                inputs: vec![],
                name: "scratch".into(),
                lines: None,
            });
            (v, ImageSpec::scratch(platform.clone()))
        } else if let Some(parent) = self.stage_by_ref(&base, index) {
            let out = self.dependency(parent)?;
            inherited_args = out.args;
            inherited_declared = out.declared_args;
            (out.vertex, out.spec)
        } else if let Some(BuildContext::Dir(_)) = self.options.build_contexts.get(&base) {
            (
                self.directory_root(&base, line)?,
                ImageSpec::scratch(platform.clone()),
            )
        } else {
            let image = self.resolve_image(&base, line, &platform)?;
            (self.image_vertex(&image), image.spec)
        };
        // Step names as BuildKit gives them: `[NAME i/n]`, where a lone stage has no NAME
        // (unless BuildKit counts a second source, see `lone_stage`), and n counts the FROM of
        // an image, every ONBUILD trigger and the instructions that make a step (RUN, COPY,
        // ADD, WORKDIR).
        let label = if self.lone_stage() {
            String::new()
        } else {
            display_name.clone()
        };
        let from_step = usize::from(from_image);
        let counted = stage
            .instructions
            .iter()
            .filter(|i| makes_step(&i.kind))
            .count();
        let mut state = StageBuild {
            name: display_name,
            label,
            index,
            vertex: root,
            spec,
            args: inherited_args,
            declared_args: inherited_declared,
            layer_history: Vec::new(),
            cmd_set: false,
            steps_done: from_step,
            step: from_step,
            total_steps: from_step + counted,
            onbuild: false,
        };
        let triggers = std::mem::take(&mut state.spec.on_build)
            .into_iter()
            .map(|trigger| {
                let inst =
                    builder_frontend::parse_onbuild_trigger(&trigger, self.dockerfile.escape)
                        .map_err(|e| {
                            self.error(line, format!("ONBUILD trigger {trigger:?}: {e}"))
                        })?;
                Ok(Instruction {
                    location: stage.location,
                    ..inst
                })
            })
            .collect::<Result<Vec<_>, ConvertError>>()?;
        state.total_steps += triggers.len();
        Ok((state, triggers))
    }

    /// Runs a stage's remaining triggers and instructions; stops (to be resumed) with
    /// [`ConvertError::NeedsStage`] at the first one that needs an unconverted stage.
    pub(super) fn advance_stage(
        &mut self,
        pending: &mut PendingStage,
    ) -> Result<StageOutput, ConvertError> {
        if pending.build.is_none() {
            let (build, triggers) = self.start_stage(pending.index)?;
            pending.build = Some(build);
            pending.triggers = triggers;
        }
        let stage: &'a Stage = &self.dockerfile.stages[pending.index];
        let PendingStage {
            build: Some(st),
            triggers,
            next_trigger,
            next,
            ..
        } = pending
        else {
            return Err(ConvertError::General(
                "internal error: stage conversion lost its state".into(),
            ));
        };
        // A resumed instruction is dispatched again, so its number is derived from the steps
        // done before it, and counted only once it went through.
        while let Some(inst) = triggers.get(*next_trigger) {
            st.step = st.steps_done + usize::from(makes_step(&inst.kind));
            st.onbuild = true;
            self.dispatch(st, inst)?;
            st.steps_done = st.step;
            *next_trigger += 1;
        }
        st.onbuild = false;
        while let Some(inst) = stage.instructions.get(*next) {
            st.step = st.steps_done + usize::from(makes_step(&inst.kind));
            self.dispatch(st, inst)?;
            st.steps_done = st.step;
            *next += 1;
        }
        Ok(StageOutput {
            name: st.name.clone(),
            vertex: st.vertex,
            spec: st.spec.clone(),
            layer_history: st.layer_history.clone(),
            args: st.args.clone(),
            declared_args: st.declared_args.clone(),
        })
    }

    /// A step's text in progress output, as BuildKit's dockerfile2llb names it: the instruction
    /// as written, its first word upper-cased, with the stage's variables expanded. RUN keeps
    /// quotes and unknown variables as written, shows secret env variables as `****`, and adds
    /// a lone heredoc's first line (`RUN <<EOT (echo hi...)`); COPY, ADD and WORKDIR expand
    /// as words (quotes removed, unknown variables empty). A text that does not expand is
    /// shown as written.
    pub(super) fn display_text(&self, st: &StageBuild, inst: &Instruction) -> String {
        let mut text = inst
            .original
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let mut masked = Vec::new();
        let lexer = match &inst.kind {
            InstructionKind::Run(run) => {
                if let Some(doc) = run.lone_heredoc() {
                    text.push_str(&format!(" ({})", summarize_heredoc(&doc.content)));
                }
                for mount in &run.mounts {
                    if let builder_frontend::Mount::Secret { env: Some(var), .. } = mount {
                        masked.push(var.clone());
                    }
                }
                self.lexer
                    .clone()
                    .with_raw_quotes(true)
                    .with_skip_unset_env(true)
            }
            _ => self.lexer.clone(),
        };
        let env = DisplayEnv {
            scope: ScopeEnv {
                env: &st.spec.env,
                args: &st.args,
            },
            masked: &masked,
        };
        let expanded = lexer.process_word(&text, &env).unwrap_or(text);
        match expanded.split_once(' ') {
            Some((first, rest)) => format!("{} {rest}", first.to_uppercase()),
            None => expanded.to_uppercase(),
        }
    }
}

/// A stage on [`Converter::stage`]'s stack: its state so far, and where to resume.
pub(super) struct PendingStage {
    pub(super) index: usize,
    /// `None` until the base is known.
    pub(super) build: Option<StageBuild>,
    /// The base image's ONBUILD triggers, run before the stage's own instructions.
    pub(super) triggers: Vec<Instruction>,
    pub(super) next_trigger: usize,
    /// The next of the stage's own instructions to dispatch.
    pub(super) next: usize,
}

impl PendingStage {
    pub(super) fn new(index: usize) -> PendingStage {
        PendingStage {
            index,
            build: None,
            triggers: Vec::new(),
            next_trigger: 0,
            next: 0,
        }
    }
}

/// Per-stage conversion state.
pub(super) struct StageBuild {
    pub(super) name: String,
    /// The stage's name in step names: empty for the only stage of a Dockerfile.
    pub(super) label: String,
    pub(super) index: usize,
    pub(super) vertex: VertexId,
    pub(super) spec: ImageSpec,
    /// ARGs declared in this stage, with values.
    pub(super) args: Vec<(String, String)>,
    /// Every ARG declared so far (inherited ones first), with its value or none: what RUN's
    /// history lists, as BuildKit's `|N NAME=VALUE` prefix does (a name without value as
    /// `NAME=`, an ENV of the same name giving the value).
    pub(super) declared_args: Vec<(String, Option<String>)>,
    pub(super) layer_history: Vec<(usize, VertexId)>,
    /// CMD was set in this stage (so a later ENTRYPOINT keeps it).
    pub(super) cmd_set: bool,
    /// Steps numbered so far, and the number of the instruction being dispatched.
    pub(super) steps_done: usize,
    pub(super) step: usize,
    pub(super) total_steps: usize,
    /// The instruction being dispatched is an ONBUILD trigger of the base image.
    pub(super) onbuild: bool,
}

/// Whether an instruction makes a numbered step in progress output (BuildKit's count).
pub(super) fn makes_step(kind: &InstructionKind) -> bool {
    matches!(
        kind,
        InstructionKind::Run(_)
            | InstructionKind::Copy(_)
            | InstructionKind::Add(_)
            | InstructionKind::Workdir(_)
    )
}

impl StageBuild {
    /// `[NAME i/n] TEXT`, TEXT being the instruction as [`Converter::display_text`] shows it.
    pub(super) fn step_name(&self, text: &str) -> String {
        // The step number is padded to the width of the total, as BuildKit's ` 3/12`.
        let width = self.total_steps.to_string().len();
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!("{} ", self.label)
        };
        let onbuild = if self.onbuild { "ONBUILD " } else { "" };
        format!(
            "[{label}{:>width$}/{}] {onbuild}{text}",
            self.step, self.total_steps
        )
    }

    pub(super) fn commit_metadata(&mut self, created_by: String) {
        self.spec.history.push(HistoryEntry {
            created: None,
            created_by,
            author: None,
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer: true,
        });
    }

    pub(super) fn push_layer_history(&mut self, created_by: String, vertex: VertexId) {
        self.spec.history.push(HistoryEntry {
            created: None,
            created_by,
            author: None,
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer: false,
        });
        self.layer_history
            .push((self.spec.history.len() - 1, vertex));
    }

    pub(super) fn commit_file(
        &mut self,
        graph: &mut BuildGraph,
        actions: Vec<FileAction>,
        extra_inputs: Vec<VertexId>,
        history: String,
        (name, inst): (String, &Instruction),
        linked: bool,
    ) {
        let mut inputs = vec![self.vertex];
        inputs.extend(extra_inputs);
        let v = graph.add(Vertex {
            op: Op::File(FileOp { actions, linked }),
            inputs,
            name,
            lines: Some(lines(inst)),
        });
        self.vertex = v;
        self.push_layer_history(history, v);
    }
}

/// BuildKit's summary of a heredoc in a step name: its first non-blank line, with `...` when
/// more follow.
pub(super) fn summarize_heredoc(content: &str) -> String {
    let trimmed = content.trim();
    let mut lines = trimmed.lines();
    let first = lines.next().unwrap_or("");
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first.to_string()
    }
}

pub(super) fn lines(inst: &Instruction) -> (usize, usize) {
    (inst.location.start_line, inst.location.end_line)
}
