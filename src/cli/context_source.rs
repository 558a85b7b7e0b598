//! Where `builder build`'s context comes from, by buildx's rules for its positional argument:
//! `-` (a tar archive on stdin, or a Dockerfile on stdin with an empty context), a git URL
//! (`https://…/repo.git#ref:subdir`, `git://`, `ssh://`, `git@host:repo`, `github.com/…`), an
//! http(s) URL of a tar archive or of a Dockerfile, or else a local directory. Whatever it is,
//! the build then reads a directory; a temporary one lives as long as [`BuildContext`].

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use builder_source::{
    Checkout, GitAuth, GitFetcher, GitRef, LayoutRef, is_archive, unpack_context,
};
use builder_store::Store;

use super::UsageError;

/// Bytes read from stdin before deciding whether it holds a tar archive or a Dockerfile: a tar
/// header is 512 bytes, compression magic a few.
const SNIFF: usize = 1024;

/// The resolved context directory, and what keeps it alive.
pub struct BuildContext {
    pub dir: PathBuf,
    /// The Dockerfile, when the argument itself was one (stdin, a plain URL).
    pub dockerfile: Option<Vec<u8>>,
    /// A remote context: a relative `-f` names a file inside it, not in the current directory.
    pub remote: bool,
    /// What the build is of, for messages (`git https://… at <commit>`).
    pub describe: Option<String>,
    /// A git context's URL and the commit checked out (the provenance's config source).
    pub git: Option<(String, String)>,
    _keep: Keep,
}

enum Keep {
    Nothing,
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Checkout(#[allow(dead_code)] Checkout),
}

/// Brings an http(s) URL into the store (the `ADD <url>` cache, with revalidation): the
/// blob's path and the file's name (Content-Disposition, else the URL's last segment).
pub type Download<'a> = dyn Fn(&str) -> anyhow::Result<(PathBuf, String)> + 'a;

/// Options that steer a remote context.
pub struct Options<'a> {
    pub dockerfile_from_stdin: bool,
    /// `BUILDKIT_CONTEXT_KEEP_GIT_DIR=1`.
    pub keep_git_dir: bool,
    pub auth: GitAuth,
    /// Downloads an http(s) URL into the store (the `ADD <url>` cache, with revalidation).
    pub download: &'a Download<'a>,
}

pub fn resolve(arg: &OsStr, store: &Store, opts: Options<'_>) -> anyhow::Result<BuildContext> {
    if arg == "-" {
        if opts.dockerfile_from_stdin {
            bail!(UsageError(
                "cannot read both the build context and the Dockerfile (-f -) from stdin".into()
            ));
        }
        return from_stdin(store);
    }
    let text = arg.to_str();
    if let Some(text) = text {
        match GitRef::parse(text).map_err(|e| UsageError(e.to_string()))? {
            // `github.com/x/y` is a path when a directory of that name exists, as in buildx.
            Some(r) if !(r.indistinguishable_from_local && Path::new(arg).exists()) => {
                return from_git(r, store, opts);
            }
            _ => {}
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            return from_url(text, store, &opts);
        }
    }
    let dir = fs::canonicalize(arg)
        .map_err(|e| UsageError(format!("build context {}: {e}", Path::new(arg).display())))?;
    if !dir.is_dir() {
        bail!(UsageError(format!(
            "build context {} is not a directory",
            Path::new(arg).display()
        )));
    }
    Ok(BuildContext {
        dir,
        dockerfile: None,
        remote: false,
        describe: None,
        git: None,
        _keep: Keep::Nothing,
    })
}

fn scratch_dir(store: &Store, prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    let tmp = store.tmp_dir();
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&tmp)
        .with_context(|| format!("creating a directory in {}", tmp.display()))
}

/// An archive becomes the context; anything else is the Dockerfile, with an empty context.
fn from_bytes_or_archive(
    head: Vec<u8>,
    rest: impl Read + Send + 'static,
    store: &Store,
    what: &str,
) -> anyhow::Result<BuildContext> {
    let dir = scratch_dir(store, "context-")?;
    if is_archive(&head) {
        unpack_context(std::io::Cursor::new(head).chain(rest), dir.path())
            .with_context(|| format!("unpacking the build context from {what}"))?;
        return Ok(BuildContext {
            dir: dir.path().to_path_buf(),
            dockerfile: None,
            remote: true,
            describe: None,
            git: None,
            _keep: Keep::Dir(dir),
        });
    }
    let mut dockerfile = head;
    let mut rest = rest;
    rest.read_to_end(&mut dockerfile)
        .with_context(|| format!("reading the Dockerfile from {what}"))?;
    Ok(BuildContext {
        dir: dir.path().to_path_buf(),
        dockerfile: Some(dockerfile),
        remote: true,
        describe: None,
        git: None,
        _keep: Keep::Dir(dir),
    })
}

fn from_stdin(store: &Store) -> anyhow::Result<BuildContext> {
    // Not locked: the archive may be read on a decoder thread (xz).
    let mut stdin = std::io::stdin();
    let head = read_head(&mut stdin).context("reading the build context from stdin")?;
    from_bytes_or_archive(head, stdin, store, "stdin")
}

/// Up to [`SNIFF`] bytes: a pipe hands data over in pieces, so read until enough or the end.
fn read_head(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(SNIFF);
    r.take(SNIFF as u64).read_to_end(&mut head)?;
    Ok(head)
}

fn from_url(url: &str, store: &Store, opts: &Options<'_>) -> anyhow::Result<BuildContext> {
    let (_, head, file) = open_download(url, opts.download)?;
    let mut ctx = from_bytes_or_archive(head, file, store, url)?;
    ctx.describe = Some(url.to_string());
    Ok(ctx)
}

/// Downloads `url`; its path and file name, its first bytes and the rest to read.
fn open_download(
    url: &str,
    download: &Download<'_>,
) -> anyhow::Result<((PathBuf, String), Vec<u8>, fs::File)> {
    let fetched = download(url).with_context(|| format!("downloading {url}"))?;
    let mut file =
        fs::File::open(&fetched.0).with_context(|| format!("opening {}", fetched.0.display()))?;
    let head = read_head(&mut file)?;
    Ok((fetched, head, file))
}

fn from_git(r: GitRef, store: &Store, opts: Options<'_>) -> anyhow::Result<BuildContext> {
    let mut r = r;
    if opts.keep_git_dir {
        r.keep_git_dir = Some(true);
    }
    let tmp = store.tmp_dir();
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let fetcher = GitFetcher::new(store.git_dir(), opts.auth);
    let checkout = fetcher.checkout(&r, &tmp)?;
    let mut git_source = Some((
        format!(
            "{}{}",
            r.fetch_url(),
            r.reference
                .as_deref()
                .map(|x| format!("#{x}"))
                .unwrap_or_default()
        ),
        checkout.commit.clone(),
    ));
    let describe = format!(
        "git {}{} at {}",
        r.fetch_url(),
        r.reference
            .as_deref()
            .map(|x| format!("#{x}"))
            .unwrap_or_default(),
        checkout.commit
    );
    Ok(BuildContext {
        dir: checkout.context().to_path_buf(),
        dockerfile: None,
        remote: true,
        describe: Some(describe),
        git: git_source.take(),
        _keep: Keep::Checkout(checkout),
    })
}

/// A `--build-context` value the CLI fetched.
pub enum Named {
    /// A git checkout or a download, as a directory.
    Dir(BuildContext),
    /// An image now in the store (`oci-layout://`), by a digest-pinned reference.
    Image(String),
}

/// `--build-context NAME=VALUE` where VALUE is a git URL, an http(s) URL (of a tar archive, or
/// of one file, which becomes a directory holding that file) or an `oci-layout://` image.
/// None for the other kinds (a local directory, `docker-image://`), which the solver parses.
pub fn resolve_named(
    value: &str,
    store: &Store,
    auth: &GitAuth,
    platform: &builder_store::Platform,
    download: &Download<'_>,
) -> anyhow::Result<Option<Named>> {
    if let Some(layout) = LayoutRef::parse(value).map_err(|e| UsageError(e.to_string()))? {
        let manifest = layout.import(store, platform)?;
        // Any name will do: the resolver finds a pinned manifest by its digest.
        return Ok(Some(Named::Image(format!("oci-layout@{manifest}"))));
    }
    if let Some(r) = GitRef::parse(value).map_err(|e| UsageError(e.to_string()))?
        && !(r.indistinguishable_from_local && Path::new(value).exists())
    {
        let opts = Options {
            dockerfile_from_stdin: false,
            keep_git_dir: false,
            auth: auth.clone(),
            download,
        };
        return from_git(r, store, opts).map(|c| Some(Named::Dir(c)));
    }
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Ok(None);
    }
    let ((blob, name), head, file) = open_download(value, download)?;
    let dir = scratch_dir(store, "context-")?;
    if is_archive(&head) {
        unpack_context(std::io::Cursor::new(head).chain(file), dir.path())
            .with_context(|| format!("unpacking {value}"))?;
    } else {
        // BuildKit's http source: the file under its name (as `ADD <url>` names it).
        fs::copy(&blob, dir.path().join(&name))
            .with_context(|| format!("copying {value} into its context"))?;
    }
    Ok(Some(Named::Dir(BuildContext {
        dir: dir.path().to_path_buf(),
        dockerfile: None,
        remote: true,
        describe: Some(value.to_string()),
        git: None,
        _keep: Keep::Dir(dir),
    })))
}

/// The build's `ADD <git URL>` checker-outer: each checkout lives in the store's tmp/ until
/// the returned closure is dropped (after the build).
pub fn git_fetcher(store: &Store, auth: GitAuth) -> Box<builder_solver::resolve::GitFetcher> {
    let store = store.clone();
    let kept: std::sync::Mutex<Vec<Checkout>> = Default::default();
    Box::new(move |url: &str, keep_git_dir: bool| {
        let mut r = GitRef::parse(url)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("ADD {url}: not a git URL"))?;
        r.keep_git_dir = Some(keep_git_dir);
        let tmp = store.tmp_dir();
        fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let checkout = GitFetcher::new(store.git_dir(), auth.clone())
            .checkout(&r, &tmp)
            .map_err(|e| format!("ADD {url}: {e}"))?;
        let result = builder_dockerfile2graph::GitCheckout {
            dir: checkout.context().to_path_buf(),
            commit: checkout.commit.clone(),
        };
        kept.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(checkout);
        Ok(result)
    })
}

/// The build's `ADD <url>` downloader (builder_source::http) for the store at `root`.
pub fn url_fetcher(root: PathBuf) -> Box<builder_solver::resolve::UrlFetcher> {
    let downloads = builder_source::Downloads::new(root);
    Box::new(move |url: &str| {
        let file = downloads.get(url).map_err(|e| format!("ADD {url}: {e}"))?;
        Ok(builder_dockerfile2graph::RemoteFile {
            digest: file.digest,
            filename: file.filename,
            mtime: file.mtime,
        })
    })
}

/// The credentials BuildKit reads for git remotes from build secrets: `GIT_AUTH_TOKEN` and
/// `GIT_AUTH_HEADER`, or their `.<host>` forms for the remote's host, which win.
pub fn git_auth(
    secrets: &std::collections::BTreeMap<String, PathBuf>,
    context_arg: &OsStr,
    ssh_default: Option<PathBuf>,
) -> anyhow::Result<GitAuth> {
    let host = context_arg
        .to_str()
        .and_then(|s| GitRef::parse(s).ok().flatten())
        .and_then(|r| r.host());
    let read = |name: &str| -> anyhow::Result<Option<String>> {
        let scoped = host.as_ref().map(|h| format!("{name}.{h}"));
        let path = scoped
            .as_ref()
            .and_then(|s| secrets.get(s))
            .or_else(|| secrets.get(name));
        match path {
            None => Ok(None),
            Some(p) => {
                let v = fs::read_to_string(p)
                    .with_context(|| format!("reading secret {name} from {}", p.display()))?;
                Ok(Some(v.trim_end_matches(['\n', '\r']).to_string()))
            }
        }
    };
    Ok(GitAuth {
        token: read("GIT_AUTH_TOKEN")?,
        header: read("GIT_AUTH_HEADER")?,
        ssh_auth_sock: ssh_default,
    })
}
