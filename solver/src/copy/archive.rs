//! ADD's archives: a local tar (plain or gzip, detected by content, not name) is extracted
//! into the destination, entry by entry inside the root, with `--chown`/`--chmod` applied;
//! `ADD --unpack=true <url>` does the same for a download.

use super::*;

/// `ADD --unpack=true <url>`: extracts the downloaded `file` into `dir` (absolute, inside
/// `root`, made when missing) when it is a tar archive. False when it is not one: the caller
/// then places it as a plain file.
pub fn unpack_file(
    file: &Path,
    root: &Path,
    dir: &str,
    attrs: Attributes<'_>,
) -> Result<bool, CopyError> {
    if !is_tar_archive(file)? {
        return Ok(false);
    }
    let target = ensure_dir(root, clean_rel(dir), attrs)?;
    extract_archive(file, &target, attrs)?;
    Ok(true)
}

/// docker's ADD extracts plain and compressed tar archives; we support plain and gzip. Detection
/// is by content, not name.
pub(super) fn is_tar_archive(path: &Path) -> Result<bool, CopyError> {
    let mut head = [0u8; 512];
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let mut n = 0;
    while n < head.len() {
        let r = f.read(&mut head[n..]).map_err(io_err(path))?;
        if r == 0 {
            break;
        }
        n += r;
    }
    if n >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        return Ok(true);
    }
    Ok(n >= 262 && &head[257..262] == b"ustar")
}

pub(super) fn extract_archive(
    archive: &Path,
    dest: &Path,
    attrs: Attributes<'_>,
) -> Result<(), CopyError> {
    let file = fs::File::open(archive).map_err(io_err(archive))?;
    let mut reader = io::BufReader::new(file);
    let gzip = {
        use std::io::BufRead;
        reader
            .fill_buf()
            .map_err(io_err(archive))?
            .starts_with(&[0x1f, 0x8b])
    };
    let stream: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut tar = tar::Archive::new(stream);
    let mut dir_times = Vec::new();
    for entry in tar.entries().map_err(io_err(archive))? {
        check_cancelled()?;
        let mut entry = entry.map_err(io_err(archive))?;
        let raw = entry.path_bytes().into_owned();
        let rel = clean_rel_path(Path::new(OsStr::from_bytes(&raw)));
        if rel.as_os_str().is_empty() {
            continue;
        }
        if let Some(parent) = rel.parent() {
            ensure_dir(
                dest,
                parent,
                Attributes {
                    owner: attrs.owner,
                    chmod: None,
                    reset_owner: true,
                },
            )?;
        }
        let target = resolve_in_root(dest, &rel, false).map_err(io_err(dest))?;
        let header = entry.header().clone();
        let owner = attrs.owner.unwrap_or(Owner {
            uid: header.uid().unwrap_or(0) as u32,
            gid: header.gid().unwrap_or(0) as u32,
        });
        let own = header.mode().unwrap_or(0o644) & 0o7777;
        let is_dir = header.entry_type() == tar::EntryType::Directory;
        let mode = attrs.chmod.map_or(own, |c| c.apply(own, is_dir));
        let mtime = header.mtime().unwrap_or(0) as i64;
        let kind = header.entry_type();
        match kind {
            tar::EntryType::Directory => {
                remove_existing(&target, true)?;
                if !target.is_dir() {
                    fs::create_dir(&target).map_err(io_err(&target))?;
                }
                dir_times.push((target.clone(), mtime));
            }
            tar::EntryType::Symlink => {
                remove_existing(&target, false)?;
                let link = entry
                    .link_name()
                    .map_err(io_err(archive))?
                    .unwrap_or_default();
                symlink(&link, &target).map_err(io_err(&target))?;
                lchown(&target, owner)?;
                continue;
            }
            tar::EntryType::Link => {
                remove_existing(&target, false)?;
                let link = entry
                    .link_name()
                    .map_err(io_err(archive))?
                    .unwrap_or_default();
                let link_rel = clean_rel_path(&link);
                let link_host = resolve_in_root(dest, &link_rel, false).map_err(io_err(dest))?;
                fs::hard_link(&link_host, &target).map_err(io_err(&target))?;
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_existing(&target, false)?;
                let mut out = fs::File::create(&target).map_err(io_err(&target))?;
                io::copy(&mut entry, &mut out).map_err(io_err(&target))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                remove_existing(&target, false)?;
                let file_type = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                match make_node(&target, file_type | 0o600, libc::makedev(major, minor)) {
                    Ok(()) => {}
                    // Without CAP_MKNOD (every rootless build: a user namespace) a device node
                    // cannot be made. BuildKit's untar skips device nodes there too, and a
                    // rootfs tarball from debootstrap carries /dev/null and friends, which the
                    // runtime's own /dev hides anyway. FIFOs need no privilege, so they stay.
                    Err(e)
                        if e.raw_os_error() == Some(libc::EPERM) && file_type != libc::S_IFIFO =>
                    {
                        continue;
                    }
                    Err(e) => return Err(io_err(&target)(e)),
                }
            }
            other => {
                return Err(CopyError::Invalid(format!(
                    "ADD {}: archive entry {rel:?} has unsupported type {other:?}",
                    archive.display()
                )));
            }
        }
        lchown(&target, owner)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io_err(&target))?;
        set_mtime(&target, mtime)?;
    }
    for (dir, mtime) in dir_times.iter().rev() {
        set_mtime(dir, *mtime)?;
    }
    Ok(())
}

fn set_mtime(target: &Path, mtime: i64) -> Result<(), CopyError> {
    let t = (mtime.max(0), 0);
    utimens(target, t, t)
}
