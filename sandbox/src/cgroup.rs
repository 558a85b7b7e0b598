//! Resource limits for a sandbox (`--memory`, `--cpus`, `--pids-limit`): a cgroup made for one
//! run, below the caller's own cgroup, that the sandbox init joins before it starts anything.
//!
//! cgroup v2 is used when the caller's cgroup offers the needed controllers (or can enable
//! them in its `cgroup.subtree_control`): `<own>/builder-<pid>-<n>` with `memory.max`,
//! `memory.swap.max` = 0, `cpu.max`, `pids.max`. On hosts where those controllers are still
//! bound to cgroup v1 hierarchies (a "hybrid" layout: v2 mounted at /sys/fs/cgroup/unified
//! with no controllers) the same limits go to the v1 `memory`, `cpu` and `pids` hierarchies.
//!
//! Why this needs root or delegation: creating the child needs write access to the caller's
//! cgroup directory, and moving the init into it needs write access to `cgroup.procs` of the
//! common ancestor (here the caller's own cgroup). Without systemd delegation those belong to
//! root, and an unprivileged builder (even as uid 0 of its user namespace) cannot write them.
//! Limits are then refused with an error, never silently dropped.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::SandboxError;

/// Limits for one run. None means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Bytes of memory (no swap on top).
    pub memory: Option<u64>,
    /// CPU time, in CPUs (0.5 = half of one CPU).
    pub cpus: Option<f64>,
    /// Most processes (and threads) at once.
    pub pids: Option<u64>,
}

impl ResourceLimits {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpus.is_none() && self.pids.is_none()
    }

    /// The controllers these limits need, by their cgroup names.
    fn controllers(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if self.memory.is_some() {
            c.push("memory");
        }
        if self.cpus.is_some() {
            c.push("cpu");
        }
        if self.pids.is_some() {
            c.push("pids");
        }
        c
    }
}

/// cpu.max / cfs quota: the period and the runtime allowed per period.
const CPU_PERIOD_US: u64 = 100_000;

fn cpu_quota_us(cpus: f64) -> u64 {
    ((cpus * CPU_PERIOD_US as f64).round() as u64).max(1_000)
}

/// A cgroup made for one run; removed on drop (once its processes are gone).
#[derive(Debug)]
pub struct Cgroup {
    version: Version,
    /// One directory for v2; one per controller hierarchy for v1.
    dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V2,
    V1,
}

/// Where one hierarchy is mounted and the caller's place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    /// v1: the controllers bound to this mount; v2: empty.
    controllers: Vec<String>,
    /// The caller's cgroup directory in this mount.
    own_dir: PathBuf,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl Cgroup {
    /// Creates a fresh cgroup with `limits` applied, or says why that is not possible here.
    pub fn create(limits: &ResourceLimits) -> Result<Cgroup, SandboxError> {
        let mounts = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| SandboxError::io("read /proc/self/mountinfo", e))?;
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| SandboxError::io("read /proc/self/cgroup", e))?;
        let name = format!(
            "builder-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let wanted = limits.controllers();
        let v2 = hierarchies(&mounts, &own)
            .into_iter()
            .find(|h| h.controllers.is_empty());
        if let Some(v2) = v2.filter(|h| v2_offers(&h.own_dir, &wanted)) {
            return create_v2(&v2.own_dir, &name, limits, &wanted);
        }
        let v1: Vec<Hierarchy> = hierarchies(&mounts, &own)
            .into_iter()
            .filter(|h| !h.controllers.is_empty())
            .collect();
        let mut dirs = Vec::new();
        for c in &wanted {
            let Some(h) = v1.iter().find(|h| h.controllers.iter().any(|x| x == c)) else {
                return Err(unavailable(format!(
                    "no cgroup v2 hierarchy offers the {c} controller and no cgroup v1 hierarchy has it either"
                )));
            };
            if !dirs.contains(&h.own_dir.join(&name)) {
                dirs.push(h.own_dir.join(&name));
            }
        }
        let cg = Cgroup {
            version: Version::V1,
            dirs,
        };
        for d in &cg.dirs {
            make_dir(d)?;
        }
        cg.apply_v1(limits)?;
        Ok(cg)
    }

    /// Moves a process (and so everything it will start) into the cgroup.
    pub fn add(&self, pid: u32) -> Result<(), SandboxError> {
        for d in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let (file, key) = match self.version {
            Version::V2 => ("memory.events", "oom_kill"),
            Version::V1 => ("memory.oom_control", "oom_kill"),
        };
        self.dirs.iter().any(|d| {
            fs::read_to_string(d.join(file)).is_ok_and(|s| {
                s.lines().any(|l| {
                    l.strip_prefix(key)
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
        })
    }

    fn apply_v1(&self, limits: &ResourceLimits) -> Result<(), SandboxError> {
        for d in &self.dirs {
            if let Some(m) = limits.memory
                && d.join("memory.limit_in_bytes").exists()
            {
                write(&d.join("memory.limit_in_bytes"), &m.to_string())?;
                // memory+swap equal to memory: no swap. Absent when swap accounting is off.
                let memsw = d.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &m.to_string())?;
                }
            }
            if let Some(c) = limits.cpus
                && d.join("cpu.cfs_quota_us").exists()
            {
                write(&d.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&d.join("cpu.cfs_quota_us"), &cpu_quota_us(c).to_string())?;
            }
            if let Some(p) = limits.pids
                && d.join("pids.max").exists()
            {
                write(&d.join("pids.max"), &p.to_string())?;
            }
        }
        Ok(())
    }
}

impl Drop for Cgroup {
    /// A cgroup can only be removed once empty; the sandbox's processes may still be
    /// exiting for a moment after its init was reaped.
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        for d in &self.dirs {
            while let Err(e) = fs::remove_dir(d) {
                if e.kind() == ErrorKind::NotFound || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Checks up front that `limits` can be applied (creates and removes a cgroup).
pub fn check(limits: &ResourceLimits) -> Result<(), SandboxError> {
    if limits.is_empty() {
        return Ok(());
    }
    Cgroup::create(limits).map(drop)
}

fn create_v2(
    own: &Path,
    name: &str,
    limits: &ResourceLimits,
    wanted: &[&str],
) -> Result<Cgroup, SandboxError> {
    enable_v2(own, wanted)?;
    let dir = own.join(name);
    make_dir(&dir)?;
    let cg = Cgroup {
        version: Version::V2,
        dirs: vec![dir.clone()],
    };
    if let Some(m) = limits.memory {
        write(&dir.join("memory.max"), &m.to_string())?;
        if dir.join("memory.swap.max").exists() {
            write(&dir.join("memory.swap.max"), "0")?;
        }
    }
    if let Some(c) = limits.cpus {
        write(
            &dir.join("cpu.max"),
            &format!("{} {CPU_PERIOD_US}", cpu_quota_us(c)),
        )?;
    }
    if let Some(p) = limits.pids {
        write(&dir.join("pids.max"), &p.to_string())?;
    }
    Ok(cg)
}

/// Whether the caller's v2 cgroup has the controllers (to hand on to a child).
fn v2_offers(own: &Path, wanted: &[&str]) -> bool {
    let available = fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
    wanted
        .iter()
        .all(|c| available.split_whitespace().any(|a| a == *c))
}

/// Makes the controllers available to children of `own`, unless they already are.
fn enable_v2(own: &Path, wanted: &[&str]) -> Result<(), SandboxError> {
    let control = own.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&control).unwrap_or_default();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs::write(&control, missing.join(" ")).map_err(|e| {
        let why = if e.raw_os_error() == Some(libc::EBUSY) {
            // cgroup v2's "no internal processes" rule: the builder itself lives there.
            "the builder's own cgroup holds processes, so it cannot hand controllers to children; start the builder in its own delegated scope (e.g. systemd-run --user --scope -p Delegate=yes builder ...)".to_string()
        } else {
            e.to_string()
        };
        unavailable(format!("enabling {} in {}: {why}", missing.join(" "), control.display()))
    })
}

fn make_dir(dir: &Path) -> Result<(), SandboxError> {
    fs::create_dir(dir).map_err(|e| {
        let hint = match e.kind() {
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
                "; the cgroup is not writable by this user: run as root, or under systemd delegation (systemd-run --user --scope -p Delegate=yes ...)"
            }
            _ => "",
        };
        unavailable(format!("creating cgroup {}: {e}{hint}", dir.display()))
    })
}

fn write(path: &Path, value: &str) -> Result<(), SandboxError> {
    fs::write(path, value)
        .map_err(|e| unavailable(format!("writing {value:?} to {}: {e}", path.display())))
}

fn unavailable(reason: String) -> SandboxError {
    SandboxError::Limits(reason)
}

/// The cgroup hierarchies mounted here and the caller's directory in each, from
/// /proc/self/mountinfo and /proc/self/cgroup.
fn hierarchies(mountinfo: &str, own: &str) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split_whitespace().collect();
        let right: Vec<&str> = right.split_whitespace().collect();
        let (Some(root), Some(mount_point), Some(fstype)) =
            (fields.get(3), fields.get(4), right.first())
        else {
            continue;
        };
        let controllers: Vec<String> = match *fstype {
            "cgroup2" => Vec::new(),
            "cgroup" => right
                .get(2)
                .unwrap_or(&"")
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                .map(str::to_string)
                .collect(),
            _ => continue,
        };
        // /proc/self/cgroup: "hierarchy-id:controllers:path"; v2 is "0::path".
        let path = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, list, path) = (f.next()?, f.next()?, f.next()?);
            let matches = if controllers.is_empty() {
                list.is_empty()
            } else {
                list.split(',').any(|c| controllers.iter().any(|x| x == c))
            };
            matches.then(|| path.to_string())
        });
        let Some(path) = path else { continue };
        let relative = path
            .strip_prefix(*root)
            .unwrap_or(&path)
            .trim_start_matches('/');
        out.push(Hierarchy {
            controllers,
            own_dir: Path::new(mount_point).join(relative),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
";
    const HYBRID_OWN: &str = "\
9:name=systemd:/user.slice
4:memory:/job/42
1:cpu,cpuacct:/
0::/user.slice/session-1.scope
";

    #[test]
    fn finds_each_hierarchy_and_our_place_in_it() {
        let h = hierarchies(HYBRID_MOUNTS, HYBRID_OWN);
        let dir = |c: &str| {
            h.iter()
                .find(|h| h.controllers.iter().any(|x| x == c))
                .map(|h| h.own_dir.clone())
        };
        assert_eq!(dir("memory"), Some("/sys/fs/cgroup/memory/job/42".into()));
        assert_eq!(dir("cpu"), Some("/sys/fs/cgroup/cpu,cpuacct".into()));
        let v2 = h.iter().find(|h| h.controllers.is_empty()).unwrap();
        assert_eq!(
            v2.own_dir,
            PathBuf::from("/sys/fs/cgroup/unified/user.slice/session-1.scope")
        );
        assert!(
            dir("name=systemd").is_none(),
            "named hierarchies carry no controllers"
        );
    }

    #[test]
    fn pure_v2_with_a_cgroup_namespace_root() {
        let mounts = "29 23 0:26 /user.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = hierarchies(mounts, "0::/user.slice/app.scope\n");
        assert_eq!(
            h,
            vec![Hierarchy {
                controllers: vec![],
                own_dir: "/sys/fs/cgroup/app.scope".into()
            }]
        );
    }

    /// On this host's real hierarchy (root only): the limits land in the kernel's files and
    /// the directories go away with the handle.
    #[test]
    fn limits_are_written_and_removed() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root or cgroup delegation");
            return;
        }
        let limits = ResourceLimits {
            memory: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(10),
        };
        let cg = Cgroup::create(&limits).unwrap();
        let read = |name: &str| {
            let d = cg.dirs.iter().find(|d| d.join(name).exists()).unwrap();
            fs::read_to_string(d.join(name)).unwrap().trim().to_string()
        };
        match cg.version {
            Version::V2 => {
                assert_eq!(read("memory.max"), "67108864");
                assert_eq!(read("cpu.max"), "50000 100000");
                assert_eq!(read("pids.max"), "10");
            }
            Version::V1 => {
                assert_eq!(read("memory.limit_in_bytes"), "67108864");
                assert_eq!(read("cpu.cfs_quota_us"), "50000");
                assert_eq!(read("cpu.cfs_period_us"), "100000");
                assert_eq!(read("pids.max"), "10");
            }
        }
        assert!(!cg.oom_killed());
        let dirs = cg.dirs.clone();
        drop(cg);
        assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
    }

    #[test]
    fn cpu_quota_from_cpus() {
        assert_eq!(cpu_quota_us(0.5), 50_000);
        assert_eq!(cpu_quota_us(2.0), 200_000);
        assert_eq!(cpu_quota_us(0.0001), 1_000, "the kernel's minimum");
        assert_eq!(
            ResourceLimits {
                memory: Some(1),
                cpus: None,
                pids: Some(3)
            }
            .controllers(),
            vec!["memory", "pids"]
        );
    }
}
