//! Removing the empty mount points ("stubs") a run had to create, so they do not end up in
//! the layer diff. BuildKit does the same after each RUN. Only still-empty stubs are removed:
//! if the payload put content there (e.g. files under a created parent directory), it stays.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::SandboxError;

/// Remove the still-empty entries of `created` (as reported in
/// [`crate::RunReport::created_mount_points`]) from `rootfs`, children before parents.
/// Call after the run has finished. Returns the in-container paths that were removed.
/// Paths reached through a symlink (the payload may have replaced a stub's parent with one)
/// are left alone, so this can never delete anything outside the rootfs.
pub fn remove_mount_stubs(rootfs: &Path, created: &[String]) -> Result<Vec<String>, SandboxError> {
    let mut removed = Vec::new();
    for path in created.iter().rev() {
        let rel = path.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c == ".." || c == ".") {
            continue;
        }
        if !is_plain_path(rootfs, rel)? {
            continue;
        }
        let host = rootfs.join(rel);
        let removal = match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => fs::remove_dir(&host),
            Ok(m) if m.is_file() && m.len() == 0 => fs::remove_file(&host),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SandboxError::io(format!("stat {}", host.display()), e)),
        };
        match removal {
            Ok(()) => removed.push(path.clone()),
            // Not empty any more: the payload wrote there, so it is real content now.
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {}
            Err(e) => return Err(SandboxError::io(format!("remove {}", host.display()), e)),
        }
    }
    Ok(removed)
}

/// True when no component of `rel` below `rootfs` (excluding the last) is a symlink.
fn is_plain_path(rootfs: &Path, rel: &str) -> Result<bool, SandboxError> {
    let mut p = rootfs.to_path_buf();
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        p.push(part);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(SandboxError::io(format!("stat {}", p.display()), e)),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn created(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn removes_empty_stubs_children_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("proc")).unwrap();
        fs::create_dir_all(root.join("etc/app")).unwrap();
        fs::write(root.join("etc/app/config"), "").unwrap();
        let list = created(&["/proc", "/etc/app", "/etc/app/config"]);
        let removed = remove_mount_stubs(root, &list).unwrap();
        assert_eq!(removed, created(&["/etc/app/config", "/etc/app", "/proc"]));
        assert!(!root.join("proc").exists() && !root.join("etc/app").exists());
        assert!(root.join("etc").exists(), "pre-existing parents stay");
    }

    #[test]
    fn keeps_stubs_that_gained_content() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("srv")).unwrap();
        fs::write(root.join("srv/data"), "written by RUN").unwrap();
        fs::write(root.join("hosts"), "now real").unwrap();
        let removed = remove_mount_stubs(root, &created(&["/srv", "/hosts"])).unwrap();
        assert!(removed.is_empty());
        assert!(root.join("srv/data").exists() && root.join("hosts").exists());
    }

    #[test]
    fn never_follows_symlinks_out_of_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(outside.join("victim")).unwrap();
        symlink(&outside, root.join("etc")).unwrap();
        let removed = remove_mount_stubs(&root, &created(&["/etc/victim", "/../outside"])).unwrap();
        assert!(removed.is_empty());
        assert!(outside.join("victim").exists());
    }
}
