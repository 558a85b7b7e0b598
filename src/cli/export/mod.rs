//! The export stage of `builder build`: what the solver built (one image, or one per platform
//! gathered in an index) goes where the user asked — into the store under its names, into
//! docker or OCI archives, OCI directories, tars and directories of its files, to registries —
//! with its attestations attached; then `--iidfile` and `--metadata-file` tell scripts what
//! came out. The build command only builds and hands over; `builder save` writes archives with
//! the same writers (write.rs). The `--cache-to` exports stay with the cache flags: they send
//! the build's records, not the image.

pub mod attestations;
mod image;
mod index;
mod write;

use std::path::Path;

use anyhow::Context as _;
use builder_remote_cache::Remote;
use builder_store::{ImageRecord, Store};

use crate::cli::outputs::OutputRequest;
use crate::cli::progress::Renderer;

pub use image::BuiltImage;
pub use index::PlatformImage;
pub use write::{write_archive_file, write_output};

/// Where a build's result goes: the `-t` names, `--push` and every `--output`.
pub struct Exporter<'a> {
    pub store: &'a Store,
    pub renderer: &'a Renderer,
    /// The `-t` names, normalized.
    pub tags: &'a [String],
    pub outputs: &'a [OutputRequest],
    /// `--push`: the stored image goes to every `-t` name.
    pub push: bool,
    /// The attestations to attach; `None` attaches none.
    pub wanted: Option<&'a attestations::Wanted>,
    /// The registry client of a `--cache-to type=registry` export, told where pushed layers
    /// went so that export mounts them instead of uploading them again.
    pub cache_remote: Option<&'a Remote>,
}

/// What the export stage made, for `--iidfile`, `--metadata-file` and the closing lines.
#[must_use]
pub struct Exported {
    /// The image id (its config digest), or the index digest of a multi-platform build.
    pub id: String,
    /// The `--metadata-file` document, as buildx writes it.
    pub metadata: serde_json::Value,
    /// The closing lines on stderr.
    summary: Vec<String>,
    /// With `--quiet`, the id alone goes to stdout instead of the summary (a single image, as
    /// docker prints it).
    id_when_quiet: bool,
}

impl Exported {
    /// Writes `--iidfile` and `--metadata-file` and prints the closing lines (the id alone on
    /// stdout with `--quiet`, as docker).
    pub fn finish(
        self,
        quiet: bool,
        iidfile: Option<&Path>,
        metadata_file: Option<&Path>,
    ) -> anyhow::Result<()> {
        if let Some(path) = iidfile {
            std::fs::write(path, &self.id)
                .with_context(|| format!("writing --iidfile {}", path.display()))?;
        }
        if let Some(path) = metadata_file {
            std::fs::write(path, serde_json::to_vec_pretty(&self.metadata)?)
                .with_context(|| format!("writing --metadata-file {}", path.display()))?;
        }
        if quiet && self.id_when_quiet {
            outln!("{}", self.id);
            return Ok(());
        }
        for line in &self.summary {
            errln!("{line}");
        }
        Ok(())
    }
}

impl Exporter<'_> {
    /// Tells the cache export's registry client which repositories will hold `image`'s layers
    /// once pushed under `names`, so an export to another repository of that registry mounts
    /// them.
    fn remember_pushed(&self, names: &[String], image: &ImageRecord) {
        let Some(remote) = self.cache_remote else {
            return;
        };
        let Ok(manifest) = builder_store::read_manifest(self.store.blobs(), &image.manifest) else {
            return;
        };
        for name in names {
            let Ok(r) = name.parse::<builder_registry::Reference>() else {
                continue;
            };
            for layer in &manifest.layers {
                remote
                    .client
                    .record_blob_origin(&r.registry, &r.repository, layer.digest);
            }
        }
    }
}
