//! The cache records' part of `builder cache verify`: each record's layer blob must be present
//! and intact (per the store check), and must decompress to the diff id the record names — the
//! name of the snapshot a build unpacks it to and of the layer in image configs.

use std::collections::HashMap;
use std::io::BufReader;

use builder_store::verify::{StoreCheck, remove_snapshot};
use builder_store::{Digest, Store};

use crate::cache_index::{CacheEntry, CacheIndex, CacheIndexError};

/// A record that cannot be used as it is.
#[derive(Debug, Clone)]
pub struct RecordProblem {
    pub entry: CacheEntry,
    pub reason: String,
}

/// What [`check_records`] found.
#[derive(Debug, Default)]
pub struct RecordCheck {
    pub records: usize,
    pub problems: Vec<RecordProblem>,
}

/// Checks every record against the store (`store_check` says which blobs are damaged).
pub fn check_records(
    store: &Store,
    index: &CacheIndex,
    store_check: &StoreCheck,
) -> Result<RecordCheck, CacheIndexError> {
    let mut check = RecordCheck::default();
    // Records of identical steps share blobs: decompress each once.
    let mut diff_ids: HashMap<Digest, Result<Digest, String>> = HashMap::new();
    for entry in index.list()? {
        check.records += 1;
        let Some(layer) = &entry.record.layer else {
            continue;
        };
        let reason = match store_check.blob_problem(store, &layer.digest) {
            Some(problem) => Some(format!("layer blob {}: {problem}", layer.digest)),
            None => match diff_ids
                .entry(layer.digest)
                .or_insert_with(|| blob_diff_id(store, &layer.digest))
            {
                Ok(actual) if *actual == layer.diff_id => None,
                Ok(actual) => Some(format!(
                    "layer blob {} decompresses to {actual}, the record says {}",
                    layer.digest, layer.diff_id
                )),
                Err(e) => Some(format!("layer blob {}: {e}", layer.digest)),
            },
        };
        if let Some(reason) = reason {
            check.problems.push(RecordProblem { entry, reason });
        }
    }
    Ok(check)
}

fn blob_diff_id(store: &Store, digest: &Digest) -> Result<Digest, String> {
    let file = store.blobs().open(digest).map_err(|e| e.to_string())?;
    builder_snapshot::layer_diff_id(BufReader::new(file))
        .map_err(|e| format!("does not decompress: {e}"))
}

/// What [`repair_records`] removed: the records, and the snapshots unpacked from their layers.
#[derive(Debug, Default)]
pub struct RecordRepair {
    pub records: Vec<CacheEntry>,
    pub snapshots: Vec<std::path::PathBuf>,
}

/// Removes the records `check` found unusable and the snapshots named by their diff ids (they
/// may have been unpacked from the damaged blob). The next build runs those steps again.
pub fn repair_records(
    store: &Store,
    index: &CacheIndex,
    check: &RecordCheck,
) -> Result<RecordRepair, String> {
    let mut repair = RecordRepair::default();
    for problem in &check.problems {
        if index
            .remove(&problem.entry.key)
            .map_err(|e| e.to_string())?
        {
            repair.records.push(problem.entry.clone());
        }
        if let Some(layer) = &problem.entry.record.layer
            && let Some(path) = remove_snapshot(store, &layer.diff_id).map_err(|e| e.to_string())?
        {
            repair.snapshots.push(path);
        }
    }
    Ok(repair)
}
