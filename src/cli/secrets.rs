//! `build --secret`: buildx's spec (`id=`, `src=`/`source=`, `env=`, `type=file|env`) turned
//! into the files the solver mounts for `RUN --mount=type=secret`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::bail;

use super::UsageError;
use super::outputs::{csv_fields, parse_kv_csv};

/// Where one secret's value comes from.
enum Source {
    File(PathBuf),
    Env(OsString),
}

/// Each secret's file by id, and the temp files holding values taken from the environment
/// (private, deleted when dropped: keep them for the build's duration).
pub fn parse_secrets(
    specs: &[String],
) -> anyhow::Result<(BTreeMap<String, PathBuf>, Vec<tempfile::TempPath>)> {
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    for spec in specs {
        let (id, source) = parse_one(spec)?;
        let path = match source {
            Source::File(path) => {
                if !path.is_file() {
                    bail!(UsageError(format!(
                        "--secret {spec:?}: {} is not a readable file",
                        path.display()
                    )));
                }
                path
            }
            Source::Env(var) => {
                let value = std::env::var_os(&var).ok_or_else(|| {
                    UsageError(format!(
                        "--secret {spec:?}: environment variable {} is not set",
                        var.to_string_lossy()
                    ))
                })?;
                let file = tempfile::NamedTempFile::new()?;
                fs::write(file.path(), value.as_bytes())?;
                let path = file.into_temp_path();
                let p = path.to_path_buf();
                files.push(path);
                p
            }
        };
        // As buildx: a later --secret with the same id replaces an earlier one.
        out.insert(id, path);
    }
    Ok((out, files))
}

fn parse_one(spec: &str) -> Result<(String, Source), UsageError> {
    if let Some(bare) = csv_fields(spec).into_iter().find(|f| !f.contains('=')) {
        return Err(UsageError(format!(
            "--secret {spec:?}: {bare:?} is not a KEY=VALUE field"
        )));
    }
    check_keys("--secret", spec, &["id", "type", "src", "source", "env"])?;
    let kv = parse_kv_csv(spec);
    let id = kv
        .get("id")
        .filter(|id| !id.is_empty())
        .cloned()
        .ok_or_else(|| UsageError(format!("--secret {spec:?}: id=NAME is required")))?;
    let src = kv.get("src").or(kv.get("source")).filter(|s| !s.is_empty());
    let env = kv.get("env").filter(|s| !s.is_empty());
    let source = match (kv.get("type").map(String::as_str), src, env) {
        (Some(t), _, _) if t != "file" && t != "env" => {
            return Err(UsageError(format!(
                "--secret {spec:?}: type={t} is not a secret type (file or env)"
            )));
        }
        (_, Some(_), Some(_)) => {
            return Err(UsageError(format!(
                "--secret {spec:?}: give src=FILE or env=VAR, not both"
            )));
        }
        (_, _, Some(var)) => Source::Env(var.into()),
        // buildx: with type=env, src= names the variable.
        (Some("env"), Some(var), None) => Source::Env(var.into()),
        (_, Some(file), None) => Source::File(file.into()),
        // buildx's fallback, whatever the type: the environment variable named like the id
        // when it is set, else the file of that name.
        (_, None, None) => match std::env::var_os(&id) {
            Some(_) => Source::Env(id.clone().into()),
            None => Source::File(id.clone().into()),
        },
    };
    Ok((id, source))
}

/// Every key of a buildx CSV value must be one `allowed` names, and none given twice.
fn check_keys(flag: &str, spec: &str, allowed: &[&str]) -> Result<(), UsageError> {
    let mut seen = Vec::new();
    for part in csv_fields(spec) {
        let key = part
            .split_once('=')
            .map_or(part.as_str(), |(k, _)| k)
            .trim()
            .to_string();
        if seen.contains(&key) {
            return Err(UsageError(format!("{flag} {spec:?}: {key} is given twice")));
        }
        if !allowed.contains(&key.as_str()) {
            let kind = match parse_kv_csv(spec).get("type") {
                Some(kind) => format!(" for type={kind}"),
                None => String::new(),
            };
            return Err(UsageError(format!(
                "{flag} {spec:?}: key {key:?} is not supported{kind} (it takes {})",
                allowed.join(", ")
            )));
        }
        seen.push(key);
    }
    Ok(())
}
