//! Pushing: every blob the manifest names is checked with HEAD, mounted from
//! a known sibling repository, or uploaded streamed from its file (one PUT
//! for small blobs, PATCH chunks for big ones); then the manifest is PUT.
//! An index pushes each child manifest (read from the source) first.

use std::future::Future;
use std::io::SeekFrom;
use std::pin::Pin;

use builder_store::Digest;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Body, Method, StatusCode, Url};
use std::io::Seek;

use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use crate::blob::{BlobSource, read_small};
use crate::client::{Client, Progress};
use crate::error::RegistryError;
use crate::manifest::{Descriptor, MANIFEST_SIZE_LIMIT, Manifest};
use crate::progress::ProgressEvent;
use crate::reference::Reference;
use crate::transport::{pull_scope, push_scope, status_err};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The latest location of a chunked upload session, for resuming it.
type Checkpoint = std::sync::Mutex<Option<Url>>;

/// One blob being pushed, and where its session got to.
struct UploadJob<'a> {
    r: &'a Reference,
    desc: &'a Descriptor,
    source: &'a dyn BlobSource,
    progress: Progress<'a>,
    checkpoint: &'a Checkpoint,
}

impl UploadJob<'_> {
    fn save(&self, location: &Url) {
        *self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = Some(location.clone());
    }
    fn clear(&self) {
        *self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Whether a blob still has to be sent after trying to avoid it.
enum Prepared {
    Done,
    /// An upload session to send the bytes to.
    Upload(Url),
}

impl Client {
    /// Pushes the image described by `manifest_bytes` to `r` (its tag, or its
    /// digest when it has no tag) and returns the manifest digest.
    pub async fn push(
        &self,
        r: &Reference,
        manifest_bytes: &[u8],
        manifest_media_type: &str,
        source: &dyn BlobSource,
        progress: Progress<'_>,
    ) -> Result<Digest, RegistryError> {
        self.push_manifest(
            r,
            r.manifest_ref(),
            manifest_bytes.to_vec(),
            manifest_media_type.to_string(),
            source,
            progress,
        )
        .await
    }

    /// Boxed because an index recurses into its child manifests.
    fn push_manifest<'a>(
        &'a self,
        r: &'a Reference,
        reference: String,
        bytes: Vec<u8>,
        media_type: String,
        source: &'a dyn BlobSource,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Digest, RegistryError>> {
        Box::pin(async move {
            match Manifest::parse(&bytes, &media_type, &r.to_string())? {
                Manifest::Image(m) => {
                    let blobs: Vec<&Descriptor> =
                        std::iter::once(&m.config).chain(m.layers.iter()).collect();
                    // Collected first: a lazy map inside a boxed Send future trips a compiler limitation.
                    let uploads: Vec<_> = blobs
                        .into_iter()
                        .map(|d| self.push_blob(r, d, source, progress))
                        .collect();
                    stream::iter(uploads)
                        .buffer_unordered(self.concurrency())
                        .try_collect::<Vec<()>>()
                        .await?;
                }
                Manifest::Index(idx) => {
                    for child in &idx.manifests {
                        let child_bytes = read_small(source, &child.digest, MANIFEST_SIZE_LIMIT)?;
                        let reference = child.digest.to_string();
                        self.push_manifest(
                            r,
                            reference,
                            child_bytes,
                            child.media_type.clone(),
                            source,
                            progress,
                        )
                        .await?;
                    }
                }
            }
            self.put_manifest(r, &reference, bytes, &media_type, progress)
                .await
        })
    }

    async fn put_manifest(
        &self,
        r: &Reference,
        reference: &str,
        bytes: Vec<u8>,
        media_type: &str,
        progress: Progress<'_>,
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::of(&bytes);
        let path = format!("/v2/{}/manifests/{reference}", r.repository);
        let make = |c: &reqwest::Client, base: &str| {
            Ok(c.put(format!("{base}{path}"))
                .header(CONTENT_TYPE, media_type)
                .body(bytes.clone()))
        };
        let operation = format!("push manifest {}/{}:{reference}", r.registry, r.repository);
        let resp = self
            .transport
            .send(
                &r.registry,
                &operation,
                &[push_scope(&r.repository)],
                &Method::PUT,
                &make,
            )
            .await?;
        if !resp.status().is_success() {
            return Err(status_err(resp, &Method::PUT).await);
        }
        progress(ProgressEvent::ManifestPushed {
            digest,
            reference: format!("{}/{}:{reference}", r.registry, r.repository),
        });
        Ok(digest)
    }

    /// Makes sure the registry has one blob, retrying the whole exchange
    /// (a fresh upload session) on transient failures such as a restart.
    async fn push_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
        source: &dyn BlobSource,
        progress: Progress<'_>,
    ) -> Result<(), RegistryError> {
        let d = desc.digest;
        let on_retry = |attempt, e: &RegistryError| {
            progress(ProgressEvent::Retrying {
                what: format!("upload {d}"),
                attempt,
                error: e.to_string(),
            })
        };
        let checkpoint: Checkpoint = std::sync::Mutex::new(None);
        let operation = format!("upload blob {d} to {}", r.repository);
        self.cfg
            .retry
            .run_named(
                &r.registry,
                &operation,
                |_| async {
                    let (location, start) = match self.resume_point(r, &checkpoint).await? {
                        Some((location, from)) => {
                            progress(ProgressEvent::UploadResumed { digest: d, from });
                            (location, from)
                        }
                        None => match self.prepare_upload(r, d, progress).await? {
                            Prepared::Done => return Ok(()),
                            Prepared::Upload(location) => (location, 0),
                        },
                    };
                    let job = UploadJob {
                        r,
                        desc,
                        source,
                        progress,
                        checkpoint: &checkpoint,
                    };
                    self.upload(&job, location, start).await
                },
                &on_retry,
            )
            .await?;
        self.record_blob_origin(&r.registry, &r.repository, d);
        Ok(())
    }

    /// Where an interrupted chunked upload can continue: the registry's own
    /// account of the session (GET on its location gives the bytes it holds).
    /// None when there is no session or the registry forgot it.
    async fn resume_point(
        &self,
        r: &Reference,
        checkpoint: &Checkpoint,
    ) -> Result<Option<(Url, u64)>, RegistryError> {
        let Some(location) = checkpoint.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return Ok(None);
        };
        let make = |c: &reqwest::Client, _: &str| Ok(c.get(location.clone()));
        let scopes = [push_scope(&r.repository)];
        // A transport error keeps the checkpoint: the registry may be back on the next try.
        let resp = self
            .transport
            .send_unretried(&r.registry, &scopes, &Method::GET, &make)
            .await?;
        let forget = || *checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if resp.status() != StatusCode::NO_CONTENT {
            forget();
            return Ok(None);
        }
        // "0-N" means N+1 bytes, except that an empty session is also "0-0";
        // reading it as 0 at worst resends a byte, which the registry rejects
        // (416) and the blob starts over.
        let end = resp
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once('-'))
            .and_then(|(_, end)| end.trim().parse::<u64>().ok());
        let Some(end) = end else {
            forget();
            return Ok(None);
        };
        let offset = if end == 0 { 0 } else { end + 1 };
        let next = location_from(&resp, &location).unwrap_or(location);
        Ok(Some((next, offset)))
    }

    /// HEAD, then a mount from the recorded origin, then a plain upload session.
    async fn prepare_upload(
        &self,
        r: &Reference,
        d: Digest,
        progress: Progress<'_>,
    ) -> Result<Prepared, RegistryError> {
        if self.blob_exists(r, &d).await? {
            progress(ProgressEvent::BlobExists { digest: d });
            return Ok(Prepared::Done);
        }
        let from = self
            .blob_origin(&r.registry, &d)
            .filter(|f| *f != r.repository);
        let mut scopes = vec![push_scope(&r.repository)];
        scopes.extend(from.as_deref().map(pull_scope));
        let query = match &from {
            Some(f) => format!("?mount={d}&from={f}"),
            None => String::new(),
        };
        let path = format!("/v2/{}/blobs/uploads/{query}", r.repository);
        let make = |c: &reqwest::Client, base: &str| {
            Ok(c.post(format!("{base}{path}")).header(CONTENT_LENGTH, 0))
        };
        let resp = self
            .transport
            .send_unretried(&r.registry, &scopes, &Method::POST, &make)
            .await?;
        match (resp.status(), from) {
            (StatusCode::CREATED, Some(from)) => {
                progress(ProgressEvent::BlobMounted { digest: d, from });
                Ok(Prepared::Done)
            }
            // 202: no mount (or none asked); the registry opened an upload session.
            (StatusCode::ACCEPTED, _) => Ok(Prepared::Upload(location(&resp)?)),
            _ => Err(status_err(resp, &Method::POST).await),
        }
    }

    pub(crate) async fn blob_exists(
        &self,
        r: &Reference,
        d: &Digest,
    ) -> Result<bool, RegistryError> {
        let path = format!("/v2/{}/blobs/{d}", r.repository);
        let make = |c: &reqwest::Client, base: &str| Ok(c.head(format!("{base}{path}")));
        let resp = self
            .transport
            .send_unretried(
                &r.registry,
                &[push_scope(&r.repository)],
                &Method::HEAD,
                &make,
            )
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_err(resp, &Method::HEAD).await),
        }
    }

    /// Sends the blob's bytes (from `start`) to an upload session and closes
    /// it with its digest. Chunked uploads record each acknowledged position
    /// in the job's checkpoint so a retry can resume there.
    async fn upload(
        &self,
        job: &UploadJob<'_>,
        mut location: Url,
        start: u64,
    ) -> Result<(), RegistryError> {
        let (r, d) = (job.r, job.desc.digest);
        let what = std::path::PathBuf::from(format!("local blob {d}"));
        let (file, size) = job
            .source
            .open(&d)
            .map_err(|e| RegistryError::io(&what, e))?;
        if size != job.desc.size {
            return Err(RegistryError::SizeMismatch {
                digest: d,
                expected: job.desc.size,
                actual: size,
            });
        }
        if start == 0 {
            (job.progress)(ProgressEvent::UploadStarted { digest: d, size });
        }
        let chunk = self.cfg.chunk_size.max(1);
        let whole = if start == 0 && size <= chunk {
            Some(size)
        } else {
            let mut offset = start;
            job.save(&location);
            while offset < size {
                let len = chunk.min(size - offset);
                location = self.patch_chunk(r, location, &file, offset, len).await?;
                job.save(&location);
                offset += len;
                (job.progress)(ProgressEvent::UploadProgress {
                    digest: d,
                    done: offset,
                    total: size,
                });
            }
            None
        };
        self.finish_upload(r, location, d, &file, whole).await?;
        job.clear();
        if whole.is_some() {
            (job.progress)(ProgressEvent::UploadProgress {
                digest: d,
                done: size,
                total: size,
            });
        }
        (job.progress)(ProgressEvent::UploadComplete { digest: d });
        Ok(())
    }

    /// One PATCH of `len` bytes from `offset`, streamed from the file.
    /// Returns the session's next location.
    async fn patch_chunk(
        &self,
        r: &Reference,
        location: Url,
        file: &std::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<Url, RegistryError> {
        let make = |c: &reqwest::Client, _: &str| {
            Ok(c.patch(location.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_RANGE, format!("{offset}-{}", offset + len - 1))
                .header(CONTENT_LENGTH, len)
                .body(file_body(file, offset, len)?))
        };
        let resp = self
            .transport
            .send_unretried(
                &r.registry,
                &[push_scope(&r.repository)],
                &Method::PATCH,
                &make,
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(session_err(resp, &Method::PATCH).await);
        }
        location_from(&resp, &location)
    }

    /// The closing PUT `?digest=`, carrying the whole blob for a monolithic upload.
    async fn finish_upload(
        &self,
        r: &Reference,
        location: Url,
        d: Digest,
        file: &std::fs::File,
        whole: Option<u64>,
    ) -> Result<(), RegistryError> {
        let mut url = location;
        url.query_pairs_mut().append_pair("digest", &d.to_string());
        let make = |c: &reqwest::Client, _: &str| {
            let req = c
                .put(url.clone())
                .header(CONTENT_TYPE, "application/octet-stream");
            Ok(match whole {
                Some(n) => req.header(CONTENT_LENGTH, n).body(file_body(file, 0, n)?),
                None => req.header(CONTENT_LENGTH, 0),
            })
        };
        let resp = self
            .transport
            .send_unretried(
                &r.registry,
                &[push_scope(&r.repository)],
                &Method::PUT,
                &make,
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(session_err(resp, &Method::PUT).await);
        }
        Ok(())
    }
}

/// A streaming request body over `len` bytes of the file from `offset`:
/// memory use stays at one read buffer however big the blob is. Each call
/// makes a fresh body (own descriptor), so a request can be rebuilt after a 401.
fn file_body(file: &std::fs::File, offset: u64, len: u64) -> Result<Body, RegistryError> {
    let path = std::path::PathBuf::from("upload source");
    let mut own = file.try_clone().map_err(|e| RegistryError::io(&path, e))?;
    own.seek(SeekFrom::Start(offset))
        .map_err(|e| RegistryError::io(&path, e))?;
    let reader = tokio::fs::File::from_std(own).take(len);
    Ok(Body::wrap_stream(ReaderStream::with_capacity(
        reader,
        256 * 1024,
    )))
}

/// Errors inside an upload session. 404/416 mean the registry lost or
/// disagrees about the session (e.g. it restarted): the blob is retried
/// with a fresh session, so those count as transient.
async fn session_err(resp: reqwest::Response, method: &Method) -> RegistryError {
    match status_err(resp, method).await {
        RegistryError::Status {
            method,
            url,
            status: status @ (404 | 416),
            body,
            ..
        } => RegistryError::UploadSessionLost {
            method,
            url,
            status,
            body,
        },
        other => other,
    }
}

fn location(resp: &reqwest::Response) -> Result<Url, RegistryError> {
    location_from(resp, resp.url())
}

/// The Location header, resolved against the request URL when relative.
fn location_from(resp: &reqwest::Response, base: &Url) -> Result<Url, RegistryError> {
    let raw = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol {
            url: resp.url().to_string(),
            reason: "upload response has no Location header".into(),
        })?;
    base.join(raw).map_err(|e| RegistryError::Protocol {
        url: resp.url().to_string(),
        reason: format!("bad Location {raw:?}: {e}"),
    })
}
