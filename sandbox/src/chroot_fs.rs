//! chroot isolation's stand-in for the sandbox's mount tree (see `mounts` for the namespaced
//! one). Where no mount namespace may be created, nothing can be mounted, so every mount point
//! is made of files in the step's root filesystem, which is a private copy (the copy
//! snapshotter) that is diffed and thrown away after the step:
//!
//! - `/proc` and `/sys` stay empty directories; `/dev` gets device nodes made with mknod
//!   (docker's default capabilities include CAP_MKNOD), `shm` and `pts` directories and the
//!   usual symlinks; `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` are written.
//! - a read-only bind mount is a copy of its source, a read-write one (cache mounts, the ssh
//!   agent socket, throwaway copies of stages) is its source's entries *moved* in, and moved
//!   back when the step ends, so writes reach the source as through a bind mount;
//! - a tmpfs mount is an empty directory.
//!
//! Whatever a mount point already held is moved aside first, as a mount would hide it. Every
//! mount point is reported as transient: the layer diff leaves those subtrees out, as nothing
//! written below a mount point reaches the layer in the namespaced mode.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::init::InitError;
use crate::mounts::{Created, DEVICES, ensure_dir, ensure_file};
use crate::protocol::InitSpec;
use crate::spec::{MountKind, Network};
use builder_rootpath::container_path;

/// The staged file tree of one chroot run.
pub(crate) struct Staged {
    pub root: PathBuf,
    /// Mount points that did not exist and were created (reported like the namespaced mode's).
    pub created: Vec<String>,
    /// In-container paths whose subtrees the layer diff must leave out.
    pub transient: Vec<String>,
    /// Sources whose entries were moved into the rootfs: (in the rootfs, the source).
    moved_in: Vec<(PathBuf, PathBuf)>,
}

/// Options whose effect needs a mount or network namespace: refused with the reason rather
/// than silently not applied.
fn refuse_unsupported(spec: &InitSpec) -> Result<(), InitError> {
    let refuse = |what: &str, why: &str| {
        Err(InitError::msg(
            what,
            format!(
                "{why}, which --isolation=chroot cannot create (use --isolation=rootless where namespaces are allowed)"
            ),
        ))
    };
    if spec.network == Network::None {
        return refuse("RUN --network=none", "needs a network namespace");
    }
    if spec.shm_size.is_some() {
        return refuse("--shm-size", "a sized /dev/shm needs a tmpfs mount");
    }
    if spec
        .mounts
        .iter()
        .any(|m| matches!(m.kind, MountKind::Tmpfs { size: Some(n) } if n > 0))
    {
        return refuse(
            "RUN --mount=type=tmpfs,size=",
            "a size limit needs a tmpfs mount",
        );
    }
    Ok(())
}

/// Builds the file tree for `spec` in its rootfs. Runs in the sandbox init, as the caller.
pub(crate) fn stage(spec: &InitSpec) -> Result<Staged, InitError> {
    refuse_unsupported(spec)?;
    let root = fs::canonicalize(&spec.rootfs)
        .map_err(|e| InitError::io(format!("rootfs {}", spec.rootfs.display()), e))?;
    // Beside the rootfs, inside the snapshot's own directory: what mount points held before
    // is parked there, on the same file system (renames), and goes with the snapshot.
    let parent = root
        .parent()
        .ok_or_else(|| InitError::msg("rootfs", "has no parent directory"))?;
    let hidden = parent.join(format!("chroot-hidden-{}", std::process::id()));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&hidden)
        .map_err(|e| InitError::io(format!("mkdir {}", hidden.display()), e))?;
    let mut stager = Stager {
        created: Created::new(&root),
        hidden,
        parked: 0,
        transient: Vec::new(),
        moved_in: Vec::new(),
    };
    for dir in ["/proc", "/sys"] {
        stager.empty_dir(dir)?;
    }
    let dev = stager.empty_dir("/dev")?;
    make_dev(&dev)?;
    for (target, content) in &spec.etc_files {
        let host = ensure_file(&mut stager.created, target)?;
        fs::write(&host, content).map_err(|e| InitError::io(format!("write {target}"), e))?;
        stager.transient(&host);
    }
    for m in &spec.mounts {
        stager.mount(&m.target, &m.kind)?;
    }
    let Stager {
        created,
        transient,
        moved_in,
        ..
    } = stager;
    let created = created.paths;
    Ok(Staged {
        root,
        created,
        transient,
        moved_in,
    })
}

impl Staged {
    /// Moves the entries of read-write sources back, innermost mount first.
    pub(crate) fn restore(&mut self) -> Result<(), InitError> {
        while let Some((inside, source)) = self.moved_in.pop() {
            let meta = fs::symlink_metadata(&inside);
            match meta {
                Ok(m) if m.is_dir() => move_entries(&inside, &source)?,
                Ok(_) => fs::rename(&inside, &source).map_err(|e| {
                    InitError::io(
                        format!("move {} back to {}", inside.display(), source.display()),
                        e,
                    )
                })?,
                // The step removed it: so it is gone from the source too, as through a mount.
                Err(_) => {}
            }
        }
        // Mount points are left as an unmount leaves them: files empty (no secret stays on
        // disk a moment longer), and directories this run created empty too, so that the
        // caller's stub removal takes them away as in the namespaced mode.
        for path in self.transient.iter().rev() {
            let host = self.root.join(path.trim_start_matches('/'));
            match fs::symlink_metadata(&host) {
                Ok(m) if m.is_file() => fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&host)
                    .map(drop)
                    .map_err(|e| InitError::io(format!("empty {path}"), e))?,
                Ok(m) if m.is_dir() && self.created.contains(path) => {
                    for entry in fs::read_dir(&host)
                        .map_err(|e| InitError::io(format!("read {path}"), e))?
                        .flatten()
                    {
                        let p = entry.path();
                        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                            fs::remove_dir_all(&p)
                        } else {
                            fs::remove_file(&p)
                        };
                        removed.map_err(|e| InitError::io(format!("empty {path}"), e))?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

struct Stager<'a> {
    created: Created<'a>,
    hidden: PathBuf,
    parked: usize,
    transient: Vec<String>,
    moved_in: Vec<(PathBuf, PathBuf)>,
}

impl Stager<'_> {
    fn transient(&mut self, host: &Path) {
        self.transient.push(container_path(self.created.root, host));
    }

    /// The directory `target`, created if missing, emptied as a fresh mount would show it.
    fn empty_dir(&mut self, target: &str) -> Result<PathBuf, InitError> {
        let host = ensure_dir(&mut self.created, target)?;
        self.park_entries(&host)?;
        self.transient(&host);
        Ok(host)
    }

    fn park_entries(&mut self, dir: &Path) -> Result<(), InitError> {
        if fs::read_dir(dir)
            .map_err(|e| InitError::io(format!("read {}", dir.display()), e))?
            .next()
            .is_none()
        {
            return Ok(());
        }
        self.parked += 1;
        let to = self.hidden.join(self.parked.to_string());
        fs::create_dir(&to).map_err(|e| InitError::io(format!("mkdir {}", to.display()), e))?;
        move_entries(dir, &to)
    }

    fn mount(&mut self, target: &str, kind: &MountKind) -> Result<(), InitError> {
        match kind {
            MountKind::Tmpfs { .. } => {
                let host = self.empty_dir(target)?;
                set_mode(&host, 0o1777)
            }
            MountKind::Bind { source, read_only } => {
                let meta = fs::metadata(source)
                    .map_err(|e| InitError::io(format!("bind source {}", source.display()), e))?;
                if meta.is_dir() {
                    let host = self.empty_dir(target)?;
                    // The mount point shows the source's own owner and mode, as a mount would.
                    copy_owner_and_mode(&meta, &host)?;
                    if *read_only {
                        copy_tree(source, &host)?;
                    } else {
                        move_entries(source, &host)?;
                        self.moved_in.push((host, source.clone()));
                    }
                } else {
                    let host = ensure_file(&mut self.created, target)?;
                    self.transient(&host);
                    if *read_only || !meta.is_file() && !is_socket(&meta) {
                        fs::copy(source, &host).map_err(|e| {
                            InitError::io(format!("copy {} to {target}", source.display()), e)
                        })?;
                        copy_owner_and_mode(&meta, &host)?;
                    } else {
                        fs::rename(source, &host).map_err(|e| {
                            InitError::io(format!("move {} to {target}", source.display()), e)
                        })?;
                        self.moved_in.push((host, source.clone()));
                    }
                }
                Ok(())
            }
        }
    }
}

fn is_socket(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_socket()
}

/// Device nodes like the host's (docker's default set), made with mknod; where that is not
/// allowed (no CAP_MKNOD), /dev stays without them.
fn make_dev(dev: &Path) -> Result<(), InitError> {
    for name in DEVICES {
        let Ok(host) = fs::metadata(Path::new("/dev").join(name)) else {
            continue;
        };
        let path = dev.join(name);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|e| InitError::msg(format!("mknod {}", path.display()), e))?;
        // SAFETY: a valid NUL-terminated path; mode and device number come from a stat.
        let rc = unsafe { libc::mknod(c.as_ptr(), host.mode(), host.rdev()) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EPERM) {
                break;
            }
            return Err(InitError::io(format!("mknod {}", path.display()), err));
        }
        // mknod applies the umask; the nodes are world-writable on the host.
        set_mode(&path, host.mode() & 0o7777)?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlink(to, dev.join(link))
            .map_err(|e| InitError::io(format!("symlink /dev/{link}"), e))?;
    }
    for (name, mode) in [("pts", 0o755), ("shm", 0o1777)] {
        let p = dev.join(name);
        fs::create_dir(&p).map_err(|e| InitError::io(format!("mkdir {}", p.display()), e))?;
        set_mode(&p, mode)?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), InitError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| InitError::io(format!("chmod {}", path.display()), e))
}

fn copy_owner_and_mode(meta: &fs::Metadata, to: &Path) -> Result<(), InitError> {
    // Only root may give files away; a non-root caller keeps its own ids.
    match std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid())) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        Err(e) => return Err(InitError::io(format!("chown {}", to.display()), e)),
    }
    set_mode(to, meta.mode() & 0o7777)
}

/// Renames every entry of `from` into the (empty) directory `to`.
fn move_entries(from: &Path, to: &Path) -> Result<(), InitError> {
    let entries =
        fs::read_dir(from).map_err(|e| InitError::io(format!("read {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| InitError::io(format!("read {}", from.display()), e))?;
        let dest = to.join(entry.file_name());
        fs::rename(entry.path(), &dest).map_err(|e| {
            InitError::io(
                format!("move {} to {}", entry.path().display(), dest.display()),
                e,
            )
        })?;
    }
    Ok(())
}

/// `cp -a` of the entries of `from` into the existing directory `to`: regular files,
/// directories and symlinks with owner, mode and modification time (devices, fifos and
/// sockets are left out, as no build context or cache holds them).
fn copy_tree(from: &Path, to: &Path) -> Result<(), InitError> {
    let entries =
        fs::read_dir(from).map_err(|e| InitError::io(format!("read {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| InitError::io(format!("read {}", from.display()), e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src)
            .map_err(|e| InitError::io(format!("stat {}", src.display()), e))?;
        let io_err = |what: &str, e| InitError::io(format!("{what} {}", dst.display()), e);
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir(&dst).map_err(|e| io_err("mkdir", e))?;
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&src).map_err(|e| io_err("readlink for", e))?;
            symlink(target, &dst).map_err(|e| io_err("symlink", e))?;
        } else if ft.is_file() {
            fs::copy(&src, &dst).map_err(|e| io_err("copy to", e))?;
        } else {
            continue;
        }
        if !ft.is_symlink() {
            copy_owner_and_mode(&meta, &dst)?;
        } else {
            let _ = std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()));
        }
        let times = [
            nix::sys::time::TimeSpec::new(meta.atime(), meta.atime_nsec()),
            nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec()),
        ];
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &dst,
            &times[0],
            &times[1],
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| io_err("set times of", e.into()))?;
    }
    Ok(())
}
