//! End to end: `COPY --exclude` and `COPY --parents` (Dockerfile 1.7 labs, `--exclude` general
//! since 1.19). Both used to be parsed and then ignored: excluded files (secrets, node_modules)
//! were copied, and `--parents` flattened paths.

mod common;

use common::Env;

/// Every file below `dir` in the image, sorted.
fn files(env: &Env, tag: &str, dir: &str) -> Vec<String> {
    let out = env.ok(&["run", "--rm", tag, "find", dir, "-type", "f"]);
    let mut files: Vec<String> = out.lines().map(str::to_string).collect();
    files.sort();
    files
}

const TREE: &[(&str, &str)] = &[
    ("dir1/file-101.png", "2"),
    ("dir1/file-102.txt", "3"),
    ("dir1/file-103.jpeg", "4"),
    ("dir2/file-201.pdf", "6"),
    ("dir2/file-202.jpeg", "7"),
    ("dir2/sub/file-203.png", "8"),
    ("dir3/file-301.mp3", "9"),
    ("dir3/file-302.mpeg", "10"),
    ("app/.env", "SECRET=1"),
    ("app/main.txt", "main"),
    ("app/node_modules/dep/index.js", "dep"),
    ("docs/a.md", "a"),
    ("docs/b.txt", "b"),
];

#[test]
fn exclude_leaves_files_out_of_the_layer_and_the_cache_key() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test\n\
        COPY --exclude=*/*.png --exclude=*/*.jpeg dir1 dir2 /images-gone/\n\
        COPY --exclude=*.mp3 dir3/ /music/\n\
        COPY --exclude=node_modules --exclude=.env app /app/\n\
        COPY --exclude=*.md docs/* /docs/\n\
        COPY --exclude=* dir3 /nothing/\n\
        RUN echo ran > /ran\n";
    let mut files_in_ctx = TREE.to_vec();
    files_in_ctx.push(("Dockerfile", dockerfile));
    let ctx = env.context("ctx", &files_in_ctx);
    env.build_ok(&ctx, &["-t", "ex:1"]);

    // Patterns match paths relative to each source directory: `*/*.png` is a file one
    // directory down in dir1 or dir2 (dir2/sub/file-203.png), not their own files.
    assert_eq!(
        files(&env, "ex:1", "/images-gone"),
        [
            "/images-gone/file-101.png",
            "/images-gone/file-102.txt",
            "/images-gone/file-103.jpeg",
            "/images-gone/file-201.pdf",
            "/images-gone/file-202.jpeg",
        ]
    );
    assert_eq!(files(&env, "ex:1", "/music"), ["/music/file-302.mpeg"]);
    assert_eq!(files(&env, "ex:1", "/app"), ["/app/main.txt"]);
    // A file a wildcard selects is matched by its name.
    assert_eq!(files(&env, "ex:1", "/docs"), ["/docs/b.txt"]);
    assert!(files(&env, "ex:1", "/nothing").is_empty());

    // Editing an excluded file keeps every step cached; editing a copied one does not.
    std::fs::write(ctx.join("app/.env"), "SECRET=2").unwrap();
    std::fs::write(ctx.join("dir3/file-301.mp3"), "changed").unwrap();
    let log = env.build_ok(&ctx, &["-t", "ex:2"]);
    assert_eq!(log.matches("CACHED").count(), 6, "{log}");
    std::fs::write(ctx.join("app/main.txt"), "main 2").unwrap();
    let log = env.build_ok(&ctx, &["-t", "ex:3"]);
    // Steps 1-2 come from the cache; the edited COPY and every step after it run again.
    assert_eq!(log.matches("CACHED").count(), 2, "{log}");
    assert_eq!(
        env.ok(&["run", "--rm", "ex:3", "cat", "/app/main.txt"]),
        "main 2"
    );
}

#[test]
fn parents_keeps_each_sources_path_below_the_destination() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test\n\
        COPY --parents dir*/*.jpeg /kept/\n\
        COPY --parents dir2 /whole/\n\
        COPY --parents ./app/./node_modules/dep/index.js /pivot\n\
        COPY --parents --exclude=*.png dir1/ /both/\n";
    let mut files_in_ctx = TREE.to_vec();
    files_in_ctx.push(("Dockerfile", dockerfile));
    let ctx = env.context("ctx", &files_in_ctx);
    env.build_ok(&ctx, &["-t", "par:1"]);
    assert_eq!(
        files(&env, "par:1", "/kept"),
        ["/kept/dir1/file-103.jpeg", "/kept/dir2/file-202.jpeg"]
    );
    assert_eq!(
        files(&env, "par:1", "/whole"),
        [
            "/whole/dir2/file-201.pdf",
            "/whole/dir2/file-202.jpeg",
            "/whole/dir2/sub/file-203.png",
        ]
    );
    // What comes before a `/./` pivot is dropped.
    assert_eq!(
        files(&env, "par:1", "/pivot"),
        ["/pivot/node_modules/dep/index.js"]
    );
    assert_eq!(
        files(&env, "par:1", "/both"),
        ["/both/dir1/file-102.txt", "/both/dir1/file-103.jpeg"]
    );
}

#[test]
fn a_broken_exclude_pattern_names_the_dockerfile_line() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM busybox:test\nCOPY --exclude=[ a /a\n"),
            ("a", "a"),
        ],
    );
    let out = env.build(&ctx, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:2") && stderr.contains("--exclude"),
        "{stderr}"
    );
}
