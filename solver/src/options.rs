//! What the caller of a build chooses about how its graph is solved. It travels as one value
//! from the CLI to the executor (inside [`crate::BuildRequest`]): a new solver setting is a field
//! here and nowhere else. What the build derives from the Dockerfile and its files on the way
//! (the .dockerignore matcher, the named context directories, the `--no-cache-filter` steps) is
//! the executor's `ConvertedInputs`, never set by the caller.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use builder_snapshot::LayerOptions;

use crate::cache_import::CacheImport;

#[derive(Clone)]
pub struct SolveOptions {
    /// The build context directory (None when the Dockerfile needs none).
    pub context_dir: Option<PathBuf>,
    /// `--secret id=...` values: id → file holding the secret.
    pub secrets: BTreeMap<String, PathBuf>,
    /// `--ssh id=SOCKET` values: id → ssh-agent socket.
    pub ssh: BTreeMap<String, PathBuf>,
    /// `--no-cache`: no step is looked up in (or waits for) the cache.
    pub no_cache: bool,
    /// `--cache-from`: records consulted when the local cache misses.
    pub cache_import: Option<Arc<dyn CacheImport>>,
    /// How layers are written; its `source_date_epoch` is the caller's (`SOURCE_DATE_EPOCH`
    /// from the build args or the environment), which a Dockerfile's own ARG default backs.
    pub layer_options: LayerOptions,
    /// Steps solved at once.
    pub max_parallel: usize,
    /// `--memory`/`--cpus`/`--pids-limit` for every RUN step (not part of cache keys, as in docker).
    pub limits: builder_sandbox::ResourceLimits,
    /// How RUN steps are isolated (not part of cache keys: every mode makes the same layers).
    pub isolation: builder_sandbox::Isolation,
    /// `--on-error=keep`: where a failed RUN step's state is kept for `builder debug`.
    pub keep_failed_in: Option<PathBuf>,
}
