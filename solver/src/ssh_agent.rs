//! `RUN --mount=type=ssh`: a step talks to the user's ssh-agent through a socket of its own.
//!
//! The agent's socket is not bind-mounted itself: its owner and mode belong to the host user,
//! and a step running as `USER 1000` could not open it. Instead the builder listens on a fresh
//! socket (owned and moded as the mount asks, BuildKit's 0600 root by default) and relays each
//! connection to the agent, as BuildKit's session proxy does. The step sees only that socket;
//! the agent's keys never leave the agent.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Longest path a unix socket address holds (sun_path is 108 bytes with the NUL).
const SOCKET_PATH_MAX: usize = 107;

/// A listening socket relaying to an ssh-agent; stops (and disappears) when dropped.
pub struct AgentForwarder {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl AgentForwarder {
    /// Listens in a new directory under `scratch` (or the system temp dir when that path would
    /// be too long for a socket address), relaying to the agent at `upstream`.
    pub fn start(
        upstream: &Path,
        scratch: &Path,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> io::Result<AgentForwarder> {
        let mut dir = tempfile::Builder::new()
            .prefix("ssh-")
            .tempdir_in(scratch)?;
        if dir.path().join("agent").as_os_str().len() > SOCKET_PATH_MAX {
            dir = tempfile::Builder::new().prefix("builder-ssh-").tempdir()?;
        }
        let socket = dir.path().join("agent");
        let listener = UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode))?;
        let meta = std::fs::metadata(&socket)?;
        let (uid, gid) = builder_snapshot::ids::to_disk(uid, gid);
        if (meta.uid(), meta.gid()) != (uid, gid) {
            std::os::unix::fs::chown(&socket, Some(uid), Some(gid))?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (stop, upstream) = (stop.clone(), upstream.to_path_buf());
            std::thread::Builder::new()
                .name("ssh-agent-relay".into())
                .spawn(move || accept_loop(&listener, &upstream, &stop))?
        };
        Ok(AgentForwarder {
            _dir: dir,
            socket,
            stop,
            accept: Some(accept),
        })
    }

    /// The socket to mount into the step.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for AgentForwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the loop sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &UnixListener, upstream: &Path, stop: &AtomicBool) {
    for client in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        // An agent that went away just fails this connection, as it would for ssh itself.
        let Ok(agent) = UnixStream::connect(upstream) else {
            continue;
        };
        let _ = relay(client, agent);
    }
}

/// Copies both ways on two threads; each direction closes its write side when its reader ends,
/// so request/response protocols like the agent's finish cleanly.
fn relay(client: UnixStream, agent: UnixStream) -> io::Result<()> {
    let pairs = [(client.try_clone()?, agent.try_clone()?), (agent, client)];
    for (mut from, mut to) in pairs {
        std::thread::Builder::new()
            .name("ssh-agent-copy".into())
            .spawn(move || {
                let _ = io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Write);
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn relays_a_request_and_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("real-agent");
        let agent = UnixListener::bind(&agent_path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = agent.accept().unwrap();
            let mut request = Vec::new();
            conn.read_to_end(&mut request).unwrap();
            conn.write_all(&[b"answer to ".as_slice(), &request].concat())
                .unwrap();
        });
        let me = std::fs::metadata(dir.path()).unwrap();
        let fwd =
            AgentForwarder::start(&agent_path, dir.path(), 0o600, me.uid(), me.gid()).unwrap();
        let meta = std::fs::metadata(fwd.socket()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let mut conn = UnixStream::connect(fwd.socket()).unwrap();
        conn.write_all(b"list keys").unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "answer to list keys");
        server.join().unwrap();
        let socket = fwd.socket().to_path_buf();
        drop(fwd);
        assert!(!socket.exists(), "the socket goes away with the forwarder");
    }
}
