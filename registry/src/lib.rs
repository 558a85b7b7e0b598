//! builder-registry: a client for OCI distribution (Docker registry v2) APIs.
//!
//! Pull images (manifest or index, platform selection, verified and resumable
//! blob downloads into a [`BlobSink`]), push them (HEAD-skip, cross-repository
//! mount, streamed monolithic or chunked uploads from a [`BlobSource`]), and
//! authenticate like docker (config.json, credential helpers, basic and
//! bearer-token flows). See [`Client`] for why this is not built on `oci-client`.
//!
//! Transport policy, as docker's: https with verified certificates, except for
//! loopback hosts (localhost, 127.0.0.0/8, ::1) and hosts in
//! [`ClientConfig::insecure`], which are tried over https without certificate
//! checks first and then over plain http.
//!
//! Failure handling: timeouts ([`Timeouts`]: connect, and silence while reading),
//! connection errors, 5xx and 429 are retried with exponential backoff
//! ([`RetryPolicy`]), waiting longer when the registry sends Retry-After; when
//! the tries run out the error ([`RegistryError::GaveUp`]) names the registry,
//! the operation and the last failure. An interrupted download continues
//! with `Range` from the bytes already on disk; an interrupted chunked upload
//! asks the registry how much of the session it holds and continues from
//! there, or opens a fresh session when the registry forgot the old one.

pub mod auth;
pub mod blob;
pub mod client;
pub mod error;
pub mod manifest;
pub mod platform;
pub mod progress;
mod pull;
mod push;
pub mod reference;
pub mod retry;
mod transport;

pub use auth::credentials::{Credential, login, logout};
pub use blob::{BlobSink, BlobSource};
pub use builder_store::Digest;
pub use client::{Client, ClientConfig, Progress, PulledImage};
pub use error::RegistryError;
pub use manifest::Descriptor;
pub use platform::Platform;
pub use progress::ProgressEvent;
pub use reference::Reference;
pub use retry::RetryPolicy;
pub use transport::{Timeouts, build_tolerating_no_ca_certificates, is_loopback};
