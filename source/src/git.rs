//! Fetching a git ref and checking it out, with the `git` program, as BuildKit's `source/git`
//! does. The `git` program rather than gix: it speaks every transport a user's remote may use
//! (smart and dumb HTTP, git://, ssh through the user's agent), does submodules, and is what
//! BuildKit runs too, so a remote that works there works here.
//!
//! Each remote gets a bare mirror in the store (`git/mirrors/<sha256 of the URL>`), locked
//! while in use. A ref is first resolved with `ls-remote`; when the mirror already holds that
//! commit nothing is fetched (a rebuild of the same commit costs one round trip). Otherwise
//! the one ref is fetched, shallowly where the transport allows. The commit is then cloned
//! from the mirror into a fresh directory (sharing its objects), submodules are updated, and
//! `.git` is removed unless asked to keep it.
//!
//! Credentials (BuildKit's `GIT_AUTH_TOKEN`, `GIT_AUTH_HEADER` secrets) reach git only through
//! `GIT_CONFIG_*` environment variables of the git processes: never in argv (visible in `ps`),
//! never in the mirror's config, never in the store.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use fs2::FileExt;
use sha2::{Digest as _, Sha256};

use crate::git_ref::GitRef;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git source {remote}: {message}")]
    Failed { remote: String, message: String },
    #[error("git source {remote}: {context}: {source}")]
    Io {
        remote: String,
        context: String,
        source: std::io::Error,
    },
}

/// Credentials for HTTP(S) remotes, as BuildKit takes them from build secrets.
#[derive(Clone, Default)]
pub struct GitAuth {
    /// `GIT_AUTH_TOKEN` (or `GIT_AUTH_TOKEN.<host>` for this remote's host): sent as HTTP basic
    /// auth with the user `x-access-token`, as GitHub and GitLab accept tokens.
    pub token: Option<String>,
    /// `GIT_AUTH_HEADER` (or `.<host>`): the whole `Authorization` header value.
    pub header: Option<String>,
    /// `--ssh default=SOCKET`: the agent git's ssh uses for ssh remotes.
    pub ssh_auth_sock: Option<PathBuf>,
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitAuth")
            .field("token", &self.token.as_ref().map(|_| "****"))
            .field("header", &self.header.as_ref().map(|_| "****"))
            .field("ssh_auth_sock", &self.ssh_auth_sock)
            .finish()
    }
}

/// A checked-out commit: its files are at [`Checkout::context`] (the repository root, or its
/// subdirectory) until this is dropped.
#[derive(Debug)]
pub struct Checkout {
    dir: tempfile::TempDir,
    context: PathBuf,
    pub commit: String,
}

impl Checkout {
    pub fn context(&self) -> &Path {
        &self.context
    }

    /// The whole repository's checkout.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Fetches into mirrors under `git_dir` (the store's `git/`).
pub struct GitFetcher {
    git_dir: PathBuf,
    auth: GitAuth,
}

impl GitFetcher {
    pub fn new(git_dir: PathBuf, auth: GitAuth) -> GitFetcher {
        GitFetcher { git_dir, auth }
    }

    /// Resolves `source`'s ref, fetches it when the mirror lacks it, and checks it out into a
    /// new directory inside `scratch` (a directory on the store's file system).
    pub fn checkout(&self, source: &GitRef, scratch: &Path) -> Result<Checkout, GitError> {
        let url = source.fetch_url();
        let run = Runner {
            remote: redact(&url),
            url: url.clone(),
            auth: &self.auth,
        };
        let mirrors = self.git_dir.join("mirrors");
        fs::create_dir_all(&mirrors).map_err(|e| run.io("creating the mirrors directory", e))?;
        // A mirror holds one object format: a SHA-256 repository gets its own, made so.
        let (format, advertised) = remote_object_format(&run, source)?;
        let mut key = hex::encode(Sha256::digest(url.as_bytes()));
        if format == ObjectFormat::Sha256 {
            key.push_str("-sha256");
        }
        let mirror = mirrors.join(&key);
        let lock = fs::File::create(mirrors.join(format!("{key}.lock")))
            .map_err(|e| run.io("creating the mirror lock", e))?;
        lock.lock_exclusive()
            .map_err(|e| run.io("locking the mirror", e))?;
        if !mirror.join("HEAD").exists() {
            let _ = fs::remove_dir_all(&mirror);
            run.git(
                None,
                [
                    OsStr::new("init"),
                    OsStr::new("--bare"),
                    OsStr::new("--quiet"),
                    OsStr::new(format.init_flag()),
                    mirror.as_os_str(),
                ],
            )?;
        }
        let commit = self.resolve(&run, &mirror, source, advertised)?;
        if let Some(want) = &source.checksum
            && !commit.starts_with(want.as_str())
        {
            return Err(run.fail(format!("expected checksum to match {want}, got {commit}")));
        }
        let checkout = self.check_out(&run, &mirror, &commit, source, scratch)?;
        drop(lock);
        Ok(checkout)
    }

    /// The commit `source` names. `advertised` is the remote's `ls-remote` answer when it was
    /// already asked (None for a full commit id, which needs no lookup).
    fn resolve(
        &self,
        run: &Runner,
        mirror: &Path,
        source: &GitRef,
        advertised: Option<Advertised>,
    ) -> Result<String, GitError> {
        let reference = source.reference.as_deref();
        if let Some(r) = reference.filter(|r| is_full_commit(r)) {
            if !has_commit(run, mirror, r) {
                // Servers that allow fetching a commit by id take this; others (and dumb HTTP)
                // need every ref fetched.
                if run.fetch(mirror, &[r], true).is_err() {
                    run.fetch(mirror, &ALL_REFS, false)?;
                }
            }
            if !has_commit(run, mirror, r) {
                return Err(run.fail(format!("commit {r} not found")));
            }
            return Ok(r.to_string());
        }
        let advertised = match advertised {
            Some(a) => a,
            None => run.ls_remote()?,
        };
        match pick_ref(&advertised, reference) {
            Some((full_ref, commit)) => {
                if !has_commit(run, mirror, &commit) {
                    if run.fetch(mirror, &[&full_ref], true).is_err() {
                        run.fetch(mirror, &[&full_ref], false)?;
                    }
                    if !has_commit(run, mirror, &commit) {
                        return Err(run.fail(format!(
                            "fetching {full_ref} did not bring its commit {commit}"
                        )));
                    }
                }
                Ok(commit)
            }
            None => {
                // A short commit id: only a full fetch can tell which commit it is.
                let Some(r) = reference.filter(|r| r.len() >= 4 && is_hex(r)) else {
                    return Err(run.fail(format!(
                        "ref {:?} not found (no such branch, tag or ref)",
                        reference.unwrap_or("HEAD")
                    )));
                };
                run.fetch(mirror, &ALL_REFS, false)?;
                let out = run.git(
                    Some(mirror),
                    [
                        "rev-parse",
                        "--verify",
                        "--quiet",
                        &format!("{r}^{{commit}}"),
                    ],
                );
                match out {
                    Ok(o) => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
                    Err(_) => Err(run.fail(format!(
                        "ref {r:?} not found (no such branch, tag or commit)"
                    ))),
                }
            }
        }
    }

    fn check_out(
        &self,
        run: &Runner,
        mirror: &Path,
        commit: &str,
        source: &GitRef,
        scratch: &Path,
    ) -> Result<Checkout, GitError> {
        let dir = tempfile::Builder::new()
            .prefix("git-checkout-")
            .tempdir_in(scratch)
            .map_err(|e| run.io("creating the checkout directory", e))?;
        let keep = source.keep_git_dir == Some(true);
        let work = dir.path();
        // Shared objects (alternates) when .git goes away after checkout: nothing is copied.
        // A kept .git must stand on its own, so then the objects are copied (hard-linked).
        let mut clone: Vec<&OsStr> = vec![
            "clone".as_ref(),
            "--quiet".as_ref(),
            "--no-checkout".as_ref(),
        ];
        if !keep {
            clone.push("--shared".as_ref());
        }
        clone.extend([mirror.as_os_str(), work.as_os_str()]);
        run.git(None, clone)?;
        run.git(Some(work), ["checkout", "--quiet", "--detach", commit])?;
        // Relative submodule URLs resolve against the origin, which must be the real remote.
        run.git(
            Some(work),
            ["remote", "set-url", "origin", run.url.as_str()],
        )?;
        if source.submodules != Some(false) && work.join(".gitmodules").exists() {
            run.git(
                Some(work),
                [
                    "submodule",
                    "update",
                    "--init",
                    "--recursive",
                    "--depth",
                    "1",
                ],
            )
            .or_else(|_| run.git(Some(work), ["submodule", "update", "--init", "--recursive"]))?;
        }
        if keep {
            // The mirror's path is no business of the image's .git.
            run.git(
                Some(work),
                ["remote", "set-url", "origin", run.remote.as_str()],
            )?;
        } else {
            remove_git_dirs(work).map_err(|e| run.io("removing .git", e))?;
        }
        let context = match &source.subdir {
            None => work.to_path_buf(),
            Some(sub) => {
                let p = work.join(sub);
                // The subdir must be a directory of the checkout itself, not a symlink out.
                let meta = fs::symlink_metadata(&p);
                if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
                    return Err(run.fail(format!(
                        "subdirectory {sub:?} is not a directory at commit {commit}"
                    )));
                }
                p
            }
        };
        Ok(Checkout {
            dir,
            context,
            commit: commit.to_string(),
        })
    }
}

/// What `fetch` asks for when a ref cannot be fetched alone.
const ALL_REFS: [&str; 2] = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];

struct Runner<'a> {
    /// The URL without credentials, for messages.
    remote: String,
    url: String,
    auth: &'a GitAuth,
}

impl Runner<'_> {
    fn fail(&self, message: String) -> GitError {
        GitError::Failed {
            remote: self.remote.clone(),
            message,
        }
    }

    fn io(&self, context: &str, source: std::io::Error) -> GitError {
        GitError::Io {
            remote: self.remote.clone(),
            context: context.to_string(),
            source,
        }
    }

    /// `git ARGS` in `cwd`, cut off from the host's git configuration and prompts, with the
    /// credentials in its environment only.
    fn git<I, S>(&self, cwd: Option<&Path>, args: I) -> Result<Output, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let mut cmd = Command::new("git");
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd.args(&args)
            .stdin(Stdio::null())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE");
        let mut config: Vec<(String, String)> = vec![
            // A stalled server ends the fetch instead of the build waiting forever.
            ("http.lowSpeedLimit".into(), "1".into()),
            ("http.lowSpeedTime".into(), "60".into()),
            // Submodules of a local mirror path are allowed (git ≥ 2.38 refuses `file` by default).
            ("protocol.file.allow".into(), "always".into()),
        ];
        if let Some(h) = self.auth_header() {
            config.push((format!("http.{}.extraHeader", self.url_base()), h));
        }
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (k, v)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
                .env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        match &self.auth.ssh_auth_sock {
            Some(sock) => cmd.env("SSH_AUTH_SOCK", sock),
            None => cmd.env_remove("SSH_AUTH_SOCK"),
        };
        let out = cmd.output().map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (git sources need the git program: install git)"
            } else {
                ""
            };
            self.io(&format!("running git{hint}"), e)
        })?;
        if !out.status.success() {
            let shown: Vec<String> = args.iter().map(|a| redact(&a.to_string_lossy())).collect();
            return Err(self.fail(format!(
                "`git {}` failed ({}): {}",
                shown.join(" "),
                out.status,
                redact(String::from_utf8_lossy(&out.stderr).trim())
            )));
        }
        Ok(out)
    }

    fn auth_header(&self) -> Option<String> {
        if !self.url.starts_with("http://") && !self.url.starts_with("https://") {
            return None;
        }
        if let Some(h) = &self.auth.header {
            return Some(format!("Authorization: {h}"));
        }
        self.auth.token.as_ref().map(|t| {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{t}"));
            format!("Authorization: basic {basic}")
        })
    }

    /// `scheme://host[:port]/`: the header goes to this server only.
    fn url_base(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(u) => format!(
                "{}://{}/",
                u.scheme(),
                &u[url::Position::BeforeHost..url::Position::AfterPort]
            ),
            Err(_) => self.url.clone(),
        }
    }

    fn ls_remote(&self) -> Result<Vec<(String, String)>, GitError> {
        let out = self.git(None, ["ls-remote", "--", self.url.as_str()])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (sha, name) = l.split_once('\t')?;
                Some((name.to_string(), sha.to_string()))
            })
            .collect())
    }

    fn fetch(&self, mirror: &Path, refspecs: &[&str], shallow: bool) -> Result<(), GitError> {
        let mut args: Vec<&str> = vec!["fetch", "--quiet", "--no-tags", "--force"];
        if shallow {
            args.extend(["--depth", "1"]);
        }
        args.push("--");
        args.push(self.url.as_str());
        let specs: Vec<String> = refspecs
            .iter()
            .map(|r| {
                if r.contains(':') || is_full_commit(r) {
                    r.to_string()
                } else {
                    // Kept under its own name, so the mirror answers the next ls-remote's commit.
                    format!("+{r}:{r}")
                }
            })
            .collect();
        let mut all: Vec<&str> = args;
        all.extend(specs.iter().map(String::as_str));
        self.git(Some(mirror), all).map(drop)
    }
}

/// What `ls-remote` advertises: (ref name, object id) pairs.
type Advertised = Vec<(String, String)>;

/// A repository's object format (`git init --object-format`): SHA-1, or SHA-256 as
/// `git init --object-format=sha256` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectFormat {
    Sha1,
    Sha256,
}

impl ObjectFormat {
    /// By the length of a full object id: 40 hex digits for SHA-1, 64 for SHA-256.
    fn of_id(id: &str) -> ObjectFormat {
        if id.len() == 64 {
            ObjectFormat::Sha256
        } else {
            ObjectFormat::Sha1
        }
    }

    fn init_flag(self) -> &'static str {
        match self {
            ObjectFormat::Sha1 => "--object-format=sha1",
            ObjectFormat::Sha256 => "--object-format=sha256",
        }
    }
}

/// The remote's object format, known before its mirror is made (git cannot fetch a SHA-256
/// repository into a SHA-1 one): from the length of a full commit id when the source names
/// one, else from the ids `ls-remote` advertises, which are returned for the ref lookup.
fn remote_object_format(
    run: &Runner,
    source: &GitRef,
) -> Result<(ObjectFormat, Option<Advertised>), GitError> {
    if let Some(r) = source.reference.as_deref().filter(|r| is_full_commit(r)) {
        return Ok((ObjectFormat::of_id(r), None));
    }
    let advertised = run.ls_remote()?;
    let format = advertised
        .first()
        .map_or(ObjectFormat::Sha1, |(_, id)| ObjectFormat::of_id(id));
    Ok((format, Some(advertised)))
}

fn has_commit(run: &Runner, mirror: &Path, commit: &str) -> bool {
    run.git(
        Some(mirror),
        ["cat-file", "-e", &format!("{commit}^{{commit}}")],
    )
    .is_ok()
}

/// The ref `wanted` names among the advertised refs, as BuildKit looks it up: a full ref
/// exactly, else a tag, else a branch; HEAD when nothing is asked for. Annotated tags resolve
/// to the commit they point at (`^{}` entries).
fn pick_ref(advertised: &[(String, String)], wanted: Option<&str>) -> Option<(String, String)> {
    let lookup = |name: &str| -> Option<(String, String)> {
        let peeled = format!("{name}^{{}}");
        let sha = advertised
            .iter()
            .find(|(n, _)| *n == peeled)
            .or_else(|| advertised.iter().find(|(n, _)| n == name))?
            .1
            .clone();
        Some((name.to_string(), sha))
    };
    match wanted {
        None => lookup("HEAD"),
        Some(r) if r.starts_with("refs/") || r == "HEAD" => lookup(r),
        Some(r) => lookup(&format!("refs/tags/{r}")).or_else(|| lookup(&format!("refs/heads/{r}"))),
    }
}

fn is_hex(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_hexdigit())
}

fn is_full_commit(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && is_hex(s)
}

/// Removes `.git` at the top and the `.git` files submodules leave.
fn remove_git_dirs(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if entry.file_name() == ".git" {
            if ft.is_dir() {
                fs::remove_dir_all(entry.path())?;
            } else {
                fs::remove_file(entry.path())?;
            }
        } else if ft.is_dir() {
            remove_git_dirs(&entry.path())?;
        }
    }
    Ok(())
}

/// `https://user:secret@host/…` → `https://user:****@host/…`, in URLs and in git's messages.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rsplit_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split(':').next().unwrap_or("");
                if user_info.contains(':') {
                    out.push_str(&format!("{user}:****@{host}"));
                } else {
                    out.push_str(&format!("****@{host}"));
                }
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_resolve_as_buildkit_looks_them_up() {
        let adv: Vec<(String, String)> = [
            ("HEAD", "aaa"),
            ("refs/heads/main", "aaa"),
            ("refs/heads/v1", "bbb"),
            ("refs/tags/v1", "ccc"),
            ("refs/tags/v1^{}", "ddd"),
        ]
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
        assert_eq!(pick_ref(&adv, None).unwrap().1, "aaa");
        // A tag wins over a branch of the same name, and resolves to its commit.
        assert_eq!(
            pick_ref(&adv, Some("v1")).unwrap(),
            ("refs/tags/v1".into(), "ddd".into())
        );
        assert_eq!(pick_ref(&adv, Some("refs/heads/v1")).unwrap().1, "bbb");
        assert_eq!(pick_ref(&adv, Some("main")).unwrap().1, "aaa");
        assert!(pick_ref(&adv, Some("nope")).is_none());
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            redact("fatal: https://u:tok@h.example/r.git not found"),
            "fatal: https://u:****@h.example/r.git not found"
        );
        assert_eq!(redact("https://tok@h/r.git"), "https://****@h/r.git");
        assert_eq!(redact("git://h/r.git"), "git://h/r.git");
        let a = GitAuth {
            token: Some("secret".into()),
            ..Default::default()
        };
        assert!(!format!("{a:?}").contains("secret"));
    }
}
