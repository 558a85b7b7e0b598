//! Which arguments name a git repository and what they ask for, case by case as BuildKit's
//! `dfgitutil` reads them (its TestParseGitRef table's inputs).

use builder_source::GitRef;

fn git(s: &str) -> GitRef {
    GitRef::parse(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .unwrap_or_else(|| panic!("{s} should be a git ref"))
}

#[test]
fn local_paths_and_plain_urls_are_not_git() {
    for s in [
        "https://example.com/",
        "https://example.com/foo",
        "https://example.com/foo.git/",
        "https://example.com/foo.git.bar",
        "custom.xyz/moby/buildkit.git",
        "https://github.com/moby/buildkit",
        "./.git",
        ".git",
        "ctx",
        "/abs/dir",
        "../up",
        "ftp://host/repo.git",
        "docker-image://busybox",
    ] {
        assert_eq!(GitRef::parse(s), Ok(None), "{s}");
    }
}

#[test]
fn urls_with_a_git_suffix_or_git_schemes_are_git() {
    let r = git("https://example.com/foo.git");
    assert_eq!(
        (r.remote.as_str(), r.short_name.as_str()),
        ("https://example.com/foo.git", "foo")
    );
    assert_eq!((r.reference, r.subdir), (None, None));

    let r = git("git://example.com/foo");
    assert_eq!(r.remote, "git://example.com/foo");
    assert_eq!(r.short_name, "foo");

    let r = git("ssh://git@example.com/foo/bar.git");
    assert_eq!(r.short_name, "bar");

    let r = git("https://foo:bar@github.com/moby/buildkit.git");
    assert_eq!(r.remote, "https://foo:bar@github.com/moby/buildkit.git");
}

#[test]
fn scp_style_and_github_shorthand_are_git() {
    let r = git("git@github.com:moby/buildkit");
    assert_eq!(r.remote, "git@github.com:moby/buildkit");
    assert_eq!(r.short_name, "buildkit");
    let r = git("git@bitbucket.org:atlassianlabs/atlassian-docker.git");
    assert_eq!(r.short_name, "atlassian-docker");

    let r = git("github.com/moby/buildkit#master");
    assert_eq!(r.remote, "github.com/moby/buildkit");
    assert_eq!(r.fetch_url(), "https://github.com/moby/buildkit");
    assert_eq!(r.reference.as_deref(), Some("master"));
    assert!(r.indistinguishable_from_local);
}

#[test]
fn fragments_carry_a_ref_and_a_subdir() {
    let r = git("https://example.com/foo.git#deadbeef");
    assert_eq!(r.reference.as_deref(), Some("deadbeef"));
    let r = git("https://example.com/foo.git#release/1.2");
    assert_eq!(r.reference.as_deref(), Some("release/1.2"));
    let r = git("https://github.com/foo/bar.git#baz/qux:quux/quuz");
    assert_eq!(
        (r.reference.as_deref(), r.subdir.as_deref()),
        (Some("baz/qux"), Some("quux/quuz"))
    );
    let r = git("https://github.com/docker/docker.git#:myfolder");
    assert_eq!((r.reference, r.subdir.as_deref()), (None, Some("myfolder")));
    let r = git("https://h/r.git#main:/a/../b/./c/");
    assert_eq!(r.subdir.as_deref(), Some("b/c"));
    let r = git("https://h/r.git#main:../../etc");
    assert_eq!(
        r.subdir.as_deref(),
        Some("etc"),
        "a subdir never climbs out"
    );
}

#[test]
fn the_query_form_names_refs_tags_branches_and_options() {
    let r = git("https://github.com/docker/docker.git?ref=v1.0.0&subdir=/subdir");
    assert_eq!(
        (r.reference.as_deref(), r.subdir.as_deref()),
        (Some("v1.0.0"), Some("subdir"))
    );
    let r = git("https://github.com/moby/buildkit.git?subdir=/subdir#v1.0.0");
    assert_eq!(r.reference.as_deref(), Some("v1.0.0"));
    let r = git("https://github.com/moby/buildkit.git?tag=v1.0.0");
    assert_eq!(r.reference.as_deref(), Some("refs/tags/v1.0.0"));
    let r = git("https://github.com/moby/buildkit.git?branch=v1.0");
    assert_eq!(r.reference.as_deref(), Some("refs/heads/v1.0"));
    let r = git("https://h/r.git?checksum=abc123&keep-git-dir&submodules=false");
    assert_eq!(r.checksum.as_deref(), Some("abc123"));
    assert_eq!((r.keep_git_dir, r.submodules), (Some(true), Some(false)));
    let r = git("git@host:r.git?commit=abc#main");
    assert_eq!(
        (r.reference.as_deref(), r.checksum.as_deref()),
        (Some("main"), Some("abc"))
    );
}

#[test]
fn conflicting_or_unknown_query_keys_are_refused() {
    for s in [
        "https://h/r.git?ref=a#b",
        "https://h/r.git?tag=a&branch=b",
        "https://h/r.git?subdir=a#main:b",
        "https://h/r.git?ref=",
        "https://h/r.git?unknown=1",
        "https://h/r.git?keep-git-dir=maybe",
        "https://h/r.git?mtime=commit",
    ] {
        assert!(GitRef::parse(s).is_err(), "{s} should be refused");
    }
}
