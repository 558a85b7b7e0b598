//! PAX extended records of layer entries: carried into flattened tars, and
//! their `SCHILY.xattr.*` records applied as extended attributes on disk
//! (file capabilities such as `security.capability` live there).

use std::ffi::CString;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const XATTR_PREFIX: &str = "SCHILY.xattr.";

/// Records the tar writer regenerates itself from the (rewritten) path,
/// link target and size, so copying them would contradict the new header.
const REGENERATED: [&str; 3] = ["path", "linkpath", "size"];

pub(crate) type PaxRecords = Vec<(String, Vec<u8>)>;

/// The PAX records of `entry` worth keeping (xattrs, sub-second times, large ids, names of owners).
pub(crate) fn carried_records(entry: &mut tar::Entry<'_, Box<dyn Read>>) -> io::Result<PaxRecords> {
    let Some(exts) = entry.pax_extensions()? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for ext in exts {
        let ext = ext?;
        let Ok(key) = ext.key() else { continue };
        if !REGENERATED.contains(&key) {
            out.push((key.to_string(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

/// Extended attributes recorded in `records`, as (name, value).
pub(crate) fn xattrs(records: &PaxRecords) -> impl Iterator<Item = (&str, &[u8])> {
    records.iter().filter_map(|(k, v)| {
        k.strip_prefix(XATTR_PREFIX)
            .map(|name| (name, v.as_slice()))
    })
}

/// Outcome of setting one extended attribute.
pub(crate) enum XattrResult {
    Set,
    /// The file system or our privileges do not allow it (e.g. `trusted.*`
    /// without CAP_SYS_ADMIN, or a file system without xattr support).
    NotPermitted,
}

/// Sets an extended attribute on `path` itself (not a symlink's target).
pub(crate) fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<XattrResult> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let c_name = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: both strings are NUL-terminated and live across the call; the
    // value pointer and length describe a valid slice.
    let rc = unsafe {
        libc::lsetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        return Ok(XattrResult::Set);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EPERM | libc::ENOTSUP | libc::EACCES) => Ok(XattrResult::NotPermitted),
        _ => Err(err),
    }
}
