//! A vertex's cache key: the one place that says what a step's result depends on.
//!
//! A key is the digest of the op's description (`builder_graph::op_fingerprint`: the op, its
//! inputs' keys and named extras). For a step (RUN or a file op) the extras are:
//! - `copy<N>` / `mount<N>`: the content checksum of the context files the N-th copy action or
//!   mount reads, so an edited source file misses and an untouched one hits;
//! - `compression`: always the gzip layer media type. Earlier builders stored each step's layer
//!   compressed and keyed it by the compression asked for; steps now store plain tars and
//!   compress on export (`builder_snapshot::layer_in`), so the compression no longer belongs
//!   in the key, but the extra stays, fixed at what a default build put there, so the
//!   records of those earlier builds (gzip blobs, which serve any build) keep hitting.
//!
//! The platform is in the op itself (`ExecOp::platform`, left out for the host's).
//!
//! The stores of every user hold records under these keys: changing how one is made (a field's
//! name, an extra's spelling, the order of inputs) invalidates every cache. The tests below pin
//! the bytes with literal digests; a change that must happen bumps `op_fingerprint`'s version.

use std::collections::BTreeMap;

use builder_graph::{ExecMountKind, FileAction, Op, op_fingerprint};
use builder_store::Digest;
use builder_store::manifest::media_type::OCI_LAYER_GZIP;

use crate::source_tree::{SourceError, SourceTree, exclude_rules};

/// One input of a vertex as its key sees it.
pub(crate) struct KeyInput<'t> {
    /// The input's own key ([`VertexKey::key`]).
    pub key: Digest,
    /// The context directory the input is, when it is one (`Op::Context`,
    /// `Op::NamedContext`): the files a step reads from it are part of the step's key.
    pub context: Option<SourceTree<'t>>,
}

/// The keys of one vertex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VertexKey {
    /// What the keys of the vertices after it build on: the whole result's identity.
    pub key: Digest,
    /// What the step's cache record is stored under: the same as `key`, except for a linked
    /// copy (`COPY --link`), whose record leaves its base out so that a changed base still
    /// hits and reuses the layer.
    pub record_key: Digest,
}

/// The keys of a vertex doing `op` on `inputs` (in the vertex's input order). Reads the
/// context files the op copies or mounts, to checksum them.
pub(crate) fn cache_key(op: &Op, inputs: &[KeyInput<'_>]) -> Result<VertexKey, SourceError> {
    let input_keys: Vec<Digest> = inputs.iter().map(|i| i.key).collect();
    if !matches!(op, Op::Exec(_) | Op::File(_)) {
        // Sources: what they are is in the op (an image's manifest and layers, a context's
        // name); the files steps read from a context are keyed by those steps.
        let key = op_fingerprint(op, &input_keys, &BTreeMap::new());
        return Ok(VertexKey {
            key,
            record_key: key,
        });
    }
    let mut extra = content_checksums(op, inputs)?;
    extra.insert("compression".into(), OCI_LAYER_GZIP.into());
    let linked = matches!(op, Op::File(f) if f.linked);
    // A linked step's record is keyed without its base (input 0) ...
    let record_inputs = if linked {
        input_keys.get(1..).unwrap_or_default()
    } else {
        &input_keys[..]
    };
    let record_key = op_fingerprint(op, record_inputs, &extra);
    // ... but what follows it depends on base and layer together.
    let key = match input_keys.first() {
        Some(base_key) if linked => {
            Digest::of(format!("linked {record_key} on {base_key}").as_bytes())
        }
        _ => record_key,
    };
    Ok(VertexKey { key, record_key })
}

/// The content checksums of the context files a step reads, by extra name.
fn content_checksums(
    op: &Op,
    inputs: &[KeyInput<'_>],
) -> Result<BTreeMap<String, String>, SourceError> {
    let mut extra = BTreeMap::new();
    let context = |i: usize| inputs.get(i).and_then(|input| input.context.as_ref());
    match op {
        Op::File(file) => {
            for (n, action) in file.actions.iter().enumerate() {
                if let FileAction::Copy(c) = action
                    && let Some(tree) = context(c.source_input)
                {
                    let exclude = exclude_rules(&c.exclude)?;
                    let sum = tree.checksum_excluding(&c.sources, &exclude)?;
                    extra.insert(format!("copy{n}"), sum.to_string());
                }
            }
        }
        Op::Exec(exec) => {
            for (n, mount) in exec.mounts.iter().enumerate() {
                if let ExecMountKind::Input { input, source, .. } = &mount.kind
                    && let Some(tree) = context(*input)
                {
                    let sum = tree.checksum(std::slice::from_ref(source))?;
                    extra.insert(format!("mount{n}"), sum.to_string());
                }
            }
        }
        _ => {}
    }
    Ok(extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use builder_graph::{
        CopyAction, ExecMount, ExecOp, FileOp, ImageSource, LayerRef, NetworkMode, Security,
    };

    /// A context holding `a.txt` ("hello\n", mode 0644), as the literals below were made with.
    fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            fs::write(&path, content).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }
        dir
    }

    fn hello() -> tempfile::TempDir {
        context(&[("a.txt", "hello\n")])
    }

    fn source_key(op: &Op) -> Digest {
        cache_key(op, &[]).unwrap().key
    }

    fn input(key: Digest) -> KeyInput<'static> {
        KeyInput { key, context: None }
    }

    fn context_input(dir: &Path) -> KeyInput<'_> {
        KeyInput {
            key: source_key(&Op::Context),
            context: Some(SourceTree::new(dir, None)),
        }
    }

    /// `COPY [--link] a.txt <dest>` as the converter makes it.
    fn copy(dest: &str, linked: bool) -> Op {
        Op::File(FileOp {
            actions: vec![FileAction::Copy(CopyAction {
                source_input: 1,
                sources: vec!["a.txt".into()],
                dest: dest.into(),
                dest_is_dir: false,
                chown: None,
                chmod: None,
                unpack_archives: false,
                exclude: vec![],
                from_context: true,
                parents: false,
            })],
            linked,
        })
    }

    /// `RUN --mount=type=bind,source=a.txt,target=/m read x < /m`.
    fn exec() -> ExecOp {
        ExecOp {
            args: vec!["/bin/sh".into(), "-c".into(), "read x < /m".into()],
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cwd: "/".into(),
            user: String::new(),
            network: NetworkMode::Host,
            security: Security::Sandbox,
            mounts: vec![ExecMount {
                target: "/m".into(),
                kind: ExecMountKind::Input {
                    input: 1,
                    source: "a.txt".into(),
                    read_write: false,
                },
            }],
            secret_env: vec![],
            extra_hosts: vec![],
            shm_size: None,
            ulimits: vec![],
            hostname: None,
            platform: None,
            proxy_env: vec![],
        }
    }

    fn exec_key(op: ExecOp, base: Digest, dir: &Path) -> VertexKey {
        let inputs = [input(base), context_input(dir)];
        cache_key(&Op::Exec(Box::new(op)), &inputs).unwrap()
    }

    fn base() -> Digest {
        Digest::of(b"some base")
    }

    /// The digests below are the record keys the builder before this module stored (read from
    /// its cache index) for a context holding `a.txt` and this Dockerfile, so stores made by it
    /// keep hitting:
    /// ```text
    /// FROM scratch
    /// COPY a.txt /a.txt
    /// COPY --link a.txt /linked.txt
    /// COPY a.txt /after.txt
    /// COPY busybox /bin/sh
    /// RUN --mount=type=bind,source=a.txt,target=/m read x < /m
    /// ```
    fn stored(hex: &str) -> Digest {
        format!("sha256:{hex}").parse().unwrap()
    }

    const FIRST_COPY: &str = "388b5e2a8d6e5c37b4d03603aea4b7bb8ccd48bc7bf5bccb0018d1c50e94ec08";
    const LINKED_COPY: &str = "cefa716f09cfb336db7c455fedaa0bf259f91f4fbc4ddd73761e38060514e7b2";
    const AFTER_LINKED: &str = "0c3d02c3700831bda66e4f3861d767c091ac5324729208917db34f82364b79ea";
    const BUSYBOX_COPY: &str = "7413f8b6f3d8e592d8590fcdc242bc51fbffa959121d79d8ad16b92955f9f796";
    const RUN_WITH_MOUNT: &str = "c2ccfeee5dfa1f452d1abc42e759f49d33034f575d3a904ac3c10286c4de98f5";

    /// `COPY a.txt /a.txt` on scratch.
    #[test]
    fn a_context_copy_has_the_key_earlier_builders_stored() {
        let dir = hello();
        let inputs = [input(source_key(&Op::Scratch)), context_input(dir.path())];
        let key = cache_key(&copy("/a.txt", false), &inputs).unwrap();
        assert_eq!(key.record_key.hex(), FIRST_COPY);
        assert_eq!(key.key, key.record_key);
    }

    /// `COPY --link a.txt /linked.txt` after it: its record leaves the base out; its key, which
    /// the next step's key builds on, does not.
    #[test]
    fn a_linked_copy_is_recorded_without_its_base() {
        let dir = hello();
        let on = |base: Digest| {
            let inputs = [input(base), context_input(dir.path())];
            cache_key(&copy("/linked.txt", true), &inputs).unwrap()
        };
        let key = on(stored(FIRST_COPY));
        assert_eq!(key.record_key.hex(), LINKED_COPY);
        assert_eq!(
            key.key.hex(),
            "563c991d8151f3bff9a92a2b145e16f37742683cc07470eaea67d82f3ecf2e90"
        );
        let inputs = [input(key.key), context_input(dir.path())];
        let after = cache_key(&copy("/after.txt", false), &inputs).unwrap();
        assert_eq!(after.record_key.hex(), AFTER_LINKED);
        let elsewhere = on(base());
        assert_eq!(elsewhere.record_key, key.record_key);
        assert_ne!(elsewhere.key, key.key);
    }

    /// The RUN step, with its bind mount of `a.txt`, on the copy of busybox.
    #[test]
    fn a_run_step_has_the_key_earlier_builders_stored() {
        let dir = hello();
        let key = exec_key(exec(), stored(BUSYBOX_COPY), dir.path());
        assert_eq!(key.record_key.hex(), RUN_WITH_MOUNT);
        assert_eq!(key.key, key.record_key);
    }

    #[test]
    fn sources_have_pinned_keys() {
        let image = Op::Image(ImageSource {
            reference: "busybox:latest".into(),
            manifest_digest: Digest::of(b"manifest"),
            layers: vec![LayerRef {
                diff_id: Digest::of(b"diff"),
                digest: Digest::of(b"blob"),
                size: 3,
                media_type: OCI_LAYER_GZIP.into(),
            }],
        });
        let keys: Vec<String> = [
            Op::Scratch,
            Op::Context,
            Op::NamedContext { name: "ctx".into() },
            image,
        ]
        .iter()
        .map(|op| source_key(op).hex())
        .collect();
        assert_eq!(
            keys,
            [
                "567764712dad2c357c98194b25c12d829792d24697d8b888afaa140840bd48a5",
                "6c974f6572fee750cde310c7c35fd28d048025da792c90a647c88f922d943ed4",
                "38455ecdbd5bbcb2bf5406e62802b5c90c79073d66be7b22565b710f8e361fd2",
                "c154a5caef7021c21d25ae4686c001acea1c668e318622874078eb4498d776c4",
            ]
        );
    }

    /// Everything a step's result depends on is in its key: changing any one of them misses.
    #[test]
    fn each_thing_a_step_depends_on_changes_its_key() {
        let dir = hello();
        let reference = exec_key(exec(), base(), dir.path()).key;
        let differs = |what: &str, key: VertexKey| {
            assert_ne!(key.key, reference, "{what} must change the key");
        };
        let mut op = exec();
        op.args[2] = "read y < /m".into();
        differs("the command", exec_key(op, base(), dir.path()));
        let mut op = exec();
        op.env.push("FOO=bar".into());
        differs("the environment", exec_key(op, base(), dir.path()));
        let mut op = exec();
        op.platform = Some("linux/arm64".into());
        differs("the platform", exec_key(op, base(), dir.path()));
        differs(
            "the base's key",
            exec_key(exec(), Digest::of(b"other base"), dir.path()),
        );
        let edited = context(&[("a.txt", "hello!\n")]);
        differs(
            "the mounted file's content",
            exec_key(exec(), base(), edited.path()),
        );
        fs::set_permissions(dir.path().join("a.txt"), fs::Permissions::from_mode(0o755)).unwrap();
        differs(
            "the mounted file's mode",
            exec_key(exec(), base(), dir.path()),
        );

        // A copied file's content, for a file op.
        let copy_key = |dir: &Path| {
            let inputs = [input(base()), context_input(dir)];
            cache_key(&copy("/a.txt", false), &inputs).unwrap().key
        };
        assert_ne!(copy_key(hello().path()), copy_key(edited.path()));
    }

    /// What a step's result does not depend on stays out of its key, or every build behind
    /// another proxy or in another checkout would miss. (The compression an image asks for is not
    /// an input at all: layers are compressed on export.)
    #[test]
    fn what_a_step_does_not_depend_on_leaves_its_key_alone() {
        let dir = hello();
        let reference = exec_key(exec(), base(), dir.path()).key;
        let same = |what: &str, key: VertexKey| {
            assert_eq!(key.key, reference, "{what} must not change the key");
        };
        let mut op = exec();
        op.proxy_env = vec!["HTTP_PROXY=http://proxy:3128".into()];
        same("the proxy", exec_key(op, base(), dir.path()));
        let elsewhere = hello();
        same(
            "the context's path on the host",
            exec_key(exec(), base(), elsewhere.path()),
        );
        fs::write(dir.path().join("unread.txt"), "not mounted").unwrap();
        same(
            "a context file the step does not read",
            exec_key(exec(), base(), dir.path()),
        );

        let image = |reference: &str| {
            source_key(&Op::Image(ImageSource {
                reference: reference.into(),
                manifest_digest: Digest::of(b"manifest"),
                layers: vec![],
            }))
        };
        assert_eq!(
            image("busybox"),
            image("mirror.example/library/busybox:latest")
        );
    }
}
