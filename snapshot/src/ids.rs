//! Image ids and on-disk ids. Normally they are the same: real root, or a user namespace whose
//! uid 0 is the caller. An ordinary user that may create no user namespace (chroot isolation in
//! an unprivileged container, issue #23) cannot chown at all; builds then store the files that
//! images own as 0:0 as the caller's own, exactly as a single-id user namespace maps them, and
//! translate at the edges: when applying an owner ([`to_disk`]) and when writing a layer
//! ([`from_disk`]). Like that namespace, any other owner cannot be represented and fails.

use std::sync::OnceLock;

/// The caller's (uid, gid), set once when image root is the caller.
static SINGLE_ID: OnceLock<(u32, u32)> = OnceLock::new();

/// An id no file can be given by an unprivileged caller: chown to it fails with EPERM, as an
/// unmapped id fails in a single-id user namespace.
const UNREPRESENTABLE: u32 = u32::MAX - 1;

/// Image uid/gid 0 is `uid`/`gid` on disk from now on (call once, at startup).
pub fn map_root_to(uid: u32, gid: u32) {
    let _ = SINGLE_ID.set((uid, gid));
}

/// The owner to give a file on disk for an image owner.
pub fn to_disk(uid: u32, gid: u32) -> (u32, u32) {
    match SINGLE_ID.get() {
        None => (uid, gid),
        Some(&(own_u, own_g)) => (one_to_disk(uid, own_u), one_to_disk(gid, own_g)),
    }
}

/// The image owner of a file owned by `uid`/`gid` on disk.
pub fn from_disk(uid: u32, gid: u32) -> (u32, u32) {
    match SINGLE_ID.get() {
        None => (uid, gid),
        Some(&(own_u, own_g)) => (
            if uid == own_u { 0 } else { uid },
            if gid == own_g { 0 } else { gid },
        ),
    }
}

fn one_to_disk(id: u32, own: u32) -> u32 {
    match id {
        0 => own,
        // Would read back as 0: refuse it as the single-id namespace refuses an unmapped id.
        id if id == own => UNREPRESENTABLE,
        id => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_caller_and_the_caller_is_unrepresentable() {
        assert_eq!(one_to_disk(0, 1000), 1000);
        assert_eq!(one_to_disk(1000, 1000), UNREPRESENTABLE);
        assert_eq!(one_to_disk(33, 1000), 33);
    }
}
