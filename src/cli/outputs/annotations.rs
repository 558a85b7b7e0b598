//! `--annotation` and an output's `annotation.*` keys: where each annotation goes
//! (manifest, index, descriptors; per platform), as BuildKit spells them.

use super::*;

/// Where an annotation goes, as BuildKit names the places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnnotationTarget {
    Manifest,
    ManifestDescriptor,
    Index,
    IndexDescriptor,
}

impl AnnotationTarget {
    fn parse(s: &str) -> Option<AnnotationTarget> {
        Some(match s {
            "manifest" => AnnotationTarget::Manifest,
            "manifest-descriptor" => AnnotationTarget::ManifestDescriptor,
            "index" => AnnotationTarget::Index,
            "index-descriptor" => AnnotationTarget::IndexDescriptor,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            AnnotationTarget::Manifest => "manifest",
            AnnotationTarget::ManifestDescriptor => "manifest-descriptor",
            AnnotationTarget::Index => "index",
            AnnotationTarget::IndexDescriptor => "index-descriptor",
        }
    }
}

/// One annotation's place and key; the platform, when given, limits it to that platform's
/// manifest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AnnotationKey {
    pub target: AnnotationTarget,
    pub platform: Option<String>,
    pub key: String,
}

impl AnnotationKey {
    /// How buildx's `--annotation` spells it: `manifest[linux/amd64]:KEY`.
    pub(super) fn describe(&self) -> String {
        match &self.platform {
            Some(p) => format!("{}[{p}]:{}", self.target.name(), self.key),
            None => format!("{}:{}", self.target.name(), self.key),
        }
    }
}

/// `TYPE` or `TYPE[PLATFORM]`, as both spellings of an annotation put it.
fn target_and_platform(s: &str) -> Option<(AnnotationTarget, Option<String>)> {
    let (target, platform) = match s.split_once('[') {
        Some((t, rest)) => {
            let p = rest.strip_suffix(']')?;
            let ok = !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '-'));
            if !ok {
                return None;
            }
            (t, Some(p.to_string()))
        }
        None => (s, None),
    };
    Some((AnnotationTarget::parse(target)?, platform))
}

/// An output key naming an annotation (`annotation.K`, `annotation-manifest.K`,
/// `annotation-index[linux/amd64].K`...): `None` when `key` is not one, an error when it is
/// one with an unknown place.
pub(super) fn output_annotation_key(key: &str) -> Option<Result<AnnotationKey, String>> {
    let rest = key.strip_prefix("annotation")?;
    if let Some(k) = rest.strip_prefix('.') {
        return Some(Ok(AnnotationKey {
            target: AnnotationTarget::Manifest,
            platform: None,
            key: k.to_string(),
        }));
    }
    let rest = rest.strip_prefix('-')?;
    // The place (and platform) ends at the first `.` after any `]`.
    let split = match rest.find(']') {
        Some(close) => rest[close..].find('.').map(|i| close + i),
        None => rest.find('.'),
    };
    let parsed = split.and_then(|i| {
        let (place, k) = (&rest[..i], &rest[i + 1..]);
        let (target, platform) = target_and_platform(place)?;
        (!k.is_empty()).then(|| AnnotationKey {
            target,
            platform,
            key: k.to_string(),
        })
    });
    Some(parsed.ok_or_else(|| {
        format!(
            "{key:?} is not an annotation key (annotation.KEY, or annotation-manifest, -manifest-descriptor, -index or -index-descriptor with an optional [PLATFORM], then .KEY)"
        )
    }))
}

/// `--annotation [TYPES:]KEY=VALUE` as buildx takes it: TYPES is a comma-separated list of
/// places, each with an optional `[PLATFORM]`; without it the annotation goes on the manifest.
pub fn parse_annotation_flags(
    flags: &[String],
) -> Result<BTreeMap<AnnotationKey, String>, UsageError> {
    let mut out = BTreeMap::new();
    for flag in flags.iter().filter(|f| !f.is_empty()) {
        let bad = |why: String| UsageError(format!("--annotation {flag:?}: {why}"));
        let (k, v) = flag
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE".into()))?;
        let (places, key) = match k.split_once(':') {
            Some((places, key)) => (Some(places), key),
            None => (None, k),
        };
        if key.is_empty() {
            return Err(bad("the key is empty".into()));
        }
        let Some(places) = places else {
            out.insert(
                AnnotationKey {
                    target: AnnotationTarget::Manifest,
                    platform: None,
                    key: key.to_string(),
                },
                v.to_string(),
            );
            continue;
        };
        for place in places.split(',') {
            let (target, platform) = target_and_platform(place).ok_or_else(|| {
                bad(format!(
                    "unknown annotation type {place:?} (use manifest, manifest-descriptor, index or index-descriptor, optionally with [PLATFORM])"
                ))
            })?;
            out.insert(
                AnnotationKey {
                    target,
                    platform,
                    key: key.to_string(),
                },
                v.to_string(),
            );
        }
    }
    Ok(out)
}
