//! `build --ssh ID[=PATH[,PATH...]]`, as buildx reads it: each id is an agent socket (none given:
//! `$SSH_AUTH_SOCK`) or private key files, which builder's own agent ([`super::key_agent`])
//! serves for the build. `RUN --mount=type=ssh,id=ID` then reaches that socket.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use anyhow::Context as _;

use super::UsageError;
use super::key_agent::{KeyAgent, load_key};

/// The socket of each `--ssh` id, and the agents serving key files (stopped when dropped: keep
/// them for the build's duration).
pub struct SshAgents {
    pub sockets: BTreeMap<String, PathBuf>,
    _agents: Vec<KeyAgent>,
}

pub fn parse_ssh(specs: &[String]) -> anyhow::Result<SshAgents> {
    let mut sockets = BTreeMap::new();
    let mut agents = Vec::new();
    for spec in specs.iter().filter(|s| !s.is_empty()) {
        let (id, paths) = match spec.split_once('=') {
            Some((id, paths)) => (id, paths.split(',').collect::<Vec<_>>()),
            None => (spec.as_str(), Vec::new()),
        };
        // BuildKit's default id when none is written.
        let id = if id.is_empty() { "default" } else { id };
        if sockets.contains_key(id) {
            return Err(UsageError(format!("--ssh {spec}: id {id:?} is given twice")).into());
        }
        let paths: Vec<PathBuf> = match paths.as_slice() {
            [] | [""] => {
                let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                    UsageError(format!(
                        "--ssh {spec}: SSH_AUTH_SOCK is not set; start ssh-agent or give --ssh {id}=SOCKET (or =KEYFILE)"
                    ))
                })?;
                vec![PathBuf::from(sock)]
            }
            paths => paths.iter().map(PathBuf::from).collect(),
        };
        let mut socket = None;
        let mut keys = Vec::new();
        for path in &paths {
            let meta = std::fs::metadata(path)
                .map_err(|e| UsageError(format!("--ssh {spec}: {}: {e}", path.display())))?;
            if meta.file_type().is_socket() {
                socket = Some(path.clone());
            } else {
                keys.push(load_key(path).map_err(|e| UsageError(format!("--ssh {spec}: {e}")))?);
            }
        }
        let socket = match (socket, keys.is_empty()) {
            (Some(socket), true) if paths.len() == 1 => socket,
            (Some(_), _) => {
                return Err(UsageError(format!(
                    "--ssh {spec}: give one agent socket or key files, not both or several sockets"
                ))
                .into());
            }
            (None, _) => {
                let agent = KeyAgent::start(keys)
                    .with_context(|| format!("--ssh {spec}: starting an agent for the keys"))?;
                let socket = agent.socket().to_path_buf();
                agents.push(agent);
                socket
            }
        };
        sockets.insert(id.to_string(), socket);
    }
    Ok(SshAgents {
        sockets,
        _agents: agents,
    })
}
