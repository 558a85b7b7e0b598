//! `--cache-to` and `--cache-from` values, as buildx writes them: comma-separated `key=value`
//! pairs, or for `--cache-from` a bare image reference (meaning `type=registry,ref=...`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use builder_registry::Reference;

use crate::RemoteCacheError;

/// Which steps an export keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The steps whose layers make up the exported image (buildx's default).
    Min,
    /// Every step of every stage built.
    Max,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportTarget {
    /// An OCI image layout directory.
    Local(PathBuf),
    Registry(Reference),
    /// Records in the built image's config.
    Inline,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSpec {
    pub target: ExportTarget,
    pub mode: Mode,
    /// `ignore-error=true`: a failed export is a warning, not a failed build.
    pub ignore_error: bool,
    /// `mounts=true`: also export the contents of the build's cache mounts (see `mounts`).
    pub mounts: bool,
    /// `mounts-max-size=SIZE`: a cache mount larger than this is left out.
    pub mounts_max_size: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportSpec {
    Local(PathBuf),
    Registry(Reference),
}

impl ImportSpec {
    pub fn describe(&self) -> String {
        match self {
            ImportSpec::Local(dir) => format!("cache directory {}", dir.display()),
            ImportSpec::Registry(r) => format!("cache image {r}"),
        }
    }
}

impl ExportSpec {
    pub fn describe(&self) -> String {
        match &self.target {
            ExportTarget::Local(dir) => format!("cache directory {}", dir.display()),
            ExportTarget::Registry(r) => format!("cache image {r}"),
            ExportTarget::Inline => "inline cache".into(),
        }
    }
}

/// The `key=value` pairs; a key given twice is refused (which one would win is a guess).
fn pairs(flag: &str, spec: &str) -> Result<BTreeMap<String, String>, RemoteCacheError> {
    let mut out = BTreeMap::new();
    for p in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (p.trim().to_string(), String::new()),
        };
        if out.contains_key(&k) {
            return Err(bad(flag, spec, format!("{k} is given twice")));
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// Every key must be one this type implements: buildx knows more (`compression`,
/// `oci-mediatypes`, `image-manifest`, `mounts`...), and accepting one without its effect would
/// let a build pass while doing something other than what was asked.
fn known_keys(
    flag: &str,
    spec: &str,
    kv: &BTreeMap<String, String>,
    kind: &str,
    allowed: &[&str],
) -> Result<(), RemoteCacheError> {
    match kv
        .keys()
        .find(|k| k.as_str() != "type" && !allowed.contains(&k.as_str()))
    {
        Some(key) => Err(bad(
            flag,
            spec,
            format!(
                "key {key:?} is not supported for type={kind} (it takes {})",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn bad(flag: &str, spec: &str, msg: impl std::fmt::Display) -> RemoteCacheError {
    RemoteCacheError::Spec(format!("{flag} {spec:?}: {msg}"))
}

/// A reference as the store names it: `app:cache` → `docker.io/library/app:cache`, `latest`
/// when neither tag nor digest is given.
fn reference(flag: &str, spec: &str, name: &str) -> Result<Reference, RemoteCacheError> {
    let mut r: Reference = name.parse().map_err(|e| bad(flag, spec, e))?;
    if r.tag.is_none() && r.digest.is_none() {
        r.tag = Some("latest".into());
    }
    Ok(r)
}

fn required<'a>(
    flag: &str,
    spec: &str,
    kv: &'a BTreeMap<String, String>,
    key: &str,
    kind: &str,
) -> Result<&'a str, RemoteCacheError> {
    kv.get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad(flag, spec, format!("type={kind} needs {key}=...")))
}

pub fn parse_cache_to(spec: &str) -> Result<ExportSpec, RemoteCacheError> {
    const FLAG: &str = "--cache-to";
    let kv = pairs(FLAG, spec)?;
    let mode = match kv.get("mode").map(String::as_str) {
        None | Some("min") => Mode::Min,
        Some("max") => Mode::Max,
        Some(other) => return Err(bad(FLAG, spec, format!("mode={other} (use min or max)"))),
    };
    let ignore_error = match kv.get("ignore-error").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(bad(FLAG, spec, format!("ignore-error={other}"))),
    };
    let mounts = match kv.get("mounts").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad(
                FLAG,
                spec,
                format!("mounts={other} (use true or false)"),
            ));
        }
    };
    let mounts_max_size = match kv.get("mounts-max-size") {
        None => None,
        Some(v) => Some(
            builder_store::units::ram_in_bytes(v)
                .map_err(|e| bad(FLAG, spec, format!("mounts-max-size: {e}")))?,
        ),
    };
    if mounts_max_size.is_some() && !mounts {
        return Err(bad(FLAG, spec, "mounts-max-size needs mounts=true"));
    }
    let target = match kv.get("type").map(String::as_str) {
        Some("local") => {
            known_keys(
                FLAG,
                spec,
                &kv,
                "local",
                &["dest", "mode", "ignore-error", "mounts", "mounts-max-size"],
            )?;
            ExportTarget::Local(required(FLAG, spec, &kv, "dest", "local")?.into())
        }
        Some("registry") => {
            known_keys(
                FLAG,
                spec,
                &kv,
                "registry",
                &["ref", "mode", "ignore-error", "mounts", "mounts-max-size"],
            )?;
            let name = required(FLAG, spec, &kv, "ref", "registry")?;
            ExportTarget::Registry(reference(FLAG, spec, name)?)
        }
        Some("inline") if mode == Mode::Max => {
            return Err(bad(FLAG, spec, "type=inline only supports mode=min"));
        }
        Some("inline") => {
            // ignore-error is not here: embedding inline cache is part of writing the image.
            known_keys(FLAG, spec, &kv, "inline", &["mode"])?;
            ExportTarget::Inline
        }
        Some(other) => {
            return Err(bad(
                FLAG,
                spec,
                format!("type={other} is not supported (use local, registry or inline)"),
            ));
        }
        None => return Err(bad(FLAG, spec, "type=... is required")),
    };
    Ok(ExportSpec {
        target,
        mode,
        ignore_error,
        mounts,
        mounts_max_size,
    })
}

pub fn parse_cache_from(spec: &str) -> Result<ImportSpec, RemoteCacheError> {
    const FLAG: &str = "--cache-from";
    if !spec.contains('=') {
        return Ok(ImportSpec::Registry(reference(FLAG, spec, spec)?));
    }
    let kv = pairs(FLAG, spec)?;
    match kv.get("type").map(String::as_str) {
        Some("local") => {
            known_keys(FLAG, spec, &kv, "local", &["src"])?;
            Ok(ImportSpec::Local(
                required(FLAG, spec, &kv, "src", "local")?.into(),
            ))
        }
        Some("registry") => {
            known_keys(FLAG, spec, &kv, "registry", &["ref"])?;
            let name = required(FLAG, spec, &kv, "ref", "registry")?;
            Ok(ImportSpec::Registry(reference(FLAG, spec, name)?))
        }
        Some(other) => Err(bad(
            FLAG,
            spec,
            format!("type={other} is not supported (use local or registry)"),
        )),
        None => Err(bad(FLAG, spec, "type=... is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_to_forms() {
        let s = parse_cache_to("type=local,dest=/tmp/c,mode=max").unwrap();
        assert_eq!(s.target, ExportTarget::Local("/tmp/c".into()));
        assert_eq!(s.mode, Mode::Max);
        let s = parse_cache_to("type=registry,ref=localhost:5000/app:cache").unwrap();
        assert_eq!(s.mode, Mode::Min);
        assert!(!s.ignore_error);
        let ExportTarget::Registry(r) = s.target else {
            panic!("registry")
        };
        assert_eq!(r.to_string(), "localhost:5000/app:cache");
        assert_eq!(
            parse_cache_to("type=inline").unwrap().target,
            ExportTarget::Inline
        );
        assert!(
            parse_cache_to("type=local,dest=x,ignore-error=true")
                .unwrap()
                .ignore_error
        );
        for wrong in [
            "type=local",
            "type=inline,mode=max",
            "type=gha",
            "dest=x",
            "type=local,dest=x,mode=all",
        ] {
            assert!(parse_cache_to(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn cache_from_forms() {
        assert_eq!(
            parse_cache_from("type=local,src=/c").unwrap(),
            ImportSpec::Local("/c".into())
        );
        let ImportSpec::Registry(r) = parse_cache_from("app").unwrap() else {
            panic!("registry")
        };
        assert_eq!(r.to_string(), "docker.io/library/app:latest");
        assert!(parse_cache_from("type=registry").is_err());
        assert!(parse_cache_from("type=s3,bucket=b").is_err());
    }
}
