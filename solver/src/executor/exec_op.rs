//! The exec op: a RUN step in the sandbox, its output streamed to progress, its diff stored
//! (or, with `--on-error=keep`, kept for `builder debug`).

use super::*;

/// Lines of output kept for the error message of a failing RUN.
const ERROR_TAIL_LINES: usize = 20;

impl Solver<'_> {
    pub(super) fn run_exec(
        &self,
        index: usize,
        v: &Vertex,
        op: &ExecOp,
        base: &[LayerRef],
        inputs: &[Solved],
    ) -> Result<Option<LayerRef>, SolveError> {
        let err = |e: &dyn std::fmt::Display| self.step_error(v, e);
        if let Some(platform) = &op.platform {
            let target: builder_store::Platform = platform.parse().map_err(|e| err(&e))?;
            crate::emulation::how_to_run(
                &target,
                &builder_store::Platform::host(),
                Path::new(crate::emulation::BINFMT_MISC),
            )
            .map_err(|e| err(&e))?;
        }
        let active = self.layers.prepare_for_run(base).map_err(|e| err(&e))?;
        let mut mounts = Vec::new();
        // Keeps read-only views and temp files alive until the process exits.
        let mut keep_alive: Vec<Box<dyn std::any::Any>> = Vec::new();
        // What `--on-error=keep` records of the mounts: cache directories and tmpfs mounts
        // come back in `builder debug`; the rest is named.
        let mut kept_mounts = (Vec::new(), Vec::new());
        for m in &op.mounts {
            let kind = self
                .mount_source(&m.kind, inputs, &mut keep_alive)
                .map_err(|e| err(&e))?;
            let target = m.target.clone();
            match (&m.kind, &kind) {
                (ExecMountKind::Cache { .. }, builder_sandbox::MountKind::Bind { source, .. }) => {
                    kept_mounts.0.push(crate::kept_step::KeptMount::Cache {
                        target,
                        dir: source.clone(),
                    })
                }
                (ExecMountKind::Tmpfs { .. }, _) => kept_mounts
                    .0
                    .push(crate::kept_step::KeptMount::Tmpfs { target }),
                (ExecMountKind::Secret { .. }, _) => {
                    kept_mounts.1.push(format!("{target} (secret)"))
                }
                (ExecMountKind::Ssh { .. }, _) => {
                    kept_mounts.1.push(format!("{target} (ssh agent)"))
                }
                _ => kept_mounts.1.push(format!("{target} (bind)")),
            }
            mounts.push(builder_sandbox::MountSpec {
                target: m.target.clone(),
                kind,
            });
        }
        let (read_fd, write_fd) = pipe().map_err(|e| err(&e))?;
        let write_fd2 = write_fd.try_clone().map_err(|e| err(&e))?;
        let spec = builder_sandbox::RunSpec {
            rootfs: active.rootfs().to_path_buf(),
            args: op.args.clone(),
            env: self.env_with_secrets(op).map_err(|e| err(&e))?,
            cwd: op.cwd.clone(),
            user: op.user.clone(),
            hostname: op
                .hostname
                .clone()
                .unwrap_or_else(|| "buildkitsandbox".into()),
            network: match op.network {
                builder_graph::NetworkMode::Host => builder_sandbox::Network::Host,
                builder_graph::NetworkMode::None => builder_sandbox::Network::None,
            },
            security: crate::sandbox_meta::security(op.security),
            extra_hosts: crate::sandbox_meta::extra_hosts(&op.extra_hosts),
            shm_size: op.shm_size,
            ulimits: crate::sandbox_meta::ulimits(&op.ulimits),
            mounts,
            stdin: builder_sandbox::Stdio::Null,
            stdout: builder_sandbox::Stdio::Fd(write_fd),
            stderr: builder_sandbox::Stdio::Fd(write_fd2),
            limits: self.opts.limits,
            isolation: self.opts.isolation,
        };
        let (report, tail) = std::thread::scope(|scope| {
            let reader = scope.spawn(|| self.forward_output(index, read_fd));
            let report = builder_sandbox::spawn(spec).and_then(|sandbox| {
                let _cancellable = crate::cancel::track(sandbox.id());
                sandbox.wait()
            });
            let tail = reader.join().unwrap_or_default();
            (report, tail)
        });
        drop(keep_alive);
        if crate::cancel::is_cancelled() {
            // Killed by us, not failed by itself; `active` (the scratch snapshot) goes on return.
            return Err(SolveError::Cancelled);
        }
        let report = report.map_err(|e| {
            if e.is_unavailable() {
                SolveError::SandboxUnavailable {
                    location: self.location(v),
                    name: v.name.clone(),
                    error: Box::new(e),
                }
            } else {
                err(&e)
            }
        })?;
        // Mount points the sandbox had to create are not the step's output, nor is what
        // stood in for a mount under chroot isolation.
        builder_sandbox::remove_mount_stubs(active.rootfs(), &report.created_mount_points)
            .map_err(|e| err(&e))?;
        let mut active = active;
        active.exclude_from_diff(&report.transient_paths);
        if !report.status.success() {
            let kept = match &self.opts.keep_failed_in {
                Some(dir) => {
                    self.keep_failed(dir, v, op, base, &kept_mounts, active, report.status.code())
                }
                None => String::new(),
            };
            if report.oom_killed {
                return Err(self.step_error(
                    v,
                    format!(
                        "process \"{}\" ran out of memory: the kernel's OOM killer stopped it at the --memory limit of {} bytes ({}){}{kept}",
                        op.args.join(" "),
                        self.opts.limits.memory.unwrap_or_default(),
                        report.status,
                        tail_section(&tail)
                    ),
                ));
            }
            return Err(SolveError::ExecFailed {
                location: self.location(v),
                name: v.name.clone(),
                command: op.args.join(" "),
                code: report.status.code(),
                tail: format!("{}{kept}", tail_section(&tail)),
            });
        }
        // Locked until the layer is stored: a concurrent build's sweep leaves it alone.
        let diff = active.finish_locked().map_err(|e| err(&e))?;
        self.commit_diff(index, diff.path()).map_err(|e| {
            if crate::cancel::is_cancelled() {
                SolveError::Cancelled
            } else {
                err(&e)
            }
        })
    }

    /// `--on-error=keep`: stores the failed step's diff and how it ran; returns the note that
    /// goes at the end of the error (how to enter it, or why it could not be kept).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn keep_failed(
        &self,
        debug_dir: &Path,
        v: &Vertex,
        op: &ExecOp,
        base: &[LayerRef],
        mounts: &(Vec<crate::kept_step::KeptMount>, Vec<String>),
        active: builder_snapshot::ActiveSnapshot,
        code: i32,
    ) -> String {
        let record = crate::kept_step::KeptStep {
            id: crate::kept_step::new_id(),
            location: self.location(v).trim_end_matches([' ', ':']).to_string(),
            name: v.name.clone(),
            command: op.args.clone(),
            exit_code: code,
            layers: base.to_vec(),
            env: op.env.clone(),
            cwd: op.cwd.clone(),
            user: op.user.clone(),
            hostname: op
                .hostname
                .clone()
                .unwrap_or_else(|| "buildkitsandbox".into()),
            host_network: op.network == builder_graph::NetworkMode::Host,
            mounts: mounts.0.clone(),
            omitted_mounts: mounts.1.clone(),
        };
        let kept = active
            .finish_locked()
            .map_err(|e| e.to_string())
            .and_then(|diff| {
                crate::kept_step::keep(debug_dir, &record, diff.path()).map_err(|e| e.to_string())
            });
        match kept {
            Ok(_) => format!(
                "\n\nThe step's state is kept: `builder debug {}` opens a shell in it (or `builder debug last -- COMMAND`).",
                record.id
            ),
            Err(e) => format!("\n\n(--on-error=keep: the step's state could not be kept: {e})"),
        }
    }

    /// Streams a step's output to the progress sink in whole lines (stdout and stderr share one
    /// pipe, so chunks of one line may arrive in pieces); returns the last lines for errors.
    pub(super) fn forward_output(&self, index: usize, fd: OwnedFd) -> String {
        let mut file = fs::File::from(fd);
        let mut buf = [0u8; 8192];
        let mut pending: Vec<u8> = Vec::new();
        let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut emit = |bytes: &[u8]| {
            self.progress.event(Event::Log {
                vertex: index,
                stream: Stream::Stdout,
                data: bytes.to_vec(),
            });
            if tail.len() == ERROR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(
                String::from_utf8_lossy(bytes)
                    .trim_end_matches('\n')
                    .to_string(),
            );
        };
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                emit(&line);
            }
            // A very long line without a newline is passed on in pieces.
            if pending.len() > 64 * 1024 {
                emit(&std::mem::take(&mut pending));
            }
        }
        if !pending.is_empty() {
            emit(&pending);
        }
        tail.into_iter().collect::<Vec<_>>().join("\n")
    }

    /// The step's environment plus its proxy build args and `type=secret,env=` values, read
    /// only now, for the process: they stay out of the graph, the cache key, the image and the
    /// logs.
    pub(super) fn env_with_secrets(&self, op: &ExecOp) -> Result<Vec<String>, String> {
        let mut env = op.env.clone();
        // The proxy build args come last, as in BuildKit; a variable the step already has (an
        // ENV or a declared ARG of that name) keeps its value rather than appearing twice.
        for kv in &op.proxy_env {
            let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
            {
                env.push(kv.clone());
            }
        }
        for s in &op.secret_env {
            let Some(src) = self.opts.secrets.get(&s.id) else {
                if s.required {
                    return Err(format!(
                        "secret {}: not found (the mount is required; pass --secret id={},src=FILE or env=VAR)",
                        s.id, s.id
                    ));
                }
                continue;
            };
            let value = fs::read(src)
                .map_err(|e| format!("reading secret {:?} from {}: {e}", s.id, src.display()))?;
            let value = String::from_utf8(value).map_err(|_| {
                format!(
                    "secret {:?} is not UTF-8 text, so it cannot be an environment variable",
                    s.id
                )
            })?;
            env.retain(|kv| kv.split_once('=').map(|(k, _)| k) != Some(s.env.as_str()));
            env.push(format!("{}={value}", s.env));
        }
        Ok(env)
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::FromRawFd::from_raw_fd(fds[0]),
            std::os::fd::FromRawFd::from_raw_fd(fds[1]),
        )
    })
}

/// The end of a failed step's output, as a section of its error message.
fn tail_section(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n--- last lines of output ---\n{tail}")
    }
}
