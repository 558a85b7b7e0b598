//! `ADD <url>`: remote files downloaded into the store's blobs before the build uses them
//! (BuildKit's `source/http`).
//!
//! Each URL's validators (ETag, Last-Modified) are remembered in
//! `<root>/http-cache/<sha256 of the url>.json`, next to the digest of what was downloaded, so a
//! rebuild sends one conditional request and, on `304 Not Modified`, reuses the stored blob —
//! the step stays cached. A changed file gets a new digest, which invalidates the ADD step and
//! everything after it, as with BuildKit.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use builder_store::{Digest, Store};
use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_DISPOSITION, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("the server answered {0}")]
    Status(StatusCode),
    #[error("the server answered 304 Not Modified to an unconditional request")]
    UnaskedNotModified,
    #[error("{0}")]
    Request(#[from] reqwest::Error),
    #[error("the store: {0}")]
    Store(#[from] builder_store::StoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HttpError {
    let what = what.into();
    move |source| HttpError::Io { what, source }
}

/// A downloaded file, in the store's blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// sha256 of the content, which is also its blob's name in the store.
    pub digest: Digest,
    /// The name the file gets in a destination directory: the server's Content-Disposition
    /// `filename`, else the URL's last path segment, else `__unnamed__`.
    pub filename: String,
    /// The server's Last-Modified, as seconds since the epoch.
    pub mtime: Option<i64>,
}

/// One build's downloads into the store at `root`: a URL named several times in one build is
/// fetched once.
pub struct Downloads {
    root: PathBuf,
    seen: Mutex<HashMap<String, Downloaded>>,
}

impl Downloads {
    pub fn new(root: PathBuf) -> Downloads {
        Downloads {
            root,
            seen: Mutex::default(),
        }
    }

    /// The file at `url`, downloaded (or revalidated) once per build.
    pub fn get(&self, url: &str) -> Result<Downloaded, HttpError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = seen.get(url) {
            return Ok(file.clone());
        }
        let store = Store::open(&self.root)?;
        let file = fetch(&store, url)?;
        seen.insert(url.to_string(), file.clone());
        Ok(file)
    }
}

/// What a previous download of a URL left behind.
#[derive(Serialize, Deserialize)]
struct Remembered {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    digest: Digest,
    filename: String,
    mtime: Option<i64>,
}

impl Remembered {
    fn file(&self) -> Downloaded {
        Downloaded {
            digest: self.digest,
            filename: self.filename.clone(),
            mtime: self.mtime,
        }
    }
}

fn record_path(store: &Store, url: &str) -> PathBuf {
    store
        .http_cache_dir()
        .join(format!("{}.json", Digest::of(url.as_bytes()).hex()))
}

/// A remembered download whose blob is still in the store (a prune may have removed it).
fn remembered(store: &Store, url: &str) -> Option<Remembered> {
    let text = fs::read(record_path(store, url)).ok()?;
    let r: Remembered = serde_json::from_slice(&text).ok()?;
    (r.url == url && store.blobs().contains(&r.digest)).then_some(r)
}

fn fetch(store: &Store, url: &str) -> Result<Downloaded, HttpError> {
    let known = remembered(store, url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("starting the download's runtime"))?;
    let fresh = runtime.block_on(download(store, url, known.as_ref()))?;
    let Some(fresh) = fresh else {
        // 304: what we have is current.
        return known.map(|k| k.file()).ok_or(HttpError::UnaskedNotModified);
    };
    remember(store, &fresh)?;
    Ok(fresh.file())
}

/// GETs `url` (conditionally when `known`); None when the server says nothing changed.
async fn download(
    store: &Store,
    url: &str,
    known: Option<&Remembered>,
) -> Result<Option<Remembered>, HttpError> {
    let client = builder_registry::build_tolerating_no_ca_certificates(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
    })?;
    let mut request = client.get(url);
    if let Some(k) = known {
        if let Some(etag) = &k.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &k.last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
    }
    let mut response = request.send().await?;
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED && known.is_some() {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(HttpError::Status(status));
    }
    let headers = response.headers().clone();
    let mut writer = store.blobs().writer()?;
    while let Some(chunk) = response.chunk().await? {
        std::io::Write::write_all(&mut writer, &chunk)
            .map_err(io("writing the download to the store"))?;
    }
    let (digest, _size) = writer.commit()?;
    let last_modified = header(&headers, LAST_MODIFIED);
    Ok(Some(Remembered {
        url: url.to_string(),
        etag: header(&headers, ETAG),
        mtime: last_modified.as_deref().and_then(parse_http_date),
        last_modified,
        digest,
        filename: file_name(url, &headers),
    }))
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn parse_http_date(value: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(value).ok()?;
    t.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
}

/// The name of the downloaded file: the server's Content-Disposition `filename`, else the
/// URL's last path segment, else `__unnamed__` (BuildKit's choices). Never a path.
fn file_name(url: &str, headers: &HeaderMap) -> String {
    let from_header = header(headers, CONTENT_DISPOSITION).and_then(|v| {
        v.split(';').find_map(|part| {
            let (k, val) = part.trim().split_once('=')?;
            (k.trim().eq_ignore_ascii_case("filename"))
                .then(|| val.trim().trim_matches('"').to_string())
        })
    });
    let from_url = reqwest::Url::parse(url).ok().and_then(|u| {
        u.path_segments()
            .and_then(|mut s| s.next_back().map(str::to_string))
            .filter(|s| !s.is_empty())
    });
    from_header
        .or(from_url)
        .map(|n| n.rsplit('/').next().unwrap_or_default().to_string())
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| "__unnamed__".to_string())
}

fn remember(store: &Store, r: &Remembered) -> Result<(), HttpError> {
    let path = record_path(store, &r.url);
    let dir = path.parent().unwrap_or(Path::new("."));
    let writing = || format!("writing {}", path.display());
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(writing()))?;
    serde_json::to_writer(&mut tmp, r).map_err(|e| io(writing())(e.into()))?;
    tmp.persist(&path).map_err(|e| io(writing())(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn file_names_follow_buildkit() {
        let none = HeaderMap::new();
        assert_eq!(
            file_name("http://h/a/b/tool.tar.gz?x=1", &none),
            "tool.tar.gz"
        );
        assert_eq!(file_name("http://h/", &none), "__unnamed__");
        assert_eq!(file_name("http://h", &none), "__unnamed__");
        let mut cd = HeaderMap::new();
        cd.insert(
            CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"../../etc/real.bin\""),
        );
        assert_eq!(file_name("http://h/download?id=3", &cd), "real.bin");
    }

    #[test]
    fn http_dates_become_epoch_seconds() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
