//! builder-solver: from a parsed Dockerfile to a stored image.
//!
//! - [`convert`]: docker's dispatch rules turn stages and instructions into a [`graph::BuildGraph`]
//!   of content-addressed operations plus each stage's image config ([`image::ImageSpec`]).
//! - [`executor`]: solves the graph: cache keys, cache lookups, parallel execution of RUN steps in
//!   the sandbox and of file operations ([`copy`]) on overlay snapshots.
//! - [`build`]: the whole pipeline for one `builder build`.

pub mod build;
pub mod cache_import;
pub mod cache_index;
pub mod cancel;
pub mod convert;
pub mod copy;
pub mod emulation;
pub mod executor;
pub mod image_json;
pub mod kept_step;
pub mod progress;
pub mod resolve;
pub mod sandbox_meta;
pub mod source_tree;
pub mod ssh_agent;
pub mod stat_cache;
pub mod step_lock;
pub mod userdb;
pub mod verify;
pub mod walk;

pub use build::{BuildError, BuildOutput, BuildRequest, BuiltStageLayers, StepRecord, build};
pub use builder_graph::image::Platform;
