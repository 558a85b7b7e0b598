//! The sandbox's mount namespace: rootfs bind, /proc, minimal /dev, generated /etc files, user
//! mounts, then pivot_root. Runs in the init's PID-1 child, before credentials are dropped.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, symlink};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statvfs::{FsFlags, statvfs};

use crate::init::InitError;
use crate::protocol::InitSpec;
use crate::spec::MountKind;
use builder_rootpath::{container_path, resolve_in_root};

/// Host devices bind-mounted into the sandbox's /dev (docker's default set minus console).
pub(crate) const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// /proc entries made read-only, as docker does, so in-sandbox root cannot tune the host kernel.
const PROC_READONLY: &[&str] = &["bus", "fs", "irq", "sys", "sysrq-trigger"];
/// /proc entries hidden entirely (docker's masked paths that exist under /proc).
const PROC_MASKED: &[&str] = &[
    "acpi",
    "asound",
    "interrupts",
    "kcore",
    "keys",
    "latency_stats",
    "sched_debug",
    "scsi",
    "timer_list",
    "timer_stats",
];

/// Mount points that had to be created in the rootfs, as in-container paths.
pub(crate) struct Created<'a> {
    pub(crate) root: &'a Path,
    pub(crate) paths: Vec<String>,
}

impl<'a> Created<'a> {
    pub(crate) fn new(root: &'a Path) -> Self {
        Created {
            root,
            paths: Vec::new(),
        }
    }

    fn record(&mut self, host: &Path) {
        self.paths.push(container_path(self.root, host));
    }
}

/// Build the sandbox's filesystem view and pivot into it. Returns the created mount points.
pub fn prepare(spec: &InitSpec) -> Result<Vec<String>, InitError> {
    // Nothing we mount may propagate back to the caller's namespace.
    mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
        "make / private",
    )?;
    let root = fs::canonicalize(&spec.rootfs)
        .map_err(|e| InitError::io(format!("rootfs {}", spec.rootfs.display()), e))?;
    if !root.is_dir() {
        return Err(InitError::msg(
            format!("rootfs {}", root.display()),
            "not a directory",
        ));
    }
    // pivot_root needs the new root to be a mount point.
    bind(&root, &root, "bind rootfs onto itself")?;
    let mut created = Created::new(&root);
    mount_proc(&mut created)?;
    mount_sys(&mut created)?;
    mount_dev(&mut created, spec.shm_size)?;
    mount_generated_files(&mut created, &spec.etc_files)?;
    for m in &spec.mounts {
        apply_user_mount(&mut created, &m.target, &m.kind)?;
    }
    pivot(&root)?;
    Ok(created.paths)
}

fn mount_proc(created: &mut Created) -> Result<(), InitError> {
    let proc_dir = ensure_dir(created, "/proc")?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mnt(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        flags,
        None,
        "mount proc",
    )?;
    for name in PROC_READONLY {
        let p = proc_dir.join(name);
        if p.exists() {
            bind(&p, &p, "bind /proc entry")?;
            remount_readonly(&p)?;
        }
    }
    for name in PROC_MASKED {
        mask(&proc_dir.join(name))?;
    }
    Ok(())
}

/// Read-only sysfs, as docker mounts it. A user namespace may only mount sysfs when it owns
/// the network namespace (Network::None); with the host network in rootless mode, bind the
/// caller's /sys read-only instead (the approach of rootless podman).
fn mount_sys(created: &mut Created) -> Result<(), InitError> {
    let sys = ensure_dir(created, "/sys")?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let fresh = mount(
        Some(Path::new("sysfs")),
        &sys,
        Some("sysfs"),
        flags,
        None::<&str>,
    );
    if fresh.is_err() {
        bind(Path::new("/sys"), &sys, "bind host /sys")?;
        remount_readonly(&sys)?;
    }
    mask(&sys.join("firmware"))
}

/// Hide a /proc or /sys entry: /dev/null over files, an empty read-only tmpfs over directories.
fn mask(path: &Path) -> Result<(), InitError> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => mnt(
            Some(Path::new("tmpfs")),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0"),
            "mask directory",
        ),
        Ok(_) => bind(Path::new("/dev/null"), path, "mask file"),
        Err(_) => Ok(()),
    }
}

/// docker's /dev/shm size when none is asked for (`--shm-size`).
const DEFAULT_SHM_SIZE: u64 = 64 << 20;

fn mount_dev(created: &mut Created, shm_size: Option<u64>) -> Result<(), InitError> {
    let dev = ensure_dir(created, "/dev")?;
    mnt(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
        "mount tmpfs on /dev",
    )?;
    // Everything below lives in that tmpfs, so nothing here touches the rootfs.
    for name in DEVICES {
        let target = dev.join(name);
        create_empty_file(&target)?;
        bind(
            &Path::new("/dev").join(name),
            &target,
            &format!("bind /dev/{name}"),
        )?;
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
    let pts = make_dir(&dev.join("pts"), 0o755)?;
    let pts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    // gid=5 (tty) is only valid when gid 5 is mapped; a single-id user namespace lacks it.
    let with_gid = "newinstance,ptmxmode=0666,mode=0620,gid=5";
    if mnt(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        pts_flags,
        Some(with_gid),
        "mount devpts",
    )
    .is_err()
    {
        let plain = "newinstance,ptmxmode=0666,mode=0620";
        mnt(
            Some(Path::new("devpts")),
            &pts,
            Some("devpts"),
            pts_flags,
            Some(plain),
            "mount devpts",
        )?;
    }
    let shm = make_dir(&dev.join("shm"), 0o1777)?;
    let shm_options = format!(
        "mode=1777,size={}",
        shm_size.filter(|s| *s > 0).unwrap_or(DEFAULT_SHM_SIZE)
    );
    mnt(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(&shm_options),
        "mount tmpfs on /dev/shm",
    )
}

/// Write the generated /etc files into the sandbox's /dev tmpfs, bind them over their
/// targets, then unlink the staging copies: the bind mounts keep the files alive, and nothing
/// is left on the host or in /dev (no temp dir to leak if the caller crashes).
fn mount_generated_files(
    created: &mut Created,
    files: &[(String, String)],
) -> Result<(), InitError> {
    let dev = resolve(created.root, "/dev")?;
    let staging = make_dir(&dev.join(".generated"), 0o755)?;
    for (i, (target, content)) in files.iter().enumerate() {
        let source = staging.join(i.to_string());
        fs::write(&source, content)
            .map_err(|e| InitError::io(format!("write generated {target}"), e))?;
        let host = ensure_file(created, target)?;
        bind(&source, &host, &format!("bind generated {target}"))?;
        fs::remove_file(&source)
            .map_err(|e| InitError::io(format!("unlink staging copy of {target}"), e))?;
    }
    fs::remove_dir(&staging).map_err(|e| InitError::io("remove /dev/.generated", e))
}

fn apply_user_mount(
    created: &mut Created,
    target: &str,
    kind: &MountKind,
) -> Result<(), InitError> {
    match kind {
        MountKind::Bind { source, read_only } => {
            let meta = fs::metadata(source)
                .map_err(|e| InitError::io(format!("bind source {}", source.display()), e))?;
            let host = if meta.is_dir() {
                ensure_dir(created, target)?
            } else {
                ensure_file(created, target)?
            };
            bind(
                source,
                &host,
                &format!("bind {} on {target}", source.display()),
            )?;
            if *read_only {
                remount_readonly(&host)?;
            }
            Ok(())
        }
        MountKind::Tmpfs { size } => {
            let host = ensure_dir(created, target)?;
            // size=0 would mean "unlimited" to tmpfs; treat it like None (kernel default).
            let data = match size {
                Some(bytes) if *bytes > 0 => format!("mode=1777,size={bytes}"),
                _ => "mode=1777".to_string(),
            };
            mnt(
                Some(Path::new("tmpfs")),
                &host,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(&data),
                &format!("mount tmpfs on {target}"),
            )
        }
    }
}

/// Make the sandbox root "/" and detach the host's root (runc's pivot_root(".", ".") trick,
/// which needs no directory for the old root inside the rootfs).
fn pivot(root: &Path) -> Result<(), InitError> {
    nix::unistd::chdir(root).map_err(|e| InitError::nix(format!("chdir {}", root.display()), e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| InitError::nix("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| InitError::nix("detach old root", e))?;
    nix::unistd::chdir("/").map_err(|e| InitError::nix("chdir /", e))
}

/// Resolve `target` inside the rootfs and create it (and missing parents) as directories.
pub(crate) fn ensure_dir(created: &mut Created, target: &str) -> Result<PathBuf, InitError> {
    let host = resolve(created.root, target)?;
    create_missing_dirs(created, &host)?;
    if !host.is_dir() {
        return Err(InitError::msg(
            format!("mount point {target}"),
            "exists and is not a directory",
        ));
    }
    Ok(host)
}

/// Resolve `target` inside the rootfs and create it as an empty file if missing.
pub(crate) fn ensure_file(created: &mut Created, target: &str) -> Result<PathBuf, InitError> {
    let host = resolve(created.root, target)?;
    if let Some(parent) = host.parent() {
        create_missing_dirs(created, parent)?;
    }
    match fs::symlink_metadata(&host) {
        Ok(m) if m.is_dir() => Err(InitError::msg(
            format!("mount point {target}"),
            "is a directory but the source is a file",
        )),
        Ok(_) => Ok(host),
        Err(_) => {
            match create_empty_file(&host) {
                Ok(()) => created.record(&host),
                Err(e) if e.errno == Some(libc::EEXIST) => {}
                Err(e) => return Err(e),
            }
            Ok(host)
        }
    }
}

fn resolve(root: &Path, target: &str) -> Result<PathBuf, InitError> {
    resolve_in_root(root, target, true)
        .map_err(|e| InitError::io(format!("resolve {target} in rootfs"), e))
}

fn create_missing_dirs(created: &mut Created, host: &Path) -> Result<(), InitError> {
    let missing: Vec<&Path> = host
        .ancestors()
        .take_while(|p| *p != created.root && fs::symlink_metadata(p).is_err())
        .collect();
    for dir in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(0o755).create(dir) {
            Ok(()) => created.record(dir),
            // A concurrent sandbox on the same rootfs won the race; it is its stub, not ours.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(InitError::io(format!("mkdir {}", dir.display()), e)),
        }
    }
    Ok(())
}

fn make_dir(path: &Path, mode: u32) -> Result<PathBuf, InitError> {
    fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .map_err(|e| InitError::io(format!("mkdir {}", path.display()), e))?;
    Ok(path.to_path_buf())
}

fn create_empty_file(path: &Path) -> Result<(), InitError> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map(drop)
        .map_err(|e| InitError::io(format!("create mount point {}", path.display()), e))
}

fn bind(source: &Path, target: &Path, step: &str) -> Result<(), InitError> {
    mnt(
        Some(source),
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        step,
    )
}

/// Read-only remount of a bind mount. Inside a user namespace the kernel refuses to clear
/// flags of mounts inherited from the parent ("locked" nosuid/nodev/noexec/atime flags), so
/// the current ones are carried over.
fn remount_readonly(path: &Path) -> Result<(), InitError> {
    let current = statvfs(path)
        .map_err(|e| InitError::nix(format!("statvfs {}", path.display()), e))?
        .flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (st, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if current.contains(st) {
            flags |= ms;
        }
    }
    mnt(
        None,
        path,
        None,
        flags,
        None,
        &format!("remount {} read-only", path.display()),
    )
}

fn mnt(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    step: &str,
) -> Result<(), InitError> {
    mount(source, target, fstype, flags, data)
        .map_err(|e| InitError::nix(format!("{step} ({})", target.display()), e))
}
