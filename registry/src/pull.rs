//! Pulling: resolve the manifest (picking a platform from an index), then
//! download config and layers concurrently into the sink, each streamed to a
//! temp file, size- and sha256-verified, and resumed with Range after a drop.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

use builder_store::Hasher;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode};

use crate::blob::{BlobSink, commit_bytes};
use crate::client::{Client, FetchedManifest, Progress, PulledImage};
use crate::error::RegistryError;
use crate::manifest::{Descriptor, Manifest};
use crate::platform::Platform;
use crate::progress::ProgressEvent;
use crate::reference::Reference;
use crate::transport::{http_err, pull_scope, status_err};

/// Emit a progress event at most every this many bytes per blob.
const PROGRESS_STEP: u64 = 1 << 20;

/// A download in progress: the temp file and what has been verified into it.
struct Partial {
    file: File,
    hasher: Hasher,
}

impl Client {
    /// Pulls `r` for `platform` into `sink`: the platform manifest, its config
    /// and layers (and the index, when `r` names one) are all committed.
    pub async fn pull(
        &self,
        r: &Reference,
        platform: &Platform,
        sink: &dyn BlobSink,
        progress: Progress<'_>,
    ) -> Result<PulledImage, RegistryError> {
        let top = self
            .fetch_manifest(r, &r.manifest_ref(), r.digest.as_ref())
            .await?;
        progress(ProgressEvent::ManifestResolved {
            digest: top.digest,
            media_type: top.media_type.clone(),
        });
        let (index_digest, chosen, image) =
            match Manifest::parse(&top.bytes, &top.media_type, &r.to_string())? {
                Manifest::Image(m) => (None, top, m),
                Manifest::Index(idx) => {
                    let entry = idx.select(platform, &r.to_string())?;
                    let child = self
                        .fetch_manifest(r, &entry.digest.to_string(), Some(&entry.digest))
                        .await?;
                    commit_bytes(sink, &top.bytes, &top.digest)?;
                    let shown = r.with_digest(child.digest).to_string();
                    let Manifest::Image(m) =
                        Manifest::parse(&child.bytes, &child.media_type, &shown)?
                    else {
                        return Err(RegistryError::UnsupportedMediaType {
                            media_type: child.media_type,
                            reference: shown,
                        });
                    };
                    (Some(top.digest), child, m)
                }
            };
        let blobs: Vec<&Descriptor> = std::iter::once(&image.config)
            .chain(image.layers.iter())
            .collect();
        stream::iter(
            blobs
                .into_iter()
                .map(|d| self.download_blob(r, d, sink, progress)),
        )
        .buffer_unordered(self.concurrency())
        .try_collect::<Vec<()>>()
        .await?;
        let FetchedManifest {
            digest,
            media_type,
            bytes,
        } = chosen;
        commit_bytes(sink, &bytes, &digest)?;
        Ok(PulledImage {
            manifest_digest: digest,
            manifest_bytes: bytes,
            manifest_media_type: media_type,
            index_digest,
            config_digest: image.config.digest,
            layers: image.layers,
        })
    }

    /// Downloads one blob of `r` into `sink` (verified, resumed after a drop) unless it is
    /// there already: for callers that fetch a document's blobs one at a time, when needed.
    pub async fn fetch_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
        sink: &dyn BlobSink,
        progress: Progress<'_>,
    ) -> Result<(), RegistryError> {
        self.download_blob(r, desc, sink, progress).await
    }

    /// Downloads one blob into the sink unless it is already there.
    async fn download_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
        sink: &dyn BlobSink,
        progress: Progress<'_>,
    ) -> Result<(), RegistryError> {
        let d = desc.digest;
        if sink.contains(&d) {
            progress(ProgressEvent::BlobCached { digest: d });
            self.record_blob_origin(&r.registry, &r.repository, d);
            return Ok(());
        }
        progress(ProgressEvent::DownloadStarted {
            digest: d,
            size: desc.size,
        });
        let dir = sink.temp_dir();
        let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| RegistryError::io(&dir, e))?;
        let file = tmp.reopen().map_err(|e| RegistryError::io(tmp.path(), e))?;
        let mut partial = Partial {
            file,
            hasher: Hasher::new(),
        };
        let on_retry = |attempt, e: &RegistryError| {
            progress(ProgressEvent::Retrying {
                what: format!("download {d}"),
                attempt,
                error: e.to_string(),
            })
        };
        let retry = self.cfg.retry;
        // An async lock, so the guard may live across awaits in a Send future.
        let partial_ref = tokio::sync::Mutex::new(&mut partial);
        let operation = format!("download blob {d} from {}", r.repository);
        retry
            .run_named(
                &r.registry,
                &operation,
                |_| async {
                    let mut p = partial_ref.lock().await;
                    self.fetch_into(r, desc, &mut p, tmp.path(), progress).await
                },
                &on_retry,
            )
            .await?;
        let (len, actual) = (partial.hasher.len(), partial.hasher.clone().finish());
        if len != desc.size {
            return Err(RegistryError::SizeMismatch {
                digest: d,
                expected: desc.size,
                actual: len,
            });
        }
        if actual != d {
            return Err(RegistryError::DigestMismatch {
                what: format!("blob from {r}"),
                expected: d,
                actual,
            });
        }
        partial
            .file
            .sync_all()
            .map_err(|e| RegistryError::io(tmp.path(), e))?;
        let path = tmp.into_temp_path();
        sink.commit_file(&path, &d)
            .map_err(|e| RegistryError::io(&*path, e))?;
        self.record_blob_origin(&r.registry, &r.repository, d);
        progress(ProgressEvent::DownloadComplete { digest: d });
        Ok(())
    }

    /// One GET of the blob, continuing after what `p` already holds when the
    /// server honours Range (206); starting over when it sends the whole blob (200).
    async fn fetch_into(
        &self,
        r: &Reference,
        desc: &Descriptor,
        p: &mut Partial,
        path: &std::path::Path,
        progress: Progress<'_>,
    ) -> Result<(), RegistryError> {
        let have = p.hasher.len();
        let url_path = format!("/v2/{}/blobs/{}", r.repository, desc.digest);
        let make = |c: &reqwest::Client, base: &str| {
            let req = c.get(format!("{base}{url_path}"));
            Ok(if have > 0 {
                req.header(RANGE, format!("bytes={have}-"))
            } else {
                req
            })
        };
        let scopes = [pull_scope(&r.repository)];
        // Not retried here: the caller's loop retries, resuming from what is on disk.
        let mut resp = self
            .transport
            .send_unretried(&r.registry, &scopes, &Method::GET, &make)
            .await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT if have > 0 && resumes_at(&resp, have) => {
                progress(ProgressEvent::DownloadResumed {
                    digest: desc.digest,
                    from: have,
                });
            }
            StatusCode::OK => restart(p, path)?,
            StatusCode::PARTIAL_CONTENT => {
                // A range we did not ask for: the server mishandles Range; give up clearly.
                return Err(RegistryError::Protocol {
                    url: resp.url().to_string(),
                    reason: format!("206 response does not start at byte {have}"),
                });
            }
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    what: "blob",
                    reference: r.with_digest(desc.digest).to_string(),
                });
            }
            _ => return Err(status_err(resp, &Method::GET).await),
        }
        let url = resp.url().to_string();
        let mut last_report = p.hasher.len();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| http_err(&Method::GET, &url, e))?
        {
            if p.hasher.len() + chunk.len() as u64 > desc.size {
                // More than the descriptor promised: not a blob we want, and not worth retrying.
                return Err(RegistryError::DigestMismatch {
                    what: format!("blob from {r} (longer than {} bytes)", desc.size),
                    expected: desc.digest,
                    actual: p.hasher.clone().finish(),
                });
            }
            p.file
                .write_all(&chunk)
                .map_err(|e| RegistryError::io(path, e))?;
            p.hasher.update(&chunk);
            if p.hasher.len() - last_report >= PROGRESS_STEP || p.hasher.len() == desc.size {
                last_report = p.hasher.len();
                progress(ProgressEvent::DownloadProgress {
                    digest: desc.digest,
                    done: last_report,
                    total: desc.size,
                });
            }
        }
        if p.hasher.len() < desc.size {
            // The connection ended early: transient, and the next try resumes from here.
            return Err(RegistryError::SizeMismatch {
                digest: desc.digest,
                expected: desc.size,
                actual: p.hasher.len(),
            });
        }
        Ok(())
    }
}

/// Whether a 206 response starts exactly where our partial file ends.
fn resumes_at(resp: &reqwest::Response, have: u64) -> bool {
    let range = resp
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok());
    let start = range
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next());
    start.and_then(|s| s.trim().parse::<u64>().ok()) == Some(have)
}

fn restart(p: &mut Partial, path: &std::path::Path) -> Result<(), RegistryError> {
    p.file.set_len(0).map_err(|e| RegistryError::io(path, e))?;
    p.file
        .seek(SeekFrom::Start(0))
        .map_err(|e| RegistryError::io(path, e))?;
    p.hasher = Hasher::new();
    Ok(())
}
