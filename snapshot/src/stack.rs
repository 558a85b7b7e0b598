//! Where a layer's tar entry lands on the stack of layers below it: the one rule both the
//! unpacked layers a `RUN` step sees ([`crate::apply_layer_on`]) and the flattened exports
//! (`builder-export`, `--output type=local|tar`) apply.
//!
//! The rule is containerd's applier (`archive.Apply` on a mounted rootfs, which is what the
//! native snapshotter and every rootless BuildKit use, and what the OCI image spec describes:
//! each layer is extracted over the filesystem of the layers before it): the entry name is
//! cleaned lexically, then its *parent* is resolved in the merged filesystem of the layers
//! below plus what this layer already wrote, following symlinks as `openat2(RESOLVE_IN_ROOT)`
//! would (an absolute target or a `..` above the root lands at the root). The last component
//! is never followed. So with layers `esc/` (dir), `esc -> /tmp/x`, then `esc/pwned`, the file
//! lands at `/tmp/x/pwned` and `/esc` stays a symlink.
//!
//! containerd's rootful overlayfs fast path extracts into the empty upper dir instead and so
//! cannot see a lower symlink (it would give a directory `/esc` holding `pwned`); that is a
//! divergence of the optimisation, not the layer format, and BuildKit's rootless mode — what
//! this builder follows — applies through the merged mount like the generic path.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;

/// Same limit as the kernel's (MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// What the merged filesystem shows at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Nothing there (never was, or deleted by a whiteout).
    Missing,
    Dir,
    /// A symlink, with its target as stored.
    Symlink(Vec<u8>),
    /// Any other non-directory: file, device, fifo.
    Other,
}

/// A read-only view of the merged filesystem of the layers below plus what the layer being
/// applied has written so far.
pub trait StackView {
    /// The node at `path`, every ancestor of which is a directory in the view (or missing).
    fn node(&mut self, path: &[OsString]) -> io::Result<Node>;
}

/// The normal components of an archive path, with `.`/`..`/`/` resolved lexically against a
/// virtual root. Empty means the root itself.
pub fn clean_components(raw: &[u8]) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            name => out.push(OsStr::from_bytes(name).to_os_string()),
        }
    }
    out
}

/// Resolves the directory `components` (already cleaned) in `view`, following symlinks but
/// never leaving the root. Returns the resolved path: every component is a directory in the
/// view or missing (the caller creates those, as tar and containerd do). A non-directory on the
/// way is `ENOTDIR`, a symlink loop `ELOOP`.
pub fn resolve_parent(
    view: &mut dyn StackView,
    components: &[OsString],
) -> io::Result<Vec<OsString>> {
    let mut pending: VecDeque<OsString> = components.iter().cloned().collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut symlinks = 0usize;
    while let Some(part) = pending.pop_front() {
        match part.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        resolved.push(part);
        match view.node(&resolved)? {
            Node::Dir | Node::Missing => {}
            Node::Symlink(target) => {
                resolved.pop();
                symlinks += 1;
                if symlinks > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                if target.first() == Some(&b'/') {
                    resolved.clear();
                }
                for (i, c) in target.split(|b| *b == b'/').enumerate() {
                    pending.insert(i, OsStr::from_bytes(c).to_os_string());
                }
            }
            Node::Other => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<Vec<OsString>, Node>);

    impl StackView for Map {
        fn node(&mut self, path: &[OsString]) -> io::Result<Node> {
            Ok(self.0.get(path).cloned().unwrap_or(Node::Missing))
        }
    }

    fn p(s: &str) -> Vec<OsString> {
        clean_components(s.as_bytes())
    }

    fn names(v: &[OsString]) -> Vec<&str> {
        v.iter().map(|s| s.to_str().unwrap_or("?")).collect()
    }

    #[test]
    fn cleaning_keeps_paths_below_the_root() {
        assert_eq!(names(&p("/abs/x")), ["abs", "x"]);
        assert_eq!(names(&p("../../escape")), ["escape"]);
        assert_eq!(names(&p("a/./b/../c/")), ["a", "c"]);
        assert!(p("./").is_empty());
    }

    #[test]
    fn symlinks_below_resolve_inside_the_root() -> io::Result<()> {
        let mut view = Map(HashMap::from([
            (p("esc"), Node::Symlink(b"/tmp/x".to_vec())),
            (p("up"), Node::Symlink(b"../../../real".to_vec())),
            (p("real"), Node::Dir),
            (p("file"), Node::Other),
            (p("loop"), Node::Symlink(b"loop".to_vec())),
        ]));
        assert_eq!(names(&resolve_parent(&mut view, &p("esc"))?), ["tmp", "x"]);
        assert_eq!(
            names(&resolve_parent(&mut view, &p("up/sub"))?),
            ["real", "sub"]
        );
        assert_eq!(
            resolve_parent(&mut view, &p("file/x")).map_err(|e| e.raw_os_error()),
            Err(Some(libc::ENOTDIR))
        );
        assert_eq!(
            resolve_parent(&mut view, &p("loop")).map_err(|e| e.raw_os_error()),
            Err(Some(libc::ELOOP))
        );
        Ok(())
    }
}
