//! builder-rootpath: paths inside a root directory, decided in one place.
//!
//! A Dockerfile, a context and a layer all name paths that must stay inside some root (the
//! step's rootfs, the context directory, the directory a layer is written to). The sandbox's
//! mount targets, COPY/ADD, the executor's bind mounts and the exporters all resolve them here.
//!
//! - [`clean`]: lexical cleaning, no disk access.
//! - [`resolve`]: following symlinks on disk as a chroot would (`openat2(RESOLVE_IN_ROOT)`).

pub mod clean;
pub mod resolve;

pub use clean::{clean_entry_path, clean_rel, clean_rel_path};
pub use resolve::{container_path, resolve_dir_in_root, resolve_in_root};
