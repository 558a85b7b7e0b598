//! Build checks as buildx shows them: the warnings every build prints at its end (and in
//! rawjson, and in `--metadata-file` with `BUILDX_METADATA_WARNINGS=1`), `# check=error=true`
//! failing the build, and the `--call` methods `check` (`--check`), `outline` and `targets`,
//! as text or `format=json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use base64::Engine as _;
use builder_dockerfile2graph::{BuildContext, ImageResolver, RemoteFile, ResolvedImage};
use builder_frontend::linter::{
    self, BaseImage, LintError, LintOptions, LintReport, Warning, outline,
};
use builder_solver::{BuildRequest, Platform};
use serde::Serialize;

use super::UsageError;
use super::progress::ProgressMode;

mod call;
pub use call::run_call;

/// What `--call` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Build,
    Check,
    Outline,
    Targets,
}

/// A parsed `--call NAME[,format=json|text][,ignorestatus=BOOL]` (buildx's syntax).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub method: Method,
    json: bool,
    ignore_status: bool,
}

impl Call {
    /// `--call` and its shorthand `--check`.
    pub fn parse(call: Option<&str>, check: bool) -> Result<Call, UsageError> {
        let mut out = Call {
            method: Method::Build,
            json: false,
            ignore_status: false,
        };
        let text = match (call, check) {
            (Some(c), true) if !c.starts_with("check") && !c.starts_with("lint") => {
                return Err(UsageError(format!(
                    "--check is --call=check: it cannot be combined with --call={c}"
                )));
            }
            (Some(c), _) => c,
            (None, true) => "check",
            (None, false) => return Ok(out),
        };
        let mut name = None;
        for field in text.split(',') {
            match field.split_once('=') {
                Some(("format", "json")) => out.json = true,
                Some(("format", "text")) => out.json = false,
                Some(("format", other)) => {
                    return Err(UsageError(format!(
                        "--call {text:?}: format={other} is not supported (json or text)"
                    )));
                }
                Some(("ignorestatus", v)) => {
                    out.ignore_status = parse_go_bool(v).ok_or_else(|| {
                        UsageError(format!(
                            "--call {text:?}: invalid ignorestatus print value: {v}"
                        ))
                    })?
                }
                Some(_) => {
                    return Err(UsageError(format!(
                        "--call {text:?}: invalid print field: {field}"
                    )));
                }
                None if name.is_some() => {
                    return Err(UsageError(format!("--call: invalid print value: {text}")));
                }
                None => name = Some(field),
            }
        }
        out.method = match name.unwrap_or("build") {
            "build" => Method::Build,
            // buildx's older name for check.
            "check" | "lint" => Method::Check,
            "outline" => Method::Outline,
            "targets" => Method::Targets,
            other => {
                return Err(UsageError(format!(
                    "--call={other}: unknown method (build, check, outline or targets)"
                )));
            }
        };
        Ok(out)
    }
}

fn parse_go_bool(v: &str) -> Option<bool> {
    super::gobool::parse(v).ok()
}

/// The build's resolver, remembering each answer: the checks look base images up before the
/// build does, and the build must not pull (or fail to pull) the same image a second time.
pub struct Remembering<'a> {
    inner: &'a dyn ImageResolver,
    seen: std::sync::Mutex<BTreeMap<(String, String), Result<ResolvedImage, String>>>,
    /// `ADD <url>` downloads and `ADD <git>` checkouts, for the provenance's materials.
    fetched: std::sync::Mutex<Vec<Fetched>>,
}

/// A remote input the build fetched: its URL and what it resolved to.
#[derive(Clone, Debug)]
pub enum Fetched {
    Url { url: String, sha256: String },
    Git { url: String, commit: String },
}

impl<'a> Remembering<'a> {
    pub fn new(inner: &'a dyn ImageResolver) -> Remembering<'a> {
        Remembering {
            inner,
            seen: std::sync::Mutex::new(BTreeMap::new()),
            fetched: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl Remembering<'_> {
    /// Every URL and git source fetched so far.
    pub fn fetched(&self) -> Vec<Fetched> {
        self.fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every base image resolved so far (the provenance's materials).
    pub fn resolved(&self) -> Vec<(Platform, ResolvedImage)> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .filter_map(|((_, platform), r)| {
                let p: Platform = platform.parse().ok()?;
                Some((p, r.as_ref().ok()?.clone()))
            })
            .collect()
    }
}

impl ImageResolver for Remembering<'_> {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        let key = (reference.to_string(), platform.to_string());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.entry(key)
            .or_insert_with(|| self.inner.resolve(reference, platform))
            .clone()
    }

    fn fetch_url(&self, url: &str) -> Result<RemoteFile, String> {
        let file = self.inner.fetch_url(url)?;
        self.fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Fetched::Url {
                url: url.to_string(),
                sha256: file.digest.hex(),
            });
        Ok(file)
    }

    fn fetch_git(
        &self,
        url: &str,
        keep_git_dir: bool,
    ) -> Result<builder_dockerfile2graph::GitCheckout, String> {
        let checkout = self.inner.fetch_git(url, keep_git_dir)?;
        self.fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Fetched::Git {
                url: url.to_string(),
                commit: checkout.commit.clone(),
            });
        Ok(checkout)
    }
}

/// containerd's normalized form: `arm64/v8` is plain `arm64`.
fn normalized(p: &Platform) -> String {
    p.normalize().to_string()
}

/// BuildKit's automatic platform args, before any `--build-arg` overrides them.
fn platform_args(request: &BuildRequest) -> BTreeMap<String, String> {
    let build = Platform::host();
    let target = request
        .convert
        .platform
        .clone()
        .unwrap_or_else(Platform::host);
    let stage = request
        .convert
        .target
        .clone()
        .unwrap_or_else(|| "default".into());
    [
        ("BUILDPLATFORM", normalized(&build)),
        ("BUILDOS", build.os.clone()),
        ("BUILDOSVERSION", String::new()),
        ("BUILDARCH", build.architecture.clone()),
        ("BUILDVARIANT", build.variant.clone().unwrap_or_default()),
        ("TARGETPLATFORM", normalized(&target)),
        ("TARGETOS", target.os.clone()),
        ("TARGETOSVERSION", String::new()),
        ("TARGETARCH", target.architecture.clone()),
        ("TARGETVARIANT", target.variant.clone().unwrap_or_default()),
        ("TARGETSTAGE", stage),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Lints the request's Dockerfile, looking base images up the way the build will.
fn run_lint(
    request: &BuildRequest,
    resolver: &dyn ImageResolver,
    all_stages: bool,
) -> Result<LintReport, LintError> {
    let base_images = |reference: &str, platform: &str| -> Option<BaseImage> {
        // `--build-context NAME=docker-image://REF` stands in for `FROM NAME`; a directory
        // context is no image to look up.
        let reference = match request.convert.build_contexts.get(reference) {
            Some(BuildContext::Image(image)) => image.as_str(),
            Some(BuildContext::Dir(_)) => return None,
            None => reference,
        };
        let platform: Platform = platform.parse().ok()?;
        let image = resolver.resolve(reference, &platform).ok()?;
        let spec = image.spec;
        Some(BaseImage {
            env: spec.env.iter().map(|(k, _)| k.clone()).collect(),
            shell: spec.shell.is_some(),
            platform: normalized(&spec.platform),
        })
    };
    let opts = LintOptions {
        file_name: &request.convert.file_name,
        build_args: &request.convert.build_args,
        platform_args: platform_args(request),
        target: request.convert.target.as_deref(),
        all_stages,
        dockerignore: request.dockerignore.as_deref(),
        base_images: &base_images,
    };
    linter::lint(&request.dockerfile, &opts)
}

/// The checks of a normal build. A Dockerfile that does not parse yields the warnings of the
/// instructions before the error; the build reports the error itself. rawjson gets one `warning` object per warning now.
pub fn lint_for_build(
    request: &BuildRequest,
    resolver: &dyn ImageResolver,
    mode: ProgressMode,
) -> anyhow::Result<LintReport> {
    let report = match run_lint(request, resolver, false) {
        Ok(r) => r,
        // The build reports the parse error itself; the warnings before it still show.
        Err(LintError::Dockerfile { warnings, .. }) => LintReport {
            warnings,
            error_on_warnings: false,
        },
        Err(LintError::Config(m)) => bail!(UsageError(m)),
    };
    if mode == ProgressMode::RawJson {
        let mut err = std::io::stderr().lock();
        for w in &report.warnings {
            let event = serde_json::json!({
                "type": "warning",
                "rule": w.rule.name,
                "message": w.message,
                "short": w.short(),
                "description": w.rule.description,
                "url": w.rule.url,
                "file": request.convert.file_name,
                "line": w.start_line,
                "end_line": w.end_line,
            });
            let _ = writeln!(err, "{event}");
        }
    }
    Ok(report)
}

/// buildx's end-of-build summary with its `--debug` details: each warning's short form,
/// description, link and source excerpt (not in quiet or rawjson mode).
pub fn print_build_warnings(report: &LintReport, request: &BuildRequest, mode: ProgressMode) {
    if report.warnings.is_empty() || matches!(mode, ProgressMode::Quiet | ProgressMode::RawJson) {
        return;
    }
    let source = String::from_utf8_lossy(&request.dockerfile);
    let mut out = String::new();
    let n = report.warnings.len();
    out.push_str(&format!(
        "\n {n} warning{} found:\n",
        if n == 1 { "" } else { "s" }
    ));
    for w in &report.warnings {
        out.push_str(&format!("WARNING: {}\n{}\n", w.short(), w.rule.description));
        if !w.rule.url.is_empty() {
            out.push_str(&format!("More info: {}\n", w.rule.url));
        }
        out.push_str(&linter::excerpt(
            &request.convert.file_name,
            &source,
            w.start_line,
            w.end_line,
        ));
        out.push('\n');
    }
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// `# check=error=true`: the build fails before anything runs, after showing why.
pub fn fail_on_violation(
    report: &LintReport,
    request: &BuildRequest,
    mode: ProgressMode,
) -> anyhow::Result<()> {
    if let Some(error) = report.violation_error() {
        print_build_warnings(report, request, mode);
        bail!(error);
    }
    Ok(())
}

/// buildx's `buildx.build.warnings` metadata (only with `BUILDX_METADATA_WARNINGS` true, as
/// buildx): client.VertexWarning objects, whose byte fields Go writes as base64.
pub fn metadata_warnings(report: &LintReport, request: &BuildRequest) -> Option<serde_json::Value> {
    let enabled = std::env::var("BUILDX_METADATA_WARNINGS")
        .ok()
        .and_then(|v| parse_go_bool(&v))
        .unwrap_or(false);
    if !enabled || report.warnings.is_empty() {
        return None;
    }
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let list: Vec<serde_json::Value> = report
        .warnings
        .iter()
        .map(|w| {
            let mut v = serde_json::json!({
                "level": 1,
                "short": b64(&w.short()),
                "detail": [b64(w.rule.description)],
                "sourceInfo": {
                    "filename": request.convert.file_name,
                    "data": base64::engine::general_purpose::STANDARD.encode(&request.dockerfile),
                    "language": "Dockerfile",
                },
                "range": [range(w.start_line, w.end_line)],
            });
            if !w.rule.url.is_empty() {
                v["url"] = w.rule.url.into();
            }
            v
        })
        .collect();
    Some(list.into())
}

fn range(start: usize, end: usize) -> serde_json::Value {
    serde_json::json!({"start": {"line": start}, "end": {"line": end}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_syntax() {
        assert_eq!(Call::parse(None, false).unwrap().method, Method::Build);
        assert_eq!(Call::parse(None, true).unwrap().method, Method::Check);
        let c = Call::parse(Some("outline,format=json"), false).unwrap();
        assert_eq!((c.method, c.json), (Method::Outline, true));
        assert!(
            Call::parse(Some("check,ignorestatus=true"), false)
                .unwrap()
                .ignore_status
        );
        assert!(Call::parse(Some("nope"), false).is_err());
        assert!(Call::parse(Some("outline"), true).is_err());
        assert!(Call::parse(Some("outline,format=yaml"), false).is_err());
    }
}
