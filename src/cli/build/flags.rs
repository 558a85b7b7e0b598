//! `builder build`'s flags, as buildx names them.

use super::*;

#[derive(Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag")]
    pub(super) tags: Vec<String>,
    /// Path of the Dockerfile (default: CONTEXT/Dockerfile; `-` reads stdin).
    #[arg(short = 'f', long = "file")]
    pub(super) file: Option<PathBuf>,
    /// Build-time variable `KEY=VALUE` (`KEY` alone takes the value from the environment).
    #[arg(long = "build-arg")]
    pub(super) build_args: Vec<String>,
    /// Build this stage and the stages it needs, not the last one.
    #[arg(long)]
    pub(super) target: Option<String>,
    /// Metadata `KEY=VALUE` for the image.
    #[arg(long = "label")]
    pub(super) labels: Vec<String>,
    /// Do not use the cache (`--no-cache=false` uses it).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_parser = crate::cli::gobool::parse, value_name = "BOOL")]
    pub(super) no_cache: bool,
    /// Stages (`AS` names) whose steps skip the cache while other stages use it; repeatable,
    /// comma-separated.
    #[arg(long = "no-cache-filter", value_delimiter = ',')]
    pub(super) no_cache_filter: Vec<String>,
    /// Import build cache: `type=local,src=DIR`, `type=registry,ref=NAME` (or just NAME: a cache
    /// manifest, or an image built with inline cache); repeatable.
    #[arg(long = "cache-from")]
    pub(super) cache_from: Vec<String>,
    /// Export build cache: `type=local,dest=DIR`, `type=registry,ref=NAME` or `type=inline`, with
    /// `mode=min` (the image's steps, default) or `mode=max` (every step); repeatable.
    #[arg(long = "cache-to")]
    pub(super) cache_to: Vec<String>,
    /// Always look for newer base images in the registry (`--pull=false`: only when missing).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_parser = crate::cli::gobool::parse, value_name = "BOOL")]
    pub(super) pull: bool,
    /// Push the image after building it (needs a registry name in -t); `--push=false` does not.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_parser = crate::cli::gobool::parse, value_name = "BOOL")]
    pub(super) push: bool,
    /// Write the image id to this file.
    #[arg(long)]
    pub(super) iidfile: Option<PathBuf>,
    /// Write build result metadata (digests, names) as JSON to this file.
    #[arg(long)]
    pub(super) metadata_file: Option<PathBuf>,
    /// Output destination: `type=image|registry|docker|oci|tar|local` with its keys (see
    /// README); repeatable. The image is always stored locally too.
    #[arg(short = 'o', long = "output")]
    pub(super) outputs: Vec<String>,
    /// Annotation `[TYPES:]KEY=VALUE` for every image output; TYPES is a comma-separated list
    /// of manifest, manifest-descriptor, index, index-descriptor (default: manifest).
    #[arg(long = "annotation")]
    pub(super) annotations: Vec<String>,
    /// Secret for RUN --mount=type=secret: `id=NAME,src=FILE` or `id=NAME,env=VAR`; `id=NAME`
    /// alone takes the environment variable NAME if set, else the file NAME.
    #[arg(long = "secret")]
    pub(super) secrets: Vec<String>,
    /// ssh-agent for RUN --mount=type=ssh: `default` ($SSH_AUTH_SOCK), `ID=SOCKET`, or
    /// `ID=KEYFILE[,KEYFILE]` (Ed25519/ECDSA keys served by an agent of builder's own).
    #[arg(long = "ssh")]
    pub(super) ssh: Vec<String>,
    /// Target platform(s) (os/arch[/variant]); a comma list or several flags build one image
    /// per platform and make an image index of them.
    #[arg(long, value_delimiter = ',')]
    pub(super) platform: Vec<String>,
    /// Progress output: auto, tty, plain, rawjson, quiet.
    #[arg(long, default_value = "auto")]
    pub(super) progress: String,
    /// Print only the image id.
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_parser = crate::cli::gobool::parse, value_name = "BOOL")]
    pub(super) quiet: bool,
    /// Network of RUN steps that do not set `--network`: `default` (the host's, as docker's
    /// default bridge gives outside access), `host`, or `none`.
    #[arg(long, default_value = "default")]
    pub(super) network: String,
    /// Additional build context `NAME=DIR` (for `COPY --from=NAME`, `RUN --mount=from=NAME`) or
    /// `NAME=docker-image://REF` (an image in place of `FROM NAME`); repeatable.
    #[arg(long = "build-context")]
    pub(super) build_contexts: Vec<String>,
    /// Grant an entitlement: `security.insecure` (for `RUN --security=insecure`) or
    /// `network.host` (for `RUN --network=host`); repeatable, comma-separated.
    #[arg(long = "allow", value_delimiter = ',')]
    pub(super) allow: Vec<String>,
    /// Accepted for `docker buildx build` scripts (as `--load=BOOL` too): the image is always
    /// loaded into the local store.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_parser = crate::cli::gobool::parse, value_name = "BOOL")]
    #[allow(dead_code)] // accepted, never needed: there is nothing else to load into
    pub(super) load: bool,
    /// What to do with a failed RUN step's state: `discard` it (the default), or `keep` it for
    /// `builder debug` (a shell where it failed, with its env, user and cache mounts).
    #[arg(long, value_name = "keep|discard", default_value = "discard", value_parser = ["keep", "discard"])]
    pub(super) on_error: String,
    /// SLSA provenance attestation: `true`/`false`, or `mode=min|max[,version=v1][,builder-id=URI]`
    /// (shorthand for `--attest type=provenance,...`). `mode=min` by default on a push.
    #[arg(long, value_name = "BOOL|mode=min|max,...")]
    pub(super) provenance: Option<String>,
    /// SBOM attestation (SPDX 2.3, scanned by builder itself): `true`/`false`
    /// (shorthand for `--attest type=sbom`).
    #[arg(long, value_name = "BOOL")]
    pub(super) sbom: Option<String>,
    /// Attestation `type=sbom|provenance[,KEY=VALUE...]`; repeatable.
    #[arg(long = "attest")]
    pub(super) attest: Vec<String>,
    /// Evaluate the Dockerfile instead of building it: `build` (default), `check` (run the
    /// build checks; exit 1 if any warns), `outline` (build args, secrets, ssh ids of the
    /// target) or `targets` (the stages); add `,format=json` for JSON.
    #[arg(long = "call", value_name = "METHOD[,format=json]")]
    pub(super) call: Option<String>,
    /// Shorthand for `--call=check`.
    #[arg(long)]
    pub(super) check: bool,
    #[command(flatten)]
    pub(super) sandbox: crate::cli::sandbox_args::SandboxArgs,
    #[command(flatten)]
    pub(super) limits: crate::cli::limits::LimitArgs,
    /// Build context: a directory, `-` (a tar archive or a Dockerfile on stdin), a git URL
    /// (`https://host/repo.git#ref:subdir`, `git@host:repo`...) or an http(s) URL of a tar
    /// archive or a Dockerfile.
    pub(super) context: std::ffi::OsString,
}
