//! Each instruction applied to the stage: docker's dispatch rules for the image config and
//! the steps that make layers.

use super::*;

impl<'a> Converter<'a> {
    pub(super) fn dispatch(
        &mut self,
        st: &mut StageBuild,
        inst: &Instruction,
    ) -> Result<(), ConvertError> {
        let line = inst.location.start_line;
        let scope = ScopeEnv {
            env: &st.spec.env,
            args: &st.args,
        };
        // An ARG's default is evaluated only when no --build-arg gives the value, as in
        // BuildKit: `ARG FOO=${FOO:?}` with `--build-arg FOO=x` is no error. The history then
        // shows the value given, as BuildKit's does.
        let overridden = |name: &str| self.options.build_args.get(name).cloned();
        let (expanded, used) = match &inst.kind {
            InstructionKind::Arg(decls) if decls.iter().any(|d| overridden(&d.name).is_some()) => {
                let mut unevaluated = inst.clone();
                if let InstructionKind::Arg(decls) = &mut unevaluated.kind {
                    for d in decls.iter_mut().filter(|d| overridden(&d.name).is_some()) {
                        d.default = None;
                    }
                }
                let (mut expanded, used) = unevaluated.expand(&self.lexer, &scope)?;
                if let InstructionKind::Arg(decls) = &mut expanded.kind {
                    for d in decls.iter_mut() {
                        if let Some(v) = overridden(&d.name) {
                            d.default = Some(v);
                        }
                    }
                }
                (expanded, used)
            }
            _ => inst.expand(&self.lexer, &scope)?,
        };
        for name in &used {
            if st.args.iter().any(|(k, _)| k == name) {
                self.consumed_args.insert(name.clone());
            }
        }
        let history_text = history_text(&expanded);
        match &expanded.kind {
            InstructionKind::Env(pairs) => {
                for KeyValue { key, value } in pairs {
                    st.spec.env_set(key, value);
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::Arg(decls) => {
                for decl in decls {
                    self.consumed_args.insert(decl.name.clone());
                    let from_cli = self.options.build_args.get(&decl.name).cloned();
                    let from_meta = || {
                        self.meta_args
                            .iter()
                            .rev()
                            .find(|(k, _)| *k == decl.name)
                            .map(|(_, v)| v.clone())
                    };
                    let value = from_cli.or_else(|| decl.default.clone()).or_else(from_meta);
                    match st.declared_args.iter_mut().find(|(k, _)| *k == decl.name) {
                        Some(slot) => slot.1 = value.clone(),
                        None => st.declared_args.push((decl.name.clone(), value.clone())),
                    }
                    let Some(value) = value else { continue };
                    // A redeclared ARG keeps its place: BuildKit's RUN history lists each
                    // name once, where it was first declared (`|2 foo=bar2 bar=123`).
                    match st.args.iter_mut().find(|(k, _)| *k == decl.name) {
                        Some(slot) => slot.1 = value,
                        None => st.args.push((decl.name.clone(), value)),
                    }
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::Label(pairs) => {
                for KeyValue { key, value } in pairs {
                    st.spec.labels.insert(key.clone(), value.clone());
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::Maintainer(name) => {
                st.spec.author = Some(name.clone());
                st.commit_metadata(history_text);
            }
            InstructionKind::Expose(ports) => {
                for port in ports {
                    st.spec
                        .exposed_ports
                        .insert(normalize_port(port).map_err(|e| self.error(line, e))?);
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::Volume(paths) => {
                for path in paths {
                    if path.trim().is_empty() {
                        return Err(self.error(line, "VOLUME specified can not be an empty string"));
                    }
                    st.spec.volumes.insert(path.clone());
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::User(user) => {
                st.spec.user = user.clone();
                st.commit_metadata(history_text);
            }
            InstructionKind::StopSignal(signal) => {
                validate_signal(signal).map_err(|e| self.error(line, e))?;
                st.spec.stop_signal = Some(signal.clone());
                st.commit_metadata(history_text);
            }
            InstructionKind::Shell(shell) => {
                st.spec.shell = Some(shell.clone());
                st.commit_metadata(history_text);
            }
            InstructionKind::Onbuild(trigger) => {
                st.spec.on_build.push(trigger.clone());
                st.commit_metadata(history_text);
            }
            InstructionKind::Healthcheck(health) => {
                st.spec.healthcheck = Some(health_config(health, &st.spec));
                st.commit_metadata(history_text);
            }
            InstructionKind::Cmd(form) => {
                st.spec.cmd = Some(command_args(form, &st.spec));
                st.spec.args_escaped = false;
                st.cmd_set = true;
                st.commit_metadata(history_text);
            }
            InstructionKind::Entrypoint(form) => {
                st.spec.entrypoint = Some(command_args(form, &st.spec));
                // docker: a new ENTRYPOINT resets a CMD inherited from the base image.
                if !st.cmd_set {
                    st.spec.cmd = None;
                }
                st.commit_metadata(history_text);
            }
            InstructionKind::Workdir(dir) => {
                let path = join_path(&st.spec.working_dir, dir);
                st.spec.working_dir = path.clone();
                // As BuildKit: the history has the absolute directory, and `WORKDIR /` makes
                // no step (no number taken) and no layer.
                let history = format!("WORKDIR {path}");
                if path == "/" {
                    st.step = st.steps_done;
                    st.commit_metadata(history);
                    return Ok(());
                }
                let owner = (!st.spec.user.is_empty()).then(|| st.spec.user.clone());
                let actions = vec![FileAction::Mkdir {
                    path,
                    mode: 0o755,
                    owner,
                }];
                let name = st.step_name(&self.display_text(st, inst));
                let step = (name, inst);
                st.commit_file(&mut self.graph, actions, vec![], history, step, false);
            }
            InstructionKind::Copy(copy) => self.dispatch_copy(st, inst, copy, history_text)?,
            InstructionKind::Add(add) => self.dispatch_add(st, inst, add, history_text)?,
            InstructionKind::Run(run) => self.dispatch_run(st, inst, run)?,
        }
        Ok(())
    }
}

/// docker's path joining for WORKDIR and relative destinations: relative to the current dir,
/// cleaned, always absolute.
pub fn join_path(base: &str, path: &str) -> String {
    let combined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", if base.is_empty() { "/" } else { base }, path)
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in combined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The argv a CMD/ENTRYPOINT/HEALTHCHECK form stands for.
pub(super) fn command_args(form: &CommandForm, spec: &ImageSpec) -> Vec<String> {
    match form {
        CommandForm::Exec(args) => args.clone(),
        CommandForm::Shell(cmd) => {
            let mut args = spec.shell_or_default();
            args.push(cmd.clone());
            args
        }
    }
}

pub(super) fn health_config(health: &Healthcheck, spec: &ImageSpec) -> HealthConfig {
    match health {
        Healthcheck::None => HealthConfig {
            test: vec!["NONE".into()],
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        },
        Healthcheck::Check {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => {
            let _ = spec;
            let test = match test {
                CommandForm::Exec(args) => std::iter::once("CMD".to_string())
                    .chain(args.iter().cloned())
                    .collect(),
                CommandForm::Shell(cmd) => vec!["CMD-SHELL".into(), cmd.clone()],
            };
            HealthConfig {
                test,
                interval: *interval,
                timeout: *timeout,
                start_period: *start_period,
                start_interval: *start_interval,
                retries: *retries,
            }
        }
    }
}

/// `80` → `80/tcp`, `53/UDP` → `53/udp`; ranges are kept as docker keeps them.
pub(super) fn normalize_port(port: &str) -> Result<String, String> {
    let (num, proto) = match port.split_once('/') {
        Some((n, p)) => (n, p.to_lowercase()),
        None => (port, "tcp".to_string()),
    };
    let valid_num = |n: &str| n.parse::<u16>().is_ok();
    let ok = match num.split_once('-') {
        Some((a, b)) => valid_num(a) && valid_num(b),
        None => valid_num(num),
    };
    if !ok || !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!(
            "invalid port {port:?}: expected PORT[/tcp|udp|sctp]"
        ));
    }
    Ok(format!("{num}/{proto}"))
}

pub(super) fn validate_signal(signal: &str) -> Result<(), String> {
    let upper = signal.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    let numeric = signal
        .parse::<u32>()
        .map(|n| (1..=64).contains(&n))
        .unwrap_or(false);
    let realtime = name.starts_with("RTMIN") || name.starts_with("RTMAX");
    if numeric || realtime || NAMES.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "invalid STOPSIGNAL {signal:?}: not a signal name or number"
        ))
    }
}

/// What the history records for a metadata instruction: its name and expanded arguments.
pub(super) fn history_text(inst: &Instruction) -> String {
    let quote_list = |v: &[String]| {
        format!(
            "[{}]",
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    let form = |f: &CommandForm| match f {
        CommandForm::Exec(a) => quote_list(a),
        CommandForm::Shell(s) => s.clone(),
    };
    let kv = |pairs: &[KeyValue]| {
        pairs
            .iter()
            .map(|p| format!("{}={}", p.key, p.value))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match &inst.kind {
        InstructionKind::Env(p) => format!("ENV {}", kv(p)),
        InstructionKind::Label(p) => format!("LABEL {}", kv(p)),
        InstructionKind::Arg(d) => format!(
            "ARG {}",
            d.iter()
                .map(|d| match &d.default {
                    Some(v) => format!("{}={}", d.name, v),
                    None => d.name.clone(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        ),
        InstructionKind::Cmd(f) => format!("CMD {}", form(f)),
        InstructionKind::Entrypoint(f) => format!("ENTRYPOINT {}", form(f)),
        // BuildKit prints the instruction's ports as a Go list, sorted as written and
        // normalized: `EXPOSE [1234/udp 2375/tcp]`.
        InstructionKind::Expose(p) => {
            let mut ports = p.clone();
            ports.sort();
            let ports: Vec<String> = ports
                .iter()
                .map(|port| normalize_port(port).unwrap_or_else(|_| port.clone()))
                .collect();
            format!("EXPOSE [{}]", ports.join(" "))
        }
        InstructionKind::Volume(p) => format!("VOLUME {}", quote_list(p)),
        InstructionKind::User(u) => format!("USER {u}"),
        InstructionKind::Workdir(w) => format!("WORKDIR {w}"),
        InstructionKind::StopSignal(s) => format!("STOPSIGNAL {s}"),
        InstructionKind::Shell(s) => format!("SHELL {}", quote_list(s)),
        InstructionKind::Onbuild(t) => format!("ONBUILD {t}"),
        InstructionKind::Maintainer(m) => format!("MAINTAINER {m}"),
        // As BuildKit's dispatchCopy writes it: the keyword, --parents, --chown and --chmod (not
        // --from, --link or --exclude), the expanded sources, heredocs as `<<NAME`, the
        // destination.
        InstructionKind::Copy(c) => copy_history(
            "COPY",
            c.parents,
            c.chown.as_deref(),
            c.chmod.as_deref(),
            &c.sources,
            &c.heredocs,
            &c.dest,
        ),
        InstructionKind::Add(a) => copy_history(
            "ADD",
            false,
            a.chown.as_deref(),
            a.chmod.as_deref(),
            &a.sources,
            &a.heredocs,
            &a.dest,
        ),
        InstructionKind::Healthcheck(_) | InstructionKind::Run(_) => {
            inst.original.trim().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn join_path_follows_docker() {
        assert_eq!(join_path("", "app"), "/app");
        assert_eq!(join_path("/a", "b/../c"), "/a/c");
        assert_eq!(join_path("/a", "/x/"), "/x");
        assert_eq!(join_path("/", ".."), "/");
    }

    #[test]
    pub(super) fn ports_are_normalized() {
        assert_eq!(normalize_port("80").unwrap(), "80/tcp");
        assert_eq!(normalize_port("53/UDP").unwrap(), "53/udp");
        assert_eq!(normalize_port("8000-8010").unwrap(), "8000-8010/tcp");
        assert!(normalize_port("http").is_err());
    }

    #[test]
    pub(super) fn signals_are_validated() {
        assert!(validate_signal("SIGTERM").is_ok());
        assert!(validate_signal("9").is_ok());
        assert!(validate_signal("SIGRTMIN+3").is_ok());
        assert!(validate_signal("SIGNOPE").is_err());
    }
}
