//! The writers of the export stage: an image leaving the store as a docker or OCI archive, an
//! OCI layout directory, a tar of its files or a directory of them (`--output` and `builder
//! save`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context as _;
use builder_export::{ArchiveFormat, ExportImage};
use builder_solver::progress::{Event, ProgressSink, Transfer, TransferKind};
use builder_store::{Digest, ImageRecord, Store};

use crate::cli::UsageError;
use crate::cli::outputs::OutputSpec;

/// Writes next to the destination and renames, so a failed export leaves no half-written file.
pub fn write_archive_file(
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

/// Writes `record` where `out` says; `tags` name it inside archives.
pub fn write_output(
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
