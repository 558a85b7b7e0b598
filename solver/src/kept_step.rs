//! A failed RUN step kept for debugging (`builder build --on-error=keep`, issue #22): the
//! layers it ran on, what it had written (its diff, in overlay format, as any step's), and what
//! it ran with (env, working directory, user, cache mounts), so that `builder debug` can open
//! a shell in the state where it failed.
//!
//! Each lives in `<root>/debug/<id>/`: `step.json` (written last, atomically: a directory
//! without it is an interrupted keep, which [`list`] skips) and `upper/`. Secrets, ssh agents
//! and bind mounts are not kept (their sources are gone, or must not be); the record names
//! them so `builder debug` can say so.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use builder_graph::LayerRef;

const RECORD: &str = "step.json";
const UPPER: &str = "upper";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeptStep {
    /// Sortable by time: `YYYYMMDDTHHMMSS-<pid>-<n>`.
    pub id: String,
    /// `Dockerfile:3` and the step's name, for listings.
    pub location: String,
    pub name: String,
    pub command: Vec<String>,
    pub exit_code: i32,
    /// The rootfs the step started from, bottom first.
    pub layers: Vec<LayerRef>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub hostname: String,
    pub host_network: bool,
    pub mounts: Vec<KeptMount>,
    /// Mounts that are not restored, described (`/run/secrets/token (secret)`).
    pub omitted_mounts: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum KeptMount {
    /// A cache mount's directory in the store, mounted read-write again.
    Cache {
        target: String,
        dir: PathBuf,
    },
    Tmpfs {
        target: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum KeptStepError {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error(
        "no kept step {0:?} (see `builder du --verbose`; steps are kept by `builder build --on-error=keep`)"
    )]
    NotFound(String),
    #[error("kept step {id}: {reason}")]
    Bad { id: String, reason: String },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> KeptStepError {
    let context = context.into();
    move |source| KeptStepError::Io { context, source }
}

/// A new id for a step kept now.
pub fn new_id() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{}-{n}", utc_stamp(now), std::process::id())
}

/// `YYYYMMDDTHHMMSS` of a Unix time, in UTC: the RFC 3339 form without its separators.
fn utc_stamp(secs: u64) -> String {
    builder_store::time::rfc3339_from_unix(secs as i64).replace(['-', ':', 'Z'], "")
}

/// Stores `record` with `diff` (moved, not copied) under `debug_dir`. Returns the step's dir.
pub fn keep(debug_dir: &Path, record: &KeptStep, diff: &Path) -> Result<PathBuf, KeptStepError> {
    let dir = debug_dir.join(&record.id);
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    fs::rename(diff, dir.join(UPPER)).map_err(io_err(format!("keeping {}", diff.display())))?;
    let json = serde_json::to_vec_pretty(record).map_err(|e| KeptStepError::Bad {
        id: record.id.clone(),
        reason: e.to_string(),
    })?;
    let tmp = dir.join(format!("{RECORD}.tmp"));
    fs::write(&tmp, json).map_err(io_err(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, dir.join(RECORD)).map_err(io_err("committing the kept step"))?;
    Ok(dir)
}

/// Kept steps, oldest first, with their directories.
pub fn list(debug_dir: &Path) -> Result<Vec<(KeptStep, PathBuf)>, KeptStepError> {
    let entries = match fs::read_dir(debug_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("reading {}", debug_dir.display()))(e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(bytes) = fs::read(dir.join(RECORD)) else {
            continue;
        };
        if let Ok(step) = serde_json::from_slice::<KeptStep>(&bytes) {
            out.push((step, dir));
        }
    }
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(out)
}

/// The step `which` names: its id, a unique prefix of it, or `last`.
pub fn find(debug_dir: &Path, which: &str) -> Result<(KeptStep, PathBuf), KeptStepError> {
    let mut all = list(debug_dir)?;
    if which == "last" {
        return all
            .pop()
            .ok_or_else(|| KeptStepError::NotFound(which.to_string()));
    }
    let mut hits: Vec<_> = all
        .into_iter()
        .filter(|(s, _)| s.id.starts_with(which))
        .collect();
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => Err(KeptStepError::NotFound(which.to_string())),
        n => Err(KeptStepError::Bad {
            id: which.to_string(),
            reason: format!("{n} kept steps start with it; give more of the id"),
        }),
    }
}

/// The step's files as it left them: a lower layer above its base layers.
pub fn upper_dir(step_dir: &Path) -> PathBuf {
    step_dir.join(UPPER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(utc_stamp(0), "19700101T000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114T221320");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000");
    }

    #[test]
    fn kept_steps_are_found_by_id_prefix_or_last() {
        let dir = tempfile::tempdir().unwrap();
        let step = |id: &str| KeptStep {
            id: id.into(),
            location: "Dockerfile:2".into(),
            name: "RUN false".into(),
            command: vec!["false".into()],
            exit_code: 1,
            layers: vec![],
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            hostname: "h".into(),
            host_network: true,
            mounts: vec![],
            omitted_mounts: vec![],
        };
        for id in ["20240101T000000-1-0", "20250101T000000-1-0"] {
            let diff = dir.path().join(format!("diff-{id}"));
            fs::create_dir(&diff).unwrap();
            keep(&dir.path().join("debug"), &step(id), &diff).unwrap();
        }
        let debug = dir.path().join("debug");
        assert_eq!(find(&debug, "last").unwrap().0.id, "20250101T000000-1-0");
        assert_eq!(find(&debug, "2024").unwrap().0.id, "20240101T000000-1-0");
        assert!(matches!(find(&debug, "2"), Err(KeptStepError::Bad { .. })));
        assert!(matches!(
            find(&debug, "1999"),
            Err(KeptStepError::NotFound(_))
        ));
        // An interrupted keep (no record) is not listed.
        fs::create_dir_all(debug.join("partial/upper")).unwrap();
        assert_eq!(list(&debug).unwrap().len(), 2);
    }
}
