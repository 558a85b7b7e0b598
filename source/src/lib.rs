//! builder-source: build inputs that are not a local directory, turned into one.
//!
//! BuildKit models these as source ops (`source/git`, `source/http`); builder resolves them
//! before conversion, into a directory the rest of the build reads like any context:
//!
//! - [`git_ref`]: which strings name a git repository, and the ref / subdirectory / options a
//!   URL carries (BuildKit's rules, so the same arguments mean the same thing).
//! - [`git`]: fetching a ref with the `git` program into a per-remote mirror in the store,
//!   and checking the resolved commit out into a fresh directory.
//! - [`http`]: `ADD <url>` files downloaded into the store, revalidated with the server's
//!   validators on later builds.
//! - [`tarball`]: a (compressed) tar archive — on stdin or downloaded — unpacked into a fresh
//!   directory, entries confined to it.

pub mod git;
pub mod git_ref;
pub mod http;
pub mod oci_layout;
pub mod tarball;

pub use git::{Checkout, GitAuth, GitError, GitFetcher};
pub use git_ref::{GitRef, GitRefError};
pub use http::{Downloaded, Downloads, HttpError};
pub use oci_layout::{LayoutRef, OciLayoutError};
pub use tarball::{TarballError, is_archive, unpack_context};
