//! builder-solver: from a parsed Dockerfile to a stored image.
//!
//! The graph it solves comes from `builder_dockerfile2graph` (docker's dispatch rules, turning
//! stages and instructions into a `builder_graph::BuildGraph` plus each stage's image config).
//!
//! Its public surface is what the CLI and remote-cache use, and nothing else (the compiler keeps
//! it so: the internals are private modules):
//! - [`build()`] with [`BuildRequest`] (conversion's options and [`SolveOptions`]) →
//!   [`BuildOutput`]: the whole pipeline for one build;
//! - [`progress`]: the events a build reports; [`cancel`]: stopping one from a signal;
//! - [`resolve`]: base images from the store or a registry, remote files and git sources;
//! - [`cache_index`], [`cache_import`], [`verify`]: the step-cache records, the hook a remote
//!   cache fills them through, and their check for `builder cache verify`;
//! - [`kept_step`]: a failed step kept for `builder debug`; [`sandbox_meta`], [`ssh_agent`]:
//!   the sandbox settings (and snapshotter), and SSH agent, `builder run`/`debug` share with RUN.
//!
//! Inside: `executor` solves the graph (cache keys, lookups, parallel execution of RUN steps in
//! the sandbox and of file operations (`copy`) on overlay snapshots); `source_tree` and
//! `stat_cache` checksum the context.

pub mod build;
pub mod cache_import;
pub mod cache_index;
pub mod cache_usage;
pub mod cancel;
mod copy;
mod emulation;
mod executor;
mod image_json;
pub mod kept_step;
pub mod options;
pub mod progress;
pub mod resolve;
pub mod sandbox_meta;
mod source_tree;
pub mod ssh_agent;
mod stat_cache;
mod step_lock;
mod userdb;
pub mod verify;
mod walk;

pub use build::{BuildError, BuildOutput, BuildRequest, BuiltStageLayers, StepRecord, build};
pub use builder_graph::image::Platform;
pub use executor::{SolveError, UsedCacheMount};
pub use options::SolveOptions;
pub use source_tree::SourceTree;
pub use stat_cache::StatCache;
