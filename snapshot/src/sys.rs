//! Thin, safe wrappers over the few Linux calls std does not expose:
//! xattrs on the link itself, mknod, utimensat without following symlinks,
//! and mount/umount. Each returns `io::Result` so callers add path context.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn cbytes(b: &[u8]) -> io::Result<CString> {
    CString::new(b)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether an xattr error means "this filesystem has no xattrs here":
/// treated as an empty list rather than a failure.
fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP))
}

/// What an xattr read looks at: a path itself (symlinks not followed), or an open file.
/// Through the descriptor a file already open for its data costs no second walk of its path.
#[derive(Clone, Copy)]
pub(crate) enum XattrsOf<'a> {
    Path(&'a Path),
    File(&'a File),
}

/// [`XattrsOf`] ready for the calls: the path NUL-terminated once for every call.
enum XattrCall {
    Path(CString),
    Fd(RawFd),
}

impl XattrsOf<'_> {
    fn call(self) -> io::Result<XattrCall> {
        Ok(match self {
            XattrsOf::Path(p) => XattrCall::Path(cpath(p)?),
            XattrsOf::File(f) => XattrCall::Fd(f.as_raw_fd()),
        })
    }
}

impl XattrCall {
    /// llistxattr or flistxattr into `buf`.
    fn list(&self, buf: &mut [u8]) -> isize {
        let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
        match self {
            // SAFETY: buf is valid for len bytes; c is NUL-terminated.
            XattrCall::Path(c) => unsafe { libc::llistxattr(c.as_ptr(), ptr, len) },
            // SAFETY: buf is valid for len bytes; the descriptor is open while `self` lives
            // (it borrows the file through `XattrsOf`).
            XattrCall::Fd(fd) => unsafe { libc::flistxattr(*fd, ptr, len) },
        }
    }

    /// lgetxattr or fgetxattr of `name` into `buf`.
    fn get(&self, name: &CString, buf: &mut [u8]) -> isize {
        let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
        match self {
            // SAFETY: buffers valid for their lengths; strings NUL-terminated.
            XattrCall::Path(c) => unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), ptr, len) },
            // SAFETY: as above; the descriptor is open (see `list`).
            XattrCall::Fd(fd) => unsafe { libc::fgetxattr(*fd, name.as_ptr(), ptr, len) },
        }
    }
}

/// Names of the extended attributes of `of`, sorted bytewise so that anything built from
/// them is deterministic.
pub(crate) fn list_xattrs(of: XattrsOf<'_>) -> io::Result<Vec<Vec<u8>>> {
    let call = of.call()?;
    let mut buf = vec![0u8; 1024];
    loop {
        let n = call.list(&mut buf);
        if n >= 0 {
            buf.truncate(n as usize);
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            _ if is_unsupported(&e) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    }
    let mut names: Vec<Vec<u8>> = buf
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    names.sort();
    Ok(names)
}

/// Value of xattr `name` on `of`, or None if it is not set.
pub(crate) fn get_xattr(of: XattrsOf<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let call = of.call()?;
    let n = cbytes(name)?;
    let mut buf = vec![0u8; 256];
    loop {
        let r = call.get(&n, &mut buf);
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENODATA) => return Ok(None),
            _ if is_unsupported(&e) => return Ok(None),
            _ => return Err(e),
        }
    }
}

pub(crate) fn set_xattr(p: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    let c = cpath(p)?;
    let n = cbytes(name)?;
    // SAFETY: value valid for value.len() bytes; strings NUL-terminated.
    check(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// Creates a device node or fifo; `mode` includes the file-type bits.
pub(crate) fn mknod(p: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(p)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: c is NUL-terminated.
    check(unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev) })
}

/// Sets atime and mtime of `p` itself (a symlink's own times, not its target's).
pub(crate) fn set_times(p: &Path, sec: i64, nsec: i64) -> io::Result<()> {
    let c = cpath(p)?;
    let ts = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    };
    let times = [ts, ts];
    // SAFETY: times points to two timespecs; c is NUL-terminated.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub(crate) fn mount_overlay(target: &Path, options: &str) -> io::Result<()> {
    let t = cpath(target)?;
    let data = cbytes(options.as_bytes())?;
    let fstype = c"overlay";
    // SAFETY: all pointers are NUL-terminated strings that outlive the call.
    check(unsafe {
        libc::mount(
            fstype.as_ptr(),
            t.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    })
}

/// Like [`mount_overlay`], with relative `lowerdir` paths in `options` resolved from `dir`.
///
/// The kernel resolves overlay's lower paths against the mounting process's working directory;
/// changing ours would race every other thread, so a forked child changes directory and
/// mounts (into the namespace we share) instead. Short relative names are how a deep layer
/// stack fits the one page of mount options.
pub(crate) fn mount_overlay_from(dir: &Path, target: &Path, options: &str) -> io::Result<()> {
    let d = cpath(dir)?;
    let t = cpath(target)?;
    let data = cbytes(options.as_bytes())?;
    let fstype = c"overlay";
    // SAFETY: the child only makes raw system calls (chdir, mount, _exit) on memory prepared
    // before the fork, which is what is allowed after forking a multithreaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; errno is read from this thread's own location.
        unsafe {
            let code = if libc::chdir(d.as_ptr()) != 0
                || libc::mount(
                    fstype.as_ptr(),
                    t.as_ptr(),
                    fstype.as_ptr(),
                    0,
                    data.as_ptr().cast(),
                ) != 0
            {
                *libc::__errno_location()
            } else {
                0
            };
            libc::_exit(code.clamp(0, 255));
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for the child forked above.
        if unsafe { libc::waitpid(pid, &mut status, 0) } >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(()),
        (true, errno) => Err(io::Error::from_raw_os_error(errno)),
        _ => Err(io::Error::other("the mounting child was killed")),
    }
}

/// Unmounts `target`; if it is busy (a process still has it open), detaches it
/// lazily so the caller can still clean up the directories below.
pub(crate) fn unmount(target: &Path) -> io::Result<()> {
    let t = cpath(target)?;
    // SAFETY: t is NUL-terminated.
    match check(unsafe { libc::umount2(t.as_ptr(), 0) }) {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            // SAFETY: as above.
            check(unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) })
        }
        other => other,
    }
}

/// Whether `p` is the root of a mount (its device differs from its parent's).
pub(crate) fn is_mount_point(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(m), Some(parent)) = (std::fs::symlink_metadata(p), p.parent()) else {
        return false;
    };
    std::fs::metadata(parent).is_ok_and(|pm| pm.dev() != m.dev())
}
