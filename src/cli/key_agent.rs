//! An ssh-agent of builder's own for `--ssh ID=KEYFILE[,KEYFILE...]`, as buildx loads key files
//! into an in-process agent: it lists the keys and signs with them, and refuses everything else
//! (adding, removing, locking, extensions). It listens on a socket in a private temp directory
//! for the build's duration; RUN steps reach it through the solver's relay like any agent.
//!
//! Ed25519 and ECDSA keys in OpenSSH format (what `ssh-keygen` writes). RSA key files are refused
//! (see Cargo.toml: the rsa crate's signing is not constant-time, and a RUN step could time it),
//! and so are keys encrypted with a passphrase (nothing here can ask for it): both work through
//! a real ssh-agent's socket.

use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use builder_solver::ssh_agent::{
    AgentSocket, FAILURE, REQUEST_IDENTITIES, SIGN_REQUEST, read_message, write_message,
};

use signature::Signer;
use ssh_key::{Algorithm, PrivateKey};

// The agent protocol's answers (draft-miller-ssh-agent); requests and framing are the relay's.
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_RESPONSE: u8 = 14;
/// buildx reads at most this much of a key file.
const MAX_KEY_FILE: u64 = 100 * 1024;

/// A loaded key: its public blob (how clients name it) and its comment.
struct Key {
    private: PrivateKey,
    blob: Vec<u8>,
    comment: String,
}

/// Reads an OpenSSH private key file, refusing what the agent cannot use, with the reason.
pub fn load_key(path: &Path) -> Result<PrivateKey, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = Vec::new();
    file.take(MAX_KEY_FILE)
        .read_to_end(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let key = PrivateKey::from_openssh(&text).map_err(|e| {
        format!(
            "{} is neither an agent socket nor an OpenSSH private key ({e}); keys in PEM or PKCS#8 form can be converted with ssh-keygen -p -f FILE",
            path.display()
        )
    })?;
    if key.is_encrypted() {
        return Err(format!(
            "{} is encrypted with a passphrase, which builder cannot ask for: ssh-add it to an ssh-agent and pass the agent's socket (--ssh ID=$SSH_AUTH_SOCK)",
            path.display()
        ));
    }
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => Ok(key),
        other => Err(format!(
            "{}: {} key files are not supported (Ed25519 and ECDSA are): ssh-add it to an ssh-agent and pass the agent's socket (--ssh ID=$SSH_AUTH_SOCK)",
            path.display(),
            other.as_str()
        )),
    }
}

/// The agent; stops (and its socket disappears) when dropped.
pub struct KeyAgent {
    served: AgentSocket,
}

impl KeyAgent {
    pub fn start(keys: Vec<PrivateKey>) -> io::Result<KeyAgent> {
        let keys = keys
            .into_iter()
            .map(|private| {
                let blob = private.public_key().to_bytes().map_err(io::Error::other)?;
                let comment = private.comment().to_string();
                Ok(Key {
                    private,
                    blob,
                    comment,
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        // tempfile makes the directory 0700: only this user reaches the socket.
        let dir = tempfile::Builder::new()
            .prefix("builder-agent-")
            .tempdir()?;
        let socket = dir.path().join("agent");
        let listener = UnixListener::bind(&socket)?;
        let served = AgentSocket::serve(dir, socket, listener, "ssh-key-agent", move |conn| {
            serve(conn, &keys)
        })?;
        Ok(KeyAgent { served })
    }

    pub fn socket(&self) -> &Path {
        self.served.socket()
    }
}

/// Answers requests on one connection until the client closes it (or sends garbage).
fn serve(mut conn: UnixStream, keys: &[Key]) -> io::Result<()> {
    while let Some(message) = read_message(&mut conn)? {
        let answer = answer(keys, &message).unwrap_or_else(|| vec![FAILURE]);
        write_message(&mut conn, &answer)?;
    }
    Ok(())
}

/// The reply to one request, or None for a failure.
fn answer(keys: &[Key], message: &[u8]) -> Option<Vec<u8>> {
    let (&kind, mut body) = message.split_first()?;
    match kind {
        REQUEST_IDENTITIES => {
            let mut out = vec![IDENTITIES_ANSWER];
            out.extend_from_slice(&(keys.len() as u32).to_be_bytes());
            for key in keys {
                put_string(&mut out, &key.blob);
                put_string(&mut out, key.comment.as_bytes());
            }
            Some(out)
        }
        SIGN_REQUEST => {
            let blob = take_string(&mut body)?;
            let data = take_string(&mut body)?;
            // The flags only choose among RSA hashes; Ed25519 and ECDSA have one each.
            let key = keys.iter().find(|k| k.blob == blob)?;
            let signature: ssh_key::Signature = key.private.try_sign(data).ok()?;
            let mut sig = Vec::new();
            put_string(&mut sig, signature.algorithm().as_str().as_bytes());
            put_string(&mut sig, signature.as_bytes());
            let mut out = vec![SIGN_RESPONSE];
            put_string(&mut out, &sig);
            Some(out)
        }
        _ => None,
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn take_string<'a>(body: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = body.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return None;
    }
    let (s, rest) = rest.split_at(len);
    *body = rest;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    fn have(tool: &str) -> bool {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn keygen(dir: &Path, name: &str, kind: &[&str], passphrase: &str) -> PathBuf {
        let path = dir.join(name);
        let out = Command::new("ssh-keygen")
            .args(kind)
            .args(["-q", "-N", passphrase, "-C", name, "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        path
    }

    /// A request to the agent, the reply's bytes.
    fn ask(socket: &Path, request: &[u8]) -> Vec<u8> {
        let mut conn = UnixStream::connect(socket).unwrap();
        write_message(&mut conn, request).unwrap();
        read_message(&mut conn).unwrap().unwrap()
    }

    #[test]
    fn lists_signs_and_refuses_the_rest_as_openssh_sees_it() {
        if !have("ssh-keygen") || !have("ssh-add") {
            eprintln!("SKIP: openssh-client (ssh-keygen, ssh-add) is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ed = keygen(dir.path(), "ed", &["-t", "ed25519"], "");
        let ec = keygen(dir.path(), "ec", &["-t", "ecdsa", "-b", "384"], "");
        let keys = vec![load_key(&ed).unwrap(), load_key(&ec).unwrap()];
        let agent = KeyAgent::start(keys).unwrap();

        // ssh-add -l lists both keys with ssh-keygen's fingerprints.
        let out = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", agent.socket())
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        for key in [&ed, &ec] {
            let fp = Command::new("ssh-keygen")
                .arg("-lf")
                .arg(key)
                .output()
                .unwrap();
            let fp = String::from_utf8_lossy(&fp.stdout);
            let fp = fp.split_whitespace().nth(1).unwrap();
            assert!(listed.contains(fp), "{listed} lacks {fp}");
        }

        // Signatures made through the agent verify with OpenSSH.
        for key in [&ed, &ec] {
            let data = dir.path().join("data");
            std::fs::write(&data, "signed through the agent").unwrap();
            let mut pubkey = key.as_os_str().to_owned();
            pubkey.push(".pub");
            let out = Command::new("ssh-keygen")
                .args(["-Y", "sign", "-n", "test", "-f"])
                .arg(&pubkey)
                .arg(&data)
                .env("SSH_AUTH_SOCK", agent.socket())
                .output()
                .unwrap();
            assert!(out.status.success(), "sign with {}: {out:?}", key.display());
            let mut sig = data.as_os_str().to_owned();
            sig.push(".sig");
            let out = Command::new("sh")
                .arg("-c")
                .arg("ssh-keygen -Y check-novalidate -n test -s \"$1\" < \"$2\"")
                .arg("sh")
                .arg(&sig)
                .arg(&data)
                .output()
                .unwrap();
            assert!(out.status.success(), "verify: {out:?}");
            std::fs::remove_file(&sig).unwrap();
        }

        // Adding, removing and locking are refused.
        let out = Command::new("ssh-add")
            .arg("-D")
            .env("SSH_AUTH_SOCK", agent.socket())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{out:?}");
        assert_eq!(ask(agent.socket(), &[17]), vec![FAILURE], "add identity");
        assert_eq!(
            ask(agent.socket(), &[22, 0, 0, 0, 0]),
            vec![FAILURE],
            "lock"
        );
        // A sign request for a key it does not hold fails.
        let mut req = vec![SIGN_REQUEST];
        put_string(&mut req, b"no such key");
        put_string(&mut req, b"data");
        req.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(ask(agent.socket(), &req), vec![FAILURE]);

        let socket = agent.socket().to_path_buf();
        drop(agent);
        assert!(!socket.exists(), "the socket goes away with the agent");
    }

    #[test]
    fn refuses_keys_it_cannot_use_with_the_reason() {
        if !have("ssh-keygen") {
            eprintln!("SKIP: openssh-client (ssh-keygen) is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let locked = keygen(dir.path(), "locked", &["-t", "ed25519"], "secret words");
        assert!(load_key(&locked).unwrap_err().contains("passphrase"));
        let rsa = keygen(dir.path(), "rsa", &["-t", "rsa", "-b", "2048"], "");
        assert!(
            load_key(&rsa)
                .unwrap_err()
                .contains("ssh-rsa key files are not supported")
        );
        let text = dir.path().join("text");
        std::fs::write(&text, "not a key").unwrap();
        assert!(
            load_key(&text)
                .unwrap_err()
                .contains("neither an agent socket nor an OpenSSH private key")
        );
    }
}
