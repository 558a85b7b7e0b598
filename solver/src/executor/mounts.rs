//! What a RUN step's `--mount`s are made of: context and stage views, cache directories
//! (locked per sharing mode, seeded, remembered for `--cache-to ...,mounts=true`), secrets and
//! ssh agents.

use super::*;

/// A cache mount a build used: its directory below the store's `cache-mounts/` (named by the
/// sha256 of its identity) and the `id` it was mounted by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsedCacheMount {
    pub dir_name: String,
    pub id: String,
}

impl Solver<'_> {
    pub(super) fn mount_source(
        &self,
        kind: &ExecMountKind,
        inputs: &[Solved],
        keep_alive: &mut Vec<Box<dyn std::any::Any>>,
    ) -> Result<builder_sandbox::MountKind, String> {
        use builder_sandbox::MountKind as K;
        match kind {
            ExecMountKind::Tmpfs { size } => Ok(K::Tmpfs { size: *size }),
            ExecMountKind::Input {
                input,
                source,
                read_write,
            } => {
                let root = match inputs.get(*input).map(|s| &s.output) {
                    Some(Output::Context(name)) => {
                        self.filtered_context(name.as_deref(), source, keep_alive)?
                    }
                    Some(Output::Rootfs(layers)) => {
                        let view = self.prepare(layers)?;
                        let path = builder_rootpath::resolve_in_root(view.rootfs(), source, true)
                            .map_err(|e| e.to_string())?;
                        keep_alive.push(Box::new(view));
                        path
                    }
                    None => return Err("mount source is missing".into()),
                };
                // A read-write bind of a context or stage is a throwaway copy, as in BuildKit.
                Ok(K::Bind {
                    source: root,
                    read_only: !read_write,
                })
            }
            ExecMountKind::Cache {
                id,
                sharing,
                mode,
                uid,
                gid,
                read_only,
                seed,
            } => {
                // A seeded cache is a cache of its own per seed (BuildKit keys it by its parent
                // snapshot); an unseeded one keeps the plain id, so existing caches stay found.
                let identity = match seed {
                    Some(s) => {
                        let from = inputs.get(s.input).ok_or("cache mount seed is missing")?;
                        format!("{id}\0from {}\0{}", from.key, s.source)
                    }
                    None => id.clone(),
                };
                // Under chroot isolation a cache's entries are moved into the step's rootfs
                // for the run, so two steps cannot use it at once: shared becomes locked.
                let sharing = match (self.opts.isolation, *sharing) {
                    (builder_sandbox::Isolation::Chroot, builder_graph::CacheSharing::Shared) => {
                        builder_graph::CacheSharing::Locked
                    }
                    (_, sharing) => sharing,
                };
                let dir = self.cache_mount_dir(&identity, sharing, keep_alive)?;
                let empty = fs::read_dir(&dir)
                    .map_err(|e| format!("{}: {e}", dir.display()))?
                    .next()
                    .is_none();
                if let (true, Some(s)) = (empty, seed) {
                    self.seed_cache_dir(&dir, s, inputs)?;
                } else if empty {
                    // A new (empty) cache directory gets the mount's mode and owner.
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(
                        &dir,
                        fs::Permissions::from_mode(new_cache_dir_mode(*mode)),
                    )
                    .map_err(|e| e.to_string())?;
                    let (uid, gid) = builder_snapshot::ids::to_disk(*uid, *gid);
                    std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                        .map_err(|e| e.to_string())?;
                }
                Ok(K::Bind {
                    source: dir,
                    read_only: *read_only,
                })
            }
            ExecMountKind::Ssh {
                id,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(agent) = self.opts.ssh.get(id) else {
                    if *required {
                        return Err(format!(
                            "ssh agent {id:?} is required but was not given (use --ssh {id}=SOCKET, or --ssh default for $SSH_AUTH_SOCK)"
                        ));
                    }
                    // Like a missing optional secret: an empty file where the socket would be.
                    return self.empty_file_mount(keep_alive);
                };
                let forwarder = crate::ssh_agent::AgentForwarder::start(
                    agent,
                    &self.store.tmp_dir(),
                    *mode,
                    *uid,
                    *gid,
                )
                .map_err(|e| format!("forwarding ssh agent {id:?} ({}): {e}", agent.display()))?;
                let socket = forwarder.socket().to_path_buf();
                keep_alive.push(Box::new(forwarder));
                Ok(K::Bind {
                    source: socket,
                    read_only: false,
                })
            }
            ExecMountKind::Secret {
                id,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(src) = self.opts.secrets.get(id) else {
                    if *required {
                        return Err(format!(
                            "secret {id}: not found (the mount is required; pass --secret id={id},src=FILE)"
                        ));
                    }
                    return self.empty_file_mount(keep_alive);
                };
                let data = fs::read(src)
                    .map_err(|e| format!("reading secret {id:?} from {}: {e}", src.display()))?;
                let file = tempfile::NamedTempFile::new_in(self.store.tmp_dir())
                    .map_err(|e| e.to_string())?;
                fs::write(file.path(), data).map_err(|e| e.to_string())?;
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(file.path(), fs::Permissions::from_mode(*mode))
                    .map_err(|e| e.to_string())?;
                let (uid, gid) = builder_snapshot::ids::to_disk(*uid, *gid);
                std::os::unix::fs::chown(file.path(), Some(uid), Some(gid))
                    .map_err(|e| e.to_string())?;
                let path = file.path().to_path_buf();
                keep_alive.push(Box::new(file));
                Ok(K::Bind {
                    source: path,
                    read_only: true,
                })
            }
        }
    }

    /// What an optional secret or ssh mount that was not given becomes: an empty read-only file.
    pub(super) fn empty_file_mount(
        &self,
        keep_alive: &mut Vec<Box<dyn std::any::Any>>,
    ) -> Result<builder_sandbox::MountKind, String> {
        let empty =
            tempfile::NamedTempFile::new_in(self.store.tmp_dir()).map_err(|e| e.to_string())?;
        let path = empty.path().to_path_buf();
        keep_alive.push(Box::new(empty));
        Ok(builder_sandbox::MountKind::Bind {
            source: path,
            read_only: true,
        })
    }

    /// The persistent directory of a cache mount, with BuildKit's sharing modes: `shared` lets
    /// concurrent steps use it together, `locked` makes them take turns, and `private` gives a
    /// step a fresh throwaway directory while another one holds the cache.
    pub(super) fn cache_mount_dir(
        &self,
        id: &str,
        sharing: builder_graph::CacheSharing,
        keep_alive: &mut Vec<Box<dyn std::any::Any>>,
    ) -> Result<PathBuf, String> {
        use builder_graph::CacheSharing;
        let base = self.store.cache_mounts_dir();
        let name = Digest::of(id.as_bytes()).hex();
        let dir = base.join(&name);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock_path = base.join(format!("{name}.lock"));
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        let op = match sharing {
            CacheSharing::Shared => libc::LOCK_SH,
            CacheSharing::Locked => libc::LOCK_EX,
            CacheSharing::Private => libc::LOCK_EX | libc::LOCK_NB,
        };
        // SAFETY: flock on a descriptor we own; the lock lives as long as the File.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), op) } != 0 {
            let err = std::io::Error::last_os_error();
            if sharing == CacheSharing::Private && err.kind() == std::io::ErrorKind::WouldBlock {
                let tmp = tempfile::Builder::new()
                    .prefix("cache-private-")
                    .tempdir_in(&self.work_root)
                    .map_err(|e| e.to_string())?;
                let path = tmp.path().to_path_buf();
                keep_alive.push(Box::new(tmp));
                return Ok(path);
            }
            return Err(format!("locking cache mount {id:?}: {err}"));
        }
        keep_alive.push(Box::new(lock));
        self.used_cache_mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(UsedCacheMount {
                dir_name: name,
                id: id.to_string(),
            });
        Ok(dir)
    }

    /// The persistent cache mounts this build's RUN steps used.
    pub fn used_cache_mounts(&self) -> Vec<UsedCacheMount> {
        self.used_cache_mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Fills a new cache directory with a copy of the seed's directory (owners, modes and times
    /// kept; the directory itself takes the seed directory's owner and mode, as the mount of
    /// that path would show it in BuildKit). The copy is made beside the cache and renamed
    /// over the empty directory, so a concurrent build of the same cache sees it whole or not
    /// at all; whoever renames second finds the directory full and drops its copy.
    pub(super) fn seed_cache_dir(
        &self,
        dir: &Path,
        seed: &builder_graph::CacheSeed,
        inputs: &[Solved],
    ) -> Result<(), String> {
        let parent = dir.parent().ok_or("cache mount directory has no parent")?;
        let tmp = tempfile::Builder::new()
            .prefix(".seed-")
            .tempdir_in(parent)
            .map_err(|e| format!("{}: {e}", parent.display()))?;
        let action = CopyAction {
            source_input: seed.input,
            sources: vec![seed.source.clone()],
            dest: "/".into(),
            dest_is_dir: true,
            chown: None,
            chmod: None,
            unpack_archives: false,
            exclude: Vec::new(),
            from_context: false,
            parents: false,
        };
        let attrs = Attributes {
            owner: None,
            chmod: None,
            reset_owner: false,
        };
        let copy_seed = |tree: &SourceTree| -> Result<(), String> {
            let picked = tree.select(&seed.source).map_err(|e| e.to_string())?;
            match picked.as_slice() {
                [one] if one.host.is_dir() => {}
                _ => {
                    return Err(format!(
                        "cache mount source {:?} is not a directory of its from= input",
                        seed.source
                    ));
                }
            }
            copy::copy(tree, &action, tmp.path(), attrs).map_err(|e| e.to_string())?;
            let meta = fs::symlink_metadata(&picked[0].host).map_err(|e| e.to_string())?;
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            std::os::unix::fs::chown(tmp.path(), Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| e.to_string())?;
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(|e| e.to_string())
        };
        match inputs.get(seed.input).map(|s| &s.output) {
            Some(Output::Context(name)) => {
                let tree = self.context_tree(name.as_deref()).ok_or(
                    "this cache mount is seeded from the build context, but no context directory was given",
                )?;
                copy_seed(&tree)?;
            }
            Some(Output::Rootfs(layers)) => {
                let view = self.prepare(layers)?;
                copy_seed(&SourceTree::new(view.rootfs(), None))?;
            }
            None => return Err("cache mount seed is missing".into()),
        }
        match fs::rename(tmp.path(), dir) {
            Ok(()) => {
                // The directory is the cache now; nothing left for the TempDir to remove.
                let _ = tmp.keep();
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
            Err(e) => Err(format!("{}: {e}", dir.display())),
        }
    }

    /// The context (after .dockerignore) below `source`, copied to a temp dir for a bind mount.
    pub(super) fn filtered_context(
        &self,
        name: Option<&str>,
        source: &str,
        keep_alive: &mut Vec<Box<dyn std::any::Any>>,
    ) -> Result<PathBuf, String> {
        let tree = self
            .context_tree(name)
            .ok_or("this step mounts the build context, but no context directory was given")?;
        let tmp = tempfile::Builder::new()
            .prefix("ctx-")
            .tempdir_in(&self.work_root)
            .map_err(|e| e.to_string())?;
        let action = builder_graph::CopyAction {
            source_input: 0,
            sources: vec![source.to_string()],
            dest: "/".into(),
            dest_is_dir: true,
            chown: None,
            chmod: None,
            unpack_archives: false,
            exclude: vec![],
            from_context: true,
            parents: false,
        };
        copy::copy(
            &tree,
            &action,
            tmp.path(),
            Attributes {
                owner: None,
                chmod: None,
                reset_owner: true,
            },
        )
        .map_err(|e| e.to_string())?;
        // A single regular file is mounted as that file, not as the directory holding it.
        // (Not a symlink: the bind mount would follow it on the host's side.)
        let rel = builder_rootpath::clean_rel(source);
        let single_file = !rel.is_empty()
            && fs::symlink_metadata(tree.root().join(&rel)).is_ok_and(|m| m.is_file());
        let path = match rel.rsplit('/').next() {
            Some(name) if single_file => tmp.path().join(name),
            _ => tmp.path().to_path_buf(),
        };
        keep_alive.push(Box::new(tmp));
        Ok(path)
    }
}

/// The mode a new cache directory gets from a cache mount's `mode=`, as BuildKit makes it: the
/// Dockerfile frontend creates it with a plain mkdir (`llb.Mkdir` without parents, i.e.
/// `os.Mkdir(path, mode & 0777)`) under the daemon's umask, which dockerd sets to 022. So
/// `mode=0770` gives 0750 and `mode=1777` gives 0755 there; a cache built from the same
/// Dockerfile must look the same here (found by scripts/compare_with_buildkit.sh).
fn new_cache_dir_mode(mode: u32) -> u32 {
    mode & 0o777 & !0o022
}
