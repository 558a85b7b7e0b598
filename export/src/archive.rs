//! Public entry points for image archives and OCI layout directories.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;

use builder_store::manifest::{Index, annotation};
use builder_store::{Digest, Store};

use crate::ExportError;
use crate::layout::{ExportImage, Layout, OCI_LAYOUT, index_of, to_json};
use crate::sink::{BlobProgress, DirSink, LayoutSink, TarSink};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// What `docker save` writes (Docker 25+): `manifest.json` + `repositories`
    /// on top of a complete OCI layout.
    DockerArchive,
    /// A plain OCI image layout (`--output type=oci`).
    OciLayout,
}

/// Writes one tar stream containing `images` (normalized name, or `""` for
/// an unnamed image, → manifest digest). Blobs are streamed from the store
/// and checked against their digests; the output is byte-for-byte
/// deterministic for the same input.
pub fn write_archive<W: Write>(
    store: &Store,
    images: &[(String, Digest)],
    format: ArchiveFormat,
    out: W,
) -> Result<W, ExportError> {
    write_archive_reporting(store, images, format, out, None)
}

/// [`write_archive`], telling `progress` how many bytes of each blob are written: once with 0
/// before a blob, every MiB, and once with the blob's size at its end.
pub fn write_archive_reporting<W: Write>(
    store: &Store,
    images: &[(String, Digest)],
    format: ArchiveFormat,
    out: W,
    progress: Option<BlobProgress<'_>>,
) -> Result<W, ExportError> {
    write_images_reporting(store, &tuples(images), format, out, progress)
}

fn tuples(images: &[(String, Digest)]) -> Vec<ExportImage> {
    images
        .iter()
        .map(|(name, digest)| ExportImage::new(name.clone(), *digest))
        .collect()
}

/// [`write_archive_reporting`] for images whose index.json descriptors carry annotations.
pub fn write_images_reporting<W: Write>(
    store: &Store,
    images: &[ExportImage],
    format: ArchiveFormat,
    out: W,
    progress: Option<BlobProgress<'_>>,
) -> Result<W, ExportError> {
    let layout = Layout::resolve(store.blobs(), images)?;
    let mut sink = TarSink::new(out, progress);
    layout.write_all(
        store.blobs(),
        format == ArchiveFormat::DockerArchive,
        &mut sink,
    )?;
    sink.finish()
}

/// Writes `images` as an OCI image layout in directory `dest` (created if
/// missing). An existing layout there is extended: its blobs are kept and
/// index.json entries are replaced only where the tag (`ref.name`) or the
/// image name collides with one being written, like `skopeo copy oci:dir:tag`.
pub fn write_oci_dir(
    store: &Store,
    images: &[(String, Digest)],
    dest: &Path,
) -> Result<(), ExportError> {
    write_oci_dir_images(store, &tuples(images), dest)
}

/// [`write_oci_dir`] for images whose index.json descriptors carry annotations. An unnamed
/// image is tagged `latest` (`ref.name` only), as BuildKit tags an OCI layout directory it
/// exports without a name.
pub fn write_oci_dir_images(
    store: &Store,
    images: &[ExportImage],
    dest: &Path,
) -> Result<(), ExportError> {
    let layout = Layout::resolve(store.blobs(), images)?;
    fs::create_dir_all(dest).map_err(ExportError::io("create directory", dest))?;
    let mut sink = DirSink::new(dest);
    layout.write_blobs(store.blobs(), &mut sink)?;
    let mut ours = layout.index_descriptors();
    for d in &mut ours {
        if !d.annotations.contains_key(annotation::REF_NAME)
            && !d
                .annotations
                .contains_key(annotation::CONTAINERD_IMAGE_NAME)
        {
            d.annotations
                .insert(annotation::REF_NAME.to_string(), "latest".to_string());
        }
    }
    let mut manifests = existing_index(dest)?
        .map(|i| i.manifests)
        .unwrap_or_default();
    let key = |d: &builder_store::manifest::Descriptor, k: &str| d.annotations.get(k).cloned();
    manifests.retain(|old| {
        !ours.iter().any(|new| {
            [annotation::REF_NAME, annotation::CONTAINERD_IMAGE_NAME]
                .iter()
                .any(|k| key(new, k).is_some() && key(new, k) == key(old, k))
        })
    });
    manifests.extend(ours);
    sink.add_bytes("oci-layout", OCI_LAYOUT)?;
    sink.add_bytes("index.json", &to_json("index.json", &index_of(manifests))?)
}

fn existing_index(dest: &Path) -> Result<Option<Index>, ExportError> {
    let path = dest.join("index.json");
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ExportError::Json {
                what: path.display().to_string(),
                source,
            }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ExportError::io("read", path)(e)),
    }
}
