//! Reducing capabilities to docker's default set, done by the sandbox init before exec.

use crate::init::InitError;

/// docker's default capability set (capability numbers from linux/capability.h).
pub const DOCKER_DEFAULT_CAPS: &[(u32, &str)] = &[
    (0, "CAP_CHOWN"),
    (1, "CAP_DAC_OVERRIDE"),
    (3, "CAP_FOWNER"),
    (4, "CAP_FSETID"),
    (5, "CAP_KILL"),
    (6, "CAP_SETGID"),
    (7, "CAP_SETUID"),
    (8, "CAP_SETPCAP"),
    (10, "CAP_NET_BIND_SERVICE"),
    (13, "CAP_NET_RAW"),
    (18, "CAP_SYS_CHROOT"),
    (27, "CAP_MKNOD"),
    (29, "CAP_AUDIT_WRITE"),
    (31, "CAP_SETFCAP"),
];

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn is_default(cap: u32) -> bool {
    DOCKER_DEFAULT_CAPS.iter().any(|(n, _)| *n == cap)
}

/// Step 1 (while still uid 0 with all caps): shrink the bounding set, so nothing gained later
/// via execve of root or file-capability binaries can exceed docker's set; clear ambient caps.
pub fn drop_bounding_set() -> Result<(), InitError> {
    for cap in 0..64u32 {
        // SAFETY: prctl with integer arguments only.
        let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if present < 0 {
            break; // EINVAL: beyond the kernel's last capability
        }
        if present == 1 && !is_default(cap) {
            // SAFETY: as above.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                return Err(InitError::last_os(format!(
                    "drop capability {cap} from bounding set"
                )));
            }
        }
    }
    clear_ambient()
}

/// Ambient capabilities would survive execve into a non-root payload; neither docker's default
/// nor its privileged mode gives any.
pub fn clear_ambient() -> Result<(), InitError> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(InitError::last_os("clear ambient capabilities"));
    }
    Ok(())
}

/// Step 2 (after setuid with PR_SET_KEEPCAPS): permitted = effective = docker's set, inheritable
/// empty. execve then gives uid 0 these caps and a non-root user none, as with docker.
pub fn set_docker_caps() -> Result<(), InitError> {
    let mut data = [CapData::default(); 2];
    for (cap, _) in DOCKER_DEFAULT_CAPS {
        let slot = &mut data[(*cap / 32) as usize];
        let bit = 1u32 << (cap % 32);
        slot.effective |= bit;
        slot.permitted |= bit;
    }
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: header and data are valid, correctly laid out for the v3 capset ABI.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(InitError::last_os("capset to docker default capabilities"));
    }
    Ok(())
}
