//! builder-export: getting images out of the store.
//!
//! - [`write_archive`]: one tar holding images as a docker archive (`docker
//!   save` format, also a valid OCI layout) or a plain OCI layout.
//! - [`write_oci_dir`]: an OCI layout as a directory.
//! - [`write_rootfs_tar`] / [`write_rootfs_dir`]: an image's merged
//!   filesystem (`--output type=tar` / `type=local`).

mod archive;
mod error;
mod flatten;
mod layout;
mod names;
mod pax;
mod rootfs;
mod sink;

pub use archive::{
    ArchiveFormat, write_archive, write_archive_reporting, write_images_reporting, write_oci_dir,
    write_oci_dir_images,
};
pub use error::ExportError;
pub use layout::ExportImage;
pub use rootfs::{RootfsSummary, write_rootfs_dir, write_rootfs_tar, write_rootfs_tar_dirs};
pub use sink::BlobProgress;
