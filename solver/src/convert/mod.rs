//! Dockerfile → build graph: docker's dispatch rules, applied to the frontend's typed instructions.
//!
//! Stages are converted lazily from the target backwards (a stage is converted when the target,
//! or a stage it needs, refers to it), so stages that do not contribute are never converted and
//! their base images never resolved, as with BuildKit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use builder_frontend::dockerignore::IgnoreMatcher;
use builder_frontend::shell::{EnvLookup, Lexer};
use builder_frontend::{
    Add, CommandForm, Copy, Dockerfile, FrontendError, Healthcheck, Instruction, InstructionKind,
    KeyValue, Run, Stage,
};

use builder_graph::chmod::Chmod;
use builder_graph::image::{HealthConfig, HistoryEntry, ImageSpec, Platform};
use builder_graph::{
    BuildGraph, CacheSeed, CopyAction, ExecMount, ExecMountKind, ExecOp, FileAction, FileOp,
    ImageSource, NetworkMode, Op, SecretEnv, Vertex, VertexId,
};

mod copy;
mod run;

use copy::{FromReader, copy_history};

/// Proxy variables docker passes to RUN from `--build-arg` without an ARG declaration, and
/// keeps out of the image history.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A base image found by the resolver: its identity, config and layers.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// Normalized reference, e.g. `docker.io/library/busybox:latest`.
    pub reference: String,
    pub manifest_digest: builder_cache::Digest,
    /// Config and layers (`base_layers`) of the image.
    pub spec: ImageSpec,
}

/// A file an `ADD <url>` downloaded into the store's blobs before the step runs.
#[derive(Clone, Debug)]
pub struct RemoteFile {
    /// sha256 of the content, which is also its blob's name in the store.
    pub digest: builder_cache::Digest,
    /// The name the file gets in a destination directory: from the server's
    /// Content-Disposition, else the URL's last path segment.
    pub filename: String,
    /// The server's Last-Modified, as seconds since the epoch.
    pub mtime: Option<i64>,
}

/// Finds what a Dockerfile names outside its context: base images (`FROM x`, `COPY --from=x`)
/// in the local store or a registry, and the files of `ADD <url>`.
pub trait ImageResolver {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String>;

    /// Downloads `url` into the store (or finds it there, unchanged).
    fn fetch_url(&self, url: &str) -> Result<RemoteFile, String> {
        Err(format!(
            "ADD {url}: downloading files is not available in this build"
        ))
    }

    /// Checks out the git source `url` (`#ref:subdir` and all, BuildKit's rules) into a
    /// directory that lives as long as the build.
    fn fetch_git(&self, url: &str, _keep_git_dir: bool) -> Result<GitCheckout, String> {
        Err(format!(
            "ADD {url}: git sources are not available in this build"
        ))
    }
}

/// A git source checked out for `ADD <git URL>`.
#[derive(Clone, Debug)]
pub struct GitCheckout {
    /// The checkout (or its subdirectory), read like a `--build-context` directory.
    pub dir: std::path::PathBuf,
    /// The commit the ref resolved to.
    pub commit: String,
}

#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// Platform of the image being built (`--platform`; default: host).
    pub platform: Option<Platform>,
    /// `--label` values, applied to the target stage's config.
    pub labels: BTreeMap<String, String>,
    pub file_name: String,
    /// `build --network`: the network of RUN steps that do not choose one (`RUN --network=default`).
    pub network: NetworkMode,
    /// `build --add-host`: extra /etc/hosts entries of every RUN step.
    pub extra_hosts: Vec<builder_graph::ExtraHost>,
    /// `build --build-context NAME=VALUE`, by name.
    pub build_contexts: BTreeMap<String, BuildContext>,
    /// `build --shm-size`: bytes of /dev/shm in RUN steps (None: docker's 64 MiB).
    pub shm_size: Option<u64>,
    /// `build --ulimit`: resource limits of RUN steps.
    pub ulimits: Vec<builder_graph::Ulimit>,
    /// `build --allow`: what `RUN --security=insecure` and `RUN --network=host` need.
    pub entitlements: Entitlements,
}

/// BuildKit's entitlements, granted with `build --allow NAME`. Not part of any cache key: they
/// only decide whether a step that asks for the privilege may run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entitlements {
    /// `network.host`: `RUN --network=host`.
    pub network_host: bool,
    /// `security.insecure`: `RUN --security=insecure`.
    pub security_insecure: bool,
}

impl Entitlements {
    /// Adds one `--allow` value; unknown names are refused, as buildx does.
    pub fn allow(&mut self, name: &str) -> Result<(), String> {
        match name {
            "network.host" => self.network_host = true,
            "security.insecure" => self.security_insecure = true,
            other => {
                return Err(format!(
                    "--allow {other:?}: unknown entitlement (builder knows network.host and security.insecure)"
                ));
            }
        }
        Ok(())
    }
}

/// What a `--build-context` name stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildContext {
    /// A local directory: `COPY --from=NAME` and `RUN --mount=from=NAME` read it.
    Dir(std::path::PathBuf),
    /// `docker-image://REF`: `FROM NAME` and `--from=NAME` use the image REF instead.
    Image(String),
}

impl BuildContext {
    /// docker buildx's `NAME=VALUE` value: `docker-image://REF` or a local directory (the CLI
    /// fetches git and http(s) URLs into directories first); the other kinds it knows
    /// (`oci-layout://`, `target:`) are refused.
    pub fn parse(value: &str) -> Result<BuildContext, String> {
        if let Some(reference) = value.strip_prefix("docker-image://") {
            if reference.is_empty() {
                return Err("docker-image:// needs an image reference".into());
            }
            return Ok(BuildContext::Image(reference.to_string()));
        }
        for scheme in [
            "https://",
            "http://",
            "git@",
            "oci-layout://",
            "target:",
            "input:",
        ] {
            if value.starts_with(scheme) {
                return Err(format!(
                    "{value:?}: only local directories, git and http(s) URLs and docker-image:// references can be build contexts here"
                ));
            }
        }
        // Absolute, so the directory's stat cache is found again from another working dir.
        match std::fs::canonicalize(value) {
            Ok(dir) if dir.is_dir() => Ok(BuildContext::Dir(dir)),
            _ => Err(format!("{value:?} is not a directory")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    // Transparent: with "{0}" and #[from] (a source) the message printed twice in a chain.
    #[error(transparent)]
    Frontend(#[from] FrontendError),
    #[error("{file}:{line}: {message}")]
    At {
        file: String,
        line: usize,
        message: String,
    },
    /// Something the Dockerfile names outside the context could not be had: a base image, or
    /// an `ADD <url>` download. Not a mistake in the Dockerfile, so it is a build failure.
    #[error("{file}:{line}: {message}")]
    Source {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    General(String),
    /// Internal: the stage with this index must be converted before the current one can go
    /// on. Raised and consumed inside [`convert`]; it never reaches a caller.
    #[doc(hidden)]
    #[error("stage {0} is needed first")]
    NeedsStage(usize),
}

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

/// The build args that configure the SBOM scan (read by builder, never a step's environment).
pub const SBOM_SCAN_CONTEXT_ARG: &str = "BUILDKIT_SBOM_SCAN_CONTEXT";
pub const SBOM_SCAN_STAGE_ARG: &str = "BUILDKIT_SBOM_SCAN_STAGE";

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

/// The build arg that names RUN steps' host, read by the builder rather than the Dockerfile
/// (empty: BuildKit's default name).
const SANDBOX_HOSTNAME_ARG: &str = "BUILDKIT_SANDBOX_HOSTNAME";
/// The build arg that prefixes every cache mount's id (`NS/ID`), so builds in different
/// namespaces keep separate caches under the same ids.
const CACHE_MOUNT_NS_ARG: &str = "BUILDKIT_CACHE_MOUNT_NS";
/// The build arg that names the frontend to build with (see `builder_frontend::syntax`).
pub const SYNTAX_ARG: &str = "BUILDKIT_SYNTAX";

/// Build args that BuildKit reads itself rather than the Dockerfile, so they are never reported
/// as unused: image and layer times, RUN's host name and cache namespace, the frontend, and the
/// ones the CLI acts on (`BUILDKIT_INLINE_CACHE`, `BUILDKIT_MULTI_PLATFORM`,
/// `BUILDKIT_CONTEXT_KEEP_GIT_DIR`; see src/cli/buildkit_args.rs).
pub const BUILDER_ARGS: &[&str] = &[
    "SOURCE_DATE_EPOCH",
    SANDBOX_HOSTNAME_ARG,
    CACHE_MOUNT_NS_ARG,
    SYNTAX_ARG,
    "BUILDKIT_INLINE_CACHE",
    "BUILDKIT_MULTI_PLATFORM",
    "BUILDKIT_CONTEXT_KEEP_GIT_DIR",
];

/// Variables visible while expanding an instruction: the stage's ENV first, then its ARGs
/// (docker: an ENV always wins over an ARG of the same name).
struct ScopeEnv<'a> {
    env: &'a [(String, String)],
    args: &'a [(String, String)],
}

impl EnvLookup for ScopeEnv<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        fn find<'l>(list: &'l [(String, String)], name: &str) -> Option<&'l str> {
            list.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
        find(self.env, name).or_else(|| find(self.args, name))
    }
}

/// The variables a step name is expanded with: the stage's scope, except that a variable a
/// `RUN --mount=type=secret,env=NAME` fills reads `****`, as in BuildKit's names (the secret
/// is not known here; the mask only says the value comes from a secret).
struct DisplayEnv<'a> {
    scope: ScopeEnv<'a>,
    masked: &'a [String],
}

impl EnvLookup for DisplayEnv<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        if self.masked.iter().any(|m| m == name) {
            return Some("****");
        }
        self.scope.lookup(name)
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

    fn context_vertex(&mut self) -> VertexId {
        *self.context.get_or_insert_with(|| {
            self.graph.add(Vertex {
                op: Op::Context,
                inputs: vec![],
                name: "[internal] load build context".into(),
                lines: None,
            })
        })
    }

    fn image_vertex(&mut self, image: &ResolvedImage) -> VertexId {
        if let Some(v) = self.images.get(&image.reference) {
            return *v;
        }
        let v = self.graph.add(Vertex {
            op: Op::Image(ImageSource {
                reference: image.reference.clone(),
                manifest_digest: image.manifest_digest,
                layers: image.spec.base_layers.clone(),
            }),
            inputs: vec![],
            name: format!("[internal] load {}", image.reference),
            lines: None,
        });
        self.images.insert(image.reference.clone(), v);
        v
    }

    /// Whether `name` is given as `--build-context NAME=docker-image://scratch`: no image to
    /// pull, the empty file system (BuildKit resolves it to its scratch state).
    fn names_scratch(&self, name: &str) -> bool {
        matches!(
            self.options.build_contexts.get(name),
            Some(BuildContext::Image(reference)) if reference == "scratch"
        )
    }

    fn resolve_image(
        &self,
        reference: &str,
        line: usize,
        platform: &Platform,
    ) -> Result<ResolvedImage, ConvertError> {
        // `--build-context NAME=docker-image://REF` puts REF where the Dockerfile says NAME.
        let reference = match self.options.build_contexts.get(reference) {
            Some(BuildContext::Image(other)) => other.as_str(),
            Some(BuildContext::Dir(dir)) => {
                return Err(self.error(
                    line,
                    format!(
                        "{reference:?} is a local directory build context ({}): use it with COPY --from={reference} or RUN --mount=from={reference}; FROM needs an image or a stage",
                        dir.display()
                    ),
                ));
            }
            None => reference,
        };
        self.resolver
            .resolve(reference, platform)
            .map_err(|e| self.source_error(line, e))
    }

    /// The vertex of a `--build-context` directory, made once per name.
    fn named_context_vertex(&mut self, name: &str) -> VertexId {
        if let Some(v) = self.named_contexts.get(name) {
            return *v;
        }
        let v = self.graph.add(Vertex {
            op: Op::NamedContext {
                name: name.to_string(),
            },
            inputs: vec![],
            name: format!("[context {name}] load from client"),
            lines: None,
        });
        self.named_contexts.insert(name.to_string(), v);
        v
    }

    /// The start of a stage: its base (which may be another stage, then
    /// [`ConvertError::NeedsStage`] until that one is done) and the base image's ONBUILD
    /// triggers, which run first and are not inherited further.
    fn start_stage(
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
    fn advance_stage(&mut self, pending: &mut PendingStage) -> Result<StageOutput, ConvertError> {
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
    fn display_text(&self, st: &StageBuild, inst: &Instruction) -> String {
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

    fn dispatch(&mut self, st: &mut StageBuild, inst: &Instruction) -> Result<(), ConvertError> {
        let line = inst.location.start_line;
        let scope = ScopeEnv {
            env: &st.spec.env,
            args: &st.args,
        };
        // An ARG's default is evaluated only when no --build-arg gives the value, as in
        // BuildKit: `ARG FOO=${FOO:?}` with `--build-arg FOO=x` is no error. The history then
        // shows the value given, as BuildKit's does.
        let overridden = |name: &str| self.options.build_args.get(name).cloned();
        let (expanded, used) = match &inst.kind {
            InstructionKind::Arg(decls) if decls.iter().any(|d| overridden(&d.name).is_some()) => {
                let mut unevaluated = inst.clone();
                if let InstructionKind::Arg(decls) = &mut unevaluated.kind {
                    for d in decls.iter_mut().filter(|d| overridden(&d.name).is_some()) {
                        d.default = None;
                    }
                }
                let (mut expanded, used) = unevaluated.expand(&self.lexer, &scope)?;
                if let InstructionKind::Arg(decls) = &mut expanded.kind {
                    for d in decls.iter_mut() {
                        if let Some(v) = overridden(&d.name) {
                            d.default = Some(v);
                        }
                    }
                }
                (expanded, used)
            }
            _ => inst.expand(&self.lexer, &scope)?,
        };
        for name in &used {
            if st.args.iter().any(|(k, _)| k == name) {
                self.consumed_args.insert(name.clone());
            }
        }
        let history_text = history_text(&expanded);
        match &expanded.kind {
            InstructionKind::Env(pairs) => {
                for KeyValue { key, value } in pairs {
                    st.spec.env_set(key, value);
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::Arg(decls) => {
                for decl in decls {
                    self.consumed_args.insert(decl.name.clone());
                    let from_cli = self.options.build_args.get(&decl.name).cloned();
                    let from_meta = || {
                        self.meta_args
                            .iter()
                            .rev()
                            .find(|(k, _)| *k == decl.name)
                            .map(|(_, v)| v.clone())
                    };
                    let value = from_cli.or_else(|| decl.default.clone()).or_else(from_meta);
                    match st.declared_args.iter_mut().find(|(k, _)| *k == decl.name) {
                        Some(slot) => slot.1 = value.clone(),
                        None => st.declared_args.push((decl.name.clone(), value.clone())),
                    }
                    let Some(value) = value else { continue };
                    // A redeclared ARG keeps its place: BuildKit's RUN history lists each
                    // name once, where it was first declared (`|2 foo=bar2 bar=123`).
                    match st.args.iter_mut().find(|(k, _)| *k == decl.name) {
                        Some(slot) => slot.1 = value,
                        None => st.args.push((decl.name.clone(), value)),
                    }
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::Label(pairs) => {
                for KeyValue { key, value } in pairs {
                    st.spec.labels.insert(key.clone(), value.clone());
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::Maintainer(name) => {
                st.spec.author = Some(name.clone());
                st.commit_metadata(history_text);
            }
            InstructionKind::Expose(ports) => {
                for port in ports {
                    st.spec
                        .exposed_ports
                        .insert(normalize_port(port).map_err(|e| self.error(line, e))?);
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::Volume(paths) => {
                for path in paths {
                    if path.trim().is_empty() {
                        return Err(self.error(line, "VOLUME specified can not be an empty string"));
                    }
                    st.spec.volumes.insert(path.clone());
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::User(user) => {
                st.spec.user = user.clone();
                st.commit_metadata(history_text);
            }
            InstructionKind::StopSignal(signal) => {
                validate_signal(signal).map_err(|e| self.error(line, e))?;
                st.spec.stop_signal = Some(signal.clone());
                st.commit_metadata(history_text);
            }
            InstructionKind::Shell(shell) => {
                st.spec.shell = Some(shell.clone());
                st.commit_metadata(history_text);
            }
            InstructionKind::Onbuild(trigger) => {
                st.spec.on_build.push(trigger.clone());
                st.commit_metadata(history_text);
            }
            InstructionKind::Healthcheck(health) => {
                st.spec.healthcheck = Some(health_config(health, &st.spec));
                st.commit_metadata(history_text);
            }
            InstructionKind::Cmd(form) => {
                st.spec.cmd = Some(command_args(form, &st.spec));
                st.spec.args_escaped = false;
                st.cmd_set = true;
                st.commit_metadata(history_text);
            }
            InstructionKind::Entrypoint(form) => {
                st.spec.entrypoint = Some(command_args(form, &st.spec));
                // docker: a new ENTRYPOINT resets a CMD inherited from the base image.
                if !st.cmd_set {
                    st.spec.cmd = None;
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::Workdir(dir) => {
                let path = join_path(&st.spec.working_dir, dir);
                st.spec.working_dir = path.clone();
                // As BuildKit: the history has the absolute directory, and `WORKDIR /` makes
                // no step (no number taken) and no layer.
                let history = format!("WORKDIR {path}");
                if path == "/" {
                    st.step = st.steps_done;
                    st.commit_metadata(history);
                    return Ok(());
                }
                let owner = (!st.spec.user.is_empty()).then(|| st.spec.user.clone());
                let actions = vec![FileAction::Mkdir {
                    path,
                    mode: 0o755,
                    owner,
                }];
                let name = st.step_name(&self.display_text(st, inst));
                let step = (name, inst);
                st.commit_file(&mut self.graph, actions, vec![], history, step, false);
            }
            InstructionKind::Copy(copy) => self.dispatch_copy(st, inst, copy, history_text)?,
            InstructionKind::Add(add) => self.dispatch_add(st, inst, add, history_text)?,
            InstructionKind::Run(run) => self.dispatch_run(st, inst, run)?,
        }
        Ok(())
    }
}

/// A stage on [`Converter::stage`]'s stack: its state so far, and where to resume.
struct PendingStage {
    index: usize,
    /// `None` until the base is known.
    build: Option<StageBuild>,
    /// The base image's ONBUILD triggers, run before the stage's own instructions.
    triggers: Vec<Instruction>,
    next_trigger: usize,
    /// The next of the stage's own instructions to dispatch.
    next: usize,
}

impl PendingStage {
    fn new(index: usize) -> PendingStage {
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
struct StageBuild {
    name: String,
    /// The stage's name in step names: empty for the only stage of a Dockerfile.
    label: String,
    index: usize,
    vertex: VertexId,
    spec: ImageSpec,
    /// ARGs declared in this stage, with values.
    args: Vec<(String, String)>,
    /// Every ARG declared so far (inherited ones first), with its value or none: what RUN's
    /// history lists, as BuildKit's `|N NAME=VALUE` prefix does (a name without value as
    /// `NAME=`, an ENV of the same name giving the value).
    declared_args: Vec<(String, Option<String>)>,
    layer_history: Vec<(usize, VertexId)>,
    /// CMD was set in this stage (so a later ENTRYPOINT keeps it).
    cmd_set: bool,
    /// Steps numbered so far, and the number of the instruction being dispatched.
    steps_done: usize,
    step: usize,
    total_steps: usize,
    /// The instruction being dispatched is an ONBUILD trigger of the base image.
    onbuild: bool,
}

/// Whether an instruction makes a numbered step in progress output (BuildKit's count).
fn makes_step(kind: &InstructionKind) -> bool {
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
    fn step_name(&self, text: &str) -> String {
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

    fn commit_metadata(&mut self, created_by: String) {
        self.spec.history.push(HistoryEntry {
            created: None,
            created_by,
            author: None,
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer: true,
        });
    }

    fn push_layer_history(&mut self, created_by: String, vertex: VertexId) {
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

    fn commit_file(
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
fn summarize_heredoc(content: &str) -> String {
    let trimmed = content.trim();
    let mut lines = trimmed.lines();
    let first = lines.next().unwrap_or("");
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first.to_string()
    }
}

fn lines(inst: &Instruction) -> (usize, usize) {
    (inst.location.start_line, inst.location.end_line)
}

/// docker's path joining for WORKDIR and relative destinations: relative to the current dir,
/// cleaned, always absolute.
pub fn join_path(base: &str, path: &str) -> String {
    let combined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", if base.is_empty() { "/" } else { base }, path)
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in combined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The argv a CMD/ENTRYPOINT/HEALTHCHECK form stands for.
fn command_args(form: &CommandForm, spec: &ImageSpec) -> Vec<String> {
    match form {
        CommandForm::Exec(args) => args.clone(),
        CommandForm::Shell(cmd) => {
            let mut args = spec.shell_or_default();
            args.push(cmd.clone());
            args
        }
    }
}

fn health_config(health: &Healthcheck, spec: &ImageSpec) -> HealthConfig {
    match health {
        Healthcheck::None => HealthConfig {
            test: vec!["NONE".into()],
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        },
        Healthcheck::Check {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => {
            let _ = spec;
            let test = match test {
                CommandForm::Exec(args) => std::iter::once("CMD".to_string())
                    .chain(args.iter().cloned())
                    .collect(),
                CommandForm::Shell(cmd) => vec!["CMD-SHELL".into(), cmd.clone()],
            };
            HealthConfig {
                test,
                interval: *interval,
                timeout: *timeout,
                start_period: *start_period,
                start_interval: *start_interval,
                retries: *retries,
            }
        }
    }
}

/// `80` → `80/tcp`, `53/UDP` → `53/udp`; ranges are kept as docker keeps them.
fn normalize_port(port: &str) -> Result<String, String> {
    let (num, proto) = match port.split_once('/') {
        Some((n, p)) => (n, p.to_lowercase()),
        None => (port, "tcp".to_string()),
    };
    let valid_num = |n: &str| n.parse::<u16>().is_ok();
    let ok = match num.split_once('-') {
        Some((a, b)) => valid_num(a) && valid_num(b),
        None => valid_num(num),
    };
    if !ok || !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!(
            "invalid port {port:?}: expected PORT[/tcp|udp|sctp]"
        ));
    }
    Ok(format!("{num}/{proto}"))
}

fn validate_signal(signal: &str) -> Result<(), String> {
    let upper = signal.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    let numeric = signal
        .parse::<u32>()
        .map(|n| (1..=64).contains(&n))
        .unwrap_or(false);
    let realtime = name.starts_with("RTMIN") || name.starts_with("RTMAX");
    if numeric || realtime || NAMES.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "invalid STOPSIGNAL {signal:?}: not a signal name or number"
        ))
    }
}

/// The ARGs BuildKit defines by itself: the platform ones and `TARGETSTAGE` (the `--target`
/// stage, `default` without one). Like global ARGs, a stage sees them once it declares them.
fn automatic_args(p: &Platform, target: Option<&str>) -> Vec<(String, String)> {
    let mut args = platform_args(p);
    args.push(("TARGETSTAGE".into(), target.unwrap_or("default").into()));
    args
}

/// `TARGET*` name the platform being built, `BUILD*` the host the build runs on.
fn platform_args(target: &Platform) -> Vec<(String, String)> {
    let mut args = Vec::new();
    for (prefix, p) in [("TARGET", target.clone()), ("BUILD", Platform::host())] {
        args.push((format!("{prefix}PLATFORM"), p.to_string()));
        args.push((format!("{prefix}OS"), p.os.clone()));
        args.push((format!("{prefix}ARCH"), p.architecture.clone()));
        args.push((
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        ));
    }
    args
}

/// What the history records for a metadata instruction: its name and expanded arguments.
fn history_text(inst: &Instruction) -> String {
    let quote_list = |v: &[String]| {
        format!(
            "[{}]",
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    let form = |f: &CommandForm| match f {
        CommandForm::Exec(a) => quote_list(a),
        CommandForm::Shell(s) => s.clone(),
    };
    let kv = |pairs: &[KeyValue]| {
        pairs
            .iter()
            .map(|p| format!("{}={}", p.key, p.value))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match &inst.kind {
        InstructionKind::Env(p) => format!("ENV {}", kv(p)),
        InstructionKind::Label(p) => format!("LABEL {}", kv(p)),
        InstructionKind::Arg(d) => format!(
            "ARG {}",
            d.iter()
                .map(|d| match &d.default {
                    Some(v) => format!("{}={}", d.name, v),
                    None => d.name.clone(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        ),
        InstructionKind::Cmd(f) => format!("CMD {}", form(f)),
        InstructionKind::Entrypoint(f) => format!("ENTRYPOINT {}", form(f)),
        // BuildKit prints the instruction's ports as a Go list, sorted as written and
        // normalized: `EXPOSE [1234/udp 2375/tcp]`.
        InstructionKind::Expose(p) => {
            let mut ports = p.clone();
            ports.sort();
            let ports: Vec<String> = ports
                .iter()
                .map(|port| normalize_port(port).unwrap_or_else(|_| port.clone()))
                .collect();
            format!("EXPOSE [{}]", ports.join(" "))
        }
        InstructionKind::Volume(p) => format!("VOLUME {}", quote_list(p)),
        InstructionKind::User(u) => format!("USER {u}"),
        InstructionKind::Workdir(w) => format!("WORKDIR {w}"),
        InstructionKind::StopSignal(s) => format!("STOPSIGNAL {s}"),
        InstructionKind::Shell(s) => format!("SHELL {}", quote_list(s)),
        InstructionKind::Onbuild(t) => format!("ONBUILD {t}"),
        InstructionKind::Maintainer(m) => format!("MAINTAINER {m}"),
        // As BuildKit's dispatchCopy writes it: the keyword, --parents, --chown and --chmod (not
        // --from, --link or --exclude), the expanded sources, heredocs as `<<NAME`, the
        // destination.
        InstructionKind::Copy(c) => copy_history(
            "COPY",
            c.parents,
            c.chown.as_deref(),
            c.chmod.as_deref(),
            &c.sources,
            &c.heredocs,
            &c.dest,
        ),
        InstructionKind::Add(a) => copy_history(
            "ADD",
            false,
            a.chown.as_deref(),
            a.chmod.as_deref(),
            &a.sources,
            &a.heredocs,
            &a.dest,
        ),
        InstructionKind::Healthcheck(_) | InstructionKind::Run(_) => {
            inst.original.trim().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_path_follows_docker() {
        assert_eq!(join_path("", "app"), "/app");
        assert_eq!(join_path("/a", "b/../c"), "/a/c");
        assert_eq!(join_path("/a", "/x/"), "/x");
        assert_eq!(join_path("/", ".."), "/");
    }

    #[test]
    fn ports_are_normalized() {
        assert_eq!(normalize_port("80").unwrap(), "80/tcp");
        assert_eq!(normalize_port("53/UDP").unwrap(), "53/udp");
        assert_eq!(normalize_port("8000-8010").unwrap(), "8000-8010/tcp");
        assert!(normalize_port("http").is_err());
    }

    #[test]
    fn signals_are_validated() {
        assert!(validate_signal("SIGTERM").is_ok());
        assert!(validate_signal("9").is_ok());
        assert!(validate_signal("SIGRTMIN+3").is_ok());
        assert!(validate_signal("SIGNOPE").is_err());
    }
}
