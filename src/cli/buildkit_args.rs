//! BuildKit's built-in build args that the CLI acts on (the solver reads the others:
//! `BUILDKIT_SANDBOX_HOSTNAME`, `BUILDKIT_CACHE_MOUNT_NS`, `BUILDKIT_SYNTAX`, `SOURCE_DATE_EPOCH`).
//! Each is a Go boolean, as in BuildKit; a value that is not one is refused by name.

use std::collections::BTreeMap;

use super::UsageError;

/// What the boolean built-in build args ask of the CLI.
#[derive(Debug, Default)]
pub struct BuiltinArgs {
    /// `BUILDKIT_INLINE_CACHE=1`: as buildx, the same as `--cache-to type=inline`.
    pub inline_cache: bool,
    /// `BUILDKIT_MULTI_PLATFORM=1`: the result is an image index even for one platform.
    pub multi_platform: bool,
}

impl BuiltinArgs {
    pub fn read(build_args: &BTreeMap<String, String>) -> Result<BuiltinArgs, UsageError> {
        let flag = |name: &str| -> Result<bool, UsageError> {
            match build_args.get(name) {
                None => Ok(false),
                Some(v) => super::gobool::parse(v)
                    .map_err(|e| UsageError(format!("--build-arg {name}={v}: {e}"))),
            }
        };
        // Read by the git context (cli::context_source), which keeps .git when it is set; a
        // local directory's .git is sent like any other file (unless .dockerignore leaves it
        // out). Checked here so a value that is no Go boolean is refused either way.
        flag("BUILDKIT_CONTEXT_KEEP_GIT_DIR")?;
        Ok(BuiltinArgs {
            inline_cache: flag("BUILDKIT_INLINE_CACHE")?,
            multi_platform: flag("BUILDKIT_MULTI_PLATFORM")?,
        })
    }
}
