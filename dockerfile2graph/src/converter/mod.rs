//! The converter: stages converted lazily from the target backwards (a stage is converted when
//! the target, or a stage it needs, refers to it), so stages that do not contribute are never
//! converted and their base images never resolved, as with BuildKit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use builder_frontend::dockerignore::IgnoreMatcher;
use builder_frontend::shell::Lexer;
use builder_frontend::{
    Add, CommandForm, Copy, Dockerfile, Healthcheck, Instruction, InstructionKind, KeyValue, Run,
    Stage,
};

use builder_graph::chmod::Chmod;
use builder_graph::image::{HealthConfig, HistoryEntry, ImageSpec, Platform};
use builder_graph::{
    BuildGraph, CacheSeed, CopyAction, ExecMount, ExecMountKind, ExecOp, FileAction, FileOp,
    ImageSource, NetworkMode, Op, SecretEnv, Vertex, VertexId,
};

use crate::args::*;
use crate::{BuildContext, ConvertError, ConvertOptions, ImageResolver, RemoteFile, ResolvedImage};

mod copy;
mod dispatch;
mod run;
mod sources;
mod stage_build;

use copy::{FromReader, copy_history};
use dispatch::*;
use stage_build::*;

/// The converted build: the graph, the target stage's vertex and image config, and which history
/// entries correspond to a layer-producing vertex.
#[derive(Debug)]
pub struct ConvertedBuild {
    pub graph: BuildGraph,
    pub target: StageOutput,
    /// Build args given but not consumed by any ARG of the converted stages.
    pub unused_build_args: Vec<String>,
    /// The step vertices of each converted stage that has a name (`FROM x AS name`), by name:
    /// what `--no-cache-filter` selects.
    pub stage_steps: BTreeMap<String, Vec<VertexId>>,
    /// `ADD <git URL>` checkouts, read as named contexts under these names.
    pub git_contexts: BTreeMap<String, std::path::PathBuf>,
    /// The value of a global `ARG SOURCE_DATE_EPOCH` (a build arg's, else its default): BuildKit
    /// takes the build's epoch from it.
    pub source_date_epoch_arg: Option<String>,
    /// The names of the Dockerfile's stages, lower case.
    pub stage_names: Vec<String>,
    /// Every stage converted for the target (the target too), with its SBOM scan settings.
    pub built_stages: Vec<BuiltStage>,
}

/// A stage the build converts, and the values of the ARGs that ask BuildKit's SBOM scanner to
/// scan the build context or the stage itself (`BUILDKIT_SBOM_SCAN_CONTEXT`,
/// `BUILDKIT_SBOM_SCAN_STAGE`): the global ARG's value, then the stage's own.
#[derive(Clone, Debug)]
pub struct BuiltStage {
    /// Its `AS` name, else `stage-N` as BuildKit names it.
    pub name: String,
    pub vertex: VertexId,
    pub is_target: bool,
    pub scan_context: Vec<String>,
    pub scan_stage: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct StageOutput {
    pub name: String,
    pub vertex: VertexId,
    pub spec: ImageSpec,
    /// (index into `spec.history`, vertex that may add a layer).
    pub layer_history: Vec<(usize, VertexId)>,
    /// The stage's ARG values when it ends: a stage built `FROM` it starts with them, as
    /// BuildKit's dispatch state inherits its base's build args (RUN's env and history).
    pub args: Vec<(String, String)>,
    pub declared_args: Vec<(String, Option<String>)>,
}

pub fn convert(
    dockerfile: &Dockerfile,
    options: &ConvertOptions,
    resolver: &dyn ImageResolver,
) -> Result<ConvertedBuild, ConvertError> {
    let mut converter = Converter::new(dockerfile, options, resolver)?;
    let target = converter.target_index()?;
    let line = dockerfile.stages[target].location.start_line;
    let output = match converter.overridden_stage_output(target, line)? {
        Some(out) => out,
        None => converter.stage(target)?,
    };
    let mut spec = output.spec.clone();
    spec.labels.extend(options.labels.clone());
    if let Some(target) = &options.platform {
        claim_target_platform(&mut spec.platform, target);
    }
    let unused_build_args = options
        .build_args
        .keys()
        .filter(|k| {
            !converter.consumed_args.contains(*k)
                && !PROXY_ARGS.contains(&k.as_str())
                && !BUILDER_ARGS.contains(&k.as_str())
        })
        .cloned()
        .collect();
    let stage_steps = converter.named_stage_steps();
    let source_date_epoch_arg = converter
        .meta_args
        .iter()
        .rev()
        .find(|(name, _)| name == "SOURCE_DATE_EPOCH")
        .map(|(_, value)| value.clone());
    let stage_names = dockerfile
        .stages
        .iter()
        .filter_map(|s| s.name.clone())
        .collect();
    let built_stages = converter.built_stages(target);
    Ok(ConvertedBuild {
        built_stages,
        graph: converter.graph,
        target: StageOutput { spec, ..output },
        unused_build_args,
        stage_steps,
        git_contexts: converter.git_contexts,
        source_date_epoch_arg,
        stage_names,
    })
}

/// An explicit `--platform` names the image's platform whatever its base said (BuildKit does
/// the same: a mismatched base is used, with an InvalidBaseImagePlatform warning). The base's
/// variant stays when the target names none for the same os/arch (`arm64/v8` base, `arm64`).
fn claim_target_platform(image: &mut Platform, target: &Platform) {
    let same = image.os == target.os && image.architecture == target.architecture;
    image.os = target.os.clone();
    image.architecture = target.architecture.clone();
    if target.variant.is_some() || !same {
        image.variant = target.variant.clone();
    }
}

enum StageState {
    InProgress,
    Done(Box<StageOutput>),
}

struct Converter<'a> {
    dockerfile: &'a Dockerfile,
    options: &'a ConvertOptions,
    resolver: &'a dyn ImageResolver,
    lexer: Lexer,
    graph: BuildGraph,
    platform: Platform,
    /// Global ARGs (before the first FROM) with their values, plus the automatic platform ARGs.
    meta_args: Vec<(String, String)>,
    stages: HashMap<usize, StageState>,
    /// Each stage name with the index of the first stage of that name.
    stage_names: HashMap<&'a str, usize>,
    context: Option<VertexId>,
    named_contexts: HashMap<String, VertexId>,
    /// `ADD <git URL>` checkouts by the named-context name their files are read under.
    git_contexts: BTreeMap<String, std::path::PathBuf>,
    images: HashMap<String, VertexId>,
    consumed_args: BTreeSet<String>,
}

impl<'a> Converter<'a> {
    fn new(
        dockerfile: &'a Dockerfile,
        options: &'a ConvertOptions,
        resolver: &'a dyn ImageResolver,
    ) -> Result<Self, ConvertError> {
        let platform = options.platform.clone().unwrap_or_else(Platform::host);
        let mut converter = Converter {
            dockerfile,
            options,
            resolver,
            lexer: Lexer::new(dockerfile.escape),
            graph: BuildGraph::new(),
            meta_args: automatic_args(&platform, options.target.as_deref()),
            platform,
            stages: HashMap::new(),
            stage_names: HashMap::new(),
            context: None,
            named_contexts: HashMap::new(),
            git_contexts: BTreeMap::new(),
            images: HashMap::new(),
            consumed_args: BTreeSet::new(),
        };
        for (index, stage) in dockerfile.stages.iter().enumerate() {
            if let Some(name) = stage.name.as_deref() {
                converter.stage_names.entry(name).or_insert(index);
            }
        }
        converter.evaluate_meta_args()?;
        Ok(converter)
    }

    fn source_error(&self, line: usize, message: impl Into<String>) -> ConvertError {
        ConvertError::Source {
            file: self.options.file_name.clone(),
            line,
            message: message.into(),
        }
    }

    fn error(&self, line: usize, message: impl Into<String>) -> ConvertError {
        ConvertError::At {
            file: self.options.file_name.clone(),
            line,
            message: message.into(),
        }
    }

    fn evaluate_meta_args(&mut self) -> Result<(), ConvertError> {
        for inst in &self.dockerfile.meta_args {
            let InstructionKind::Arg(decls) = &inst.kind else {
                continue;
            };
            for decl in decls {
                self.consumed_args.insert(decl.name.clone());
                let value = match (self.options.build_args.get(&decl.name), &decl.default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(default)) => {
                        let env = ScopeEnv {
                            env: &[],
                            args: &self.meta_args,
                        };
                        Some(
                            self.lexer
                                .process_word(default, &env)
                                .map_err(|e| self.error(inst.location.start_line, e.to_string()))?,
                        )
                    }
                    (None, None) => None,
                };
                if let Some(value) = value {
                    self.meta_args.push((decl.name.clone(), value));
                }
            }
        }
        Ok(())
    }

    fn target_index(&self) -> Result<usize, ConvertError> {
        let stages = &self.dockerfile.stages;
        if stages.is_empty() {
            return Err(ConvertError::General(
                "dockerfile contains no stages to build".into(),
            ));
        }
        match &self.options.target {
            None => Ok(stages.len() - 1),
            Some(target) => {
                let wanted = target.to_lowercase();
                stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(wanted.as_str()))
                    .ok_or_else(|| {
                        let names: Vec<_> = stages.iter().filter_map(|s| s.name.clone()).collect();
                        let options: Vec<&str> = names.iter().map(String::as_str).collect();
                        // BuildKit's wording and "did you mean" hint, then the names there are.
                        let message = builder_frontend::linter::suggest::wrap(
                            format!("target stage {target:?} could not be found"),
                            target,
                            &options,
                            true,
                        );
                        ConvertError::General(format!(
                            "{message}; stages with names: {}",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ))
                    })
            }
        }
    }

    /// Whether step names leave the stage name out. BuildKit does so when its list of
    /// dispatch states has a single entry, and that list also holds a state for each image a
    /// `COPY --from` names and for each `RUN --mount` source that is not a stage (a mount
    /// without `from` counts as one from scratch). So a lone stage with a `RUN --mount` or a
    /// `COPY --from=IMAGE` is shown as `stage-0`, as BuildKit shows it.
    fn lone_stage(&self) -> bool {
        let [stage] = self.dockerfile.stages.as_slice() else {
            return false;
        };
        let is_stage = |name: &str| stage.name.as_deref() == Some(name.to_lowercase().as_str());
        !stage.instructions.iter().any(|inst| match &inst.kind {
            InstructionKind::Run(run) => {
                run.mounts.iter().any(|m| !m.from().is_some_and(&is_stage))
            }
            InstructionKind::Copy(copy) => copy
                .from
                .as_deref()
                .is_some_and(|f| !is_stage(f) && f != "0"),
            _ => false,
        })
    }

    /// The stage a `FROM`/`--from` name refers to, among the stages defined before `before`.
    /// Looked up by name, not by scanning the stages before `before`: with one lookup per
    /// stage, that scan made a 10,000-stage chain quadratic.
    fn stage_by_ref(&self, name: &str, before: usize) -> Option<usize> {
        let by_name = self
            .stage_names
            .get(name.to_lowercase().as_str())
            .copied()
            .filter(|i| *i < before);
        by_name.or_else(|| name.parse::<usize>().ok().filter(|i| *i < before))
    }

    /// A `--build-context` named like stage `index` (`FROM x AS NAME`) replaces that stage, as
    /// in BuildKit: whatever refers to the stage (`FROM NAME`, `--from=NAME` or its index)
    /// gets the context, and the stage itself is never built. Returns the name and context.
    fn stage_override(&self, index: usize) -> Option<(&'a str, &'a BuildContext)> {
        let name = self.dockerfile.stages.get(index)?.name.as_deref()?;
        // BuildKit never looks these two names up as contexts.
        if name.eq_ignore_ascii_case("scratch") || name.eq_ignore_ascii_case("context") {
            return None;
        }
        let options: &'a ConvertOptions = self.options;
        options
            .build_contexts
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
    }

    /// What stands for a stage that a `--build-context` replaces (see
    /// [`Converter::stage_override`]): the context's image, as the stage's output.
    fn overridden_stage_output(
        &mut self,
        index: usize,
        line: usize,
    ) -> Result<Option<StageOutput>, ConvertError> {
        let Some((name, _)) = self.stage_override(index) else {
            return Ok(None);
        };
        let image = self.resolve_image(name, line, &self.platform.clone())?;
        Ok(Some(StageOutput {
            name: name.to_string(),
            vertex: self.image_vertex(&image),
            spec: image.spec,
            layer_history: Vec::new(),
            args: Vec::new(),
            declared_args: Vec::new(),
        }))
    }

    /// Converts stage `index` and every stage it depends on (`FROM stage`, `COPY --from`,
    /// `RUN --mount=from=`). The dependencies are walked with an explicit stack of suspended
    /// stages, not the call stack: a chain of thousands of stages (each `FROM` the previous
    /// one, or `COPY --from` it) used to recurse once per stage and overflow the main thread's
    /// stack. A stage that meets a stage not converted yet stops before that instruction
    /// changes anything ([`ConvertError::NeedsStage`]), the dependency is pushed, and the stage
    /// resumes at the same instruction once it is done.
    fn stage(&mut self, index: usize) -> Result<StageOutput, ConvertError> {
        if let Some(out) = self.finished_stage(index) {
            return Ok(out);
        }
        self.stages.insert(index, StageState::InProgress);
        let mut stack = vec![PendingStage::new(index)];
        while let Some(top) = stack.last_mut() {
            match self.advance_stage(top) {
                Ok(out) => {
                    let done = top.index;
                    stack.pop();
                    self.stages.insert(done, StageState::Done(Box::new(out)));
                }
                Err(ConvertError::NeedsStage(dep)) => {
                    // Stages only name earlier stages, so this cannot happen; kept so a
                    // mistake here is an error rather than an endless loop.
                    if self.stages.contains_key(&dep) {
                        let line = self.dockerfile.stages[dep].location.start_line;
                        return Err(self.error(line, "circular dependency between stages"));
                    }
                    self.stages.insert(dep, StageState::InProgress);
                    stack.push(PendingStage::new(dep));
                }
                Err(e) => return Err(e),
            }
        }
        self.finished_stage(index).ok_or_else(|| {
            ConvertError::General(format!("internal error: stage {index} was not converted"))
        })
    }

    fn finished_stage(&self, index: usize) -> Option<StageOutput> {
        match self.stages.get(&index) {
            Some(StageState::Done(out)) => Some((**out).clone()),
            _ => None,
        }
    }

    /// The output of a stage another one depends on, or [`ConvertError::NeedsStage`] when it
    /// has not been converted yet (see [`Converter::stage`]).
    fn dependency(&self, index: usize) -> Result<StageOutput, ConvertError> {
        self.finished_stage(index)
            .ok_or(ConvertError::NeedsStage(index))
    }

    /// The stages converted for the target, each with the SBOM scan ARG values that apply to
    /// it: a global ARG's, then the stage's own ARG's (BuildKit reads them in that order).
    fn built_stages(&self, target: usize) -> Vec<BuiltStage> {
        let global = |name: &str| {
            self.dockerfile
                .meta_args
                .iter()
                .any(|inst| matches!(&inst.kind, InstructionKind::Arg(decls) if decls.iter().any(|d| d.name == name)))
                .then(|| {
                    self.meta_args
                        .iter()
                        .rev()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                })
                .flatten()
        };
        let mut stages: Vec<BuiltStage> = self
            .stages
            .iter()
            .filter_map(|(index, state)| match state {
                StageState::Done(out) => Some((*index, out)),
                StageState::InProgress => None,
            })
            .map(|(index, out)| {
                let values = |name: &str| -> Vec<String> {
                    let own = out
                        .args
                        .iter()
                        .filter(|(k, _)| k == name)
                        .map(|(_, v)| v.clone());
                    global(name).into_iter().chain(own).collect()
                };
                BuiltStage {
                    name: self.dockerfile.stages[index]
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("stage-{index}")),
                    vertex: out.vertex,
                    is_target: index == target,
                    scan_context: values(SBOM_SCAN_CONTEXT_ARG),
                    scan_stage: values(SBOM_SCAN_STAGE_ARG),
                }
            })
            .collect();
        stages.sort_by(|a, b| a.name.cmp(&b.name));
        stages
    }

    /// Every step of a stage adds a layer history entry, so those list the stage's steps.
    fn named_stage_steps(&self) -> BTreeMap<String, Vec<VertexId>> {
        self.stages
            .iter()
            .filter_map(|(index, state)| match state {
                StageState::Done(out) => {
                    let name = self.dockerfile.stages[*index].name.clone()?;
                    Some((name, out.layer_history.iter().map(|(_, v)| *v).collect()))
                }
                StageState::InProgress => None,
            })
            .collect()
    }
}
