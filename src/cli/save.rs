//! `builder save` and `--output`: images leaving the store as archives or files.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use builder_export::{ArchiveFormat, ExportImage};
use builder_store::{Digest, ImageRecord, Store};
use clap::Args;

use builder_solver::progress::{Event, ProgressSink, Transfer, TransferKind};

use super::outputs::OutputSpec;
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
    write_archive_file(&store, &images, format, &args.output, &renderer)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes next to the destination and renames, so a failed export leaves no half-written file.
fn write_archive_file(
    store: &Store,
    images: &[ExportImage],
    format: ArchiveFormat,
    dest: &Path,
    sink: &dyn ProgressSink,
) -> anyhow::Result<()> {
    let report = |d: &Digest, current: u64, total: u64| {
        sink.event(Event::Transfer(Transfer {
            id: d.to_string(),
            kind: TransferKind::Export,
            current,
            total,
        }))
    };
    if dest.as_os_str() == "-" {
        let out = builder_export::write_images_reporting(
            store,
            images,
            format,
            BufWriter::new(std::io::stdout().lock()),
            Some(&report),
        )?;
        out.into_inner().map_err(|e| e.into_error())?.flush()?;
        return Ok(());
    }
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    let out = builder_export::write_images_reporting(
        store,
        images,
        format,
        BufWriter::new(tmp.reopen()?),
        Some(&report),
    )?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    tmp.persist(dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}

pub fn export_output(
    store: &Store,
    out: &OutputSpec,
    tags: &[String],
    record: &ImageRecord,
    descriptor_annotations: &BTreeMap<String, String>,
    sink: &dyn ProgressSink,
) -> anyhow::Result<()> {
    let image = |name: &str| ExportImage {
        name: name.to_string(),
        manifest: record.manifest,
        annotations: descriptor_annotations.clone(),
    };
    let images: Vec<ExportImage> = if tags.is_empty() {
        vec![image("")]
    } else {
        tags.iter().map(|t| image(t)).collect()
    };
    match out {
        OutputSpec::DockerArchive(p) => {
            write_archive_file(store, &images, ArchiveFormat::DockerArchive, p, sink)
        }
        OutputSpec::OciArchive(p) => {
            write_archive_file(store, &images, ArchiveFormat::OciLayout, p, sink)
        }
        OutputSpec::OciDir(p) => {
            if p.exists() && !p.is_dir() {
                anyhow::bail!(UsageError(format!(
                    "--output tar=false: {} exists and is not a directory",
                    p.display()
                )));
            }
            builder_export::write_oci_dir_images(store, &images, p)?;
            Ok(())
        }
        OutputSpec::RootfsTar(p) if p.as_os_str() == "-" => {
            let out = builder_export::write_rootfs_tar(
                store,
                &record.manifest,
                BufWriter::new(std::io::stdout().lock()),
            )?;
            out.into_inner().map_err(|e| e.into_error())?.flush()?;
            Ok(())
        }
        OutputSpec::RootfsTar(p) => {
            let file = File::create(p).with_context(|| format!("creating {}", p.display()))?;
            builder_export::write_rootfs_tar(store, &record.manifest, BufWriter::new(file))?;
            Ok(())
        }
        OutputSpec::Local(p) => {
            if p.exists() && !p.is_dir() {
                anyhow::bail!(UsageError(format!(
                    "--output type=local: {} exists and is not a directory",
                    p.display()
                )));
            }
            fs::create_dir_all(p)?;
            builder_export::write_rootfs_dir(store, &record.manifest, p)?;
            Ok(())
        }
    }
}
