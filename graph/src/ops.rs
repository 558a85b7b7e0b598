//! The build graph: content-addressable operations (our LLB), connected as a DAG.
//!
//! The frontend's converter produces a [`BuildGraph`]; the executor walks it. A vertex only
//! describes *what* to compute. Everything a vertex's result depends on is either in its [`Op`]
//! or in its inputs, which is what makes cache keys derivable from the graph alone (plus the
//! content of the local context files an operation selects).

use crate::chmod::Chmod;
use std::collections::BTreeMap;

use builder_store::Digest;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};
use serde::Serialize;

pub type VertexId = NodeIndex;

/// One layer of an image: the store owns the type (a stored blob and the diff id it unpacks
/// to); the graph's states are made of them.
pub use builder_store::LayerRef;

/// Where a file operation or mount reads from: one of the vertex's inputs.
pub type InputIndex = usize;

#[derive(Clone, Debug, Serialize)]
pub enum Op {
    /// The empty filesystem.
    Scratch,
    /// An image from the local store; its layers are already content-addressed.
    Image(ImageSource),
    /// The local build context (after .dockerignore).
    Context,
    /// A local directory given with `--build-context NAME=DIR` (no .dockerignore applies).
    /// Its key is its name; steps that read it add a checksum of what they read, as for the
    /// main context.
    NamedContext { name: String },
    /// A command run in the sandbox on top of input 0.
    /// Boxed: the largest variant by far (serde writes a Box as its content, so keys are unchanged).
    Exec(Box<ExecOp>),
    /// File actions applied on top of input 0.
    File(FileOp),
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageSource {
    /// The name the Dockerfile used. Left out of the cache key, which the content decides (as
    /// in BuildKit): the same image under another name or through a mirror keeps the cache.
    #[serde(skip_serializing)]
    pub reference: String,
    pub manifest_digest: Digest,
    pub layers: Vec<LayerRef>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum NetworkMode {
    /// Share the builder's network (docker's default for RUN).
    #[default]
    Host,
    /// A new network namespace with only loopback.
    None,
}

fn is_sandbox(s: &crate::Security) -> bool {
    *s == crate::Security::Sandbox
}

#[derive(Clone, Debug, Serialize)]
pub struct ExecOp {
    pub args: Vec<String>,
    /// `K=V` entries in the order docker passes them.
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub network: NetworkMode,
    /// `RUN --security=insecure`: in the key as in BuildKit's exec op; left out for the default
    /// sandbox so the keys of other steps stay what they were. `--allow` itself is not here.
    #[serde(skip_serializing_if = "is_sandbox")]
    pub security: crate::Security,
    pub mounts: Vec<ExecMount>,
    /// `RUN --mount=type=secret,env=NAME`: secrets given to the process as environment
    /// variables. Only ids and names are here — values never enter the graph or a cache key.
    /// Skipped when empty so the keys of RUN steps without them stay what they were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<SecretEnv>,
    /// `build --add-host`: extra /etc/hosts entries. Part of the key, as in BuildKit; skipped
    /// when empty so the keys of steps built without them stay what they were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<crate::ExtraHost>,
    /// `build --shm-size` in bytes: part of the key (as BuildKit's exec meta), left out when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    /// `build --ulimit`: resource limits; in the key like BuildKit's exec meta, left out when
    /// empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<crate::Ulimit>,
    /// `--build-arg BUILDKIT_SANDBOX_HOSTNAME`: the step's host name (BuildKit's default,
    /// `buildkitsandbox`, when unset); in the key as in BuildKit's exec meta, left out when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The stage's platform when it is not the host's (`--platform`, `FROM --platform=`): the
    /// step runs emulated, or fails before running. In the key, as BuildKit's exec op has its
    /// platform; left out for the host's, so those keys stay what they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The proxy build args as the step sees them (`HTTP_PROXY=…` and `http_proxy=…` for each
    /// one given): out of the key, as BuildKit leaves its exec op's proxy env out, so a build
    /// behind another proxy reuses the cache.
    #[serde(skip)]
    pub proxy_env: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SecretEnv {
    pub id: String,
    pub env: String,
    pub required: bool,
}

/// Where a cache mount's first contents come from.
#[derive(Clone, Debug, Serialize)]
pub struct CacheSeed {
    pub input: InputIndex,
    /// A directory of that input, `/` for its root.
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExecMount {
    pub target: String,
    pub kind: ExecMountKind,
}

#[derive(Clone, Debug, Serialize)]
pub enum ExecMountKind {
    /// A path of another input (context or a stage's rootfs), read-only unless `read_write`
    /// (writes are then thrown away, as with BuildKit).
    Input {
        input: InputIndex,
        source: String,
        read_write: bool,
    },
    /// A persistent directory kept across builds, keyed by id.
    Cache {
        id: String,
        sharing: CacheSharing,
        mode: u32,
        uid: u32,
        gid: u32,
        read_only: bool,
        /// `from=`/`source=`: a new cache starts as a copy of that directory of another input
        /// (BuildKit makes the cache a child of that snapshot), and is a cache of its own for
        /// each seed, since BuildKit keys such a cache by its parent too.
        #[serde(skip_serializing_if = "Option::is_none")]
        seed: Option<CacheSeed>,
    },
    Tmpfs {
        size: Option<u64>,
    },
    /// An ssh-agent socket (`--ssh ID=SOCKET`), forwarded so the step gets its own socket with
    /// the mount's owner and mode; only the id takes part in the cache key.
    Ssh {
        id: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A secret file; only its id takes part in the cache key, never its content.
    Secret {
        id: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileOp {
    pub actions: Vec<FileAction>,
    /// `COPY --link` / `ADD --link`: the actions run on an empty filesystem and their layer is
    /// stacked on input 0 afterwards, so the cache key leaves input 0 out: a changed base keeps
    /// the step cached and its layer blob reused (BuildKit's merge-op behaviour).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub linked: bool,
}

#[derive(Clone, Debug, Serialize)]
pub enum FileAction {
    /// Create a directory (and its parents) if it does not exist.
    Mkdir {
        path: String,
        mode: u32,
        owner: Option<String>,
    },
    /// Create a file with the given content (COPY <<EOF).
    Mkfile {
        path: String,
        mode: u32,
        data: String,
        owner: Option<String>,
        /// The mode of parent directories made on the way: an octal `--chmod`, as for copied
        /// files (else 0755). Left out of the cache key when unset.
        #[serde(skip_serializing_if = "Option::is_none")]
        parent_mode: Option<u32>,
    },
    Copy(CopyAction),
    /// A file downloaded before the build (`ADD <url>`) and kept as a blob in the store. Only
    /// its digest takes part in the cache key: an unchanged download keeps the cache, a changed
    /// one invalidates this step and those after it.
    Fetched {
        path: String,
        blob: Digest,
        mode: u32,
        /// Seconds since the epoch (from the server's Last-Modified), else the build's time.
        mtime: Option<i64>,
        owner: Option<String>,
        /// `ADD --unpack=true`: a tar archive is extracted into this directory instead (a file
        /// that is no archive still lands at `path`). Left out of the cache key when unset, so
        /// keys of plain downloads stay what they were.
        #[serde(skip_serializing_if = "Option::is_none")]
        unpack_into: Option<String>,
        /// `--chmod` for the extracted entries (as for a local archive).
        #[serde(skip_serializing_if = "Option::is_none")]
        unpack_chmod: Option<Chmod>,
        /// The mode of parent directories made on the way (see `Mkfile`).
        #[serde(skip_serializing_if = "Option::is_none")]
        parent_mode: Option<u32>,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct CopyAction {
    pub source_input: InputIndex,
    /// Source paths or patterns, relative to the source's root.
    pub sources: Vec<String>,
    /// Absolute destination path (already resolved against WORKDIR).
    pub dest: String,
    /// The destination names a directory (trailing slash, `.` or --parents); otherwise a file
    /// source lands in it only when it is a directory when copied.
    pub dest_is_dir: bool,
    /// `--chown` as written (`user[:group]`), resolved against the destination's /etc files.
    pub chown: Option<String>,
    pub chmod: Option<Chmod>,
    /// ADD: local tar archives are extracted rather than copied.
    pub unpack_archives: bool,
    /// `--exclude` rules (.dockerignore syntax), matched below each selected source.
    pub exclude: Vec<String>,
    /// Only for `Context` sources: the .dockerignore rules apply.
    pub from_context: bool,
    /// `COPY --parents`: each source keeps its path (after a `/./` pivot, if any) under the
    /// destination. Left out of the key when false, so other steps keep their keys.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub parents: bool,
}

/// A vertex: an operation, its inputs in order, and how to show it to the user.
#[derive(Clone, Debug)]
pub struct Vertex {
    pub op: Op,
    pub inputs: Vec<VertexId>,
    /// e.g. `[build 2/5] RUN make`
    pub name: String,
    /// Dockerfile line range the vertex came from, for errors and `builder du`.
    pub lines: Option<(usize, usize)>,
}

#[derive(Default, Debug)]
pub struct BuildGraph {
    graph: DiGraph<Vertex, ()>,
}

impl BuildGraph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a vertex; edges go from each input to the new vertex.
    pub fn add(&mut self, vertex: Vertex) -> VertexId {
        let inputs = vertex.inputs.clone();
        let id = self.graph.add_node(vertex);
        for input in inputs {
            self.graph.add_edge(input, id, ());
        }
        id
    }

    pub fn vertex(&self, id: VertexId) -> &Vertex {
        &self.graph[id]
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The vertices `target` depends on (itself included), in an order where every vertex comes
    /// after its inputs. Vertices not reachable from the target are left out: that is how unused
    /// stages are skipped.
    pub fn needed_for(&self, target: VertexId) -> Vec<VertexId> {
        let reversed = Reversed(&self.graph);
        let mut dfs = Dfs::new(reversed, target);
        let mut needed = std::collections::BTreeSet::new();
        while let Some(v) = dfs.next(reversed) {
            needed.insert(v);
        }
        // Vertices are added after their inputs, so index order is a topological order.
        needed.into_iter().collect()
    }

    /// Vertices that consume `id`.
    pub fn consumers(&self, id: VertexId) -> Vec<VertexId> {
        self.graph.neighbors(id).collect()
    }
}

/// Canonical description of an op for cache keys: stable JSON of the op with its inputs' keys.
pub fn op_fingerprint(op: &Op, input_keys: &[Digest], extra: &BTreeMap<String, String>) -> Digest {
    #[derive(Serialize)]
    struct Fingerprint<'a> {
        version: u32,
        op: &'a Op,
        inputs: &'a [Digest],
        extra: &'a BTreeMap<String, String>,
    }
    let bytes = serde_json::to_vec(&Fingerprint {
        // Bumped when an op's result changes for the same description, so records made by the
        // old semantics are never reused. 2: a directory COPY leaves the destination
        // directory's own owner and mode alone (BuildKit's behaviour; 1 gave it the source's).
        version: 2,
        op,
        inputs: input_keys,
        extra,
    })
    .expect("serializing plain data to JSON cannot fail");
    Digest::of(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(op: Op, inputs: Vec<VertexId>) -> Vertex {
        Vertex {
            op,
            inputs,
            name: String::new(),
            lines: None,
        }
    }

    #[test]
    fn unreachable_vertices_are_not_needed() {
        let mut g = BuildGraph::new();
        let a = g.add(v(Op::Scratch, vec![]));
        let ctx = g.add(v(Op::Context, vec![]));
        let unused = g.add(v(
            Op::File(FileOp {
                actions: vec![],
                linked: false,
            }),
            vec![a],
        ));
        let b = g.add(v(
            Op::File(FileOp {
                actions: vec![],
                linked: false,
            }),
            vec![a, ctx],
        ));
        let needed = g.needed_for(b);
        assert_eq!(needed, vec![a, ctx, b]);
        assert!(!needed.contains(&unused));
    }

    #[test]
    fn fingerprint_depends_on_inputs() {
        let op = Op::Scratch;
        let k1 = op_fingerprint(&op, &[Digest::of(b"a")], &BTreeMap::new());
        let k2 = op_fingerprint(&op, &[Digest::of(b"b")], &BTreeMap::new());
        assert_ne!(k1, k2);
        assert_eq!(
            k1,
            op_fingerprint(&op, &[Digest::of(b"a")], &BTreeMap::new())
        );
    }
}
