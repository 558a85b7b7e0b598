//! One layer stack, three views that must agree: the filesystem a `RUN` step sees (an overlay,
//! or a copy, of the unpacked layers), `--output type=local` and `--output type=tar`.
//!
//! The base image is busybox plus three hand-made layers pushed to a local registry with
//! skopeo. They hold the case of issue 13 (`esc/` dir, then `esc -> /tmp/x`, then `esc/pwned`
//! without a parent entry) and the other ways a layer changes what lies below: a whiteout of a
//! file and of a directory, an opaque directory, a directory replaced by a file, a file
//! replaced by a directory, a directory replaced by an absolute and by a relative symlink and
//! then written (and whited out) through. Layers apply as containerd's applier does on a
//! mounted rootfs: parents resolve through the symlinks below, inside the root.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use builder_store::Digest;
use common::{Env, have};
use registry_support::{Auth, Registry};

/// One hand-made tar entry.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
    Symlink(&'a str, &'a str),
}

fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, content) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(content.len() as u64);
                b.append_data(&mut h, p, content.as_bytes()).unwrap();
            }
            E::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// The three layers stacked on busybox, bottom first.
fn hand_made_layers() -> Vec<Vec<u8>> {
    use E::*;
    let below = layer(&[
        Dir("esc/"),
        Dir("cases/"),
        Dir("cases/wf/"),
        File("cases/wf/gone", "gone"),
        File("cases/wf/stay", "stay"),
        Dir("cases/wd/"),
        Dir("cases/wd/sub/"),
        File("cases/wd/sub/f", "f"),
        Dir("cases/opq/"),
        File("cases/opq/old", "old"),
        Dir("cases/opq/d/"),
        File("cases/opq/d/old2", "old2"),
        Dir("cases/d2f/"),
        File("cases/d2f/inner", "inner"),
        File("cases/f2d", "was a file"),
        Dir("cases/d2l/"),
        File("cases/d2l/old", "old"),
        Dir("cases/target/"),
        File("cases/target/t0", "t0"),
        File("cases/target/t1", "t1"),
        Dir("cases/rel/"),
        File("cases/rel/old", "old"),
    ]);
    let middle = layer(&[
        Symlink("esc", "/tmp/x"),
        File("cases/wf/.wh.gone", ""),
        File("cases/.wh.wd", ""),
        Dir("cases/opq/"),
        File("cases/opq/.wh..wh..opq", ""),
        File("cases/opq/new", "new"),
        File("cases/d2f", "now a file"),
        Dir("cases/f2d/"),
        File("cases/f2d/child", "child"),
        Symlink("cases/d2l", "/cases/target"),
        Symlink("cases/rel", "target"),
    ]);
    // No parent entries: every name here is reached through what lies below.
    let top = layer(&[
        File("esc/pwned", "pwned"),
        File("cases/d2l/new", "through the link"),
        File("cases/d2l/.wh.t0", ""),
        File("cases/rel/r", "through the relative link"),
    ]);
    vec![below, middle, top]
}

/// Saves `busybox:test` as an OCI layout, appends `layers` to its manifest and config, and
/// pushes the result to `reg` as `stack:1` with skopeo.
fn push_stack(env: &Env, reg: &Registry, layers: &[Vec<u8>]) -> String {
    let archive = env.path("busybox-oci.tar");
    env.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        archive.to_str().unwrap(),
        "busybox:test",
    ]);
    let layout = env.path("layout");
    tar::Archive::new(fs::File::open(&archive).unwrap())
        .unpack(&layout)
        .unwrap();
    let blobs = layout.join("blobs/sha256");
    let read_json = |d: &str| -> serde_json::Value {
        let hex = d.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&fs::read(blobs.join(hex)).unwrap()).unwrap()
    };
    let put = |bytes: &[u8]| -> String {
        let d = Digest::of(bytes);
        fs::write(blobs.join(d.hex()), bytes).unwrap();
        d.to_string()
    };
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut manifest = read_json(index["manifests"][0]["digest"].as_str().unwrap());
    let mut config = read_json(manifest["config"]["digest"].as_str().unwrap());
    for l in layers {
        let digest = put(l);
        manifest["layers"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest,
                "size": l.len(),
            }));
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .unwrap()
            .push(digest.into());
        if let Some(history) = config["history"].as_array_mut() {
            history.push(serde_json::json!({"created_by": "hand-made layer"}));
        }
    }
    let config_bytes = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = put(&config_bytes).into();
    manifest["config"]["size"] = config_bytes.len().into();
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    index["manifests"] = serde_json::json!([{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(&manifest_bytes),
        "size": manifest_bytes.len(),
    }]);
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let image = format!("{}/stack:1", reg.host());
    let out = env
        .skopeo()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

/// Paths of the tree the cases live in: the esc case at the root, the others below /cases.
fn in_scope(rel: &str) -> bool {
    ["esc", "tmp", "cases"]
        .iter()
        .any(|top| rel == *top || rel.starts_with(&format!("{top}/")))
}

/// `kind mode path [-> target | = content]` per path below `root` that is in scope, sorted;
/// the same format the RUN step prints. Symlinks are never followed.
fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        for entry in fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if !in_scope(&child) {
                continue;
            }
            let path = root.join(&child);
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let line = if meta.file_type().is_symlink() {
                format!("l {child} -> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                format!("d {mode:o} {child}")
            } else {
                let content = fs::read_to_string(&path).unwrap();
                format!("f {mode:o} {child} = {content} ({} bytes)", meta.size())
            };
            out.insert(child.clone(), line);
            if meta.is_dir() {
                walk(root, &child, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

/// What a RUN step on `stack` sees, in the format of [`listing`].
const RUN_LISTING: &str = r#"RUN cd / && find esc tmp cases 2>/dev/null | sort | while read -r p; do \
      if [ -L "$p" ]; then echo "l $p -> $(readlink "$p")"; \
      elif [ -d "$p" ]; then echo "d $(stat -c %a "$p") $p"; \
      else echo "f $(stat -c %a "$p") $p = $(cat "$p") ($(stat -c %s "$p") bytes)"; fi; \
    done > /view.txt"#;

#[test]
fn run_step_and_exports_see_the_same_layer_stack() {
    if !have("docker-registry") || !have("skopeo") {
        eprintln!("SKIP: docker-registry or skopeo is not installed");
        return;
    }
    let env = Env::new();
    env.busybox_base();
    let reg = Registry::start(Auth::None);
    let image = push_stack(&env, &reg, &hand_made_layers());
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            &format!(
                "FROM {image} AS base\nFROM base AS view\n{RUN_LISTING}\n\
                 FROM scratch AS out\nCOPY --from=view /view.txt /\n"
            ),
        )],
    );
    let (run_out, local, tar_out) = (
        env.path("run-out"),
        env.path("local"),
        env.path("rootfs.tar"),
    );
    env.build_ok(
        &ctx,
        &[
            "--target",
            "out",
            "--output",
            &format!("type=local,dest={}", run_out.display()),
        ],
    );
    env.build_ok(
        &ctx,
        &[
            "--target",
            "base",
            "--output",
            &format!("type=local,dest={}", local.display()),
        ],
    );
    env.build_ok(
        &ctx,
        &[
            "--target",
            "base",
            "--output",
            &format!("type=tar,dest={}", tar_out.display()),
        ],
    );

    let run_view: BTreeMap<String, String> = fs::read_to_string(run_out.join("view.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let path = l.split(' ').find(|w| in_scope(w)).unwrap_or(l);
            (path.to_string(), l.to_string())
        })
        .collect();
    let local_view = listing(&local);
    let show = |v: &BTreeMap<String, String>| v.values().cloned().collect::<Vec<_>>().join("\n");
    assert_eq!(
        show(&run_view),
        show(&local_view),
        "RUN view (left) and type=local export (right) differ"
    );
    let untarred = env.path("untarred");
    fs::create_dir(&untarred).unwrap();
    let mut archive = tar::Archive::new(fs::File::open(&tar_out).unwrap());
    archive.set_preserve_permissions(true);
    archive.unpack(&untarred).expect(
        "the type=tar export unpacks without writing through its symlinks (no entry below one)",
    );
    assert_eq!(
        show(&listing(&untarred)),
        show(&local_view),
        "type=tar (left) and type=local (right) exports differ"
    );

    // And the common view is containerd's.
    let expect = [
        "l esc -> /tmp/x",
        "f 644 tmp/x/pwned = pwned (5 bytes)",
        "f 644 cases/wf/stay = stay (4 bytes)",
        "f 644 cases/opq/new = new (3 bytes)",
        "f 644 cases/d2f = now a file (10 bytes)",
        "d 755 cases/f2d",
        "f 644 cases/f2d/child = child (5 bytes)",
        "l cases/d2l -> /cases/target",
        "f 644 cases/target/new = through the link (16 bytes)",
        "f 644 cases/target/t1 = t1 (2 bytes)",
        "l cases/rel -> target",
        "f 644 cases/target/r = through the relative link (25 bytes)",
    ];
    for line in expect {
        assert!(
            local_view.values().any(|l| l == line),
            "missing {line:?} in:\n{}",
            show(&local_view)
        );
    }
    for gone in [
        "esc/pwned",
        "cases/wf/gone",
        "cases/wd",
        "cases/opq/old",
        "cases/opq/d",
        "cases/d2f/inner",
        "cases/target/t0",
        "cases/d2l/new",
        "cases/rel/r",
    ] {
        assert!(
            !local_view.contains_key(gone),
            "{gone} should not exist:\n{}",
            show(&local_view)
        );
    }
    // The top layer's stack-specific unpack (named after the stack, not the diff id) is a
    // sound store entry.
    env.ok(&["cache", "verify"]);
}
