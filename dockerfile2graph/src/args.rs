//! Build args the builder defines or reads itself, and the variable scopes instructions are
//! expanded in.

use builder_frontend::shell::EnvLookup;
use builder_graph::image::Platform;

/// Proxy variables docker passes to RUN from `--build-arg` without an ARG declaration, and
/// keeps out of the image history.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The build arg that names RUN steps' host, read by the builder rather than the Dockerfile
/// (empty: BuildKit's default name).
pub(crate) const SANDBOX_HOSTNAME_ARG: &str = "BUILDKIT_SANDBOX_HOSTNAME";
/// The build arg that prefixes every cache mount's id (`NS/ID`), so builds in different
/// namespaces keep separate caches under the same ids.
pub(crate) const CACHE_MOUNT_NS_ARG: &str = "BUILDKIT_CACHE_MOUNT_NS";
/// The build arg that names the frontend to build with (see `builder_frontend::syntax`).
pub const SYNTAX_ARG: &str = "BUILDKIT_SYNTAX";

/// Build args that BuildKit reads itself rather than the Dockerfile, so they are never reported
/// as unused: image and layer times, RUN's host name and cache namespace, the frontend, and the
/// ones the CLI acts on (`BUILDKIT_INLINE_CACHE`, `BUILDKIT_MULTI_PLATFORM`,
/// `BUILDKIT_CONTEXT_KEEP_GIT_DIR`; see src/cli/buildkit_args.rs).
pub const BUILDER_ARGS: &[&str] = &[
    "SOURCE_DATE_EPOCH",
    SANDBOX_HOSTNAME_ARG,
    CACHE_MOUNT_NS_ARG,
    SYNTAX_ARG,
    "BUILDKIT_INLINE_CACHE",
    "BUILDKIT_MULTI_PLATFORM",
    "BUILDKIT_CONTEXT_KEEP_GIT_DIR",
];

/// Variables visible while expanding an instruction: the stage's ENV first, then its ARGs
/// (docker: an ENV always wins over an ARG of the same name).
pub(crate) struct ScopeEnv<'a> {
    pub(crate) env: &'a [(String, String)],
    pub(crate) args: &'a [(String, String)],
}

impl EnvLookup for ScopeEnv<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        fn find<'l>(list: &'l [(String, String)], name: &str) -> Option<&'l str> {
            list.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
        find(self.env, name).or_else(|| find(self.args, name))
    }
}

/// The variables a step name is expanded with: the stage's scope, except that a variable a
/// `RUN --mount=type=secret,env=NAME` fills reads `****`, as in BuildKit's names (the secret
/// is not known here; the mask only says the value comes from a secret).
pub(crate) struct DisplayEnv<'a> {
    pub(crate) scope: ScopeEnv<'a>,
    pub(crate) masked: &'a [String],
}

impl EnvLookup for DisplayEnv<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        if self.masked.iter().any(|m| m == name) {
            return Some("****");
        }
        self.scope.lookup(name)
    }
}

/// The ARGs BuildKit defines by itself: the platform ones and `TARGETSTAGE` (the `--target`
/// stage, `default` without one). Like global ARGs, a stage sees them once it declares them.
pub(crate) fn automatic_args(p: &Platform, target: Option<&str>) -> Vec<(String, String)> {
    let mut args = platform_args(p);
    args.push(("TARGETSTAGE".into(), target.unwrap_or("default").into()));
    args
}

/// `TARGET*` name the platform being built, `BUILD*` the host the build runs on.
pub(crate) fn platform_args(target: &Platform) -> Vec<(String, String)> {
    let mut args = Vec::new();
    for (prefix, p) in [("TARGET", target.clone()), ("BUILD", Platform::host())] {
        args.push((format!("{prefix}PLATFORM"), p.to_string()));
        args.push((format!("{prefix}OS"), p.os.clone()));
        args.push((format!("{prefix}ARCH"), p.architecture.clone()));
        args.push((
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        ));
    }
    args
}

/// The build args that configure the SBOM scan (read by builder, never a step's environment).
pub const SBOM_SCAN_CONTEXT_ARG: &str = "BUILDKIT_SBOM_SCAN_CONTEXT";
pub const SBOM_SCAN_STAGE_ARG: &str = "BUILDKIT_SBOM_SCAN_STAGE";
