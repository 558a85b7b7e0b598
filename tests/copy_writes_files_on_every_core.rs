//! A COPY writes its regular files on every core, and a step's layer blob is written past the
//! page cache (issue #17, large files). Neither may change what lands: a later source of the
//! same COPY still replaces what an earlier one wrote (directory walks and single files alike),
//! files larger than the copy's and the blob writer's chunks arrive whole, and every stored
//! blob still hashes to its name. Built several times, since a race would not show every time.

mod common;

use std::fs;
use std::path::Path;

use common::{Env, read_text, varied_bytes};

const DOCKERFILE: &str = "FROM scratch
COPY a/ b/ /d/
COPY one/f two/f /single/
COPY one/f two/g one/h /many/
COPY big.bin /big/
";

/// 300 files in `a/` (some in subdirectories), the first 120 of them again in `b/` with other
/// contents; two single files named `f`; a 3 MiB + 5 byte file of varied bytes.
fn context(env: &Env) -> std::path::PathBuf {
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", DOCKERFILE),
            ("one/f", "one f\n"),
            ("one/h", "one h\n"),
            ("two/f", "two f\n"),
            ("two/g", "two g\n"),
        ],
    );
    for i in 0..300 {
        fs::create_dir_all(ctx.join("a").join(sub(i))).unwrap();
        fs::write(ctx.join("a").join(name(i)), format!("a {i}\n")).unwrap();
        if i < 120 {
            fs::create_dir_all(ctx.join("b").join(sub(i))).unwrap();
            fs::write(ctx.join("b").join(name(i)), format!("b {i}\n")).unwrap();
        }
    }
    fs::write(ctx.join("big.bin"), big()).unwrap();
    ctx
}

fn sub(i: usize) -> String {
    format!("s{}", i % 7)
}

fn name(i: usize) -> String {
    format!("{}/x{i}", sub(i))
}

fn big() -> Vec<u8> {
    varied_bytes((3 << 20) + 5, 17)
}

fn check_tree(out: &Path) {
    for i in 0..300 {
        let want = if i < 120 {
            format!("b {i}\n")
        } else {
            format!("a {i}\n")
        };
        assert_eq!(
            read_text(out.join("d").join(name(i))),
            want,
            "/d/{}",
            name(i)
        );
    }
    assert_eq!(read_text(out.join("single/f")), "two f\n");
    for (f, want) in [("f", "one f\n"), ("g", "two g\n"), ("h", "one h\n")] {
        assert_eq!(read_text(out.join("many").join(f)), want, "/many/{f}");
    }
    assert!(
        fs::read(out.join("big/big.bin")).unwrap() == big(),
        "/big/big.bin differs from the context's"
    );
}

#[test]
fn later_sources_still_win_and_every_file_and_blob_arrives_whole() {
    let env = Env::new();
    let ctx = context(&env);
    for round in 0..4 {
        let out = env.build_local(&ctx, &format!("out{round}"), &["--no-cache"]);
        check_tree(&out);
    }
    // The layers as stored: every blob hashes to its name (the layer writer's blobs went
    // through the direct writer, chunk by chunk and the tail after).
    env.build_ok(
        &ctx,
        &[
            "--no-cache",
            "-t",
            "copied",
            "--output",
            "type=image,compression=uncompressed",
        ],
    );
    let verified = env.run(&["cache", "verify"]);
    assert!(
        verified.status.success(),
        "cache verify failed:\n{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    let layers = env.inspect("copied")["Manifest"]["layers"].clone();
    let sizes: Vec<u64> = layers
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .collect();
    assert!(
        sizes.iter().any(|&s| s > 3 << 20),
        "the big file's layer is a multi-chunk blob: {sizes:?}"
    );
}
