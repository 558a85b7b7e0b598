//! builder-dockerfile2graph: a parsed Dockerfile becomes a [`builder_graph::BuildGraph`] of
//! content-addressed operations plus each stage's image config, by docker's dispatch rules.
//!
//! Pure: it reads no files and runs nothing. What it needs from outside (base images, remote
//! files, git checkouts) it asks an [`ImageResolver`] for, which the solver implements; the
//! graph it returns is what the solver executes.
//!
//! - [`options`]: what the build asks for (target, platform, build args, entitlements);
//! - [`inputs`]: the resolver trait and the contexts a build names;
//! - [`args`]: build args the builder reads itself and the scopes instructions expand in;
//! - `converter`: the stage walk ([`convert`]), each stage's instructions (`stage_build`,
//!   `dispatch`), and the steps that make layers (`copy` for COPY/ADD, `run` for RUN).

pub mod args;
mod converter;
pub mod error;
pub mod inputs;
pub mod options;

pub use args::{BUILDER_ARGS, PROXY_ARGS, SBOM_SCAN_CONTEXT_ARG, SBOM_SCAN_STAGE_ARG, SYNTAX_ARG};
pub use converter::{BuiltStage, ConvertedBuild, StageOutput, convert};
pub use error::ConvertError;
pub use inputs::{BuildContext, GitCheckout, ImageResolver, RemoteFile, ResolvedImage};
pub use options::{ConvertOptions, Entitlements};
