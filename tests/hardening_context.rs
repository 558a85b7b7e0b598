//! Hardening, end to end through `builder build`: a hostile build context or archive must not
//! make COPY/ADD read or write anything outside the context (on the way in) or outside the
//! image's rootfs (on the way out). Every test plants a unique marker outside the context and
//! checks that its bytes never reach a layer, and that nothing is created next to it.
//! SECURITY.md lists which claim each test checks.

mod common;

use std::path::{Path, PathBuf};

use common::{Env, image_layers};

/// A file outside the build context whose content must never be read into an image.
struct Marker {
    path: PathBuf,
    content: String,
}

fn marker(env: &Env, name: &str) -> Marker {
    let content = format!("HOST-MARKER-{name}-{}", std::process::id());
    let dir = env.path("outside");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &content).unwrap();
    Marker { path, content }
}

fn build(env: &Env, ctx: &Path, tag: &str) -> std::process::Output {
    env.run(&[
        "build",
        "--progress=plain",
        "-t",
        tag,
        ctx.to_str().unwrap(),
    ])
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A refused build is fine; a crash or an internal error is not.
fn assert_clean_outcome(out: &std::process::Output) {
    let err = stderr(out);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "build neither succeeded nor failed cleanly ({}):\n{err}",
        out.status
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Every file content of every layer of `tag` (nothing when the build failed).
fn layer_contents(env: &Env, tag: &str) -> Vec<(String, char, String)> {
    if !env.run(&["inspect", tag]).status.success() {
        return Vec::new();
    }
    image_layers(env, tag)
        .into_iter()
        .flatten()
        .map(|e| (e.0, e.4, e.5))
        .collect()
}

fn assert_never_in_layers(env: &Env, tag: &str, needle: &str) {
    for (path, _, content) in layer_contents(env, tag) {
        assert!(
            !content.contains(needle),
            "{path} in {tag} holds host bytes {needle:?}"
        );
    }
}

#[test]
fn symlink_out_of_the_context_is_copied_as_a_link() {
    let env = Env::new();
    let m = marker(&env, "link-target");
    let ctx = env.context("ctx", &[("Dockerfile", "FROM scratch\nCOPY . /all/\n")]);
    std::os::unix::fs::symlink(&m.path, ctx.join("link")).unwrap();
    let out = build(&env, &ctx, "symlink:1");
    assert!(out.status.success(), "{}", stderr(&out));
    let entries = layer_contents(&env, "symlink:1");
    let e = entries
        .iter()
        .find(|e| e.0 == "all/link")
        .unwrap_or_else(|| panic!("all/link missing: {entries:?}"));
    assert_eq!((e.1, e.2.as_str()), ('l', m.path.to_str().unwrap()));
    assert_never_in_layers(&env, "symlink:1", &m.content);
}

#[test]
fn symlink_named_as_source_resolves_inside_the_context() {
    let env = Env::new();
    let m = marker(&env, "named-link");
    // As in BuildKit, a source that is a symlink is followed, with the context as `/`: the
    // absolute target names a file of the context, never the host file of that name.
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY link /got\n"),
            (&m.path.display().to_string()[1..], "CONTEXT-COPY"),
        ],
    );
    std::os::unix::fs::symlink(&m.path, ctx.join("link")).unwrap();
    let out = build(&env, &ctx, "named:1");
    assert!(out.status.success(), "{}", stderr(&out));
    let got = layer_contents(&env, "named:1");
    assert!(
        got.iter().any(|e| e.0 == "got" && e.2 == "CONTEXT-COPY"),
        "{got:?}"
    );
    // Without the in-context file the build fails instead of reading the host's.
    std::fs::remove_file(ctx.join(&m.path.display().to_string()[1..])).unwrap();
    let out = build(&env, &ctx, "named:2");
    assert!(
        !out.status.success(),
        "COPY read a file outside the context"
    );
    assert_clean_outcome(&out);
    assert!(!stderr(&out).contains(&m.content));
}

#[test]
fn copy_through_an_escaping_symlink_never_reads_the_host() {
    let env = Env::new();
    let m = marker(&env, "through-dir");
    let outside_dir = m.path.parent().unwrap().to_path_buf();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY dirlink/through-dir /got\n",
        )],
    );
    std::os::unix::fs::symlink(&outside_dir, ctx.join("dirlink")).unwrap();
    let out = build(&env, &ctx, "through:1");
    assert_clean_outcome(&out);
    assert_never_in_layers(&env, "through:1", &m.content);
    assert!(!stderr(&out).contains(&m.content));

    // The same through a relative `..` link, and as a whole-directory source.
    let ctx2 = env.context(
        "ctx2",
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY up/outside/through-dir /got\nCOPY up/outside/ /dir/\n",
        )],
    );
    std::os::unix::fs::symlink("..", ctx2.join("up")).unwrap();
    let out = build(&env, &ctx2, "through:2");
    assert_clean_outcome(&out);
    assert_never_in_layers(&env, "through:2", &m.content);
}

#[test]
fn parent_and_absolute_sources_stay_in_the_context() {
    let env = Env::new();
    let m = marker(&env, "parent");
    let abs = m.path.display().to_string();
    for (i, source) in ["../outside/parent", "../../outside/parent", abs.as_str()]
        .iter()
        .enumerate()
    {
        let ctx = env.context(
            &format!("ctx{i}"),
            &[("Dockerfile", &format!("FROM scratch\nCOPY {source} /got\n"))],
        );
        let tag = format!("parent:{i}");
        let out = build(&env, &ctx, &tag);
        // docker resolves these inside the context, where nothing by that name exists.
        assert!(!out.status.success(), "COPY {source} found something");
        assert_clean_outcome(&out);
        assert_never_in_layers(&env, &tag, &m.content);
    }
    // The in-context file of the same relative name is what `../x` means.
    let ctx = env.context(
        "ctx-inside",
        &[
            ("Dockerfile", "FROM scratch\nCOPY ../../x /got\n"),
            ("x", "inside"),
        ],
    );
    let out = build(&env, &ctx, "parent:inside");
    assert!(out.status.success(), "{}", stderr(&out));
    let got = layer_contents(&env, "parent:inside");
    assert!(
        got.iter().any(|e| e.0 == "got" && e.2 == "inside"),
        "{got:?}"
    );
}

// ---- ADD of hostile archives ----------------------------------------------------------------

/// Appends a tar entry with a raw name (the tar crate refuses `..` through its checked setters,
/// which is exactly what a hostile archive would not do).
fn raw_entry(
    b: &mut tar::Builder<std::fs::File>,
    name: &str,
    kind: tar::EntryType,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(data.len() as u64);
    if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn archive(path: &Path, entries: &[(&str, tar::EntryType, &str, &[u8])]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, kind, link, data) in entries {
        raw_entry(&mut b, name, *kind, link, data);
    }
    b.finish().unwrap();
}

/// A tar entry as a hostile archive holds it: raw name, type, link name, data.
type RawEntry = (String, tar::EntryType, String, Vec<u8>);

fn sha256_of(path: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn add_of_hostile_archives_stays_in_the_rootfs() {
    use tar::EntryType::{Char, Directory, Fifo, Link, Regular, Symlink};
    let env = Env::new();
    let m = marker(&env, "archive");
    let outside = m.path.parent().unwrap().to_path_buf();
    let outside_s = outside.display().to_string();
    let passwd_before = sha256_of("/etc/passwd");
    let depth = "../".repeat(outside.components().count() + 2);
    let cases: Vec<(&str, Vec<RawEntry>)> = vec![
        (
            "dotdot",
            vec![
                (
                    format!("{depth}{}/pwned-dotdot", &outside_s[1..]),
                    Regular,
                    String::new(),
                    b"PWNED".to_vec(),
                ),
                (
                    "../pwned-parent".into(),
                    Regular,
                    String::new(),
                    b"PWNED".to_vec(),
                ),
            ],
        ),
        (
            "absolute",
            vec![(
                format!("{outside_s}/pwned-abs"),
                Regular,
                String::new(),
                b"PWNED".to_vec(),
            )],
        ),
        (
            "symlink-then-file",
            vec![
                ("esc".into(), Symlink, outside_s.clone(), Vec::new()),
                (
                    "esc/pwned-symlink".into(),
                    Regular,
                    String::new(),
                    b"PWNED".to_vec(),
                ),
                ("rel".into(), Symlink, depth.clone(), Vec::new()),
                (
                    format!("rel{}/pwned-rel", outside_s),
                    Regular,
                    String::new(),
                    b"PWNED".to_vec(),
                ),
                ("d".into(), Directory, String::new(), Vec::new()),
                (
                    "d/into-marker".into(),
                    Symlink,
                    m.path.display().to_string(),
                    Vec::new(),
                ),
                (
                    "d/into-marker".into(),
                    Regular,
                    String::new(),
                    b"OVERWRITE".to_vec(),
                ),
            ],
        ),
        (
            "hardlinks",
            vec![
                ("passwd".into(), Link, "/etc/passwd".into(), Vec::new()),
                (
                    "marker".into(),
                    Link,
                    m.path.display().to_string(),
                    Vec::new(),
                ),
                (
                    "up-marker".into(),
                    Link,
                    format!("{depth}{}", &m.path.display().to_string()[1..]),
                    Vec::new(),
                ),
            ],
        ),
        (
            // A hard link to an in-archive symlink that points at the host file: must link the
            // symlink itself, and writing through the name must replace it, not follow it.
            "hardlink-to-symlink",
            vec![
                (
                    "s".into(),
                    Symlink,
                    m.path.display().to_string(),
                    Vec::new(),
                ),
                ("h".into(), Link, "s".into(), Vec::new()),
                ("h".into(), Regular, String::new(), b"OVERWRITE".to_vec()),
            ],
        ),
        (
            "devices",
            vec![
                ("dev-null".into(), Char, String::new(), Vec::new()),
                ("fifo".into(), Fifo, String::new(), Vec::new()),
            ],
        ),
    ];
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    for (name, entries) in &cases {
        let ctx = env.context(
            &format!("ctx-{name}"),
            &[("Dockerfile", "FROM scratch\nADD evil.tar /x/\n")],
        );
        let refs: Vec<(&str, tar::EntryType, &str, &[u8])> = entries
            .iter()
            .map(|(n, k, l, d)| (n.as_str(), *k, l.as_str(), d.as_slice()))
            .collect();
        archive(&ctx.join("evil.tar"), &refs);
        let tag = format!("evil:{name}");
        let out = build(&env, &ctx, &tag);
        assert_clean_outcome(&out);
        eprintln!(
            "ADD {name}: exit {:?}, entries {:?}",
            out.status.code(),
            layer_contents(&env, &tag)
                .iter()
                .map(|e| format!("{}({})", e.0, e.1))
                .collect::<Vec<_>>()
        );
        // Nothing was written outside: no pwned files anywhere we can name, marker untouched.
        for leaked in ["pwned-dotdot", "pwned-abs", "pwned-symlink", "pwned-rel"] {
            assert!(
                !outside.join(leaked).exists(),
                "{name}: wrote {leaked} outside"
            );
        }
        assert!(!env.path("pwned-parent").exists());
        assert!(
            !env.dir
                .path()
                .parent()
                .unwrap()
                .join("pwned-parent")
                .exists()
        );
        assert_eq!(
            std::fs::read_to_string(&m.path).unwrap(),
            m.content,
            "{name}"
        );
        assert_eq!(sha256_of("/etc/passwd"), passwd_before, "{name}");
        // Nothing was read from outside into the image.
        assert_never_in_layers(&env, &tag, &m.content);
        for (path, _, content) in layer_contents(&env, &tag) {
            assert!(
                content.is_empty() || content != host_passwd,
                "{name}: {path} holds the host's /etc/passwd"
            );
        }
    }
}

// ---- COPY into destinations that go through symlinks inside the image -------------------------

#[test]
fn copy_destination_through_image_symlinks_resolves_in_the_rootfs() {
    let env = Env::new();
    let target = env.path("host-dest");
    std::fs::create_dir_all(&target).unwrap();
    let t = target.display().to_string();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM scratch\nCOPY links/ /d/\n\
                     COPY payload /d/toroot{t}/via-root\n\
                     COPY payload /d/up{t}/via-up\n\
                     COPY payload /d/abs/via-abs\n\
                     WORKDIR /d/abs\nCOPY payload rel-via-workdir\n"
                ),
            ),
            ("payload", "PAYLOAD"),
        ],
    );
    std::fs::create_dir_all(ctx.join("links")).unwrap();
    std::os::unix::fs::symlink("/", ctx.join("links/toroot")).unwrap();
    std::os::unix::fs::symlink("../../../..", ctx.join("links/up")).unwrap();
    std::os::unix::fs::symlink(&target, ctx.join("links/abs")).unwrap();
    let out = build(&env, &ctx, "dest:1");
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing landed on the host.
    let leaked: Vec<_> = std::fs::read_dir(&target).unwrap().collect();
    assert!(leaked.is_empty(), "COPY wrote to the host: {leaked:?}");
    // Everything landed inside the image, where the links resolve with the rootfs as `/`.
    let entries = layer_contents(&env, "dest:1");
    let rel = &t[1..];
    for path in [
        format!("{rel}/via-root"),
        format!("{rel}/via-up"),
        format!("{rel}/via-abs"),
        format!("{rel}/rel-via-workdir"),
    ] {
        assert!(
            entries.iter().any(|e| e.0 == path && e.2 == "PAYLOAD"),
            "{path} missing: {:?}",
            entries.iter().map(|e| &e.0).collect::<Vec<_>>()
        );
    }
}

// ---- Hostile Dockerfile / .dockerignore text: the build must end with an error, not hang or crash

/// Runs `builder build` on `ctx` and returns its exit code, killing it (and failing) after
/// `limit`.
fn build_within(env: &Env, ctx: &Path, limit: std::time::Duration) -> Option<i32> {
    let mut child = env
        .cmd()
        .args(["build", "--progress=quiet", ctx.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("builder build still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn hostile_dockerignore_cannot_hang_the_build() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /\n"),
            (".dockerignore", "*a*a*a*a*a*a*a*a*b\n"),
            (&"a".repeat(40), ""),
        ],
    );
    let code = build_within(&env, &ctx, std::time::Duration::from_secs(20));
    assert!(matches!(code, Some(0) | Some(2)), "exit {code:?}");
}

#[test]
fn deeply_nested_substitution_is_a_usage_error_not_a_crash() {
    let env = Env::new();
    let depth = 5000;
    let word = format!("{}x{}", "${A:-".repeat(depth), "}".repeat(depth));
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", &format!("FROM scratch\nENV X={word}\n"))],
    );
    let code = build_within(&env, &ctx, std::time::Duration::from_secs(20));
    assert!(matches!(code, Some(0) | Some(2)), "exit {code:?}");
}
