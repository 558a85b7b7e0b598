//! Solving a build graph: cache keys, cache lookups, and executing the vertices that miss, with
//! independent vertices running in parallel on a small pool of worker threads.
//!
//! A rootfs state is a list of layers. Each layer is stored twice: as a compressed blob in the
//! content store (what images reference) and unpacked once in overlay format under
//! `snapshots/<diff_id>` (what RUN and COPY mount as lower directories).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use builder_cache::{Digest, Store};
use builder_frontend::dockerignore::IgnoreMatcher;
use builder_snapshot::{ActiveSnapshot, LayerOptions, Snapshotter};

use crate::cache_import::CacheImport;
use crate::cache_index::{CacheIndex, CacheRecord};
use crate::copy::{self, Attributes, CopyError};
use crate::graph::{
    BuildGraph, CopyAction, ExecMountKind, ExecOp, FileAction, FileOp, LayerRef, Op, Vertex,
    VertexId, op_fingerprint,
};
use crate::progress::{Event, ProgressSink, Stream};
use crate::source_tree::{SourceError, SourceTree, exclude_rules};
use crate::stat_cache::StatCache;
use crate::step_lock::StepLock;
use crate::userdb::{Owner, resolve_owner};

/// Lines of output kept for the error message of a failing RUN.
const ERROR_TAIL_LINES: usize = 20;

pub struct SolveOptions {
    /// The build context directory (None when the Dockerfile needs none).
    pub context_dir: Option<PathBuf>,
    pub ignore: IgnoreMatcher,
    /// `--build-context NAME=DIR` directories, by name.
    pub named_contexts: BTreeMap<String, PathBuf>,
    /// `--secret id=...` values: id → file holding the secret.
    pub secrets: BTreeMap<String, PathBuf>,
    /// `--ssh id=SOCKET` values: id → ssh-agent socket.
    pub ssh: BTreeMap<String, PathBuf>,
    pub no_cache: bool,
    /// Vertices (by index) that skip cache lookups: the steps of `--no-cache-filter` stages.
    pub no_cache_vertices: HashSet<usize>,
    /// Records imported with `--cache-from`, consulted when the local cache misses.
    pub cache_import: Option<Arc<dyn CacheImport>>,
    pub layer_options: LayerOptions,
    pub max_parallel: usize,
    pub dockerfile_name: String,
    pub limits: builder_sandbox::ResourceLimits,
    pub isolation: builder_sandbox::Isolation,
    /// `--on-error=keep`: where a failed RUN step's state is kept for `builder debug`.
    pub keep_failed_in: Option<PathBuf>,
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
}

pub struct Solver<'a> {
    store: &'a Store,
    opts: &'a SolveOptions,
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

/// A cache mount a build used: its directory below the store's `cache-mounts/` (named by the
/// sha256 of its identity) and the `id` it was mounted by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsedCacheMount {
    pub dir_name: String,
    pub id: String,
}

/// A step's result within one build: None until solved, then the layer it added (if any).
type Slot = Arc<Mutex<Option<Option<LayerRef>>>>;

/// Unpacked layers and writable snapshots on top of them.
pub struct LayerStore<'a> {
    store: &'a Store,
    /// Found on first use: the probe mounts and unmounts an overlay, and the unmount waits for
    /// the file system to sync (tens of ms on a busy disk), which a fully cached build never needs.
    snapshotter: OnceLock<Snapshotter>,
    work_root: PathBuf,
    isolation: builder_sandbox::Isolation,
}

impl<'a> LayerStore<'a> {
    pub fn new(store: &'a Store, isolation: builder_sandbox::Isolation) -> Result<Self, String> {
        let work_root = store.work_dir();
        fs::create_dir_all(&work_root).map_err(|e| format!("{}: {e}", work_root.display()))?;
        // What killed builds left behind; live snapshots, diffs and blob writes of concurrent
        // builds are locked.
        builder_snapshot::sweep_stale(&work_root);
        store.remove_abandoned_tmp();
        Ok(LayerStore {
            store,
            snapshotter: OnceLock::new(),
            work_root,
            isolation,
        })
    }

    pub fn snapshotter(&self) -> Snapshotter {
        *self.snapshotter.get_or_init(|| match self.isolation {
            // The chroot sandbox fills mount points in place and moves entries in and out of
            // the rootfs: it needs a private directory on the store's file system, not an
            // overlay mount (which a container that refuses namespaces refuses anyway).
            builder_sandbox::Isolation::Chroot => Snapshotter::Copy,
            builder_sandbox::Isolation::Rootless => {
                builder_snapshot::detect_snapshotter(&self.work_root)
            }
        })
    }

    pub fn isolation(&self) -> builder_sandbox::Isolation {
        self.isolation
    }

    /// The unpacked directory of `layer` on top of `below` (the unpacked layers beneath it,
    /// topmost first, whose OCI chain id is `chain_below`), unpacking its blob the first time.
    ///
    /// A layer that carries every parent directory of its entries (all layers builder writes,
    /// and those of docker and BuildKit) unpacks the same on any stack and is kept under its
    /// diff id. One whose entries reach through what lies below (an entry `esc/pwned` over a
    /// lower symlink `esc`, see `builder_snapshot::stack`) is kept under a name made of its
    /// diff id and the chain below, since its unpacked form is only right on that stack.
    fn layer_dir(
        &self,
        layer: &LayerRef,
        below: &[PathBuf],
        chain_below: Option<&Digest>,
    ) -> Result<PathBuf, String> {
        let dir = self.store.snapshots_dir().join(layer.diff_id.hex());
        if dir.is_dir() {
            return Ok(dir);
        }
        let on_stack = Digest::of(
            format!(
                "builder unpacked {} on {}",
                layer.diff_id,
                chain_below.map(Digest::to_string).unwrap_or_default()
            )
            .as_bytes(),
        );
        let stacked = self.store.snapshots_dir().join(on_stack.hex());
        if stacked.is_dir() {
            return Ok(stacked);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".unpack-")
            .tempdir_in(self.store.snapshots_dir())
            .map_err(|e| format!("creating unpack dir: {e}"))?;
        let blob = self
            .store
            .blobs()
            .open(&layer.digest)
            .map_err(|e| e.to_string())?;
        let stats =
            builder_snapshot::apply_layer_on(std::io::BufReader::new(blob), tmp.path(), below)
                .map_err(|e| format!("unpacking layer {}: {e}", layer.digest))?;
        let dir = if stats.depends_on_lowers {
            stacked
        } else {
            dir
        };
        let tmp = tmp.keep();
        if let Err(e) = fs::rename(&tmp, &dir) {
            // Another build unpacked the same layer first; theirs is as good as ours.
            let _ = fs::remove_dir_all(&tmp);
            if !dir.is_dir() {
                return Err(format!("storing unpacked layer {}: {e}", layer.diff_id));
            }
        }
        Ok(dir)
    }

    /// Lower directories for a rootfs, topmost first, as overlayfs wants them.
    fn lowers(&self, layers: &[LayerRef]) -> Result<Vec<PathBuf>, String> {
        let mut lowers: Vec<PathBuf> = Vec::with_capacity(layers.len());
        let mut chain: Option<Digest> = None;
        for layer in layers {
            let dir = self.layer_dir(layer, &lowers, chain.as_ref())?;
            lowers.insert(0, dir);
            // The OCI chain id: the bottom layer's diff id, then sha256("<chain> <diff id>").
            chain = Some(match chain {
                None => layer.diff_id,
                Some(c) => Digest::of(format!("{c} {}", layer.diff_id).as_bytes()),
            });
        }
        Ok(lowers)
    }

    /// A writable rootfs made of `layers` (bottom first); dropped, it disappears.
    pub fn prepare(&self, layers: &[LayerRef]) -> Result<ActiveSnapshot, String> {
        let lowers = self.lowers(layers)?;
        builder_snapshot::prepare(self.snapshotter(), &lowers, &self.work_root)
            .map_err(|e| e.to_string())
    }

    /// Like `prepare`, for a RUN: below the image's layers lies a layer holding the
    /// mount points the sandbox needs (`/proc`, `/sys`, `/dev`, `/etc/hosts`...). Where the
    /// image lacks them, the sandbox then finds them instead of creating them in the step's
    /// upper directory and deleting them afterwards — which cost more than the rest of a
    /// `RUN true` on ext4 (see BENCHMARKS.md).
    pub fn prepare_for_run(&self, layers: &[LayerRef]) -> Result<ActiveSnapshot, String> {
        let mut lowers = self.lowers(layers)?;
        // Both snapshotters: with the copy one, stubs created and removed in `/etc` would
        // leave `/etc` touched and in the diff — a layer that differs from overlay's for the
        // same step (seen inside docker containers, where overlay mounts are refused).
        lowers.push(self.mount_point_layer()?);
        builder_snapshot::prepare(self.snapshotter(), &lowers, &self.work_root)
            .map_err(|e| e.to_string())
    }

    /// Like `prepare_for_run`, with `top` (a diff in overlay format, as a kept failed step's)
    /// above `layers`: the rootfs as that step left it.
    pub fn prepare_for_run_on(
        &self,
        layers: &[LayerRef],
        top: &Path,
    ) -> Result<ActiveSnapshot, String> {
        let mut lowers = self.lowers(layers)?;
        lowers.insert(0, top.to_path_buf());
        lowers.push(self.mount_point_layer()?);
        builder_snapshot::prepare(self.snapshotter(), &lowers, &self.work_root)
            .map_err(|e| e.to_string())
    }

    fn mount_point_layer(&self) -> Result<PathBuf, String> {
        let dir = self.work_root.join("mountpoints-v1");
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".mountpoints-")
            .tempdir_in(&self.work_root)
            .map_err(|e| e.to_string())?;
        for d in ["proc", "sys", "dev", "etc"] {
            fs::create_dir(tmp.path().join(d)).map_err(|e| e.to_string())?;
        }
        for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
            fs::write(tmp.path().join(f), b"").map_err(|e| e.to_string())?;
        }
        let tmp = tmp.keep();
        if fs::rename(&tmp, &dir).is_err() {
            // Another build made it first.
            let _ = fs::remove_dir_all(&tmp);
        }
        Ok(dir)
    }
}

impl Drop for LayerStore<'_> {
    /// Scratch directories are deleted in the background while later steps run; a build is
    /// over only when they are gone.
    fn drop(&mut self) {
        builder_snapshot::wait_for_removals();
    }
}

struct Schedule {
    done: HashMap<VertexId, Solved>,
    running: usize,
    pending: Vec<VertexId>,
    failed: Option<SolveError>,
}

impl<'a> Solver<'a> {
    pub fn new(
        store: &'a Store,
        opts: &'a SolveOptions,
        progress: &'a dyn ProgressSink,
    ) -> Result<Self, SolveError> {
        let layers = LayerStore::new(store, opts.isolation).map_err(SolveError::Internal)?;
        let work_root = layers.work_root.clone();
        let mut named_ignores = HashMap::new();
        for (name, dir) in &opts.named_contexts {
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
            named_stat_caches: opts
                .named_contexts
                .iter()
                .map(|(name, dir)| {
                    let cache = StatCache::load(&store.context_cache_dir(), dir);
                    (name.clone(), cache)
                })
                .collect(),
            named_ignores,
        })
    }

    /// Solves `target` and everything it needs; returns every solved vertex.
    pub fn solve(
        &self,
        graph: &BuildGraph,
        target: VertexId,
    ) -> Result<HashMap<VertexId, Solved>, SolveError> {
        let state = Mutex::new(Schedule {
            done: HashMap::new(),
            running: 0,
            pending: graph.needed_for(target),
            failed: None,
        });
        let wake = Condvar::new();
        let workers = self.opts.max_parallel.max(1);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| self.worker(graph, &state, &wake));
            }
        });
        let state = state
            .into_inner()
            .map_err(|_| SolveError::Internal("a build worker panicked".into()))?;
        // Losing the stat cache only costs re-hashing next time, never correctness.
        let _ = self.stat_cache.save();
        for cache in self.named_stat_caches.values() {
            let _ = cache.save();
        }
        match state.failed {
            Some(e) => Err(e),
            None => Ok(state.done),
        }
    }

    fn worker(&self, graph: &BuildGraph, state: &Mutex<Schedule>, wake: &Condvar) {
        loop {
            let (id, inputs) = {
                let Ok(mut s) = state.lock() else { return };
                loop {
                    if crate::cancel::is_cancelled() && s.failed.is_none() {
                        s.failed = Some(SolveError::Cancelled);
                    }
                    if s.failed.is_some() || (s.pending.is_empty() && s.running == 0) {
                        wake.notify_all();
                        return;
                    }
                    let ready = s.pending.iter().position(|v| {
                        graph
                            .vertex(*v)
                            .inputs
                            .iter()
                            .all(|i| s.done.contains_key(i))
                    });
                    if let Some(pos) = ready {
                        let id = s.pending.remove(pos);
                        let inputs: Vec<Solved> = graph
                            .vertex(id)
                            .inputs
                            .iter()
                            .map(|i| s.done[i].clone())
                            .collect();
                        s.running += 1;
                        break (id, inputs);
                    }
                    if s.pending.is_empty() && s.running == 0 {
                        return;
                    }
                    s = match wake.wait(s) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                }
            };
            let result = self.solve_vertex(id.index(), graph.vertex(id), &inputs);
            let Ok(mut s) = state.lock() else { return };
            s.running -= 1;
            match result {
                Ok(solved) => {
                    s.done.insert(id, solved);
                }
                Err(e) => {
                    if s.failed.is_none() {
                        s.failed = Some(e);
                    }
                }
            }
            wake.notify_all();
        }
    }

    fn location(&self, v: &Vertex) -> String {
        match v.lines {
            Some((line, _)) => format!("{}:{line}: ", self.opts.dockerfile_name),
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
        let input_keys: Vec<Digest> = inputs.iter().map(|s| s.key).collect();
        match &v.op {
            Op::Scratch | Op::Context | Op::NamedContext { .. } => {
                let key = op_fingerprint(&v.op, &input_keys, &BTreeMap::new());
                let output = match &v.op {
                    Op::Context => Output::Context(None),
                    Op::NamedContext { name } => Output::Context(Some(name.clone())),
                    _ => Output::Rootfs(vec![]),
                };
                Ok(Solved {
                    key,
                    record_key: key,
                    output,
                })
            }
            Op::Image(image) => {
                let key = op_fingerprint(&v.op, &input_keys, &BTreeMap::new());
                Ok(Solved {
                    key,
                    record_key: key,
                    output: Output::Rootfs(image.layers.clone()),
                })
            }
            Op::Exec(_) | Op::File(_) => {
                let mut extra = self.content_checksums(v, inputs).map_err(|e| {
                    if crate::cancel::is_cancelled() {
                        SolveError::Cancelled
                    } else {
                        self.step_error(v, e)
                    }
                })?;
                // The stored layer is compressed, so a record only serves builds that ask for
                // the same compression.
                let compression = self.opts.layer_options.compression.media_type();
                extra.insert("compression".into(), compression.into());
                let linked = matches!(&v.op, Op::File(f) if f.linked);
                // A linked step's record is keyed without its base (input 0) ...
                let key_inputs = if linked {
                    input_keys.get(1..).unwrap_or_default()
                } else {
                    &input_keys[..]
                };
                let key = op_fingerprint(&v.op, key_inputs, &extra);
                // ... but what follows it depends on base and layer together.
                let solved_key = match input_keys.first() {
                    Some(base_key) if linked => {
                        Digest::of(format!("linked {key} on {base_key}").as_bytes())
                    }
                    _ => key,
                };
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
                let layer = match done.as_ref() {
                    Some(layer) => {
                        self.progress.event(Event::Cached {
                            vertex: index,
                            name: v.name.clone(),
                        });
                        layer.clone()
                    }
                    None => {
                        let run_on: &[LayerRef] = if linked { &[] } else { &base };
                        let layer = self.cached_or_run(index, v, key, run_on, inputs)?;
                        *done = Some(layer.clone());
                        layer
                    }
                };
                Ok(Solved {
                    key: solved_key,
                    record_key: key,
                    output: Output::Rootfs(with_layer(base, layer)),
                })
            }
        }
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
    ) -> Result<Option<LayerRef>, SolveError> {
        // --no-cache and --no-cache-filter steps neither look up nor wait for other builds.
        let use_cache = !self.opts.no_cache && !self.opts.no_cache_vertices.contains(&index);
        let hit = || {
            let record = self.local_hit(&key).or_else(|| self.imported_hit(&key))?;
            self.progress.event(Event::Cached {
                vertex: index,
                name: v.name.clone(),
            });
            Some(record.layer)
        };
        // Held until the record is written: another process needing this key waits for it and
        // then hits (see step_lock).
        let _lock = if !use_cache {
            None
        } else {
            if let Some(layer) = hit() {
                return Ok(layer);
            }
            let lock = self.lock_step(v, &key)?;
            // Whoever held the lock before us may have just computed this very step.
            if let Some(layer) = hit() {
                return Ok(layer);
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
            Op::File(file) => self.run_file(v, file, base, inputs),
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
        Ok(layer)
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

    /// Content checksums of the context files an op reads: they are part of its cache key.
    fn content_checksums(
        &self,
        v: &Vertex,
        inputs: &[Solved],
    ) -> Result<BTreeMap<String, String>, SourceError> {
        let mut extra = BTreeMap::new();
        // The context an input is, if it is one.
        let context = |i: usize| match inputs.get(i).map(|s| &s.output) {
            Some(Output::Context(name)) => self.context_tree(name.as_deref()),
            _ => None,
        };
        match &v.op {
            Op::File(file) => {
                for (n, action) in file.actions.iter().enumerate() {
                    if let FileAction::Copy(c) = action
                        && let Some(tree) = context(c.source_input)
                    {
                        let exclude = exclude_rules(&c.exclude)?;
                        let sum = tree.checksum_excluding(&c.sources, &exclude)?;
                        extra.insert(format!("copy{n}"), sum.to_string());
                    }
                }
            }
            Op::Exec(exec) => {
                for (n, mount) in exec.mounts.iter().enumerate() {
                    if let ExecMountKind::Input { input, source, .. } = &mount.kind
                        && let Some(tree) = context(*input)
                    {
                        let sum = tree.checksum(std::slice::from_ref(source))?;
                        extra.insert(format!("mount{n}"), sum.to_string());
                    }
                }
            }
            _ => {}
        }
        Ok(extra)
    }

    /// The build context (`name` None, after .dockerignore) or a `--build-context` directory.
    fn context_tree(&self, name: Option<&str>) -> Option<SourceTree<'_>> {
        match name {
            None => self.opts.context_dir.as_deref().map(|dir| {
                SourceTree::new(dir, Some(&self.opts.ignore)).with_stat_cache(&self.stat_cache)
            }),
            Some(name) => {
                let dir = self.opts.named_contexts.get(name)?;
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

    /// Turns a finished step's diff directory into a stored layer (and its unpacked snapshot).
    fn commit_diff(&self, diff: &Path) -> Result<Option<LayerRef>, String> {
        let stored = self.store_diff(diff);
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

    fn store_diff(&self, diff: &Path) -> Result<Option<LayerRef>, String> {
        let mut writer = self.store.blobs().writer().map_err(|e| e.to_string())?;
        let digests = builder_snapshot::write_layer(diff, &mut writer, &self.opts.layer_options)
            .map_err(|e| e.to_string())?;
        // A step that changed nothing still adds a layer (an empty tar), as in BuildKit: its
        // history entry is a layer's (`RUN ls`, `WORKDIR` of an existing directory).
        let (digest, size) = writer.commit().map_err(|e| e.to_string())?;
        let dir = self.store.snapshots_dir().join(digests.diff_id.hex());
        if dir.is_dir() || fs::rename(diff, &dir).is_err() {
            let _ = fs::remove_dir_all(diff);
        }
        let media_type = self.opts.layer_options.compression.media_type();
        Ok(Some(LayerRef {
            diff_id: digests.diff_id,
            digest,
            size,
            media_type: media_type.into(),
        }))
    }

    fn run_file(
        &self,
        v: &Vertex,
        op: &FileOp,
        base: &[LayerRef],
        inputs: &[Solved],
    ) -> Result<Option<LayerRef>, SolveError> {
        // A copy or layer write that stopped because the build was cancelled is not a failed
        // step: the build ends as cancelled (exit 130), and `active` is removed on return.
        let err = |e: &dyn std::fmt::Display| {
            if crate::cancel::is_cancelled() {
                SolveError::Cancelled
            } else {
                self.step_error(v, e)
            }
        };
        let active = self.prepare(base).map_err(|e| err(&e))?;
        let root = active.rootfs().to_path_buf();
        for action in &op.actions {
            self.apply_action(action, &root, inputs)
                .map_err(|e| err(&e))?;
        }
        // Locked until the layer is stored: a concurrent build's sweep leaves it alone.
        let diff = active.finish_locked().map_err(|e| err(&e))?;
        self.commit_diff(diff.path()).map_err(|e| err(&e))
    }

    fn apply_action(
        &self,
        action: &FileAction,
        root: &Path,
        inputs: &[Solved],
    ) -> Result<(), CopyError> {
        let owner = |spec: &Option<String>| -> Result<Option<Owner>, CopyError> {
            spec.as_deref()
                .map(|s| resolve_owner(root, s).map_err(CopyError::Invalid))
                .transpose()
        };
        match action {
            FileAction::Mkdir {
                path,
                mode,
                owner: o,
            } => {
                let existed = crate::rootpath::resolve_in_root(root, path, true)
                    .map(|p| p.is_dir())
                    .unwrap_or(false);
                let dir = copy::ensure_dir(
                    root,
                    path,
                    Attributes {
                        owner: owner(o)?,
                        chmod: None,
                        reset_owner: true,
                    },
                )?;
                if !existed {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&dir, fs::Permissions::from_mode(*mode)).map_err(|e| {
                        CopyError::Io {
                            path: dir.display().to_string(),
                            source: e,
                        }
                    })?;
                }
                Ok(())
            }
            FileAction::Mkfile {
                path,
                mode,
                data,
                owner: o,
                parent_mode,
            } => copy::make_file(
                root,
                path,
                &mut data.as_bytes(),
                *mode,
                owner(o)?.unwrap_or(Owner { uid: 0, gid: 0 }),
                None,
                *parent_mode,
            ),
            FileAction::Fetched {
                path,
                blob,
                mode,
                mtime,
                owner: o,
                unpack_into,
                unpack_chmod,
                parent_mode,
            } => {
                if let Some(dir) = unpack_into {
                    let attrs = Attributes {
                        owner: owner(o)?,
                        chmod: unpack_chmod.as_ref(),
                        reset_owner: false,
                    };
                    let file = self.store.blobs().path(blob);
                    if copy::unpack_file(&file, root, dir, attrs)? {
                        return Ok(());
                    }
                }
                let mut content = self.store.blobs().open(blob).map_err(|e| {
                    CopyError::Invalid(format!(
                        "the downloaded file {blob} is gone from the store: {e}"
                    ))
                })?;
                copy::make_file(
                    root,
                    path,
                    &mut content,
                    *mode,
                    owner(o)?.unwrap_or(Owner { uid: 0, gid: 0 }),
                    *mtime,
                    *parent_mode,
                )
            }
            FileAction::Copy(c) => {
                let attrs = Attributes {
                    owner: owner(&c.chown)?,
                    chmod: c.chmod.as_ref(),
                    reset_owner: c.from_context,
                };
                match inputs.get(c.source_input).map(|s| &s.output) {
                    Some(Output::Context(name)) => {
                        let tree = self.context_tree(name.as_deref()).ok_or_else(|| {
                            CopyError::Invalid("this step reads the build context, but no context directory was given".into())
                        })?;
                        copy::copy(&tree, c, root, attrs)
                    }
                    Some(Output::Rootfs(layers)) => {
                        let view = self.prepare(layers).map_err(CopyError::Invalid)?;
                        let tree = SourceTree::new(view.rootfs(), None);
                        copy::copy(&tree, c, root, attrs)
                    }
                    None => Err(CopyError::Invalid("copy source is missing".into())),
                }
            }
        }
    }

    fn run_exec(
        &self,
        index: usize,
        v: &Vertex,
        op: &ExecOp,
        base: &[LayerRef],
        inputs: &[Solved],
    ) -> Result<Option<LayerRef>, SolveError> {
        let err = |e: &dyn std::fmt::Display| self.step_error(v, e);
        if let Some(platform) = &op.platform {
            let target: builder_cache::Platform = platform.parse().map_err(|e| err(&e))?;
            crate::emulation::how_to_run(
                &target,
                &builder_cache::Platform::host(),
                Path::new(crate::emulation::BINFMT_MISC),
            )
            .map_err(|e| err(&e))?;
        }
        let active = self.layers.prepare_for_run(base).map_err(|e| err(&e))?;
        let mut mounts = Vec::new();
        // Keeps read-only views and temp files alive until the process exits.
        let mut keep_alive: Vec<Box<dyn std::any::Any>> = Vec::new();
        // What `--on-error=keep` records of the mounts: cache directories and tmpfs mounts
        // come back in `builder debug`; the rest is named.
        let mut kept_mounts = (Vec::new(), Vec::new());
        for m in &op.mounts {
            let kind = self
                .mount_source(&m.kind, inputs, &mut keep_alive)
                .map_err(|e| err(&e))?;
            let target = m.target.clone();
            match (&m.kind, &kind) {
                (ExecMountKind::Cache { .. }, builder_sandbox::MountKind::Bind { source, .. }) => {
                    kept_mounts.0.push(crate::kept_step::KeptMount::Cache {
                        target,
                        dir: source.clone(),
                    })
                }
                (ExecMountKind::Tmpfs { .. }, _) => kept_mounts
                    .0
                    .push(crate::kept_step::KeptMount::Tmpfs { target }),
                (ExecMountKind::Secret { .. }, _) => {
                    kept_mounts.1.push(format!("{target} (secret)"))
                }
                (ExecMountKind::Ssh { .. }, _) => {
                    kept_mounts.1.push(format!("{target} (ssh agent)"))
                }
                _ => kept_mounts.1.push(format!("{target} (bind)")),
            }
            mounts.push(builder_sandbox::MountSpec {
                target: m.target.clone(),
                kind,
            });
        }
        let (read_fd, write_fd) = pipe().map_err(|e| err(&e))?;
        let write_fd2 = write_fd.try_clone().map_err(|e| err(&e))?;
        let spec = builder_sandbox::RunSpec {
            rootfs: active.rootfs().to_path_buf(),
            args: op.args.clone(),
            env: self.env_with_secrets(op).map_err(|e| err(&e))?,
            cwd: op.cwd.clone(),
            user: op.user.clone(),
            hostname: op
                .hostname
                .clone()
                .unwrap_or_else(|| "buildkitsandbox".into()),
            network: match op.network {
                crate::graph::NetworkMode::Host => builder_sandbox::Network::Host,
                crate::graph::NetworkMode::None => builder_sandbox::Network::None,
            },
            security: op.security,
            extra_hosts: op.extra_hosts.clone(),
            shm_size: op.shm_size,
            ulimits: op.ulimits.clone(),
            mounts,
            stdin: builder_sandbox::Stdio::Null,
            stdout: builder_sandbox::Stdio::Fd(write_fd),
            stderr: builder_sandbox::Stdio::Fd(write_fd2),
            limits: self.opts.limits,
            isolation: self.opts.isolation,
        };
        let (report, tail) = std::thread::scope(|scope| {
            let reader = scope.spawn(|| self.forward_output(index, read_fd));
            let report = builder_sandbox::spawn(spec).and_then(|sandbox| {
                let _cancellable = crate::cancel::track(sandbox.id());
                sandbox.wait()
            });
            let tail = reader.join().unwrap_or_default();
            (report, tail)
        });
        drop(keep_alive);
        if crate::cancel::is_cancelled() {
            // Killed by us, not failed by itself; `active` (the scratch snapshot) goes on return.
            return Err(SolveError::Cancelled);
        }
        let report = report.map_err(|e| {
            if e.is_unavailable() {
                SolveError::SandboxUnavailable {
                    location: self.location(v),
                    name: v.name.clone(),
                    error: Box::new(e),
                }
            } else {
                err(&e)
            }
        })?;
        // Mount points the sandbox had to create are not the step's output, nor is what
        // stood in for a mount under chroot isolation.
        builder_sandbox::remove_mount_stubs(active.rootfs(), &report.created_mount_points)
            .map_err(|e| err(&e))?;
        let mut active = active;
        active.exclude_from_diff(&report.transient_paths);
        if !report.status.success() {
            let kept = match &self.opts.keep_failed_in {
                Some(dir) => {
                    self.keep_failed(dir, v, op, base, &kept_mounts, active, report.status.code())
                }
                None => String::new(),
            };
            if report.oom_killed {
                return Err(self.step_error(
                    v,
                    format!(
                        "process \"{}\" ran out of memory: the kernel's OOM killer stopped it at the --memory limit of {} bytes ({}){}{kept}",
                        op.args.join(" "),
                        self.opts.limits.memory.unwrap_or_default(),
                        report.status,
                        tail_section(&tail)
                    ),
                ));
            }
            return Err(SolveError::ExecFailed {
                location: self.location(v),
                name: v.name.clone(),
                command: op.args.join(" "),
                code: report.status.code(),
                tail: format!("{}{kept}", tail_section(&tail)),
            });
        }
        // Locked until the layer is stored: a concurrent build's sweep leaves it alone.
        let diff = active.finish_locked().map_err(|e| err(&e))?;
        self.commit_diff(diff.path()).map_err(|e| {
            if crate::cancel::is_cancelled() {
                SolveError::Cancelled
            } else {
                err(&e)
            }
        })
    }

    /// `--on-error=keep`: stores the failed step's diff and how it ran; returns the note that
    /// goes at the end of the error (how to enter it, or why it could not be kept).
    #[allow(clippy::too_many_arguments)]
    fn keep_failed(
        &self,
        debug_dir: &Path,
        v: &Vertex,
        op: &ExecOp,
        base: &[LayerRef],
        mounts: &(Vec<crate::kept_step::KeptMount>, Vec<String>),
        active: builder_snapshot::ActiveSnapshot,
        code: i32,
    ) -> String {
        let record = crate::kept_step::KeptStep {
            id: crate::kept_step::new_id(),
            location: self.location(v).trim_end_matches([' ', ':']).to_string(),
            name: v.name.clone(),
            command: op.args.clone(),
            exit_code: code,
            layers: base.to_vec(),
            env: op.env.clone(),
            cwd: op.cwd.clone(),
            user: op.user.clone(),
            hostname: op
                .hostname
                .clone()
                .unwrap_or_else(|| "buildkitsandbox".into()),
            host_network: op.network == crate::graph::NetworkMode::Host,
            mounts: mounts.0.clone(),
            omitted_mounts: mounts.1.clone(),
        };
        let kept = active
            .finish_locked()
            .map_err(|e| e.to_string())
            .and_then(|diff| {
                crate::kept_step::keep(debug_dir, &record, diff.path()).map_err(|e| e.to_string())
            });
        match kept {
            Ok(_) => format!(
                "\n\nThe step's state is kept: `builder debug {}` opens a shell in it (or `builder debug last -- COMMAND`).",
                record.id
            ),
            Err(e) => format!("\n\n(--on-error=keep: the step's state could not be kept: {e})"),
        }
    }

    /// Streams a step's output to the progress sink in whole lines (stdout and stderr share one
    /// pipe, so chunks of one line may arrive in pieces); returns the last lines for errors.
    fn forward_output(&self, index: usize, fd: OwnedFd) -> String {
        let mut file = fs::File::from(fd);
        let mut buf = [0u8; 8192];
        let mut pending: Vec<u8> = Vec::new();
        let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut emit = |bytes: &[u8]| {
            self.progress.event(Event::Log {
                vertex: index,
                stream: Stream::Stdout,
                data: bytes.to_vec(),
            });
            if tail.len() == ERROR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(
                String::from_utf8_lossy(bytes)
                    .trim_end_matches('\n')
                    .to_string(),
            );
        };
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                emit(&line);
            }
            // A very long line without a newline is passed on in pieces.
            if pending.len() > 64 * 1024 {
                emit(&std::mem::take(&mut pending));
            }
        }
        if !pending.is_empty() {
            emit(&pending);
        }
        tail.into_iter().collect::<Vec<_>>().join("\n")
    }

    fn mount_source(
        &self,
        kind: &ExecMountKind,
        inputs: &[Solved],
        keep_alive: &mut Vec<Box<dyn std::any::Any>>,
    ) -> Result<builder_sandbox::MountKind, String> {
        use builder_sandbox::MountKind as K;
        match kind {
            ExecMountKind::Tmpfs { size } => Ok(K::Tmpfs { size: *size }),
            ExecMountKind::Input {
                input,
                source,
                read_write,
            } => {
                let root = match inputs.get(*input).map(|s| &s.output) {
                    Some(Output::Context(name)) => {
                        self.filtered_context(name.as_deref(), source, keep_alive)?
                    }
                    Some(Output::Rootfs(layers)) => {
                        let view = self.prepare(layers)?;
                        let path = crate::rootpath::resolve_in_root(view.rootfs(), source, true)
                            .map_err(|e| e.to_string())?;
                        keep_alive.push(Box::new(view));
                        path
                    }
                    None => return Err("mount source is missing".into()),
                };
                // A read-write bind of a context or stage is a throwaway copy, as in BuildKit.
                Ok(K::Bind {
                    source: root,
                    read_only: !read_write,
                })
            }
            ExecMountKind::Cache {
                id,
                sharing,
                mode,
                uid,
                gid,
                read_only,
                seed,
            } => {
                // A seeded cache is a cache of its own per seed (BuildKit keys it by its parent
                // snapshot); an unseeded one keeps the plain id, so existing caches stay found.
                let identity = match seed {
                    Some(s) => {
                        let from = inputs.get(s.input).ok_or("cache mount seed is missing")?;
                        format!("{id}\0from {}\0{}", from.key, s.source)
                    }
                    None => id.clone(),
                };
                // Under chroot isolation a cache's entries are moved into the step's rootfs
                // for the run, so two steps cannot use it at once: shared becomes locked.
                let sharing = match (self.opts.isolation, *sharing) {
                    (builder_sandbox::Isolation::Chroot, crate::graph::CacheSharing::Shared) => {
                        crate::graph::CacheSharing::Locked
                    }
                    (_, sharing) => sharing,
                };
                let dir = self.cache_mount_dir(&identity, sharing, keep_alive)?;
                let empty = fs::read_dir(&dir)
                    .map_err(|e| format!("{}: {e}", dir.display()))?
                    .next()
                    .is_none();
                if let (true, Some(s)) = (empty, seed) {
                    self.seed_cache_dir(&dir, s, inputs)?;
                } else if empty {
                    // A new (empty) cache directory gets the mount's mode and owner.
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&dir, fs::Permissions::from_mode(*mode))
                        .map_err(|e| e.to_string())?;
                    let (uid, gid) = builder_snapshot::ids::to_disk(*uid, *gid);
                    std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                        .map_err(|e| e.to_string())?;
                }
                Ok(K::Bind {
                    source: dir,
                    read_only: *read_only,
                })
            }
            ExecMountKind::Ssh {
                id,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(agent) = self.opts.ssh.get(id) else {
                    if *required {
                        return Err(format!(
                            "ssh agent {id:?} is required but was not given (use --ssh {id}=SOCKET, or --ssh default for $SSH_AUTH_SOCK)"
                        ));
                    }
                    // Like a missing optional secret: an empty file where the socket would be.
                    return self.empty_file_mount(keep_alive);
                };
                let forwarder = crate::ssh_agent::AgentForwarder::start(
                    agent,
                    &self.store.tmp_dir(),
                    *mode,
                    *uid,
                    *gid,
                )
                .map_err(|e| format!("forwarding ssh agent {id:?} ({}): {e}", agent.display()))?;
                let socket = forwarder.socket().to_path_buf();
                keep_alive.push(Box::new(forwarder));
                Ok(K::Bind {
                    source: socket,
                    read_only: false,
                })
            }
            ExecMountKind::Secret {
                id,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(src) = self.opts.secrets.get(id) else {
                    if *required {
                        return Err(format!(
                            "secret {id}: not found (the mount is required; pass --secret id={id},src=FILE)"
                        ));
                    }
                    return self.empty_file_mount(keep_alive);
                };
                let data = fs::read(src)
                    .map_err(|e| format!("reading secret {id:?} from {}: {e}", src.display()))?;
                let file = tempfile::NamedTempFile::new_in(self.store.tmp_dir())
                    .map_err(|e| e.to_string())?;
                fs::write(file.path(), data).map_err(|e| e.to_string())?;
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(file.path(), fs::Permissions::from_mode(*mode))
                    .map_err(|e| e.to_string())?;
                let (uid, gid) = builder_snapshot::ids::to_disk(*uid, *gid);
                std::os::unix::fs::chown(file.path(), Some(uid), Some(gid))
                    .map_err(|e| e.to_string())?;
                let path = file.path().to_path_buf();
                keep_alive.push(Box::new(file));
                Ok(K::Bind {
                    source: path,
                    read_only: true,
                })
            }
        }
    }

    /// What an optional secret or ssh mount that was not given becomes: an empty read-only file.
    fn empty_file_mount(
        &self,
        keep_alive: &mut Vec<Box<dyn std::any::Any>>,
    ) -> Result<builder_sandbox::MountKind, String> {
        let empty =
            tempfile::NamedTempFile::new_in(self.store.tmp_dir()).map_err(|e| e.to_string())?;
        let path = empty.path().to_path_buf();
        keep_alive.push(Box::new(empty));
        Ok(builder_sandbox::MountKind::Bind {
            source: path,
            read_only: true,
        })
    }

    /// The step's environment plus its proxy build args and `type=secret,env=` values, read
    /// only now, for the process: they stay out of the graph, the cache key, the image and the
    /// logs.
    fn env_with_secrets(&self, op: &ExecOp) -> Result<Vec<String>, String> {
        let mut env = op.env.clone();
        // The proxy build args come last, as in BuildKit; a variable the step already has (an
        // ENV or a declared ARG of that name) keeps its value rather than appearing twice.
        for kv in &op.proxy_env {
            let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
            {
                env.push(kv.clone());
            }
        }
        for s in &op.secret_env {
            let Some(src) = self.opts.secrets.get(&s.id) else {
                if s.required {
                    return Err(format!(
                        "secret {}: not found (the mount is required; pass --secret id={},src=FILE or env=VAR)",
                        s.id, s.id
                    ));
                }
                continue;
            };
            let value = fs::read(src)
                .map_err(|e| format!("reading secret {:?} from {}: {e}", s.id, src.display()))?;
            let value = String::from_utf8(value).map_err(|_| {
                format!(
                    "secret {:?} is not UTF-8 text, so it cannot be an environment variable",
                    s.id
                )
            })?;
            env.retain(|kv| kv.split_once('=').map(|(k, _)| k) != Some(s.env.as_str()));
            env.push(format!("{}={value}", s.env));
        }
        Ok(env)
    }

    /// The persistent directory of a cache mount, with BuildKit's sharing modes: `shared` lets
    /// concurrent steps use it together, `locked` makes them take turns, and `private` gives a
    /// step a fresh throwaway directory while another one holds the cache.
    fn cache_mount_dir(
        &self,
        id: &str,
        sharing: crate::graph::CacheSharing,
        keep_alive: &mut Vec<Box<dyn std::any::Any>>,
    ) -> Result<PathBuf, String> {
        use crate::graph::CacheSharing;
        let base = self.store.cache_mounts_dir();
        let name = Digest::of(id.as_bytes()).hex();
        let dir = base.join(&name);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock_path = base.join(format!("{name}.lock"));
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        let op = match sharing {
            CacheSharing::Shared => libc::LOCK_SH,
            CacheSharing::Locked => libc::LOCK_EX,
            CacheSharing::Private => libc::LOCK_EX | libc::LOCK_NB,
        };
        // SAFETY: flock on a descriptor we own; the lock lives as long as the File.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), op) } != 0 {
            let err = std::io::Error::last_os_error();
            if sharing == CacheSharing::Private && err.kind() == std::io::ErrorKind::WouldBlock {
                let tmp = tempfile::Builder::new()
                    .prefix("cache-private-")
                    .tempdir_in(&self.work_root)
                    .map_err(|e| e.to_string())?;
                let path = tmp.path().to_path_buf();
                keep_alive.push(Box::new(tmp));
                return Ok(path);
            }
            return Err(format!("locking cache mount {id:?}: {err}"));
        }
        keep_alive.push(Box::new(lock));
        self.used_cache_mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(UsedCacheMount {
                dir_name: name,
                id: id.to_string(),
            });
        Ok(dir)
    }

    /// The persistent cache mounts this build's RUN steps used.
    pub fn used_cache_mounts(&self) -> Vec<UsedCacheMount> {
        self.used_cache_mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Fills a new cache directory with a copy of the seed's directory (owners, modes and times
    /// kept; the directory itself takes the seed directory's owner and mode, as the mount of
    /// that path would show it in BuildKit). The copy is made beside the cache and renamed
    /// over the empty directory, so a concurrent build of the same cache sees it whole or not
    /// at all; whoever renames second finds the directory full and drops its copy.
    fn seed_cache_dir(
        &self,
        dir: &Path,
        seed: &crate::graph::CacheSeed,
        inputs: &[Solved],
    ) -> Result<(), String> {
        let parent = dir.parent().ok_or("cache mount directory has no parent")?;
        let tmp = tempfile::Builder::new()
            .prefix(".seed-")
            .tempdir_in(parent)
            .map_err(|e| format!("{}: {e}", parent.display()))?;
        let action = CopyAction {
            source_input: seed.input,
            sources: vec![seed.source.clone()],
            dest: "/".into(),
            dest_is_dir: true,
            chown: None,
            chmod: None,
            unpack_archives: false,
            exclude: Vec::new(),
            from_context: false,
            parents: false,
        };
        let attrs = Attributes {
            owner: None,
            chmod: None,
            reset_owner: false,
        };
        let copy_seed = |tree: &SourceTree| -> Result<(), String> {
            let picked = tree.select(&seed.source).map_err(|e| e.to_string())?;
            match picked.as_slice() {
                [one] if one.host.is_dir() => {}
                _ => {
                    return Err(format!(
                        "cache mount source {:?} is not a directory of its from= input",
                        seed.source
                    ));
                }
            }
            copy::copy(tree, &action, tmp.path(), attrs).map_err(|e| e.to_string())?;
            let meta = fs::symlink_metadata(&picked[0].host).map_err(|e| e.to_string())?;
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            std::os::unix::fs::chown(tmp.path(), Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| e.to_string())?;
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(|e| e.to_string())
        };
        match inputs.get(seed.input).map(|s| &s.output) {
            Some(Output::Context(name)) => {
                let tree = self.context_tree(name.as_deref()).ok_or(
                    "this cache mount is seeded from the build context, but no context directory was given",
                )?;
                copy_seed(&tree)?;
            }
            Some(Output::Rootfs(layers)) => {
                let view = self.prepare(layers)?;
                copy_seed(&SourceTree::new(view.rootfs(), None))?;
            }
            None => return Err("cache mount seed is missing".into()),
        }
        match fs::rename(tmp.path(), dir) {
            Ok(()) => {
                // The directory is the cache now; nothing left for the TempDir to remove.
                let _ = tmp.keep();
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
            Err(e) => Err(format!("{}: {e}", dir.display())),
        }
    }

    /// The context (after .dockerignore) below `source`, copied to a temp dir for a bind mount.
    fn filtered_context(
        &self,
        name: Option<&str>,
        source: &str,
        keep_alive: &mut Vec<Box<dyn std::any::Any>>,
    ) -> Result<PathBuf, String> {
        let tree = self
            .context_tree(name)
            .ok_or("this step mounts the build context, but no context directory was given")?;
        let tmp = tempfile::Builder::new()
            .prefix("ctx-")
            .tempdir_in(&self.work_root)
            .map_err(|e| e.to_string())?;
        let action = crate::graph::CopyAction {
            source_input: 0,
            sources: vec![source.to_string()],
            dest: "/".into(),
            dest_is_dir: true,
            chown: None,
            chmod: None,
            unpack_archives: false,
            exclude: vec![],
            from_context: true,
            parents: false,
        };
        copy::copy(
            &tree,
            &action,
            tmp.path(),
            Attributes {
                owner: None,
                chmod: None,
                reset_owner: true,
            },
        )
        .map_err(|e| e.to_string())?;
        // A single regular file is mounted as that file, not as the directory holding it.
        // (Not a symlink: the bind mount would follow it on the host's side.)
        let rel = crate::rootpath::clean_rel(source);
        let single_file = !rel.is_empty()
            && fs::symlink_metadata(tree.root().join(&rel)).is_ok_and(|m| m.is_file());
        let path = match rel.rsplit('/').next() {
            Some(name) if single_file => tmp.path().join(name),
            _ => tmp.path().to_path_buf(),
        };
        keep_alive.push(Box::new(tmp));
        Ok(path)
    }
}

fn with_layer(mut base: Vec<LayerRef>, layer: Option<LayerRef>) -> Vec<LayerRef> {
    base.extend(layer);
    base
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::FromRawFd::from_raw_fd(fds[0]),
            std::os::fd::FromRawFd::from_raw_fd(fds[1]),
        )
    })
}

/// The end of a failed step's output, as a section of its error message.
fn tail_section(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n--- last lines of output ---\n{tail}")
    }
}
