//! `RUN --mount=type=ssh`: a step talks to the user's ssh-agent through a socket of its own.
//!
//! The agent's socket is not bind-mounted itself: its owner and mode belong to the host user,
//! and a step running as `USER 1000` could not open it. Instead the builder listens on a fresh
//! socket (owned and moded as the mount asks, BuildKit's 0600 root by default) and relays each
//! connection to the agent, as BuildKit's session proxy does. The step sees only that socket;
//! the agent's keys never leave the agent. As BuildKit's read-only agent, the relay passes on
//! only the requests that list keys and sign with them: a step cannot add, remove or lock the
//! user's keys, nor use extensions.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Longest path a unix socket address holds (sun_path is 108 bytes with the NUL).
const SOCKET_PATH_MAX: usize = 107;

/// A socket in a private directory whose connections a thread hands to `serve`, each on a
/// thread of its own; stops (and disappears with its directory) when dropped. The relay below
/// and the CLI's key-file agent are both served this way.
pub struct AgentSocket {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl AgentSocket {
    /// Serves `listener` (bound at `socket`, inside `dir`); `name` names the threads.
    pub fn serve(
        dir: tempfile::TempDir,
        socket: PathBuf,
        listener: UnixListener,
        name: &str,
        serve: impl Fn(UnixStream) -> io::Result<()> + Send + Sync + 'static,
    ) -> io::Result<AgentSocket> {
        let stop = Arc::new(AtomicBool::new(false));
        let conn_name = format!("{name}-conn");
        let accept = {
            let stop = stop.clone();
            let serve = Arc::new(serve);
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(conn) = conn else { continue };
                        let serve = serve.clone();
                        let _ = std::thread::Builder::new()
                            .name(conn_name.clone())
                            .spawn(move || serve(conn));
                    }
                })?
        };
        Ok(AgentSocket {
            _dir: dir,
            socket,
            stop,
            accept: Some(accept),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for AgentSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the loop sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A listening socket relaying to an ssh-agent; stops (and disappears) when dropped.
pub struct AgentForwarder {
    served: AgentSocket,
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
        let upstream = upstream.to_path_buf();
        let served = AgentSocket::serve(dir, socket, listener, "ssh-agent-relay", move |client| {
            // An agent that went away just fails this connection, as it would for ssh itself.
            let agent = UnixStream::connect(&upstream)?;
            relay_read_only(client, agent)
        })?;
        Ok(AgentForwarder { served })
    }

    /// The socket to mount into the step.
    pub fn socket(&self) -> &Path {
        self.served.socket()
    }
}

// The agent protocol's messages (draft-miller-ssh-agent) the relay deals with.
pub const FAILURE: u8 = 5;
pub const REQUEST_IDENTITIES: u8 = 11;
pub const SIGN_REQUEST: u8 = 13;
/// OpenSSH's own limit on one agent message.
const MAX_MESSAGE: usize = 256 * 1024;

/// Request by request: listing and signing go to the agent and its answer comes back; anything
/// else is answered with a failure without reaching the agent.
fn relay_read_only(mut client: UnixStream, mut agent: UnixStream) -> io::Result<()> {
    while let Some(request) = read_message(&mut client)? {
        if matches!(request.first(), Some(&(REQUEST_IDENTITIES | SIGN_REQUEST))) {
            write_message(&mut agent, &request)?;
            let answer = read_message(&mut agent)?.ok_or(io::ErrorKind::UnexpectedEof)?;
            write_message(&mut client, &answer)?;
        } else {
            write_message(&mut client, &[FAILURE])?;
        }
    }
    Ok(())
}

/// One length-prefixed message; None when the peer closed the connection between messages.
pub fn read_message(from: &mut UnixStream) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut len = [0u8; 4];
    match from.read_exact(&mut len) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "ssh-agent message of a bad length",
        ));
    }
    let mut message = vec![0u8; len];
    from.read_exact(&mut message)?;
    Ok(Some(message))
}

pub fn write_message(to: &mut UnixStream, message: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut framed = (message.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    to.write_all(&framed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_listing_and_signing_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("real-agent");
        let agent = UnixListener::bind(&agent_path).unwrap();
        // A fake agent answering each request with "answer to " and the request.
        let server = std::thread::spawn(move || {
            let (mut conn, _) = agent.accept().unwrap();
            let mut seen = Vec::new();
            while let Some(request) = read_message(&mut conn).unwrap() {
                seen.push(request[0]);
                write_message(&mut conn, &[b"answer to ".as_slice(), &request].concat()).unwrap();
            }
            seen
        });
        let me = std::fs::metadata(dir.path()).unwrap();
        let fwd =
            AgentForwarder::start(&agent_path, dir.path(), 0o600, me.uid(), me.gid()).unwrap();
        let meta = std::fs::metadata(fwd.socket()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let mut conn = UnixStream::connect(fwd.socket()).unwrap();
        let mut ask = |request: &[u8]| {
            write_message(&mut conn, request).unwrap();
            read_message(&mut conn).unwrap().unwrap()
        };
        assert_eq!(ask(&[REQUEST_IDENTITIES]), b"answer to \x0b");
        assert_eq!(ask(&[SIGN_REQUEST, 1, 2]), b"answer to \x0d\x01\x02");
        // Add identity (17), remove all (19), lock (22), extension (27): refused here.
        for kind in [17, 19, 22, 27] {
            assert_eq!(ask(&[kind, 0, 0, 0, 0]), vec![FAILURE], "type {kind}");
        }
        drop(conn);
        assert_eq!(
            server.join().unwrap(),
            vec![REQUEST_IDENTITIES, SIGN_REQUEST],
            "only listing and signing reach the agent"
        );
        let socket = fwd.socket().to_path_buf();
        drop(fwd);
        assert!(!socket.exists(), "the socket goes away with the forwarder");
    }
}
