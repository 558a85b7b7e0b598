//! What conversion asks of the world outside the Dockerfile: base images, remote files, git
//! checkouts (through an [`ImageResolver`]) and the `--build-context` values.

use builder_graph::image::{ImageSpec, Platform};

/// A base image found by the resolver: its identity, config and layers.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// Normalized reference, e.g. `docker.io/library/busybox:latest`.
    pub reference: String,
    pub manifest_digest: builder_store::Digest,
    /// Config and layers (`base_layers`) of the image.
    pub spec: ImageSpec,
}

/// A file an `ADD <url>` downloaded into the store's blobs before the step runs.
#[derive(Clone, Debug)]
pub struct RemoteFile {
    /// sha256 of the content, which is also its blob's name in the store.
    pub digest: builder_store::Digest,
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
