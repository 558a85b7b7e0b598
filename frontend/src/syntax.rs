//! Which Dockerfile frontend a build asks for: the `# syntax=IMAGE` directive, overridden by the
//! `BUILDKIT_SYNTAX` build arg, as BuildKit reads them.
//!
//! BuildKit runs the named image as an external frontend. builder has no external frontends: it
//! always parses with its own, which follows BuildKit's built-in `docker/dockerfile:1` (labs
//! instructions included). So the images that name a version of that frontend build as usual (a
//! pinned version gets a note: it is not pulled, and newer syntax is not refused); any other
//! frontend image is refused, since building its Dockerfile with ours would be a guess.

/// BuildKit's name of its built-in frontend: `BUILDKIT_SYNTAX=dockerfile.v0` ignores the
/// directive and uses it.
const BUILTIN: &str = "dockerfile.v0";

/// What to do about the frontend asked for: build with builder's own frontend (with a note for
/// the user, if any), or refuse with the reason.
pub fn check_frontend(
    directive: Option<&str>,
    build_arg: Option<&str>,
) -> Result<Option<String>, String> {
    let (origin, value) = match (build_arg, directive) {
        (Some(arg), _) => {
            if arg.trim().is_empty() {
                return Err(
                    "BUILDKIT_SYNTAX is empty: give it a frontend image, or dockerfile.v0 for the built-in one"
                        .into(),
                );
            }
            (format!("BUILDKIT_SYNTAX={arg}"), arg)
        }
        (None, Some(directive)) => (format!("# syntax={directive}"), directive),
        (None, None) => return Ok(None),
    };
    // As BuildKit: the image is the first word, the rest is the frontend's command line.
    let image = value.split_whitespace().next().unwrap_or_default();
    if build_arg.is_some() && image == BUILTIN {
        return Ok(None);
    }
    match dockerfile_version(image) {
        Some(false) => Ok(None),
        Some(true) => Ok(Some(format!(
            "{origin}: built with builder's own Dockerfile frontend (the docker/dockerfile:1 syntax); the pinned version is not pulled, and syntax newer than it is not refused"
        ))),
        None => Err(format!(
            "{origin}: builder cannot run external Dockerfile frontends; only BuildKit's own docker/dockerfile:1 versions are understood (remove the directive, or pass --build-arg BUILDKIT_SYNTAX=dockerfile.v0 to build it with the built-in frontend anyway)"
        )),
    }
}

/// `Some(false)`: an image of BuildKit's Dockerfile frontend that follows the newest `1.x`
/// (`docker/dockerfile`, `:1`, `:1-labs`, `:latest`, `:labs`); `Some(true)`: one pinned to a
/// version or digest; `None`: some other image.
fn dockerfile_version(image: &str) -> Option<bool> {
    let (name_tag, digest) = match image.split_once('@') {
        Some((name_tag, digest)) => (name_tag, Some(digest)),
        None => (image, None),
    };
    let (name, tag) = match name_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (name_tag, None),
    };
    let repository = ["docker.io/", "index.docker.io/", "registry-1.docker.io/"]
        .iter()
        .find_map(|host| name.strip_prefix(host))
        .unwrap_or(name);
    if repository != "docker/dockerfile" {
        return None;
    }
    if let Some(digest) = digest
        && !is_sha256(digest)
    {
        return None;
    }
    let floating = match tag {
        None | Some("latest" | "labs" | "1" | "1-labs") => true,
        Some(tag) if is_v1_tag(tag) => false,
        Some(_) => return None,
    };
    Some(!floating || digest.is_some())
}

/// `1.N`, `1.N.M`, optionally `-labs` or `-experimental` (and the old bare `experimental`).
fn is_v1_tag(tag: &str) -> bool {
    let version = tag
        .strip_suffix("-labs")
        .or_else(|| tag.strip_suffix("-experimental"))
        .unwrap_or(tag);
    if tag == "experimental" {
        return true;
    }
    let mut parts = version.split('.');
    parts.next() == Some("1")
        && parts.clone().count() <= 2
        && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_sha256(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

#[cfg(test)]
mod tests {
    use super::check_frontend;

    const DIGEST: &str = "sha256:9857836c9ee4268391bb5b09f9f157f3c91bb15821bb77969642813b0d00518d";

    #[test]
    fn the_built_in_frontend_builds_quietly() {
        for image in [
            "docker/dockerfile:1",
            "docker/dockerfile:1-labs",
            "docker/dockerfile",
            "docker/dockerfile:latest",
            "docker.io/docker/dockerfile:1",
            "docker/dockerfile:1 some-cmdline",
        ] {
            assert_eq!(check_frontend(Some(image), None), Ok(None), "{image}");
        }
        assert_eq!(check_frontend(None, None), Ok(None));
        // The build arg wins; dockerfile.v0 means the built-in frontend.
        assert_eq!(
            check_frontend(Some("example/frontend:1"), Some("dockerfile.v0")),
            Ok(None)
        );
    }

    #[test]
    fn pinned_versions_build_with_a_note() {
        let pinned = [
            "docker/dockerfile:1.4".to_string(),
            "docker/dockerfile:1.7.1".into(),
            "docker/dockerfile:1.7-labs".into(),
            "docker/dockerfile:1.0-experimental".into(),
            "docker.io/docker/dockerfile:1.10".into(),
            format!("docker/dockerfile:1@{DIGEST}"),
            format!("docker.io/docker/dockerfile@{DIGEST}"),
        ];
        for image in pinned {
            let note = check_frontend(Some(&image), None).unwrap().unwrap();
            assert!(note.contains(&image), "{note}");
            let note = check_frontend(None, Some(&image)).unwrap().unwrap();
            assert!(note.starts_with("BUILDKIT_SYNTAX="), "{note}");
        }
    }

    #[test]
    fn other_frontends_are_refused_with_the_reason() {
        for image in [
            "docker/dockerfile-upstream:master",
            "docker/dockerfile:2",
            "docker/dockerfile:1.x",
            "docker/dockerfile:10",
            "docker/dockerfile:1@sha256:nothex",
            "tonistiigi/dockerfile:runmount",
            "ghcr.io/docker/dockerfile:1",
            "example.com:5000/docker/dockerfile:1",
            "dockerfile.v0",
        ] {
            let err = check_frontend(Some(image), None).unwrap_err();
            assert!(
                err.contains("cannot run external Dockerfile frontends"),
                "{err}"
            );
            assert!(err.contains(image), "{err}");
        }
        let err = check_frontend(Some("docker/dockerfile:1"), Some("example/fe")).unwrap_err();
        assert!(err.starts_with("BUILDKIT_SYNTAX=example/fe:"), "{err}");
        assert!(
            check_frontend(None, Some(" "))
                .unwrap_err()
                .contains("empty")
        );
    }
}
