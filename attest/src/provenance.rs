//! SLSA provenance predicates in BuildKit's shape: v0.2 (`https://slsa.dev/provenance/v0.2`,
//! buildType `https://mobyproject.org/buildkit@v1`) and v1 (`https://slsa.dev/provenance/v1`).
//!
//! Secrets and ssh sockets appear by id only: their values never reach this module.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

pub const PREDICATE_TYPE_V02: &str = "https://slsa.dev/provenance/v0.2";
pub const PREDICATE_TYPE_V1: &str = "https://slsa.dev/provenance/v1";
/// v0.2's buildType, as BuildKit's.
pub const BUILD_TYPE_V02: &str = "https://mobyproject.org/buildkit@v1";
/// v1's buildType, as BuildKit's.
pub const BUILD_TYPE_V1: &str =
    "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md";
const BUILDKIT_METADATA: &str = "https://mobyproject.org/buildkit@v1#metadata";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Invocation and materials.
    Min,
    /// Also the build's step graph and the Dockerfile source.
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V02,
    V1,
}

impl Version {
    pub fn predicate_type(self) -> &'static str {
        match self {
            Version::V02 => PREDICATE_TYPE_V02,
            Version::V1 => PREDICATE_TYPE_V1,
        }
    }
}

/// An input of the build: a base image, a downloaded file, a git commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    pub uri: String,
    /// Algorithm → hex (`sha256`, or `sha1` for a git commit).
    pub digest: BTreeMap<String, String>,
}

/// One step of the build graph (mode=max).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// `step0`, `step1`, … in build order.
    pub id: String,
    /// The step as written (`RUN apt-get install ...`).
    pub name: String,
    /// The step's cache key: what it did, with its inputs.
    pub cache_key: String,
    /// Whether the step's layer is part of the image.
    pub in_image: bool,
}

/// What the CLI knows of the build.
#[derive(Clone, Debug, Default)]
pub struct BuildFacts {
    /// `builder-id=` of `--attest type=provenance`, empty as BuildKit's default.
    pub builder_id: String,
    /// The Dockerfile's name in the context (`configSource.entryPoint`).
    pub entry_point: String,
    /// A remote context (git URL) and its commit: the config source's uri and digest.
    pub config_source: Option<Material>,
    /// Frontend attributes BuildKit records: `build-arg:NAME`, `label:KEY`, `target`, ...
    pub args: BTreeMap<String, String>,
    pub secret_ids: Vec<String>,
    pub ssh_ids: Vec<String>,
    /// Local sources (`context`, `dockerfile`, named contexts).
    pub locals: Vec<String>,
    /// The platform built (`linux/amd64`).
    pub platform: String,
    pub materials: Vec<Material>,
    pub invocation_id: String,
    pub started_on: String,
    pub finished_on: String,
    /// `vcs` metadata (`source`, `revision`): buildx's `vcs:` attributes of a local git checkout
    /// (BuildKit records none for a git URL context, whose commit is a material).
    pub vcs: BTreeMap<String, String>,
    pub steps: Vec<Step>,
    /// mode=max: the Dockerfile's name and content.
    pub dockerfile: Option<(String, Vec<u8>)>,
}

fn digest_set(d: &BTreeMap<String, String>) -> Value {
    d.iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect::<Map<_, _>>()
        .into()
}

fn parameters(f: &BuildFacts) -> Value {
    let mut p = Map::new();
    p.insert("frontend".into(), json!("dockerfile.v0"));
    if !f.args.is_empty() {
        p.insert("args".into(), json!(f.args));
    }
    let ids = |v: &[String]| v.iter().map(|id| json!({"id": id})).collect::<Vec<_>>();
    if !f.secret_ids.is_empty() {
        p.insert("secrets".into(), ids(&f.secret_ids).into());
    }
    if !f.ssh_ids.is_empty() {
        p.insert("ssh".into(), ids(&f.ssh_ids).into());
    }
    if !f.locals.is_empty() {
        let locals: Vec<Value> = f.locals.iter().map(|n| json!({"name": n})).collect();
        p.insert("locals".into(), locals.into());
    }
    p.into()
}

fn config_source(f: &BuildFacts) -> Value {
    let mut c = Map::new();
    if let Some(m) = &f.config_source {
        c.insert("uri".into(), json!(m.uri));
        c.insert("digest".into(), digest_set(&m.digest));
    }
    c.insert("entryPoint".into(), json!(f.entry_point));
    c.into()
}

fn build_config(f: &BuildFacts) -> Value {
    let steps: Vec<Value> = f
        .steps
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "name": s.name,
                "cacheKey": s.cache_key,
                "inImage": s.in_image,
            })
        })
        .collect();
    json!({ "llbDefinition": steps })
}

fn buildkit_metadata(f: &BuildFacts, mode: Mode) -> Value {
    let mut m = Map::new();
    if !f.vcs.is_empty() {
        m.insert("vcs".into(), json!(f.vcs));
    }
    if mode == Mode::Max
        && let Some((name, data)) = &f.dockerfile
    {
        m.insert(
            "source".into(),
            json!({"infos": [{
                "filename": name,
                "language": "Dockerfile",
                "data": base64(data),
            }]}),
        );
    }
    m.into()
}

/// Standard base64, as Go encodes `[]byte` in JSON.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The predicate of the given version and mode.
pub fn predicate(f: &BuildFacts, mode: Mode, version: Version) -> Value {
    match version {
        Version::V02 => v02(f, mode),
        Version::V1 => v1(f, mode),
    }
}

fn v02(f: &BuildFacts, mode: Mode) -> Value {
    let materials: Vec<Value> = f
        .materials
        .iter()
        .map(|m| json!({"uri": m.uri, "digest": digest_set(&m.digest)}))
        .collect();
    let mut p = json!({
        "builder": {"id": f.builder_id},
        "buildType": BUILD_TYPE_V02,
        "materials": materials,
        "invocation": {
            "configSource": config_source(f),
            "parameters": parameters(f),
            "environment": {"platform": f.platform},
        },
        "metadata": {
            "buildInvocationID": f.invocation_id,
            "buildStartedOn": f.started_on,
            "buildFinishedOn": f.finished_on,
            // As BuildKit: the materials are complete when no local source went in (a git
            // context with no local named context), since a local one has no digest to list.
            "completeness": {"parameters": mode == Mode::Max, "environment": true, "materials": f.locals.is_empty()},
            "reproducible": false,
            BUILDKIT_METADATA: buildkit_metadata(f, mode),
        },
    });
    if mode == Mode::Max {
        p["buildConfig"] = build_config(f);
    }
    p
}

fn v1(f: &BuildFacts, mode: Mode) -> Value {
    let deps: Vec<Value> = f
        .materials
        .iter()
        .map(|m| json!({"uri": m.uri, "digest": digest_set(&m.digest)}))
        .collect();
    let mut internal = json!({"builderPlatform": f.platform});
    if mode == Mode::Max {
        internal["buildConfig"] = build_config(f);
    }
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE_V1,
            "externalParameters": {
                "configSource": config_source(f),
                "request": parameters(f),
            },
            "internalParameters": internal,
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": f.builder_id},
            "metadata": {
                "invocationID": f.invocation_id,
                "startedOn": f.started_on,
                "finishedOn": f.finished_on,
                "buildkit_metadata": buildkit_metadata(f, mode),
                "buildkit_completeness": {"request": mode == Mode::Max, "resolvedDependencies": f.locals.is_empty()},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> BuildFacts {
        BuildFacts {
            entry_point: "Dockerfile".into(),
            args: [("build-arg:V".to_string(), "1".to_string())].into(),
            secret_ids: vec!["token".into()],
            ssh_ids: vec!["default".into()],
            locals: vec!["context".into(), "dockerfile".into()],
            platform: "linux/amd64".into(),
            materials: vec![Material {
                uri: "pkg:docker/debian@12?platform=linux%2Famd64".into(),
                digest: [("sha256".to_string(), "ab".to_string())].into(),
            }],
            invocation_id: "id1".into(),
            started_on: "2024-01-01T00:00:00Z".into(),
            finished_on: "2024-01-01T00:00:01Z".into(),
            steps: vec![Step {
                id: "step0".into(),
                name: "RUN true".into(),
                cache_key: "sha256:00".into(),
                in_image: true,
            }],
            dockerfile: Some(("Dockerfile".into(), b"FROM debian:12\n".to_vec())),
            ..BuildFacts::default()
        }
    }

    #[test]
    fn v02_min_has_invocation_and_materials_but_no_build_config() {
        let p = predicate(&facts(), Mode::Min, Version::V02);
        assert_eq!(p["buildType"], BUILD_TYPE_V02);
        assert_eq!(
            p["invocation"]["parameters"]["secrets"][0],
            json!({"id": "token"})
        );
        assert_eq!(p["invocation"]["parameters"]["args"]["build-arg:V"], "1");
        assert_eq!(p["materials"][0]["digest"]["sha256"], "ab");
        assert!(p.get("buildConfig").is_none());
        assert!(p["metadata"][BUILDKIT_METADATA].get("source").is_none());
    }

    #[test]
    fn v02_max_adds_steps_and_source() {
        let p = predicate(&facts(), Mode::Max, Version::V02);
        assert_eq!(p["buildConfig"]["llbDefinition"][0]["name"], "RUN true");
        assert_eq!(
            p["metadata"][BUILDKIT_METADATA]["source"]["infos"][0]["data"],
            "RlJPTSBkZWJpYW46MTIK"
        );
    }

    #[test]
    fn v1_shape() {
        let p = predicate(&facts(), Mode::Max, Version::V1);
        assert_eq!(p["buildDefinition"]["buildType"], BUILD_TYPE_V1);
        assert_eq!(
            p["buildDefinition"]["resolvedDependencies"][0]["uri"],
            "pkg:docker/debian@12?platform=linux%2Famd64"
        );
        assert_eq!(
            p["buildDefinition"]["externalParameters"]["request"]["ssh"][0]["id"],
            "default"
        );
        assert_eq!(
            p["buildDefinition"]["internalParameters"]["buildConfig"]["llbDefinition"][0]["id"],
            "step0"
        );
        assert_eq!(p["runDetails"]["metadata"]["invocationID"], "id1");
    }
}
