//! `builder build --output` and `--annotation`: buildx's exporter forms, parsed and checked
//! before the build starts, so a refused key never costs a build.
//!
//! Every output that writes an image (`image`, `registry`, `docker`, `oci`) has its own
//! [`ImageStyle`]: media types and annotations, which change the manifest (and its digest) but
//! not the layers or the config. Layers are written once per build, so all outputs share one
//! layer compression.

use std::collections::BTreeMap;
use std::path::PathBuf;

use builder_snapshot::{Compression, ZSTD_MAX_LEVEL};
use builder_solver::Platform;

use super::{UsageError, normalize};

mod annotations;
use annotations::output_annotation_key;
pub use annotations::{AnnotationKey, AnnotationTarget, parse_annotation_flags};

/// One `--output` destination that writes files.
#[derive(Clone, Debug)]
pub enum OutputSpec {
    DockerArchive(PathBuf),
    OciArchive(PathBuf),
    /// `type=oci|docker,tar=false`: an OCI image layout directory.
    OciDir(PathBuf),
    RootfsTar(PathBuf),
    Local(PathBuf),
}

impl OutputSpec {
    /// `dest=-` (or `-o -`): the archive goes to stdout.
    pub fn is_stdout(&self) -> bool {
        match self {
            OutputSpec::DockerArchive(p) | OutputSpec::OciArchive(p) | OutputSpec::RootfsTar(p) => {
                p.as_os_str() == "-"
            }
            OutputSpec::Local(_) | OutputSpec::OciDir(_) => false,
        }
    }

    pub fn describe(&self) -> String {
        if self.is_stdout() {
            return match self {
                OutputSpec::DockerArchive(_) => "docker archive on stdout".into(),
                OutputSpec::OciArchive(_) => "OCI archive on stdout".into(),
                _ => "tar on stdout".into(),
            };
        }
        match self {
            OutputSpec::DockerArchive(p) => format!("docker archive {}", p.display()),
            OutputSpec::OciArchive(p) => format!("OCI archive {}", p.display()),
            OutputSpec::OciDir(p) => format!("OCI layout {}", p.display()),
            OutputSpec::RootfsTar(p) => format!("tar {}", p.display()),
            OutputSpec::Local(p) => format!("directory {}", p.display()),
        }
    }

    /// Whether this output has an index.json, where a manifest's descriptor is written.
    fn has_index(&self) -> bool {
        matches!(
            self,
            OutputSpec::DockerArchive(_) | OutputSpec::OciArchive(_) | OutputSpec::OciDir(_)
        )
    }
}

/// How an image output writes the image: media types and annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageStyle {
    /// `oci-mediatypes=`; unset means OCI, as current BuildKit defaults for every exporter.
    pub oci_types: Option<bool>,
    pub annotations: BTreeMap<AnnotationKey, String>,
    /// `force-compression=true`: layers made elsewhere (a base image's) are recompressed to
    /// the build's layer compression too.
    pub force_compression: bool,
}

impl ImageStyle {
    pub fn docker_types(&self) -> bool {
        self.oci_types == Some(false)
    }

    /// The annotations for `target` (their platform was checked to be the build's).
    pub fn annotations_for(&self, target: AnnotationTarget) -> BTreeMap<String, String> {
        self.annotations
            .iter()
            .filter(|(k, _)| k.target == target)
            .map(|(k, v)| (k.key.clone(), v.clone()))
            .collect()
    }
}

/// `push=true` on an image output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    /// `push-by-digest=true`: push the manifest without a tag.
    pub by_digest: bool,
}

/// One parsed `--output`.
pub struct OutputRequest {
    /// The `--output` value, for messages.
    pub raw: String,
    /// Where files go; `None` for `type=image|registry` and `type=docker` without dest.
    pub spec: Option<OutputSpec>,
    pub compression: Option<Compression>,
    /// `name=`: more names for the image, in the store (and in archives this output writes).
    pub names: Vec<String>,
    /// For outputs that write an image (image, registry, docker, oci).
    pub style: Option<ImageStyle>,
    pub push: Option<Push>,
    /// `name-canonical=true`: each name is also stored as `NAME@DIGEST`.
    pub name_canonical: bool,
}

impl OutputRequest {
    /// Whether this output puts its image into the store under its names (buildx's image
    /// exporter and docker's load): its style is then the one the store keeps for `-t`.
    pub fn loads(&self) -> bool {
        self.style.is_some() && self.spec.is_none()
    }
}

/// The fields of a buildx CSV value: commas separate them, except inside double quotes, which
/// is how buildx takes several names in one key (`"name=a:1,b:1"`); the quotes are removed.
pub fn csv_fields(s: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields.retain(|f| !f.is_empty());
    fields
}

pub fn parse_kv_csv(s: &str) -> BTreeMap<String, String> {
    csv_fields(s)
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .unwrap_or((p.to_string(), String::new()))
        })
        .collect()
}

/// Refuses a key given twice and any key outside `allowed` (annotation keys are checked
/// where they are parsed), naming it: a key that buildx knows but builder does not implement
/// must not be accepted and ignored.
fn check_keys(spec: &str, allowed: &[&str], annotations: bool) -> Result<(), UsageError> {
    let mut seen = Vec::new();
    for part in csv_fields(spec) {
        let key = part
            .split_once('=')
            .map_or(part.as_str(), |(k, _)| k)
            .trim()
            .to_string();
        if seen.contains(&key) {
            return Err(UsageError(format!(
                "--output {spec:?}: {key} is given twice"
            )));
        }
        let is_annotation = annotations && output_annotation_key(&key).is_some();
        if !allowed.contains(&key.as_str()) && !is_annotation {
            let kind = match parse_kv_csv(spec).get("type") {
                Some(kind) => format!(" for type={kind}"),
                None => String::new(),
            };
            let more = if annotations { ", annotation.*" } else { "" };
            return Err(UsageError(format!(
                "--output {spec:?}: key {key:?} is not supported{kind} (it takes {}{more})",
                allowed.join(", ")
            )));
        }
        seen.push(key);
    }
    Ok(())
}

/// Go's `strconv.ParseBool`, as BuildKit reads its boolean keys; an empty value means true.
fn parse_bool(spec: &str, key: &str, value: &str) -> Result<bool, UsageError> {
    match value {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(UsageError(format!(
            "--output {spec:?}: {key}={other:?} is not a boolean"
        ))),
    }
}

/// Whether a reference as the user wrote it names its registry: the first component looks
/// like a host (has a `.` or `:`, or is `localhost`), as docker decides.
fn names_registry_host(name: &str) -> bool {
    name.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    })
}

/// A name `push=true` will push to: one without a registry host would go to Docker Hub's
/// `library/` namespace (or a user's), which buildx tries and fails without push access
/// there; builder refuses it before building and asks for the registry to be named.
pub fn check_push_name(what: &str, name: &str) -> Result<(), UsageError> {
    if names_registry_host(name) {
        return Ok(());
    }
    Err(UsageError(format!(
        "{what}: {name:?} names no registry, so it would be pushed to Docker Hub ({}); name the registry: REGISTRY/REPOSITORY:TAG (docker.io/USER/REPOSITORY:TAG for Docker Hub)",
        normalize(name).unwrap_or_else(|_| name.to_string())
    )))
}

const COMPRESSION_KEYS: [&str; 3] = ["compression", "compression-level", "force-compression"];

pub fn parse_output(spec: &str) -> Result<OutputRequest, UsageError> {
    let plain = |out: OutputSpec| OutputRequest {
        raw: spec.to_string(),
        spec: Some(out),
        compression: None,
        names: Vec::new(),
        style: None,
        push: None,
        name_canonical: false,
    };
    // buildx: `-` alone is the filesystem as a tar on stdout.
    if spec == "-" {
        return Ok(plain(OutputSpec::RootfsTar(PathBuf::from("-"))));
    }
    // docker also accepts a bare path, meaning type=local.
    if !spec.contains('=') {
        return Ok(plain(OutputSpec::Local(PathBuf::from(spec))));
    }
    let kv = parse_kv_csv(spec);
    let kind = kv.get("type").map(String::as_str);
    let image_keys: Vec<&str> = [
        "type",
        "name",
        "push",
        "push-by-digest",
        "name-canonical",
        "unpack",
        "oci-mediatypes",
    ]
    .into_iter()
    .chain(COMPRESSION_KEYS)
    .collect();
    let archive_keys: Vec<&str> = ["type", "dest", "name", "tar", "oci-mediatypes"]
        .into_iter()
        .chain(COMPRESSION_KEYS)
        .collect();
    // compression is let through to be refused below with the reason (no layers here).
    let fs_keys: Vec<&str> = ["type", "dest"]
        .into_iter()
        .chain(COMPRESSION_KEYS)
        .collect();
    match kind {
        Some("image" | "registry") => check_keys(spec, &image_keys, true)?,
        Some("docker" | "oci") => check_keys(spec, &archive_keys, true)?,
        Some("tar" | "local") => check_keys(spec, &fs_keys, false)?,
        Some(other) => {
            return Err(UsageError(format!(
                "--output type={other} is not supported (use image, registry, docker, oci, tar or local)"
            )));
        }
        None => {
            return Err(UsageError(format!(
                "--output {spec:?}: type=... is required"
            )));
        }
    }
    let bad = |why: String| UsageError(format!("--output {spec:?}: {why}"));
    let flag = |key: &str| {
        kv.get(key)
            .map(|v| parse_bool(spec, key, v))
            .transpose()
            .map(|b| b.unwrap_or(false))
    };
    let names = match kv.get("name") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| normalize(n).map_err(|e| bad(format!("name {n:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if kv.contains_key("name") && names.is_empty() {
        return Err(bad("name= is empty".into()));
    }
    let dest = kv.get("dest").map(PathBuf::from);
    let need_dest = |t: &str| {
        dest.clone()
            .ok_or_else(|| UsageError(format!("--output type={t} needs dest=PATH")))
    };
    let tar = kv
        .get("tar")
        .map(|v| parse_bool(spec, "tar", v))
        .transpose()?
        .unwrap_or(true);
    let out = match kind {
        Some("image" | "registry") => None,
        // tar=false: the image's content as an OCI layout directory, for both (as BuildKit
        // copies it into a local content store either way).
        Some("docker" | "oci") if !tar => {
            let dir = need_dest(kind.unwrap_or_default())?;
            if dir.as_os_str() == "-" {
                return Err(bad(
                    "tar=false writes a directory, not a stream; leave tar=false out for stdout"
                        .into(),
                ));
            }
            Some(OutputSpec::OciDir(dir))
        }
        // Without dest, buildx loads the image into docker: here, the store (always done).
        Some("docker") => dest.clone().map(OutputSpec::DockerArchive),
        Some("oci") => Some(OutputSpec::OciArchive(need_dest("oci")?)),
        Some("tar") => Some(OutputSpec::RootfsTar(need_dest("tar")?)),
        _ => {
            if dest.as_ref().is_some_and(|d| d.as_os_str() == "-") {
                return Err(bad(
                    "type=local writes a directory, not a stream; use type=tar,dest=- for stdout"
                        .into(),
                ));
            }
            Some(OutputSpec::Local(need_dest("local")?))
        }
    };
    check_destination(spec, out.as_ref())?;
    let compression = parse_compression(spec, &kv)?;
    let force_compression = flag("force-compression")?;
    let writes_image = matches!(kind, Some("image" | "registry" | "docker" | "oci"));
    if (compression.is_some() || kv.contains_key("force-compression")) && !writes_image {
        return Err(bad(
            "compression applies to outputs that write image layers (image, registry, docker, oci), not to a filesystem".into(),
        ));
    }
    let push = match kind {
        Some("registry") => {
            if kv.contains_key("push") && !flag("push")? {
                return Err(bad(
                    "type=registry always pushes; use type=image for push=false".into(),
                ));
            }
            true
        }
        _ => flag("push")?,
    };
    let by_digest = flag("push-by-digest")?;
    if by_digest && !push {
        return Err(bad(
            "push-by-digest=true only applies with push=true (or type=registry)".into(),
        ));
    }
    if push {
        if names.is_empty() && kv.contains_key("name") {
            return Err(bad("name= is empty".into()));
        }
        for n in kv
            .get("name")
            .into_iter()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            check_push_name(&format!("--output {spec:?}"), n)?;
        }
    }
    if flag("unpack")? {
        return Err(bad(
            "unpack=true has nothing to do here: builder keeps no separate image store to unpack into; `builder run` and RUN steps unpack an image's layers when they first need them (unpack=false is accepted)".into(),
        ));
    }
    let mut annotations = BTreeMap::new();
    if writes_image {
        for (k, v) in &kv {
            if let Some(key) = output_annotation_key(k) {
                annotations.insert(key.map_err(&bad)?, v.clone());
            }
        }
    }
    let oci_types = kv
        .get("oci-mediatypes")
        .map(|v| parse_bool(spec, "oci-mediatypes", v))
        .transpose()?;
    let style = writes_image.then_some(ImageStyle {
        oci_types,
        annotations,
        force_compression,
    });
    Ok(OutputRequest {
        raw: spec.to_string(),
        spec: out,
        compression,
        names,
        style,
        push: push.then_some(Push { by_digest }),
        name_canonical: flag("name-canonical")?,
    })
}

/// As buildx, before building: a directory output cannot go where a file is, nor a file
/// output where a directory is.
fn check_destination(spec: &str, out: Option<&OutputSpec>) -> Result<(), UsageError> {
    let Some(out) = out.filter(|o| !o.is_stdout()) else {
        return Ok(());
    };
    let (path, want_dir) = match out {
        OutputSpec::OciDir(p) | OutputSpec::Local(p) => (p, true),
        OutputSpec::DockerArchive(p) | OutputSpec::OciArchive(p) | OutputSpec::RootfsTar(p) => {
            (p, false)
        }
    };
    match std::fs::metadata(path) {
        Ok(m) if want_dir && !m.is_dir() => Err(UsageError(format!(
            "--output {spec:?}: {} exists and is not a directory",
            path.display()
        ))),
        Ok(m) if !want_dir && m.is_dir() => Err(UsageError(format!(
            "--output {spec:?}: {} is a directory; this output writes a file",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Adds `--annotation`s to every image output (buildx sets them on each `--output`), then
/// checks each output's style against what BuildKit allows for a single-platform image.
pub fn finish_outputs(
    outputs: &mut [OutputRequest],
    flags: &BTreeMap<AnnotationKey, String>,
    platform: &Platform,
    compression: Compression,
) -> Result<(), UsageError> {
    for out in outputs.iter_mut() {
        if let Some(style) = &mut out.style {
            style
                .annotations
                .extend(flags.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    for out in outputs.iter() {
        if let Some(style) = &out.style {
            let what = format!("--output {:?}", out.raw);
            check_style(&what, style, out.spec.as_ref(), platform, compression)?;
        }
    }
    // The flags on their own: they also reach the stored image (and --push), so one with no
    // place in any image is refused even when no --output takes it.
    let flags_style = ImageStyle {
        annotations: flags.clone(),
        ..ImageStyle::default()
    };
    let with_index = outputs
        .iter()
        .filter(|o| o.style.is_some())
        .find_map(|o| o.spec.as_ref().filter(|s| s.has_index()));
    check_style(
        "--annotation",
        &flags_style,
        with_index,
        platform,
        compression,
    )
}

/// The style the store keeps for `-t` names when no output loads an image: buildx's default
/// load, with the `--annotation`s that go on a manifest (the store keeps no descriptors).
pub fn store_style(flags: &BTreeMap<AnnotationKey, String>) -> ImageStyle {
    ImageStyle {
        oci_types: None,
        force_compression: false,
        annotations: flags
            .iter()
            .filter(|(k, _)| k.target == AnnotationTarget::Manifest)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// What BuildKit refuses for a single-platform export, refused the same way before building.
fn check_style(
    what: &str,
    style: &ImageStyle,
    spec: Option<&OutputSpec>,
    platform: &Platform,
    compression: Compression,
) -> Result<(), UsageError> {
    let bad = |why: String| UsageError(format!("{what}: {why}"));
    if style.docker_types() && matches!(compression, Compression::Zstd { .. }) {
        return Err(bad(
            "compression=zstd conflicts with oci-mediatypes=false: Docker schema2 has no zstd layer type".into(),
        ));
    }
    for key in style.annotations.keys() {
        if let Some(p) = &key.platform {
            let theirs: Platform = p
                .parse()
                .map_err(|e| bad(format!("annotation {}: {e}", key.describe())))?;
            if theirs != *platform {
                return Err(bad(format!(
                    "annotation {}: this build makes no {p} image (it builds {platform})",
                    key.describe()
                )));
            }
        }
        match key.target {
            AnnotationTarget::Manifest => {}
            _ if style.docker_types() => {
                return Err(bad(format!(
                    "annotation {}: only manifest annotations can be exported with oci-mediatypes=false",
                    key.describe()
                )));
            }
            AnnotationTarget::Index | AnnotationTarget::IndexDescriptor => {
                return Err(bad(format!(
                    "annotation {}: index annotations are not supported for a single-platform image, which has no index (as BuildKit refuses them)",
                    key.describe()
                )));
            }
            AnnotationTarget::ManifestDescriptor if !spec.is_some_and(OutputSpec::has_index) => {
                return Err(bad(format!(
                    "annotation {}: a single-platform image pushed or stored has no descriptor to carry it; manifest-descriptor annotations are written in the index.json of type=oci or type=docker with dest",
                    key.describe()
                )));
            }
            AnnotationTarget::ManifestDescriptor => {}
        }
    }
    Ok(())
}

/// At most one output can be stdout, not a terminal, and not shared with `-q`'s image id.
pub fn check_stdout_outputs(outputs: &[OutputRequest], quiet: bool) -> Result<(), UsageError> {
    use std::io::IsTerminal;
    let to_stdout = outputs
        .iter()
        .filter(|o| o.spec.as_ref().is_some_and(OutputSpec::is_stdout))
        .count();
    if to_stdout == 0 {
        return Ok(());
    }
    if to_stdout > 1 {
        return Err(UsageError(
            "--output: only one output can be written to stdout (-)".into(),
        ));
    }
    if quiet {
        return Err(UsageError(
            "--output to stdout (-) and -q both write to stdout; leave one out".into(),
        ));
    }
    if std::io::stdout().is_terminal() {
        return Err(UsageError(
            "--output to stdout (-): stdout is a terminal; redirect it to a file or a pipe".into(),
        ));
    }
    Ok(())
}

/// buildx's `compression=` and `compression-level=` keys; a level alone means gzip at that level.
fn parse_compression(
    spec: &str,
    kv: &BTreeMap<String, String>,
) -> Result<Option<Compression>, UsageError> {
    let bad = |msg: String| UsageError(format!("--output {spec:?}: {msg}"));
    let level = kv
        .get("compression-level")
        .map(|l| {
            l.parse::<i32>()
                .map_err(|_| bad(format!("compression-level={l:?} is not a number")))
        })
        .transpose()?;
    let kind = match kv.get("compression").map(String::as_str) {
        Some(kind) => kind,
        None if level.is_some() => "gzip",
        None => return Ok(None),
    };
    let in_range = |lo: i32, hi: i32, kind: &str| match level {
        Some(l) if !(lo..=hi).contains(&l) => Err(bad(format!(
            "compression-level={l} is out of range for {kind} ({lo}..={hi})"
        ))),
        _ => Ok(level),
    };
    Ok(Some(match kind {
        "gzip" => match in_range(0, 9, "gzip")? {
            Some(l) => Compression::Gzip { level: l as u32 },
            None => Compression::GZIP_DEFAULT,
        },
        "zstd" => match in_range(1, ZSTD_MAX_LEVEL, "zstd")? {
            Some(l) => Compression::Zstd { level: l },
            None => Compression::ZSTD_DEFAULT,
        },
        "uncompressed" if level.is_some() => {
            return Err(bad("compression-level needs gzip or zstd".into()));
        }
        "uncompressed" => Compression::Uncompressed,
        other => {
            return Err(bad(format!(
                "compression={other} is not supported (use gzip, zstd or uncompressed)"
            )));
        }
    }))
}

/// The one compression every layer of this build gets: layers are written once, so
/// outputs that ask for different ones cannot all be served.
pub fn layer_compression(outputs: &[OutputRequest]) -> Result<Compression, UsageError> {
    let mut asked = outputs.iter().filter_map(|o| o.compression);
    let Some(first) = asked.next() else {
        return Ok(Compression::GZIP_DEFAULT);
    };
    match asked.find(|c| *c != first) {
        Some(other) => Err(UsageError(format!(
            "--output entries ask for different layer compressions ({first:?} and {other:?}); give them all the same one"
        ))),
        None => Ok(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_keys_as_buildkit_spells_them() {
        let k = output_annotation_key("annotation.org.opencontainers.image.title")
            .unwrap()
            .unwrap();
        assert_eq!(k.target, AnnotationTarget::Manifest);
        assert_eq!(k.key, "org.opencontainers.image.title");
        let k = output_annotation_key("annotation-manifest-descriptor.a.b")
            .unwrap()
            .unwrap();
        assert_eq!(
            (k.target, k.key.as_str()),
            (AnnotationTarget::ManifestDescriptor, "a.b")
        );
        let k = output_annotation_key("annotation-index[linux/amd64].x")
            .unwrap()
            .unwrap();
        assert_eq!(k.platform.as_deref(), Some("linux/amd64"));
        assert!(
            output_annotation_key("annotation-bogus.x")
                .unwrap()
                .is_err()
        );
        assert!(output_annotation_key("name").is_none());
    }

    #[test]
    fn annotation_flags_take_several_places() {
        let a = parse_annotation_flags(&["manifest,manifest-descriptor:k=v".into(), "j=w".into()])
            .unwrap();
        assert_eq!(a.len(), 3);
        assert!(parse_annotation_flags(&["nope:k=v".into()]).is_err());
        assert!(parse_annotation_flags(&["k".into()]).is_err());
    }

    #[test]
    fn registry_hosts_as_docker_decides() {
        assert!(names_registry_host("localhost:5000/a:1"));
        assert!(names_registry_host("localhost/a"));
        assert!(names_registry_host("docker.io/u/a"));
        assert!(!names_registry_host("u/a:1"));
        assert!(!names_registry_host("a:1"));
    }
}
