//! `builder save`: stored images as a docker or OCI archive (written by the export stage's
//! archive writer, as `--output type=docker|oci` is).

use std::path::PathBuf;
use std::process::ExitCode;

use builder_export::{ArchiveFormat, ExportImage};
use clap::Args;

use super::progress::{ProgressMode, Renderer};
use super::{Context, UsageError, find_image, normalize};

#[derive(Args)]
pub struct SaveArgs {
    /// Write to this file (required: archives are not written to a terminal).
    #[arg(short, long)]
    output: PathBuf,
    /// Archive format: docker (docker-archive, which also contains an OCI layout) or oci.
    #[arg(long, default_value = "docker", value_parser = ["docker", "oci"])]
    format: String,
    /// Of an image index, save only this platform's image (as `docker save --platform`).
    #[arg(long)]
    platform: Option<String>,
    /// Progress output: quiet (the default, like docker save), auto, tty, plain, rawjson
    /// (per-blob byte counts).
    #[arg(long, default_value = "quiet")]
    progress: String,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn run(ctx: &Context, args: SaveArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let mut images = Vec::new();
    for image in &args.images {
        let record = match &args.platform {
            Some(p) => super::find_platform_image(&store, image, Some(p))?,
            None => find_image(&store, image)?,
        };
        let is_index = builder_store::stored_index::read_index(&store, &record.manifest)?;
        if let Some(index) = is_index.filter(|_| args.format == "docker") {
            let held = builder_store::stored_index::platforms(&index)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            anyhow::bail!(UsageError(format!(
                "{image} is an image index ({held}), which a docker archive cannot carry (docker load takes one platform): pick one with --platform, or save the index with --format oci"
            )));
        }
        // A name (not an id) is kept in the archive so `docker load` tags the image.
        let name = normalize(image)
            .ok()
            .filter(|n| store.images().get(n).ok().flatten().is_some())
            .unwrap_or_default();
        images.push(ExportImage::new(name, record.manifest));
    }
    let format = if args.format == "oci" {
        ArchiveFormat::OciLayout
    } else {
        ArchiveFormat::DockerArchive
    };
    let renderer = Renderer::new(ProgressMode::parse(&args.progress)?);
    super::export::write_archive_file(&store, &images, format, &args.output, &renderer)?;
    Ok(ExitCode::SUCCESS)
}
