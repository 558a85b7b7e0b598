//! RUN (BuildKit's `convert_runmount` and the exec op): its command, environment, mounts
//! (bind, cache, tmpfs, secret, ssh) and the entitlements it needs.

use super::*;

impl<'a> Converter<'a> {
    pub(super) fn dispatch_run(
        &mut self,
        st: &mut StageBuild,
        inst: &Instruction,
        run: &Run,
    ) -> Result<(), ConvertError> {
        let line = inst.location.start_line;
        let mut args = run_args(run, &st.spec);
        // RUN sees the image's ENV, then every declared ARG not shadowed by an ENV, then the
        // proxy build args (which need no ARG).
        let mut env = st.spec.env_list();
        for (k, v) in &st.args {
            // The SBOM scan ARGs configure the scan, never a step (BuildKit's nonEnvArgs).
            if k == super::SBOM_SCAN_CONTEXT_ARG || k == super::SBOM_SCAN_STAGE_ARG {
                continue;
            }
            if st.spec.env_get(k).is_none() {
                env.push(format!("{k}={v}"));
            }
        }
        let history_args: Vec<String> = st
            .declared_args
            .iter()
            .map(|(k, v)| {
                let value = st
                    .spec
                    .env_get(k)
                    .map(str::to_string)
                    .or_else(|| v.clone())
                    .unwrap_or_default();
                format!("{k}={value}")
            })
            .collect();
        let proxy_env = proxy_env(&self.options.build_args);
        let mut inputs = vec![st.vertex];
        let mut mounts = Vec::new();
        let mut secret_env = Vec::new();
        for mount in &run.mounts {
            if let builder_frontend::Mount::Secret {
                id,
                env: Some(var),
                target,
                required,
                ..
            } = mount
            {
                secret_env.push(SecretEnv {
                    id: id.clone(),
                    env: var.clone(),
                    required: *required,
                });
                // With env= the secret is a file only when a target asks for one, as in BuildKit.
                if target.is_none() {
                    continue;
                }
            }
            mounts.push(self.exec_mount(st, mount, &mut inputs, line)?);
        }
        if let Some((name, content)) = run
            .shebang_script()
            .filter(|_| st.spec.platform.os != "windows")
        {
            // As BuildKit: the script is an executable file of its own, mounted read-only at
            // /dev/pipes/<delimiter>, which the shell runs so its `#!` line picks the
            // interpreter (`#!/usr/bin/awk -f`, `#!/usr/bin/env python3`).
            let scratch = self.graph.add(Vertex {
                op: Op::Scratch,
                inputs: vec![],
                name: "scratch".into(),
                lines: None,
            });
            let file = self.graph.add(Vertex {
                op: Op::File(FileOp {
                    actions: vec![FileAction::Mkfile {
                        path: format!("/{name}"),
                        mode: 0o755,
                        data: content,
                        owner: None,
                        parent_mode: None,
                    }],
                    linked: false,
                }),
                inputs: vec![scratch],
                name: "[internal] preparing inline document".into(),
                lines: None,
            });
            inputs.push(file);
            mounts.push(ExecMount {
                target: "/dev/pipes".into(),
                kind: ExecMountKind::Input {
                    input: inputs.len() - 1,
                    source: "/".into(),
                    read_write: false,
                },
            });
            args = st.spec.shell_or_default();
            args.push(format!("/dev/pipes/{name}"));
        }
        name_ssh_sockets(&mut mounts, &mut env);
        self.check_entitlements(run, line)?;
        let network = match run.network {
            builder_frontend::NetworkMode::None => NetworkMode::None,
            builder_frontend::NetworkMode::Host => NetworkMode::Host,
            builder_frontend::NetworkMode::Default => self.options.network,
        };
        let cwd = if st.spec.working_dir.is_empty() {
            "/".to_string()
        } else {
            st.spec.working_dir.clone()
        };
        let op = Op::Exec(Box::new(ExecOp {
            args: args.clone(),
            env,
            cwd,
            user: st.spec.user.clone(),
            network,
            security: match run.security {
                builder_frontend::Security::Sandbox => builder_graph::Security::Sandbox,
                builder_frontend::Security::Insecure => builder_graph::Security::Insecure,
            },
            mounts,
            secret_env,
            extra_hosts: self.options.extra_hosts.clone(),
            shm_size: self.options.shm_size,
            ulimits: self.options.ulimits.clone(),
            hostname: self
                .options
                .build_args
                .get(SANDBOX_HOSTNAME_ARG)
                .filter(|name| !name.is_empty())
                .cloned(),
            platform: (!Platform::host().matches(&st.spec.platform))
                .then(|| st.spec.platform.to_string()),
            proxy_env,
        }));
        let prefix = if history_args.is_empty() {
            String::new()
        } else {
            format!("|{} {} ", history_args.len(), history_args.join(" "))
        };
        let history = format!("RUN {prefix}{} # buildkit", args.join(" "));
        let name = st.step_name(&self.display_text(st, inst));
        let v = self.graph.add(Vertex {
            op,
            inputs,
            name,
            lines: Some(lines(inst)),
        });
        st.vertex = v;
        st.push_layer_history(history, v);
        Ok(())
    }

    /// A RUN asking for a privilege the user did not grant with `--allow` is refused, naming
    /// the line and the flag, as BuildKit refuses a solve that needs a missing entitlement.
    pub(super) fn check_entitlements(&self, run: &Run, line: usize) -> Result<(), ConvertError> {
        let granted = self.options.entitlements;
        if run.security == builder_frontend::Security::Insecure && !granted.security_insecure {
            return Err(self.error(
                line,
                "RUN --security=insecure needs the security.insecure entitlement: pass --allow security.insecure to grant it",
            ));
        }
        if run.network == builder_frontend::NetworkMode::Host && !granted.network_host {
            return Err(self.error(
                line,
                "RUN --network=host needs the network.host entitlement: pass --allow network.host to grant it",
            ));
        }
        Ok(())
    }

    pub(super) fn exec_mount(
        &mut self,
        st: &StageBuild,
        mount: &builder_frontend::Mount,
        inputs: &mut Vec<VertexId>,
        line: usize,
    ) -> Result<ExecMount, ConvertError> {
        use builder_frontend::Mount as M;
        let resolve_target = |t: &str| join_path(&st.spec.working_dir, t);
        Ok(match mount {
            M::Bind {
                target,
                source,
                from,
                read_write,
            } => {
                let v = match from {
                    Some(from) => {
                        self.source_for_from(from, st, line, FromReader::Mount(target))?
                            .0
                    }
                    None => self.context_vertex(),
                };
                inputs.push(v);
                ExecMount {
                    target: resolve_target(target),
                    kind: ExecMountKind::Input {
                        input: inputs.len() - 1,
                        source: source.clone().unwrap_or_else(|| "/".into()),
                        read_write: *read_write,
                    },
                }
            }
            M::Cache {
                target,
                id,
                sharing,
                mode,
                uid,
                gid,
                read_only,
                from,
                source,
            } => {
                let written_target = target;
                let target = resolve_target(target);
                let seed = match from {
                    Some(from) => {
                        let reader = FromReader::Mount(written_target);
                        inputs.push(self.source_for_from(from, st, line, reader)?.0);
                        Some(CacheSeed {
                            input: inputs.len() - 1,
                            source: source.clone().unwrap_or_else(|| "/".into()),
                        })
                    }
                    // Without `from`, BuildKit seeds from an empty image: `source` is then a
                    // directory of the cache itself, which no build of ours has asked for yet.
                    None if source
                        .as_deref()
                        .is_some_and(|s| !builder_rootpath::clean_rel(s).is_empty()) =>
                    {
                        return Err(self.error(
                            line,
                            "a cache mount's source= needs from= (a stage or image to seed the cache with)",
                        ));
                    }
                    None => None,
                };
                ExecMount {
                    kind: ExecMountKind::Cache {
                        id: {
                            let id = id.clone().unwrap_or_else(|| target.clone());
                            // Without a namespace the id stays as it is, so caches made
                            // before keep being found.
                            match self.options.build_args.get(CACHE_MOUNT_NS_ARG) {
                                Some(ns) if !ns.is_empty() => format!("{ns}/{id}"),
                                _ => id,
                            }
                        },
                        sharing: match sharing {
                            builder_frontend::CacheSharing::Shared => {
                                builder_graph::CacheSharing::Shared
                            }
                            builder_frontend::CacheSharing::Private => {
                                builder_graph::CacheSharing::Private
                            }
                            builder_frontend::CacheSharing::Locked => {
                                builder_graph::CacheSharing::Locked
                            }
                        },
                        mode: mode.unwrap_or(0o755),
                        uid: uid.unwrap_or(0),
                        gid: gid.unwrap_or(0),
                        read_only: *read_only,
                        seed,
                    },
                    target,
                }
            }
            M::Tmpfs { target, size } => ExecMount {
                target: resolve_target(target),
                kind: ExecMountKind::Tmpfs { size: *size },
            },
            M::Secret {
                id,
                target,
                required,
                mode,
                uid,
                gid,
                env: _,
            } => {
                let target = target
                    .clone()
                    .unwrap_or_else(|| format!("/run/secrets/{id}"));
                ExecMount {
                    target: resolve_target(&target),
                    kind: ExecMountKind::Secret {
                        id: id.clone(),
                        required: *required,
                        mode: mode.unwrap_or(0o400),
                        uid: uid.unwrap_or(0),
                        gid: gid.unwrap_or(0),
                    },
                }
            }
            M::Ssh {
                id,
                target,
                required,
                mode,
                uid,
                gid,
            } => ExecMount {
                // Without a target, dispatch_run numbers it like BuildKit.
                target: target.as_deref().map(resolve_target).unwrap_or_default(),
                kind: ExecMountKind::Ssh {
                    id: id.clone(),
                    required: *required,
                    mode: mode.unwrap_or(0o600),
                    uid: uid.unwrap_or(0),
                    gid: gid.unwrap_or(0),
                },
            },
        })
    }
}

/// BuildKit's defaults for ssh mounts: the n-th one without a target is
/// `/run/buildkit/ssh_agent.<n>`, and `SSH_AUTH_SOCK` points at the first one unless the step's
/// environment already sets it.
pub(super) fn name_ssh_sockets(mounts: &mut [ExecMount], env: &mut Vec<String>) {
    let mut first = None;
    for (n, mount) in mounts
        .iter_mut()
        .filter(|m| matches!(m.kind, ExecMountKind::Ssh { .. }))
        .enumerate()
    {
        if mount.target.is_empty() {
            mount.target = format!("/run/buildkit/ssh_agent.{n}");
        }
        first.get_or_insert_with(|| mount.target.clone());
    }
    if let Some(first) = first
        && !env.iter().any(|kv| kv.starts_with("SSH_AUTH_SOCK="))
    {
        env.push(format!("SSH_AUTH_SOCK={first}"));
    }
}

/// BuildKit's proxy environment for RUN from the build args: a name matches whatever its case
/// (`Http_Proxy` too), the lowercase spelling wins over the uppercase one (the last in byte
/// order), and each value is given under both spellings, `HTTP_PROXY` and `http_proxy`.
pub(super) fn proxy_env(build_args: &BTreeMap<String, String>) -> Vec<String> {
    let mut values: [Option<&str>; 5] = [None; 5];
    let names = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "FTP_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
    ];
    for (k, v) in build_args {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(k)) {
            values[i] = Some(v);
        }
    }
    let mut env = Vec::new();
    for (name, value) in names.iter().zip(values) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            env.push(format!("{name}={v}"));
            env.push(format!("{}={v}", name.to_ascii_lowercase()));
        }
    }
    env
}

pub(super) fn run_args(run: &Run, spec: &ImageSpec) -> Vec<String> {
    match &run.command {
        CommandForm::Exec(args) => args.clone(),
        CommandForm::Shell(cmd) => {
            // Heredocs go to the shell as written (POSIX shells implement them); a command that
            // is only `<<EOF` runs the heredoc's body as the script.
            let mut args = spec.shell_or_default();
            args.push(run.script().unwrap_or_else(|| cmd.clone()));
            args
        }
    }
}
