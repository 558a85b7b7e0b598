//! builder-graph: the build graph, builder's LLB.
//!
//! The frontend's converter (`builder-dockerfile2graph`) produces a [`BuildGraph`] of
//! content-addressed operations plus each stage's image config ([`image::ImageSpec`]); the
//! solver runs it. Plain data with no I/O, so every layer above can share it.
//!
//! - [`ops`]: the vertices (image, context, exec, file ops), the graph and its fingerprints.
//! - [`image`]: the image config a stage accumulates.
//! - [`chmod`]: `--chmod` values, octal or symbolic.
//! - [`exec_meta`]: a RUN step's privileges, extra hosts and resource limits.

pub mod chmod;
pub mod exec_meta;
pub mod image;
pub mod ops;

pub use exec_meta::{ExtraHost, Security, Ulimit};
pub use ops::*;
