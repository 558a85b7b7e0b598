//! Turning a refused sandbox setup step into a message that says what failed, why this host
//! refuses it, and what to change (issue #23). The facts come from cheap probes of
//! /proc/self/status, the relevant sysctls and /proc/self/mountinfo, read only once a step has
//! already failed.

use std::fs;

use crate::error::SandboxError;

/// capability(7) number; not exported by libc.
const CAP_SYS_ADMIN: u32 = 21;

/// Said after every "what to do" of the namespaced mode: the mode that needs no namespaces.
const CHROOT_ALTERNATIVE: &str = "or, inside a container that is itself the security boundary (a CI job), run as root there with `--isolation=chroot` (docs/ci.md)";

/// What the host tells us about why namespaces or mounts may be refused.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct HostFacts {
    pub is_root: bool,
    /// `Seccomp: 2` in /proc/self/status: a filter (docker's, Kubernetes' RuntimeDefault) runs.
    pub seccomp_filter: bool,
    pub no_new_privs: bool,
    /// CAP_SYS_ADMIN in the effective set.
    pub cap_sys_admin: bool,
    /// kernel.unprivileged_userns_clone (Debian and older Ubuntu kernels only).
    pub unprivileged_userns_clone: Option<u64>,
    pub max_user_namespaces: Option<u64>,
    /// kernel.apparmor_restrict_unprivileged_userns (Ubuntu 23.10 and later).
    pub apparmor_restrict_userns: Option<u64>,
    /// Mount points below /proc (docker's masked paths): while they exist, the kernel refuses a
    /// fresh proc mount inside a user namespace.
    pub proc_overmounts: Vec<String>,
}

impl HostFacts {
    pub fn probe() -> HostFacts {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
                .unwrap_or("")
                .to_string()
        };
        let cap_eff = u64::from_str_radix(&field("CapEff"), 16).unwrap_or(0);
        let sysctl = |p: &str| fs::read_to_string(p).ok()?.trim().parse().ok();
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        HostFacts {
            // SAFETY: geteuid has no preconditions.
            is_root: unsafe { libc::geteuid() } == 0,
            seccomp_filter: field("Seccomp") == "2",
            no_new_privs: field("NoNewPrivs") == "1",
            cap_sys_admin: cap_eff & (1 << CAP_SYS_ADMIN) != 0,
            unprivileged_userns_clone: sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
            max_user_namespaces: sysctl("/proc/sys/user/max_user_namespaces"),
            apparmor_restrict_userns: sysctl(
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            ),
            proc_overmounts: proc_overmounts(&mountinfo),
        }
    }
}

/// Mount points strictly below /proc, from mountinfo's fifth field.
fn proc_overmounts(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with("/proc/"))
        .map(str::to_string)
        .collect()
}

fn errno_text(errno: Option<i32>) -> String {
    match errno {
        Some(e) => {
            let e = nix::errno::Errno::from_raw(e);
            format!(" with {e:?} ({})", e.desc())
        }
        None => String::new(),
    }
}

fn unavailable(
    what: String,
    errno: Option<i32>,
    why: Vec<String>,
    fix: Vec<String>,
) -> SandboxError {
    let mut fix = fix.join("; or ");
    if !fix.is_empty() {
        fix.push(' ');
    }
    fix.push_str(CHROOT_ALTERNATIVE);
    SandboxError::Unavailable {
        what: format!("{what} failed{}", errno_text(errno)),
        errno,
        why: why.join("; "),
        fix,
    }
}

const SECCOMP_WHY: &str = "this process runs under a seccomp filter (`Seccomp: 2` in /proc/self/status), and the default profiles of docker, podman, containerd and Kubernetes (RuntimeDefault) refuse namespace creation";
const SECCOMP_FIX: &str = "run the container with `--security-opt seccomp=unconfined` (Kubernetes: `securityContext.seccompProfile.type: Unconfined`) or with a profile that allows unshare(2) and clone(2) with namespace flags";

/// The re-executed builder could not create its user namespace (rootless mode).
pub(crate) fn userns_refused(what: &str, errno: i32, f: &HostFacts) -> SandboxError {
    let mut why = Vec::new();
    let mut fix = Vec::new();
    if f.max_user_namespaces == Some(0) {
        why.push(
            "the sysctl `user.max_user_namespaces` is 0, so no user namespace may be created"
                .into(),
        );
        fix.push("set `sysctl -w user.max_user_namespaces=15000` on the host".into());
    } else if errno == libc::ENOSPC {
        why.push(format!(
            "the limit `user.max_user_namespaces` ({}) is used up",
            f.max_user_namespaces.map_or("?".into(), |n| n.to_string())
        ));
        fix.push("raise `user.max_user_namespaces` on the host".into());
    }
    if f.unprivileged_userns_clone == Some(0) {
        why.push("the sysctl `kernel.unprivileged_userns_clone` is 0: only root may create user namespaces".into());
        fix.push("set `sysctl -w kernel.unprivileged_userns_clone=1` on the host".into());
    }
    if f.apparmor_restrict_userns == Some(1) {
        why.push("AppArmor restricts unprivileged user namespaces (`kernel.apparmor_restrict_unprivileged_userns=1`)".into());
        fix.push("set `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` or give builder an AppArmor profile with the `userns,` rule".into());
    }
    if f.seccomp_filter {
        why.push(SECCOMP_WHY.into());
        fix.push(SECCOMP_FIX.into());
    }
    if errno == libc::EUSERS {
        why.push("user namespaces are nested 32 deep already".into());
    }
    if why.is_empty() {
        why.push("the kernel refuses unprivileged user namespaces here (no sysctl or seccomp filter explains it: perhaps a security module)".into());
        fix.push("run builder as root, or allow unprivileged user namespaces on the host".into());
    }
    unavailable(
        format!("creating a user namespace ({what})"),
        Some(errno),
        why,
        fix,
    )
}

/// The re-executed builder died from a signal before it created its user namespace (a seccomp
/// filter that kills instead of failing the call sends SIGSYS).
pub(crate) fn userns_child_killed(sig: i32, f: &HostFacts) -> SandboxError {
    let name = nix::sys::signal::Signal::try_from(sig).map_or(sig.to_string(), |s| s.to_string());
    let mut why = vec![format!(
        "the re-executed builder was killed by {name} before it created its user namespace"
    )];
    let mut fix = Vec::new();
    if sig == libc::SIGSYS || f.seccomp_filter {
        why.push(SECCOMP_WHY.into());
        fix.push(SECCOMP_FIX.into());
    }
    unavailable("creating a user namespace".into(), None, why, fix)
}

/// newuidmap/newgidmap refused to write the id maps of our namespace.
pub(crate) fn idmap_tool_failed(tool: &str, detail: &str, f: &HostFacts) -> SandboxError {
    let mut why = vec![format!("{tool} said: {}", detail.trim())];
    let mut fix = Vec::new();
    if f.no_new_privs {
        why.push(format!(
            "no_new_privs is set on this process (`NoNewPrivs: 1` in /proc/self/status: Kubernetes `allowPrivilegeEscalation: false`, docker `--security-opt no-new-privileges`), so the setuid {tool} cannot gain the rights to write the map"
        ));
        fix.push("allow privilege escalation for the container".into());
        fix.push("remove this user's /etc/subuid and /etc/subgid ranges: builder then maps only your own uid, without newuidmap".into());
    } else {
        fix.push(format!(
            "check this user's ranges in /etc/subuid and /etc/subgid, and that {tool} is setuid root or has the cap_setuid/cap_setgid file capability (`ls -l $(command -v {tool})`, `getcap`)"
        ));
    }
    unavailable(format!("writing the id maps with {tool}"), None, why, fix)
}

/// A setup step of the sandbox init that fails because of the host, not because of the step,
/// as a [`SandboxError::Unavailable`]; `None` for failures the step itself causes.
pub(crate) fn setup_refused(step: &str, errno: Option<i32>, f: &HostFacts) -> Option<SandboxError> {
    let errno_is = |set: &[i32]| errno.is_some_and(|e| set.contains(&e));
    if step.starts_with("unshare") {
        let mut why = Vec::new();
        let mut fix = Vec::new();
        if f.seccomp_filter {
            why.push(SECCOMP_WHY.into());
            fix.push(SECCOMP_FIX.into());
        }
        if f.is_root && !f.cap_sys_admin {
            why.push("this process lacks CAP_SYS_ADMIN, which creating mount and pid namespaces needs (docker and Kubernetes drop it by default)".into());
            fix.push("as root in a container, add the capability as well: `docker run --cap-add SYS_ADMIN --security-opt seccomp=unconfined` (Kubernetes: `securityContext.capabilities.add: [SYS_ADMIN]`)".into());
        }
        if why.is_empty() {
            why.push("the kernel refused the namespaces".into());
        }
        return Some(unavailable(
            format!("creating the sandbox's namespaces ({step})"),
            errno,
            why,
            fix,
        ));
    }
    if step.starts_with("mount proc") && errno_is(&[libc::EPERM, libc::EACCES]) {
        let mut why = Vec::new();
        if !f.proc_overmounts.is_empty() {
            why.push(format!(
                "this container's /proc has paths masked by mounts over them ({}), and the kernel refuses a fresh /proc inside a user namespace while any part of the existing one is hidden",
                f.proc_overmounts.join(", ")
            ));
        } else {
            why.push("the kernel or a security module refused to mount a fresh /proc".into());
        }
        let fix = vec![
            "docker: `--security-opt systempaths=unconfined`; Kubernetes: `securityContext.procMount: Unmasked`".into(),
        ];
        return Some(unavailable(
            format!("mounting /proc ({step})"),
            errno,
            why,
            fix,
        ));
    }
    if step == "chroot" && errno_is(&[libc::EPERM]) {
        let mut why = vec![
            "RUN steps are isolated with chroot(2) here (--isolation=chroot, or auto because this container refuses a user namespace), and chroot needs CAP_SYS_CHROOT, which a non-root user does not hold".to_string(),
        ];
        let mut fix =
            vec!["run the job container as root (docker `-u 0`, Kubernetes `runAsUser: 0`), where chroot isolation works with the default capabilities".to_string()];
        if f.seccomp_filter {
            why.push(SECCOMP_WHY.into());
            fix.push(format!(
                "let this user create a user namespace for --isolation=rootless: {SECCOMP_FIX}"
            ));
        }
        return Some(SandboxError::Unavailable {
            what: format!(
                "isolating the RUN step ({step}) failed{}",
                errno_text(errno)
            ),
            errno,
            why: why.join("; "),
            fix: fix.join("; or "),
        });
    }
    let mount_step = step.starts_with("make / private") || step.starts_with("bind rootfs");
    if mount_step && errno_is(&[libc::EPERM, libc::EACCES]) {
        let mut why = Vec::new();
        let mut fix = Vec::new();
        if errno == Some(libc::EACCES) {
            why.push(
                "a security module refused the mount (docker's AppArmor profile denies mount(2))"
                    .into(),
            );
            fix.push("run the container with `--security-opt apparmor=unconfined`".into());
        } else {
            why.push("mounts are not allowed in the sandbox's mount namespace".into());
        }
        return Some(unavailable(
            format!("setting up the sandbox's mounts ({step})"),
            errno,
            why,
            fix,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: SandboxError) -> String {
        e.to_string()
    }

    #[test]
    fn seccomp_refusal_says_why_and_what_to_do() {
        let f = HostFacts {
            seccomp_filter: true,
            max_user_namespaces: Some(1000),
            ..Default::default()
        };
        let m = text(userns_refused("unshare", libc::EPERM, &f));
        assert!(m.contains("EPERM (Operation not permitted)"), "{m}");
        assert!(m.contains("Seccomp: 2"), "{m}");
        assert!(m.contains("seccomp=unconfined"), "{m}");
        assert!(m.contains("--isolation=chroot"), "{m}");
    }

    #[test]
    fn chroot_refused_to_a_non_root_user_names_both_ways_out() {
        let f = HostFacts {
            seccomp_filter: true,
            ..Default::default()
        };
        let m = text(setup_refused("chroot", Some(libc::EPERM), &f).unwrap());
        assert!(
            m.contains("CAP_SYS_CHROOT") && m.contains("runAsUser: 0"),
            "{m}"
        );
        assert!(
            m.contains("user namespace") && m.contains("--isolation=rootless"),
            "{m}"
        );
    }

    #[test]
    fn sysctls_are_named() {
        let f = HostFacts {
            max_user_namespaces: Some(0),
            unprivileged_userns_clone: Some(0),
            ..Default::default()
        };
        let m = text(userns_refused("unshare", libc::ENOSPC, &f));
        assert!(m.contains("user.max_user_namespaces=15000"), "{m}");
        assert!(m.contains("kernel.unprivileged_userns_clone=1"), "{m}");
    }

    #[test]
    fn root_without_cap_sys_admin_is_told_to_add_it() {
        let f = HostFacts {
            is_root: true,
            seccomp_filter: true,
            ..Default::default()
        };
        let m = text(setup_refused("unshare CloneFlags(..)", Some(libc::EPERM), &f).unwrap());
        assert!(m.contains("CAP_SYS_ADMIN"), "{m}");
        assert!(m.contains("--cap-add SYS_ADMIN"), "{m}");
    }

    #[test]
    fn masked_proc_is_explained_and_other_steps_are_not_host_failures() {
        let mi =
            "22 1 0:5 / /proc rw - proc proc rw\n23 22 0:6 /null /proc/kcore ro - tmpfs t ro\n";
        let f = HostFacts {
            proc_overmounts: proc_overmounts(mi),
            ..Default::default()
        };
        assert_eq!(f.proc_overmounts, ["/proc/kcore"]);
        let m = text(setup_refused("mount proc (/r/proc)", Some(libc::EPERM), &f).unwrap());
        assert!(
            m.contains("/proc/kcore") && m.contains("systempaths=unconfined"),
            "{m}"
        );
        assert!(setup_refused("chdir /app", Some(libc::ENOENT), &f).is_none());
        assert!(setup_refused("mount proc (/r/proc)", Some(libc::ENOENT), &f).is_none());
    }
}
