//! Why a Dockerfile cannot be converted.

use builder_frontend::FrontendError;

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
    /// on. Raised and consumed inside [`crate::convert`]; it never reaches a caller.
    #[doc(hidden)]
    #[error("stage {0} is needed first")]
    NeedsStage(usize),
}
