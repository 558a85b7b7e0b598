//! Linux file names are bytes: a build context's files whose names are not UTF-8, or hold a
//! newline, a tab or a leading dash, or are 255 bytes long, or sit thousands of bytes deep,
//! must arrive in the image, its layer and its exports under exactly the same bytes.

mod common;

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use common::Env;

/// The awkward names, relative to the context, with each file's content.
fn odd_files() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut files = vec![
        (b"bad\xff\xfe".to_vec(), b"not utf-8\n".to_vec()),
        (b"new\nline".to_vec(), b"newline\n".to_vec()),
        (b"tab\tname".to_vec(), b"tab\n".to_vec()),
        (b"-dash".to_vec(), b"dash\n".to_vec()),
        (
            b"sub\xc3\x28/inner\x80".to_vec(),
            b"nested bytes\n".to_vec(),
        ),
        (vec![b'n'; 255], b"255 bytes\n".to_vec()),
    ];
    files.push((deep_path(), b"deep\n".to_vec()));
    files
}

/// A file below 15 directories of 250 bytes each, with a 255-byte name: 4,020 bytes of
/// relative path, `/ctx/` + 4,020 in the image, within a few dozen bytes of PATH_MAX (4,096)
/// on the host, where the context's own directory comes in front.
fn deep_path() -> Vec<u8> {
    let mut p = Vec::new();
    for i in 0..15u8 {
        p.extend(std::iter::repeat_n(b'a' + i, 249));
        p.push(b'\xe9'); // Latin-1 é: not UTF-8 either.
        p.push(b'/');
    }
    p.extend(std::iter::repeat_n(b'z', 255));
    p
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// Writes the context into the directory `dir` (bytes: it need not be UTF-8 either).
fn write_context(env: &Env, dir: &[u8], dockerfile: &str) -> PathBuf {
    let ctx = env.dir.path().join(os(dir));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    for (name, content) in odd_files() {
        let p = ctx.join(os(&name));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    ctx
}

/// Every regular file of a tar stream: its name bytes (without a leading `./` or `/`) and
/// content.
fn tar_files(reader: impl Read) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let name = raw
            .strip_prefix(b"./")
            .or_else(|| raw.strip_prefix(b"/"))
            .unwrap_or(&raw)
            .to_vec();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        out.push((name, content));
    }
    out.sort();
    out
}

/// The files of the image's last layer, as stored (gzip) in the store.
fn last_layer_files(env: &Env, image: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let v = env.inspect(image);
    let layers = v["Manifest"]["layers"].as_array().unwrap();
    let digest = layers.last().unwrap()["digest"].as_str().unwrap();
    let blob = env
        .root()
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    tar_files(flate2::read::GzDecoder::new(
        std::fs::File::open(blob).unwrap(),
    ))
}

fn expected_under(prefix: &[u8], skip: &[&[u8]]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v: Vec<_> = odd_files()
        .into_iter()
        .filter(|(n, _)| !skip.contains(&n.as_slice()))
        .map(|(n, c)| ([prefix, &n].concat(), c))
        .collect();
    v.sort();
    v
}

/// Regular files below `dir`, by their relative name bytes.
fn local_files(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    fn walk(dir: &Path, rel: &[u8], out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_vec();
            let child = if rel.is_empty() {
                name
            } else {
                [rel, b"/", &name].concat()
            };
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(&e.path(), &child, out);
            } else if ft.is_file() {
                out.push((child, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, b"", &mut out);
    out.sort();
    out
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

#[test]
fn odd_names_arrive_byte_identical_in_layer_and_exports() {
    let env = Env::new();
    let ctx = write_context(&env, b"ctx", "FROM scratch\nCOPY . /ctx\n");
    // Neither the Dockerfile nor anything else but the odd files: .dockerignore keeps it out.
    std::fs::write(ctx.join(".dockerignore"), "Dockerfile\n.dockerignore\n").unwrap();
    let (tar_out, local_out) = (env.path("out.tar"), env.path("out-local"));
    env.build_ok(
        &ctx,
        &[
            "-t",
            "names:1",
            "--output",
            &format!("type=tar,dest={}", arg(&tar_out)),
            "--output",
            &format!("type=local,dest={}", arg(&local_out)),
        ],
    );
    let expected = expected_under(b"ctx/", &[]);
    assert_eq!(last_layer_files(&env, "names:1"), expected, "the layer");
    assert_eq!(
        tar_files(std::fs::File::open(&tar_out).unwrap()),
        expected,
        "type=tar"
    );
    assert_eq!(local_files(&local_out), expected, "type=local");
    // `builder cache verify` still finds the store sound.
    env.ok(&["cache", "verify"]);
}

#[test]
fn dockerignore_excludes_a_non_utf8_name_by_pattern() {
    let env = Env::new();
    let ctx = write_context(&env, b"ctx", "FROM scratch\nCOPY . /ctx\n");
    // `?` stands for each byte that is not UTF-8, as Go's matcher reads them.
    std::fs::write(
        ctx.join(".dockerignore"),
        "Dockerfile\n.dockerignore\nbad??\nsub?(/inner?\n",
    )
    .unwrap();
    env.build_ok(&ctx, &["-t", "names:ign"]);
    let files = last_layer_files(&env, "names:ign");
    assert_eq!(
        files,
        expected_under(b"ctx/", &[b"bad\xff\xfe", b"sub\xc3\x28/inner\x80"])
    );
}

#[test]
fn cache_hits_when_unchanged_and_misses_when_a_non_utf8_file_changes() {
    let env = Env::new();
    // The context directory's own name and the Dockerfile's are not UTF-8 either (the stat
    // cache is kept per context directory).
    let ctx = write_context(&env, b"ctx\xff", "");
    std::fs::remove_file(ctx.join("Dockerfile")).unwrap();
    let dockerfile = ctx.join(os(b"Dockerfile\xfe"));
    std::fs::write(&dockerfile, "FROM scratch\nCOPY . /ctx\n").unwrap();
    let build = |tag: &str| {
        let out = env
            .cmd()
            .args(["build", "--progress=plain", "-t", tag, "-f"])
            .arg(&dockerfile)
            .arg(&ctx)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{log}");
        log
    };
    build("names:1");
    let log = build("names:2");
    assert_eq!(log.matches("CACHED").count(), 1, "no-op rebuild:\n{log}");

    let bad: OsString = OsString::from_vec(b"bad\xff\xfe".to_vec());
    std::fs::write(ctx.join(&bad), "edited\n").unwrap();
    let log = build("names:3");
    assert_eq!(log.matches("CACHED").count(), 0, "after the edit:\n{log}");
    let files = last_layer_files(&env, "names:3");
    let got = files
        .iter()
        .find(|(n, _)| n.as_slice() == b"ctx/bad\xff\xfe")
        .map(|(_, c)| c.as_slice());
    assert_eq!(got, Some(&b"edited\n"[..]));
}

/// The RUN view and what RUN writes: a step sees the copied names as they are, a name it
/// creates that is not UTF-8 lands in its layer as those bytes, and a file it deletes (its
/// whiteout's name is not UTF-8 either) is gone from the exported filesystem.
#[test]
fn run_steps_see_and_write_names_that_are_not_utf8() {
    let env = Env::new();
    env.busybox_base();
    let ctx = write_context(
        &env,
        b"ctx",
        "FROM busybox:test\nCOPY . /ctx\n\
         RUN find /ctx -type f | sort > /found && printf 'made\\377\\n' > \"$(printf 'made\\377')\"\n\
         RUN rm /ctx/bad??\n",
    );
    std::fs::write(ctx.join(".dockerignore"), "Dockerfile\n.dockerignore\n").unwrap();
    let local_out = env.path("out-local");
    env.build_ok(
        &ctx,
        &[
            "-t",
            "names:run",
            "--output",
            &format!("type=local,dest={}", arg(&local_out)),
        ],
    );
    // `find` prints each name's raw bytes, one a line; the newline in `new\nline` splits it.
    let found = std::fs::read(local_out.join("found")).unwrap();
    let mut expected: Vec<Vec<u8>> = odd_files()
        .into_iter()
        .map(|(n, _)| [b"/ctx/", n.as_slice()].concat())
        .collect();
    expected.sort();
    let mut listed = expected.join(&b"\n"[..]);
    listed.push(b'\n');
    let mut got_lines: Vec<&[u8]> = found.split(|b| *b == b'\n').collect();
    let mut want_lines: Vec<&[u8]> = listed.split(|b| *b == b'\n').collect();
    got_lines.sort();
    want_lines.sort();
    assert_eq!(got_lines, want_lines, "what RUN saw");
    assert_eq!(
        std::fs::read(local_out.join(os(b"made\xff"))).unwrap(),
        b"made\xff\n"
    );
    assert!(
        std::fs::symlink_metadata(local_out.join(os(b"ctx/bad\xff\xfe"))).is_err(),
        "the file RUN deleted is still in the export"
    );
    // The RUN layer holds the new name as its bytes.
    let v = env.inspect("names:run");
    let layers = v["Manifest"]["layers"].as_array().unwrap();
    let run_layer = layers[layers.len() - 2]["digest"].as_str().unwrap();
    let blob = env
        .root()
        .join("blobs/sha256")
        .join(run_layer.strip_prefix("sha256:").unwrap());
    let files = tar_files(flate2::read::GzDecoder::new(
        std::fs::File::open(blob).unwrap(),
    ));
    assert!(
        files.iter().any(|(n, _)| n.as_slice() == b"made\xff"),
        "{files:?}"
    );
    env.ok(&["cache", "verify"]);
}
