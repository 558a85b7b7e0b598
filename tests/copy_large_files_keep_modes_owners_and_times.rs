//! A COPY's large files (1 MiB and up, written on several file workers at once, their data moved
//! by `copy_file_range`) land as copied: each file's bytes, mode (setuid included,
//! with and without --chown/--chmod; writing data or changing the owner would clear it, so it
//! is set last), owner and time, the times of the directories around them, and a later source
//! of the same COPY still replaces an earlier one's file. Built twice, as a race would not show
//! every time.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use common::{Env, set_mtime, varied_bytes};

const DOCKERFILE: &str = "FROM scratch
COPY big/ /plain/
COPY --chown=1234:5678 big/ /owned/
COPY --chmod=4750 big/ /modded/
COPY big/ again/ /twice/
";

const T: u64 = 1_500_000_000;

/// (path in `big/`, size, mode, mtime offset from T).
const FILES: &[(&str, usize, u32, u64)] = &[
    ("a.bin", (2 << 20) + 3, 0o644, 11),
    ("suid.bin", 3 << 20, 0o4755, 12),
    ("private.bin", (1 << 20) + 1, 0o600, 13),
    ("small.txt", 10, 0o644, 14),
    ("sub/deep.bin", 5 << 20, 0o755, 15),
    ("sub/tiny", 1, 0o644, 16),
];

fn context(env: &Env) -> std::path::PathBuf {
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    for (i, (name, len, mode, dt)) in FILES.iter().enumerate() {
        let p = ctx.join("big").join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, varied_bytes(*len, i as u32)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
        set_mtime(&p, T + dt);
    }
    // `again/` replaces one large file of `big/` in /twice/.
    fs::create_dir(ctx.join("again")).unwrap();
    fs::write(ctx.join("again/a.bin"), varied_bytes(4 << 20, 99)).unwrap();
    set_mtime(&ctx.join("again/a.bin"), T + 21);
    set_mtime(&ctx.join("again"), T + 22);
    set_mtime(&ctx.join("big/sub"), T + 1);
    set_mtime(&ctx.join("big"), T + 2);
    ctx
}

/// What a layer says of one entry: mode, uid, gid, mtime, data.
type Seen = (u32, u64, u64, u64, Vec<u8>);

fn layers(env: &Env, name: &str) -> BTreeMap<String, Seen> {
    let v = env.inspect(name);
    let mut seen = BTreeMap::new();
    for l in v["Manifest"]["layers"].as_array().unwrap() {
        let digest = l["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        let blob = fs::File::open(env.root().join("blobs/sha256").join(digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let h = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let path = path.trim_end_matches('/').to_string();
            let mode = h.mode().unwrap() & 0o7777;
            let row = (
                mode,
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                data,
            );
            seen.insert(path, row);
        }
    }
    seen
}

fn check(seen: &BTreeMap<String, Seen>) {
    let at = |p: &str| {
        seen.get(p)
            .unwrap_or_else(|| panic!("{p} is not in the image: {:?}", seen.keys()))
    };
    for (i, (name, len, mode, dt)) in FILES.iter().enumerate() {
        let want = varied_bytes(*len, i as u32);
        let mtime = T + dt;
        for (dir, mode, owner) in [
            ("plain", *mode, (0, 0)),
            ("owned", *mode, (1234, 5678)),
            ("modded", 0o4750, (0, 0)),
        ] {
            let p = format!("{dir}/{name}");
            let (m, uid, gid, t, data) = at(&p);
            assert!(*data == want, "{p}: other bytes ({} of {len})", data.len());
            assert_eq!((*m, (*uid, *gid), *t), (mode, owner, mtime), "{p}");
        }
        if *name != "a.bin" {
            assert!(at(&format!("twice/{name}")).4 == want, "twice/{name}");
        }
    }
    let (_, _, _, t, data) = at("twice/a.bin");
    assert!(
        *data == varied_bytes(4 << 20, 99),
        "the later source's file wins"
    );
    assert_eq!(*t, T + 21);
    for dir in ["plain", "owned", "modded"] {
        assert_eq!(at(&format!("{dir}/sub")).3, T + 1, "{dir}/sub's time");
    }
}

#[test]
fn large_files_keep_bytes_modes_owners_and_times() {
    let env = Env::new();
    let ctx = context(&env);
    env.build_ok(&ctx, &["-t", "late:1"]);
    check(&layers(&env, "late:1"));
    env.build_ok(&ctx, &["-t", "late:2", "--no-cache"]);
    let mut second = layers(&env, "late:2");
    check(&second);
    let mut first = layers(&env, "late:1");
    // The directories the copies made carry the time they were made at, as in BuildKit.
    for made in ["plain", "owned", "modded", "twice"] {
        first.remove(made);
        second.remove(made);
    }
    assert!(second == first, "the same entries each time");
}
