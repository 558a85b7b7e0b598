use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("reading layer {layer}: {source}")]
    Layer {
        layer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading layer {layer}: {source}")]
    LayerFormat {
        layer: String,
        #[source]
        source: builder_snapshot::SnapshotError,
    },
    #[error("reading the rpm database {}: {source}", path.display())]
    Rpm {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("writing a temporary copy of {}: {source}", path.display())]
    Temp {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] builder_store::StoreError),
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
}
