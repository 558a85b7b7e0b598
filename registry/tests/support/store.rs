//! A blob store for tests that is an OCI image layout on disk, so the same
//! directory works as our BlobSink/BlobSource and as skopeo's `oci:` transport.

use std::path::{Path, PathBuf};

use builder_registry::{BlobSink, BlobSource, Digest};

pub struct LayoutStore {
    pub dir: tempfile::TempDir,
}

impl LayoutStore {
    pub fn new() -> LayoutStore {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).expect("blobs dir");
        std::fs::create_dir_all(dir.path().join("tmp")).expect("tmp dir");
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("oci-layout");
        std::fs::write(
            dir.path().join("index.json"),
            r#"{"schemaVersion":2,"manifests":[]}"#,
        )
        .expect("index.json");
        LayoutStore { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.path().join("blobs/sha256").join(d.hex())
    }

    pub fn put(&self, bytes: &[u8]) -> Digest {
        let d = Digest::of(bytes);
        std::fs::write(self.blob_path(&d), bytes).expect("write blob");
        d
    }

    pub fn read(&self, d: &Digest) -> Vec<u8> {
        std::fs::read(self.blob_path(d)).unwrap_or_else(|e| panic!("blob {d}: {e}"))
    }

    /// Names a manifest in index.json under `tag`, for skopeo's `oci:<dir>:<tag>`.
    pub fn tag(&self, tag: &str, manifest: &Digest, media_type: &str) {
        let size = self.read(manifest).len();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": media_type, "digest": manifest.to_string(), "size": size,
                "annotations": {"org.opencontainers.image.ref.name": tag}
            }]
        });
        std::fs::write(self.dir.path().join("index.json"), index.to_string()).expect("index.json");
    }

    pub fn blob_count(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("blobs/sha256"))
            .expect("blobs dir")
            .count()
    }
}

impl BlobSink for LayoutStore {
    fn contains(&self, d: &Digest) -> bool {
        self.blob_path(d).exists()
    }
    fn temp_dir(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }
    fn commit_file(&self, tmp: &Path, d: &Digest) -> std::io::Result<()> {
        std::fs::rename(tmp, self.blob_path(d))
    }
}

impl BlobSource for LayoutStore {
    fn open(&self, d: &Digest) -> std::io::Result<(std::fs::File, u64)> {
        let f = std::fs::File::open(self.blob_path(d))?;
        let size = f.metadata()?.len();
        Ok((f, size))
    }
}

impl LayoutStore {
    pub fn contains_all(&self, ds: &[Digest]) -> bool {
        ds.iter().all(|d| self.blob_path(d).exists())
    }
}
