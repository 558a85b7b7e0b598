//! Solving a build graph: cache keys, cache lookups, and executing the vertices that miss, with
//! independent vertices running in parallel on a small pool of worker threads.
//!
//! A rootfs state is a list of layers. Each layer is stored twice: as a compressed blob in the
//! content store (what images reference) and unpacked once in overlay format under
//! `snapshots/<diff_id>` (what RUN and COPY mount as lower directories).
//!
//! This module is the solver: per vertex, its local and imported cache hits and step locks;
//! the scheduling, the keys and the ops are beside it:
//! - `scheduler`: which vertex runs when, on how many threads (generic, tested on a fake op);
//! - `cache_key`: a vertex's key (its one entry point, `cache_key()`);
//! - [`LayerStore`] (`builder_snapshot`'s): unpacked layers and writable views (overlay or copy snapshots);
//! - `file_op`: COPY, ADD and WORKDIR actions;
//! - `exec_op`: RUN in the sandbox, its output, a failed step kept for `builder debug`;
//! - `mounts`: what RUN's `--mount`s are made of (contexts, stages, caches, secrets, ssh).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use builder_frontend::dockerignore::IgnoreMatcher;
use builder_snapshot::{ActiveSnapshot, Compression, LayerOptions};
use builder_store::{Digest, Store};

use crate::cache_index::{CacheIndex, CacheRecord};
use crate::copy::{self, Attributes, CopyError};
use crate::options::SolveOptions;
use crate::progress::{Event, ProgressSink, Stream};
use crate::source_tree::{SourceError, SourceTree};
use crate::stat_cache::StatCache;
use crate::step_lock::StepLock;
use crate::userdb::{Owner, resolve_owner};
use builder_graph::{
    BuildGraph, CopyAction, ExecMountKind, ExecOp, FileAction, FileOp, LayerRef, Op, Vertex,
    VertexId,
};

mod cache_key;
mod exec_op;
mod file_op;
mod mounts;
mod scheduler;

use builder_snapshot::LayerStore;
use cache_key::{KeyInput, VertexKey, cache_key};
pub use mounts::UsedCacheMount;
use scheduler::{Outcome, RunVertex, Scheduler};

/// What the build derived from the Dockerfile and its files that the solver needs beside the
/// graph (the caller's choices are [`SolveOptions`]).
pub(crate) struct ConvertedInputs {
    /// Names the Dockerfile in step errors (`Dockerfile:3: ...`).
    pub dockerfile_name: String,
    /// The main context's `.dockerignore`.
    pub ignore: IgnoreMatcher,
    /// Named context directories: `--build-context NAME=DIR` and git contexts checked out.
    pub named_contexts: BTreeMap<String, PathBuf>,
    /// Vertices (by index) that skip cache lookups: the steps of `--no-cache-filter` stages.
    pub no_cache_vertices: HashSet<usize>,
    /// Steps (by index) whose layer the built image holds: stored in the image's compression
    /// at once, since the image needs that blob. Every other step's layer (a compile stage's)
    /// is stored as a plain tar, compressed only if an export ever takes it
    /// (`builder_snapshot::layer_in`).
    pub image_vertices: HashSet<usize>,
    /// The layers' fixed time: the caller's, else the Dockerfile's `ARG SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    #[error(
        "{location}{name}: process \"{command}\" did not complete successfully: exit code {code}{tail}"
    )]
    ExecFailed {
        location: String,
        name: String,
        command: String,
        code: i32,
        tail: String,
    },
    #[error("{location}{name}: {message}")]
    Step {
        location: String,
        name: String,
        message: String,
    },
    #[error("{0}")]
    Internal(String),
    /// The host refuses to set up any sandbox (not a fault of this step): the CLI's exit 3.
    /// The error is part of the message, not a `source`, so that it is printed once.
    #[error("{location}{name}: {error}")]
    SandboxUnavailable {
        location: String,
        name: String,
        error: Box<builder_sandbox::SandboxError>,
    },
    /// The build was interrupted (see [`crate::cancel`]).
    #[error("build cancelled")]
    Cancelled,
}

/// What a solved vertex yields.
#[derive(Clone, Debug)]
pub enum Output {
    Rootfs(Vec<LayerRef>),
    /// A context directory: the build context (None), or a `--build-context` one by name.
    Context(Option<String>),
}

#[derive(Clone, Debug)]
pub struct Solved {
    /// What later steps' keys build on: the whole result's identity.
    pub key: Digest,
    /// The key the step's cache record is stored under. The same as `key` except for a linked
    /// copy, whose record leaves its base out.
    pub record_key: Digest,
    pub output: Output,
    /// For a step: when its layer was first made (its cache record's creation time when the
    /// cache answered). BuildKit dates history entries so, which keeps a cached rebuild's image
    /// identical.
    pub layer_created: Option<SystemTime>,
}

pub struct Solver<'a> {
    store: &'a Store,
    opts: &'a SolveOptions,
    inputs: ConvertedInputs,
    progress: &'a dyn ProgressSink,
    layers: LayerStore<'a>,
    cache: CacheIndex,
    work_root: PathBuf,
    /// Results of steps solved in this build, by cache key; see `in_flight_slot`.
    in_flight: Mutex<HashMap<Digest, Slot>>,
    stat_cache: StatCache,
    /// One stat cache per `--build-context` directory, by name.
    named_stat_caches: HashMap<String, StatCache>,
    /// The persistent cache mount directories used so far (private copies are not).
    used_cache_mounts: Mutex<std::collections::BTreeSet<UsedCacheMount>>,
    /// The `.dockerignore` of each `--build-context` directory (BuildKit reads the one at the
    /// root of a named local context, as for the main context), by name.
    named_ignores: HashMap<String, IgnoreMatcher>,
}

/// A step's result within one build: None until solved, then the layer it added (if any).
type Slot = Arc<Mutex<Option<(Option<LayerRef>, SystemTime)>>>;

/// The solver as the scheduler sees it: one graph's vertices, each solved by `solve_vertex`.
struct GraphRun<'s, 'a> {
    solver: &'s Solver<'a>,
    graph: &'s BuildGraph,
}

impl RunVertex for GraphRun<'_, '_> {
    type Id = VertexId;
    type Output = Solved;
    type Error = SolveError;

    fn inputs(&self, id: VertexId) -> &[VertexId] {
        &self.graph.vertex(id).inputs
    }

    fn run(&self, id: VertexId, inputs: Vec<Solved>) -> Result<Solved, SolveError> {
        self.solver
            .solve_vertex(id.index(), self.graph.vertex(id), &inputs)
    }

    fn cancelled(&self) -> bool {
        crate::cancel::is_cancelled()
    }
}

impl<'a> Solver<'a> {
    pub fn new(
        store: &'a Store,
        opts: &'a SolveOptions,
        inputs: ConvertedInputs,
        progress: &'a dyn ProgressSink,
    ) -> Result<Self, SolveError> {
        let layers = LayerStore::new(store, crate::sandbox_meta::snapshotter_for(opts.isolation))
            .map_err(SolveError::Internal)?;
        let work_root = layers.work_root().to_path_buf();
        let mut named_ignores = HashMap::new();
        for (name, dir) in &inputs.named_contexts {
            let path = dir.join(".dockerignore");
            let matcher = match fs::read_to_string(&path) {
                Ok(text) => IgnoreMatcher::parse(&text).map_err(|e| {
                    SolveError::Internal(format!(
                        "--build-context {name}: failed parsing {}: {e}",
                        path.display()
                    ))
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreMatcher::empty(),
                Err(e) => {
                    return Err(SolveError::Internal(format!(
                        "--build-context {name}: reading {}: {e}",
                        path.display()
                    )));
                }
            };
            named_ignores.insert(name.clone(), matcher);
        }
        Ok(Solver {
            cache: CacheIndex::open(&store.cache_index_dir()).map_err(|e| {
                SolveError::Internal(format!(
                    "{e} (`builder cache verify --repair` resets a damaged index)"
                ))
            })?,
            store,
            opts,
            progress,
            layers,
            work_root,
            in_flight: Mutex::new(HashMap::new()),
            used_cache_mounts: Mutex::new(Default::default()),
            stat_cache: match &opts.context_dir {
                Some(dir) => StatCache::load(&store.context_cache_dir(), dir),
                None => StatCache::disabled(),
            },
            named_stat_caches: inputs
                .named_contexts
                .iter()
                .map(|(name, dir)| {
                    let cache = StatCache::load(&store.context_cache_dir(), dir);
                    (name.clone(), cache)
                })
                .collect(),
            named_ignores,
            inputs,
        })
    }

    /// Solves `target` and everything it needs; returns every solved vertex.
    pub fn solve(
        &self,
        graph: &BuildGraph,
        target: VertexId,
    ) -> Result<HashMap<VertexId, Solved>, SolveError> {
        let run = GraphRun {
            solver: self,
            graph,
        };
        let outcome = Scheduler::new(self.opts.max_parallel).run(&run, graph.needed_for(target));
        // Losing the stat cache only costs re-hashing next time, never correctness.
        let _ = self.stat_cache.save();
        for cache in self.named_stat_caches.values() {
            let _ = cache.save();
        }
        match outcome {
            Outcome::Done(done) => Ok(done),
            Outcome::Failed(error) => Err(error),
            Outcome::Cancelled => Err(SolveError::Cancelled),
            Outcome::Panicked { vertex, message } => Err(SolveError::Internal(format!(
                "{}: a build worker panicked: {message}",
                graph.vertex(vertex).name
            ))),
            Outcome::Stuck(ids) => Err(SolveError::Internal(format!(
                "{} steps wait for inputs outside the build graph",
                ids.len()
            ))),
        }
    }

    fn location(&self, v: &Vertex) -> String {
        match v.lines {
            Some((line, _)) => format!("{}:{line}: ", self.inputs.dockerfile_name),
            None => String::new(),
        }
    }

    fn step_error(&self, v: &Vertex, message: impl std::fmt::Display) -> SolveError {
        SolveError::Step {
            location: self.location(v),
            name: v.name.clone(),
            message: message.to_string(),
        }
    }

    fn solve_vertex(
        &self,
        index: usize,
        v: &Vertex,
        inputs: &[Solved],
    ) -> Result<Solved, SolveError> {
        // Only steps read files for their keys, so only they can fail here.
        let keys = self.key_of(v, inputs).map_err(|e| {
            if crate::cancel::is_cancelled() {
                SolveError::Cancelled
            } else {
                self.step_error(v, e)
            }
        })?;
        let output = match &v.op {
            Op::Scratch => Output::Rootfs(vec![]),
            Op::Context => Output::Context(None),
            Op::NamedContext { name } => Output::Context(Some(name.clone())),
            Op::Image(image) => Output::Rootfs(image.layers.clone()),
            Op::Exec(_) | Op::File(_) => return self.solve_step(index, v, inputs, keys),
        };
        Ok(Solved {
            key: keys.key,
            record_key: keys.record_key,
            output,
            layer_created: None,
        })
    }

    /// A RUN or file step: its layer from this build, the cache or by running it, on its base.
    fn solve_step(
        &self,
        index: usize,
        v: &Vertex,
        inputs: &[Solved],
        keys: VertexKey,
    ) -> Result<Solved, SolveError> {
        // The step's record, its in-flight slot and its lock all go by the record key.
        let key = keys.record_key;
        let linked = matches!(&v.op, Op::File(f) if f.linked);
        let base = match inputs.first().map(|s| &s.output) {
            Some(Output::Rootfs(layers)) => layers.clone(),
            _ => {
                return Err(SolveError::Internal(format!(
                    "{}: input 0 is not a filesystem",
                    v.name
                )));
            }
        };
        // Identical steps (same key) asked for by several stages run once: the others
        // wait here and take the result.
        let slot = self.in_flight_slot(key);
        let mut done = slot
            .lock()
            .map_err(|_| SolveError::Internal("a build worker panicked".into()))?;
        let (layer, layer_created) = match done.as_ref() {
            Some(layer) => {
                self.progress.event(Event::Cached {
                    vertex: index,
                    name: v.name.clone(),
                });
                layer.clone()
            }
            None => {
                let run_on: &[LayerRef] = if linked { &[] } else { &base };
                let made = self.cached_or_run(index, v, key, run_on, inputs)?;
                *done = Some(made.clone());
                made
            }
        };
        Ok(Solved {
            key: keys.key,
            record_key: key,
            output: Output::Rootfs(with_layer(base, layer)),
            layer_created: Some(layer_created),
        })
    }

    fn in_flight_slot(&self, key: Digest) -> Slot {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key).or_default().clone()
    }

    /// The layer a step adds: from the cache, or by running it.
    fn cached_or_run(
        &self,
        index: usize,
        v: &Vertex,
        key: Digest,
        base: &[LayerRef],
        inputs: &[Solved],
    ) -> Result<(Option<LayerRef>, SystemTime), SolveError> {
        // --no-cache and --no-cache-filter steps neither look up nor wait for other builds.
        let use_cache = !self.opts.no_cache && !self.inputs.no_cache_vertices.contains(&index);
        let hit = || {
            let record = self.local_hit(&key).or_else(|| self.imported_hit(&key))?;
            self.progress.event(Event::Cached {
                vertex: index,
                name: v.name.clone(),
            });
            // When the layer was made: the record's creation (an imported record was just
            // written, so it dates from now).
            let created = self
                .cache
                .entry(&key)
                .map(|e| e.created)
                .unwrap_or_else(SystemTime::now);
            Some((record.layer, created))
        };
        // Held until the record is written: another process needing this key waits for it and
        // then hits (see step_lock).
        let _lock = if !use_cache {
            None
        } else {
            if let Some(found) = hit() {
                return Ok(found);
            }
            let lock = self.lock_step(v, &key)?;
            // Whoever held the lock before us may have just computed this very step.
            if let Some(found) = hit() {
                return Ok(found);
            }
            Some(lock)
        };
        self.progress.event(Event::Started {
            vertex: index,
            name: v.name.clone(),
        });
        let started = Instant::now();
        let layer = match &v.op {
            Op::Exec(exec) => self.run_exec(index, v, exec, base, inputs),
            Op::File(file) => self.run_file(index, v, file, base, inputs),
            _ => return Err(SolveError::Internal(format!("{}: not a step", v.name))),
        };
        let layer = layer.inspect_err(|e| {
            self.progress.event(Event::Failed {
                vertex: index,
                name: v.name.clone(),
                error: e.to_string(),
            });
        })?;
        let record = CacheRecord {
            layer: layer.clone(),
            description: v.name.clone(),
        };
        self.cache
            .put(&key, &record)
            .map_err(|e| SolveError::Internal(format!("writing cache record: {e}")))?;
        self.progress.event(Event::Completed {
            vertex: index,
            name: v.name.clone(),
            elapsed: started.elapsed(),
        });
        Ok((layer, SystemTime::now()))
    }

    /// A record whose layer blob has gone missing counts as a miss. So does one without a
    /// layer: every step adds one now (an empty one when it changed nothing), so such a record
    /// was written by an older builder that left empty steps out, and the step is run again
    /// to give the image the layer BuildKit's would have.
    fn local_hit(&self, key: &Digest) -> Option<CacheRecord> {
        self.cache.get(key).filter(|record| {
            record
                .layer
                .as_ref()
                .is_some_and(|l| self.store.blobs().contains(&l.digest))
        })
    }

    /// A record from `--cache-from`; its blob is local now, so it is recorded locally too (a
    /// record that fails to be written only means the next build asks the import again). One
    /// without a layer is from an older builder (see [`Solver::local_hit`]): a miss.
    fn imported_hit(&self, key: &Digest) -> Option<CacheRecord> {
        let record = self.opts.cache_import.as_ref()?.fetch(key, self.store)?;
        record.layer.as_ref()?;
        let _ = self.cache.put(key, &record);
        Some(record)
    }

    /// Takes the cross-process lock of a step, saying so when another build holds it.
    fn lock_step(&self, v: &Vertex, key: &Digest) -> Result<StepLock, SolveError> {
        let dir = self.store.locks_dir();
        let failed =
            |e: std::io::Error| SolveError::Internal(format!("locking step {}: {e}", v.name));
        if let Some(lock) = StepLock::try_acquire(&dir, key).map_err(failed)? {
            return Ok(lock);
        }
        self.progress.event(Event::Status {
            message: format!("{}: waiting for another build running this step", v.name),
        });
        StepLock::acquire(&dir, key).map_err(failed)
    }

    /// A vertex's keys (see [`cache_key`]), from its inputs' keys and the context files it
    /// reads.
    fn key_of(&self, v: &Vertex, inputs: &[Solved]) -> Result<VertexKey, SourceError> {
        let inputs: Vec<KeyInput<'_>> = inputs
            .iter()
            .map(|s| KeyInput {
                key: s.key,
                context: match &s.output {
                    Output::Context(name) => self.context_tree(name.as_deref()),
                    Output::Rootfs(_) => None,
                },
            })
            .collect();
        cache_key(&v.op, &inputs)
    }

    /// The build context (`name` None, after .dockerignore) or a `--build-context` directory.
    fn context_tree(&self, name: Option<&str>) -> Option<SourceTree<'_>> {
        match name {
            None => self.opts.context_dir.as_deref().map(|dir| {
                SourceTree::new(dir, Some(&self.inputs.ignore)).with_stat_cache(&self.stat_cache)
            }),
            Some(name) => {
                let dir = self.inputs.named_contexts.get(name)?;
                let tree = SourceTree::new(dir, self.named_ignores.get(name));
                Some(match self.named_stat_caches.get(name) {
                    Some(cache) => tree.with_stat_cache(cache),
                    None => tree,
                })
            }
        }
    }

    fn prepare(&self, layers: &[LayerRef]) -> Result<ActiveSnapshot, String> {
        self.layers.prepare(layers)
    }

    /// Turns a finished step's diff directory (of vertex `index`) into a stored layer and its
    /// unpacked snapshot.
    fn commit_diff(&self, index: usize, diff: &Path) -> Result<Option<LayerRef>, String> {
        let stored = self.store_diff(index, diff);
        if stored.is_err() {
            // A failed write (a full disk, typically) must not leave the diff behind:
            // nothing else would ever remove it, and it holds the space the user needs back.
            let _ = fs::remove_dir_all(diff);
        }
        stored.map_err(|e| {
            format!(
                "writing the step's layer to the store at {}: {e}",
                self.store.root().display()
            )
        })
    }

    fn store_diff(&self, index: usize, diff: &Path) -> Result<Option<LayerRef>, String> {
        // write_layer hashes what it writes (the tar for the diff id, the compressed stream
        // for the digest): the store need not hash it again.
        let mut writer = self
            .store
            .blobs()
            .prehashed_writer()
            .map_err(|e| e.to_string())?;
        // Measured on the real multi-stage builds of BENCHMARKS.md ("Issue #17: layers
        // compressed when needed"): gzip costs ~22 s of CPU per GB, the plain tar ~1 s.
        let compression = if self.inputs.image_vertices.contains(&index) {
            self.opts.layer_options.compression
        } else {
            Compression::Uncompressed
        };
        let options = LayerOptions {
            source_date_epoch: self.inputs.source_date_epoch,
            compression,
            ..self.opts.layer_options.clone()
        };
        let digests = builder_snapshot::write_layer(diff, &mut writer, &options)
            .map_err(|e| e.to_string())?;
        // A step that changed nothing still adds a layer (an empty tar), as in BuildKit: its
        // history entry is a layer's (`RUN ls`, `WORKDIR` of an existing directory).
        let (digest, size) = writer
            .commit_as(digests.digest)
            .map_err(|e| e.to_string())?;
        let dir = self.store.snapshots_dir().join(digests.diff_id.hex());
        if dir.is_dir() || fs::rename(diff, &dir).is_err() {
            let _ = fs::remove_dir_all(diff);
        }
        Ok(Some(LayerRef {
            diff_id: digests.diff_id,
            digest,
            size,
            media_type: compression.media_type().into(),
        }))
    }
}

fn with_layer(mut base: Vec<LayerRef>, layer: Option<LayerRef>) -> Vec<LayerRef> {
    base.extend(layer);
    base
}
