//! Which strings name a git repository, and what a git URL asks for — BuildKit's rules
//! (`dfgitutil.ParseGitRef`), so `builder build URL`, `--build-context NAME=URL` and
//! `ADD URL` read the same arguments the same way:
//!
//! - `http://` / `https://` URLs whose path ends in `.git`; any `git://` or `ssh://` URL;
//!   scp-style `user@host:path`; and, for contexts only, `github.com/owner/repo`.
//! - `#REF[:SUBDIR]` picks a branch, tag, commit or `refs/...`, and a directory inside;
//! - the query form: `?ref=`, `?tag=` (→ `refs/tags/`), `?branch=` (→ `refs/heads/`),
//!   `?subdir=`, `?checksum=` / `?commit=`, `?keep-git-dir[=bool]`, `?submodules[=bool]`.
//!   A key BuildKit knows but builder does not implement (`mtime`, `fetch-by-commit`) is
//!   refused by name rather than ignored.

/// A git source: where to fetch from and what to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    /// The repository URL without fragment and query (may carry user info).
    pub remote: String,
    /// The repository's directory name (`bar` for `…/bar.git`).
    pub short_name: String,
    /// Branch, tag, commit or full ref; the remote's HEAD when `None`.
    pub reference: Option<String>,
    /// A commit the reference must resolve to (`?checksum=`).
    pub checksum: Option<String>,
    /// A directory inside the repository to use as the root, normalised (no leading `/`).
    pub subdir: Option<String>,
    pub keep_git_dir: Option<bool>,
    pub submodules: Option<bool>,
    /// `github.com/...` without a scheme: looks like a local path, so only contexts take it.
    pub indistinguishable_from_local: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitRefError {
    #[error("git URL {url:?}: {reason}")]
    Invalid { url: String, reason: String },
}

fn invalid(url: &str, reason: impl Into<String>) -> GitRefError {
    GitRefError::Invalid {
        url: url.to_string(),
        reason: reason.into(),
    }
}

impl GitRef {
    /// The remote's default branch, nothing else asked for.
    fn at(remote: String, short_name: String) -> GitRef {
        GitRef {
            remote,
            short_name,
            reference: None,
            checksum: None,
            subdir: None,
            keep_git_dir: None,
            submodules: None,
            indistinguishable_from_local: false,
        }
    }

    /// `Ok(None)` when `s` does not name a git repository (a local path, a plain https URL,
    /// an unknown scheme); an error when it does but asks for something invalid.
    pub fn parse(s: &str) -> Result<Option<GitRef>, GitRefError> {
        if s.starts_with("./") || s.starts_with("../") {
            return Ok(None);
        }
        if let Some(rest) = s.strip_prefix("github.com/") {
            let url = url::Url::parse(&format!("https://github.com/{rest}"))
                .map_err(|e| invalid(s, e.to_string()))?;
            let mut r = from_url(s, &url)?;
            r.remote = r
                .remote
                .strip_prefix("https://")
                .unwrap_or(&r.remote)
                .to_string();
            r.indistinguishable_from_local = true;
            return Ok(Some(r));
        }
        if let Some(scheme) = scheme_of(s) {
            let scheme = scheme.to_ascii_lowercase();
            if !matches!(scheme.as_str(), "http" | "https" | "ssh" | "git") {
                return Ok(None);
            }
            let url = url::Url::parse(s).map_err(|e| invalid(s, e.to_string()))?;
            if matches!(scheme.as_str(), "http" | "https") && !url.path().ends_with(".git") {
                return Ok(None);
            }
            return from_url(s, &url).map(Some);
        }
        if let Some((user, host, path, query, fragment)) = scp_style(s) {
            let mut r = GitRef::at(format!("{user}@{host}:{path}"), short_name(path));
            apply_fragment(&mut r, fragment);
            let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            apply_query(s, &mut r, &pairs, !query.is_empty())?;
            return Ok(Some(r));
        }
        Ok(None)
    }

    /// The remote's host name (for host-scoped credentials such as `GIT_AUTH_TOKEN.<host>`).
    pub fn host(&self) -> Option<String> {
        match url::Url::parse(&self.fetch_url()) {
            Ok(u) => u.host_str().map(str::to_string),
            // scp-style `user@host:path`.
            Err(_) => self
                .remote
                .split_once('@')
                .and_then(|(_, rest)| rest.split_once(':'))
                .map(|(host, _)| host.to_string()),
        }
    }

    /// The fetch URL to hand to git: the remote, with `https://` restored for `github.com/…`.
    pub fn fetch_url(&self) -> String {
        if self.indistinguishable_from_local {
            format!("https://{}", self.remote)
        } else {
            self.remote.clone()
        }
    }
}

/// `scheme` of `scheme://…` when it is made of letters and digits (BuildKit's protoRegexp).
fn scheme_of(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    (!scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric())).then_some(scheme)
}

/// `user@host:path[?query][#fragment]`, with BuildKit's character classes for user and host.
fn scp_style(s: &str) -> Option<(&str, &str, &str, &str, &str)> {
    let (user, rest) = s.split_once('@')?;
    let (host, rest) = rest.split_once(':')?;
    let user_ok = !user.is_empty()
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !user_ok || !host_ok {
        return None;
    }
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    Some((user, host, path, query, fragment))
}

fn short_name(path: &str) -> String {
    let last = path.rsplit('/').next().unwrap_or(path);
    last.strip_suffix(".git").unwrap_or(last).to_string()
}

fn from_url(input: &str, url: &url::Url) -> Result<GitRef, GitRefError> {
    let mut remote = url.clone();
    remote.set_fragment(None);
    remote.set_query(None);
    let mut r = GitRef::at(remote.to_string(), short_name(url.path()));
    apply_fragment(&mut r, url.fragment().unwrap_or(""));
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    apply_query(input, &mut r, &pairs, url.query().is_some())?;
    Ok(r)
}

/// `REF[:SUBDIR]`; the subdir is cleaned as a path below `/`.
fn apply_fragment(r: &mut GitRef, fragment: &str) {
    if fragment.is_empty() {
        return;
    }
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    if !reference.is_empty() {
        r.reference = Some(reference.to_string());
    }
    r.subdir = clean_subdir(subdir);
}

/// `a/../b/./c/` → `b/c`; nothing left → None. Never climbs above the repository root.
fn clean_subdir(subdir: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in subdir.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn apply_query(
    input: &str,
    r: &mut GitRef,
    pairs: &[(String, String)],
    present: bool,
) -> Result<(), GitRefError> {
    if !present {
        return Ok(());
    }
    let mut seen = std::collections::BTreeSet::new();
    let (mut tag, mut branch) = (None, None);
    for (key, value) in pairs {
        if !seen.insert(key.as_str()) {
            return Err(invalid(input, format!("query {key:?} has multiple values")));
        }
        let flag = |name: &str| -> Result<bool, GitRefError> {
            match value.as_str() {
                "" | "1" | "true" | "t" | "T" | "TRUE" | "True" => Ok(true),
                "0" | "false" | "f" | "F" | "FALSE" | "False" => Ok(false),
                other => Err(invalid(input, format!("invalid {name} value: {other:?}"))),
            }
        };
        if value.is_empty() && !matches!(key.as_str(), "submodules" | "keep-git-dir") {
            return Err(invalid(input, format!("query {key:?} has no value")));
        }
        match key.as_str() {
            "ref" => set_once(input, &mut r.reference, value, "ref")?,
            "tag" => tag = Some(value.clone()),
            "branch" => branch = Some(value.clone()),
            "subdir" => {
                let cleaned = clean_subdir(value);
                if r.subdir.is_some() && r.subdir != cleaned {
                    return Err(invalid(
                        input,
                        format!("subdir conflicts: {:?} vs {value:?}", r.subdir),
                    ));
                }
                r.subdir = cleaned;
            }
            "checksum" | "commit" => r.checksum = Some(value.clone()),
            "keep-git-dir" => r.keep_git_dir = Some(flag("keep-git-dir")?),
            "submodules" => r.submodules = Some(flag("submodules")?),
            "mtime" | "fetch-by-commit" => {
                return Err(invalid(
                    input,
                    format!("query {key:?} is not supported by builder yet"),
                ));
            }
            other => return Err(invalid(input, format!("unexpected query {other:?}"))),
        }
    }
    if let Some(tag) = tag {
        let full = if tag.starts_with("refs/tags/") {
            tag
        } else {
            format!("refs/tags/{tag}")
        };
        set_once(input, &mut r.reference, &full, "ref")?;
    }
    if let Some(branch) = branch {
        if pairs.iter().any(|(k, _)| k == "tag") {
            return Err(invalid(input, "branch conflicts with tag"));
        }
        let full = if branch.starts_with("refs/heads/") {
            branch
        } else {
            format!("refs/heads/{branch}")
        };
        set_once(input, &mut r.reference, &full, "ref")?;
    }
    Ok(())
}

fn set_once(
    input: &str,
    slot: &mut Option<String>,
    value: &str,
    what: &str,
) -> Result<(), GitRefError> {
    match slot {
        Some(existing) if existing != value => Err(invalid(
            input,
            format!("{what} conflicts: {existing:?} vs {value:?}"),
        )),
        _ => {
            *slot = Some(value.to_string());
            Ok(())
        }
    }
}
