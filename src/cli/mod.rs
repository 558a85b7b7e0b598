//! The `builder` subcommands. Each module is one command family; this one holds what they share.

pub mod build;
pub mod buildkit_args;
pub mod cache;
pub mod checks;
pub mod context_source;
pub mod debug;
pub mod export;
pub mod gobool;
pub mod images;
pub mod interrupt;
pub mod key_agent;
pub mod limits;
pub mod outputs;
pub mod progress;
pub mod recompress;
pub mod registry;
pub mod run;
pub mod sandbox_args;
pub mod save;
pub mod secrets;
pub mod ssh;
pub mod stdio;
pub mod template;

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use builder_registry::Reference;
use builder_sandbox::UsernsInfo;
use builder_store::{Digest, ImageRecord, Store};

pub struct Context {
    pub root: PathBuf,
    pub userns: UsernsInfo,
    /// How RUN steps are isolated in this process (chosen at startup).
    pub isolation: builder_sandbox::Isolation,
    /// Why `--isolation=auto` fell back to chroot: the probe that failed.
    pub isolation_fallback: Option<String>,
}

impl Context {
    pub fn store(&self) -> anyhow::Result<Store> {
        Store::open(&self.root)
            .with_context(|| format!("opening the store at {}", self.root.display()))
    }
}

/// An error the user caused by how they called us (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn exit_code_for(e: &anyhow::Error) -> u8 {
    if let Some(code) = interrupt::exit_code() {
        return code;
    }
    if e.downcast_ref::<UsageError>().is_some() {
        return 2;
    }
    // The host refuses to sandbox anything: whatever the step, the build cannot work here.
    let unavailable = e.chain().any(|c| {
        c.downcast_ref::<builder_sandbox::SandboxError>()
            .is_some_and(builder_sandbox::SandboxError::is_unavailable)
    });
    if unavailable {
        return 3;
    }
    if let Some(b) = e.downcast_ref::<builder_solver::BuildError>() {
        return match b {
            builder_solver::BuildError::Solve(builder_solver::SolveError::SandboxUnavailable {
                ..
            }) => 3,
            // A base image or download that could not be had is a failed build, not misuse.
            builder_solver::BuildError::Convert(
                builder_dockerfile2graph::ConvertError::Source { .. },
            ) => 1,
            builder_solver::BuildError::Convert(_) | builder_solver::BuildError::Ignore(_) => 2,
            _ => 1,
        };
    }
    1
}

/// The store's name for a user-written reference: `app:1` → `docker.io/library/app:1`.
pub fn normalize(name: &str) -> Result<String, String> {
    let mut r: Reference = name
        .parse()
        .map_err(|e: builder_registry::RegistryError| e.to_string())?;
    if r.tag.is_none() && r.digest.is_none() {
        r.tag = Some("latest".into());
    }
    Ok(r.to_string())
}

/// How docker shows a stored name: `docker.io/library/app:1` → `app:1`.
pub fn familiar(name: &str) -> String {
    name.parse::<Reference>()
        .map(|r| r.familiar())
        .unwrap_or_else(|_| name.to_string())
}

/// Finds an image by name, full id, or unique id prefix.
pub fn find_image(store: &Store, name_or_id: &str) -> anyhow::Result<ImageRecord> {
    if let Ok(name) = normalize(name_or_id)
        && let Some(record) = store.images().get(&name)?
    {
        return Ok(record);
    }
    let prefix = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
    if prefix.len() >= 4
        && prefix.chars().all(|c| c.is_ascii_hexdigit())
        && let Some(id) = store.images().find_by_id_prefix(prefix)?
        && let Some(entry) = store.images().get_by_id(&id)?
    {
        return Ok(entry.record);
    }
    bail!("no such image: {name_or_id}")
}

/// The one image `name_or_id` stands for on `platform` (default: this machine's): itself,
/// or the platform's entry when the name holds an image index (a `--platform a,b` build).
pub fn find_platform_image(
    store: &Store,
    name_or_id: &str,
    platform: Option<&str>,
) -> anyhow::Result<ImageRecord> {
    let record = find_image(store, name_or_id)?;
    let asked = platform.is_some();
    let platform = match platform {
        Some(p) => p
            .parse::<builder_store::Platform>()
            .map_err(|e| UsageError(format!("--platform: {e}")))?,
        None => builder_store::Platform::host(),
    };
    let index = builder_store::stored_index::read_index(store, &record.manifest)?;
    // A single image asked for by platform must be that platform's (docker refuses the same).
    if asked && index.is_none() {
        let config = builder_store::read_config(store.blobs(), &record.config)?;
        let its = builder_store::Platform::normalized(
            &config.os,
            &config.architecture,
            config.variant.as_deref(),
        );
        if !platform.matches(&its) {
            bail!(
                "image {name_or_id} is {its}, not the --platform {platform} asked for (it holds one platform)"
            );
        }
    }
    match builder_store::stored_index::image_for_platform(store, &record, &platform)? {
        Some(image) => Ok(image),
        None => {
            let held = index
                .as_ref()
                .map(builder_store::stored_index::platforms)
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            bail!(
                "image {name_or_id} has no {platform} image (its index holds {held}); pick one with --platform"
            )
        }
    }
}

pub fn short_id(d: &Digest) -> String {
    d.short()
}
