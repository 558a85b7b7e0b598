//! Cache records: which layer an operation with a given cache key produced.
//!
//! Records live in one SQLite database, `<root>/cache/index.db`, opened in WAL mode. Why SQLite:
//! several `builder` processes share one store root, and each must read and write records while
//! the others do. redb (the obvious pure-Rust choice) takes an exclusive lock on its file, so a
//! second process fails with `DatabaseAlreadyOpen`; SQLite's WAL mode gives many readers plus one
//! writer at a time across processes, with a busy timeout instead of an error while another
//! writer commits. A transaction is atomic whether the process is killed or the machine loses
//! power, so a SIGKILL at any point leaves either the old or the new record, never a torn one.
//!
//! `synchronous=NORMAL`: a commit reaches the WAL without an fsync (the WAL is synced at
//! checkpoints, which run automatically every 1000 pages rather than at every close). A power loss may therefore forget the last few records — the steps run again —
//! but never corrupts the database; a killed process loses nothing, the OS has its writes. A
//! per-step fsync was a measurable part of RUN overhead on a busy disk (BENCHMARKS.md), and the
//! blob a record names is made durable before the record is written.
//!
//! Stores made before the database kept one JSON file per key (`<root>/cache/<key hex>.json`);
//! [`CacheIndex::open`] imports those once and deletes them, so existing caches keep working.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use builder_store::Digest;
use builder_store::gc::LAST_USE_GRANULARITY;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use builder_graph::LayerRef;

mod legacy;

/// The database file inside the cache directory.
pub const INDEX_FILE: &str = "index.db";

/// How long a statement waits for another process's write transaction before failing. Writes
/// are single small statements, so anything near this means a stuck process, not contention.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Bumped when the schema changes; stored in SQLite's `user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    key           TEXT PRIMARY KEY NOT NULL,
    description   TEXT NOT NULL,
    layer_digest  TEXT,
    layer_diff_id TEXT,
    layer_size    INTEGER,
    media_type    TEXT,
    created_ms    INTEGER NOT NULL,
    last_used_ms  INTEGER NOT NULL,
    size          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_layer ON records(layer_digest);
";

const COLUMNS: &str = "key, description, layer_digest, layer_diff_id, layer_size, media_type, created_ms, last_used_ms, size";

/// What the executor stores and reads back for a cache key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer the step added (an empty one when it changed nothing). None only in records
    /// of older builders, which left such steps out; the executor reads those as misses.
    pub layer: Option<LayerRef>,
    /// The step, as the user wrote it (for listings).
    pub description: String,
}

/// A record with what listings and GC need to know about it.
#[derive(Clone, Debug)]
pub struct CacheEntry {
    pub key: Digest,
    pub record: CacheRecord,
    pub created: SystemTime,
    /// When a build last hit (or wrote) the record.
    pub last_used: SystemTime,
    /// Compressed size of the record's layer blob.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheIndexError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cache index {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("no cache record matches {0:?}")]
    NotFound(String),
    #[error("cache key prefix {prefix:?} is ambiguous: it matches {count} records")]
    Ambiguous { prefix: String, count: usize },
    #[error("cache key prefix {0:?} is not a hex string")]
    BadPrefix(String),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheIndexError {
    let path = path.to_path_buf();
    move |source| CacheIndexError::Io { op, path, source }
}

pub struct CacheIndex {
    path: PathBuf,
    /// One connection per index; the solver's worker threads take turns (statements are short).
    conn: Mutex<Connection>,
    /// Hits not yet written back: (key hex, when). A write transaction per hit cost more than
    /// the rest of a cached step, so hits are recorded together, in one transaction, before the
    /// next read of times and when the index is dropped. A kill loses them: records just look
    /// older to `prune`.
    hits: Mutex<Vec<(String, i64)>>,
}

impl CacheIndex {
    /// Opens (creating if needed) the index in `dir`, importing legacy JSON records found there.
    pub fn open(dir: &Path) -> Result<Self, CacheIndexError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let path = dir.join(INDEX_FILE);
        let conn = retry_busy(|| connect(&path)).map_err(|source| CacheIndexError::Db {
            path: path.clone(),
            source,
        })?;
        let index = CacheIndex {
            path,
            conn: Mutex::new(conn),
            hits: Mutex::new(Vec::new()),
        };
        index.import_legacy(dir)?;
        Ok(index)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied statement behind: SQLite
        // rolls back whatever did not commit.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection, after writing back pending hits so reads see current last-use times.
    fn conn_for_times(&self) -> MutexGuard<'_, Connection> {
        let mut conn = self.conn();
        // Best effort, as in `get`: a failed write-back only makes records look older.
        let _ = write_hits(&self.hits, &mut conn);
        conn
    }

    fn db_err(&self) -> impl FnOnce(rusqlite::Error) -> CacheIndexError {
        let path = self.path.clone();
        move |source| CacheIndexError::Db { path, source }
    }

    /// The record for `key`, marking it used (written back later, see `hits`); an unreadable
    /// record counts as a miss.
    pub fn get(&self, key: &Digest) -> Option<CacheRecord> {
        let entry = query_entry(&self.conn(), key).ok().flatten()?;
        let now = SystemTime::now();
        // A record used within the last minute keeps its time: rebuilding again and again
        // would otherwise append a page per step to the WAL each time, which the next process
        // must read back when it opens the database.
        let recent = now
            .duration_since(entry.last_used)
            .is_ok_and(|age| age < LAST_USE_GRANULARITY);
        if !recent {
            self.hits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((key.hex(), unix_ms(now)));
        }
        Some(entry.record)
    }

    pub fn put(&self, key: &Digest, record: &CacheRecord) -> Result<(), CacheIndexError> {
        let now = unix_ms(SystemTime::now());
        let conn = self.conn();
        let size = record.layer.as_ref().map_or(0, |l| l.size);
        insert(&conn, "INSERT OR REPLACE", key, record, [now, now], size).map_err(self.db_err())
    }

    /// The entry for `key` without marking it used.
    pub fn entry(&self, key: &Digest) -> Option<CacheEntry> {
        query_entry(&self.conn_for_times(), key).ok().flatten()
    }

    /// Every record, by key.
    pub fn list(&self) -> Result<Vec<CacheEntry>, CacheIndexError> {
        let conn = self.conn_for_times();
        let sql = format!("SELECT {COLUMNS} FROM records ORDER BY key");
        let mut stmt = conn.prepare_cached(&sql).map_err(self.db_err())?;
        let rows = stmt.query_map([], read_row).map_err(self.db_err())?;
        let mut out = Vec::new();
        for row in rows {
            // A row whose digests do not parse was not written by us: skip it, as a miss.
            if let Some(entry) = row.map_err(self.db_err())? {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// The one entry whose key (hex, optionally `sha256:`-prefixed) starts with `prefix`.
    pub fn find(&self, prefix: &str) -> Result<CacheEntry, CacheIndexError> {
        let hex = prefix
            .strip_prefix("sha256:")
            .unwrap_or(prefix)
            .to_ascii_lowercase();
        if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CacheIndexError::BadPrefix(prefix.to_string()));
        }
        let mut matches: Vec<CacheEntry> = {
            let conn = self.conn_for_times();
            let sql = format!("SELECT {COLUMNS} FROM records WHERE substr(key, 1, ?2) = ?1");
            let mut stmt = conn.prepare_cached(&sql).map_err(self.db_err())?;
            let rows = stmt
                .query_map(params![hex, hex.len() as i64], read_row)
                .map_err(self.db_err())?;
            rows.filter_map(|r| r.ok().flatten()).collect()
        };
        match matches.len() {
            0 => Err(CacheIndexError::NotFound(prefix.to_string())),
            1 => Ok(matches.remove(0)),
            count => Err(CacheIndexError::Ambiguous {
                prefix: prefix.to_string(),
                count,
            }),
        }
    }

    /// Deletes the record for `key`; returns whether it existed.
    pub fn remove(&self, key: &Digest) -> Result<bool, CacheIndexError> {
        let conn = self.conn();
        let changed = conn
            .prepare_cached("DELETE FROM records WHERE key = ?1")
            .and_then(|mut s| s.execute(params![key.hex()]))
            .map_err(self.db_err())?;
        Ok(changed > 0)
    }

    /// SQLite's own consistency check of the database file: empty when it is sound, else the
    /// problems it lists.
    pub fn check(&self) -> Result<Vec<String>, CacheIndexError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("PRAGMA quick_check").map_err(self.db_err())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.db_err())?;
        let lines: Vec<String> = rows.collect::<Result<_, _>>().map_err(self.db_err())?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }

    /// Imports `<dir>/<key hex>.json` records (the pre-database format) and deletes the files.
    /// Several processes may do this at once: inserts that find the key present are skipped,
    /// and a file another process already deleted is no error.
    fn import_legacy(&self, dir: &Path) -> Result<(), CacheIndexError> {
        let files = legacy::files(dir)?;
        if files.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.db_err())?;
        for (key, path) in &files {
            // A torn or foreign file was a miss before; it stays one (and goes away).
            if let Some((record, times, size)) = legacy::read(path) {
                insert(&tx, "INSERT OR IGNORE", key, &record, times, size)
                    .map_err(self.db_err())?;
            }
        }
        tx.commit().map_err(self.db_err())?;
        for (_, path) in files {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove", &path)(e));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Drop for CacheIndex {
    fn drop(&mut self) {
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = write_hits(&self.hits, conn);
    }
}

/// Writes the pending hits' last-use times in one transaction.
fn write_hits(hits: &Mutex<Vec<(String, i64)>>, conn: &mut Connection) -> rusqlite::Result<()> {
    let hits = std::mem::take(&mut *hits.lock().unwrap_or_else(|p| p.into_inner()));
    if hits.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "UPDATE records SET last_used_ms = max(last_used_ms, ?2) WHERE key = ?1",
        )?;
        for (key, when) in &hits {
            stmt.execute(params![key, when])?;
        }
    }
    tx.commit()
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Only WAL lets other processes read while one writes; refuse rather than lock them out.
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "cannot switch to WAL mode (journal mode is {mode})"
            )),
        ));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The last connection to close would checkpoint the WAL into the database, with an fsync:
    // that cost every build tens of milliseconds on a busy disk. Left to SQLite's automatic
    // checkpoint (every 1000 pages), the fsync comes once per many builds instead.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    }
    Ok(conn)
}

/// Runs `f` again while SQLite reports the database busy or locked where its busy handler does
/// not apply (switching the journal mode, recovering a WAL another process left behind).
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn insert(
    conn: &Connection,
    verb: &str,
    key: &Digest,
    record: &CacheRecord,
    [created_ms, last_used_ms]: [i64; 2],
    size: u64,
) -> rusqlite::Result<()> {
    let layer = record.layer.as_ref();
    let sql =
        format!("{verb} INTO records ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    conn.prepare_cached(&sql)?.execute(params![
        key.hex(),
        record.description,
        layer.map(|l| l.digest.to_string()),
        layer.map(|l| l.diff_id.to_string()),
        layer.map(|l| l.size as i64),
        layer.map(|l| l.media_type.as_str()),
        created_ms,
        last_used_ms,
        size as i64,
    ])?;
    Ok(())
}

fn query_entry(conn: &Connection, key: &Digest) -> rusqlite::Result<Option<CacheEntry>> {
    let sql = format!("SELECT {COLUMNS} FROM records WHERE key = ?1");
    let row = conn
        .prepare_cached(&sql)?
        .query_row(params![key.hex()], read_row)
        .optional()?;
    Ok(row.flatten())
}

/// A row as an entry; None when its digests do not parse.
fn read_row(row: &Row<'_>) -> rusqlite::Result<Option<CacheEntry>> {
    let key: String = row.get(0)?;
    let description: String = row.get(1)?;
    let digest: Option<String> = row.get(2)?;
    let diff_id: Option<String> = row.get(3)?;
    let layer_size: Option<i64> = row.get(4)?;
    let media_type: Option<String> = row.get(5)?;
    let created: i64 = row.get(6)?;
    let last_used: i64 = row.get(7)?;
    let size: i64 = row.get(8)?;
    let Ok(key) = Digest::from_hex(&key) else {
        return Ok(None);
    };
    let layer = match (digest, diff_id) {
        (Some(digest), Some(diff_id)) => {
            let (Ok(digest), Ok(diff_id)) = (digest.parse(), diff_id.parse()) else {
                return Ok(None);
            };
            Some(LayerRef {
                diff_id,
                digest,
                size: layer_size.unwrap_or(0) as u64,
                media_type: media_type.unwrap_or_default(),
            })
        }
        _ => None,
    };
    Ok(Some(CacheEntry {
        key,
        record: CacheRecord { layer, description },
        created: from_unix_ms(created),
        last_used: from_unix_ms(last_used),
        size: size as u64,
    }))
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(size: u64) -> LayerRef {
        LayerRef {
            diff_id: Digest::of(b"diff"),
            digest: Digest::of(b"blob"),
            size,
            media_type: builder_store::manifest::media_type::OCI_LAYER_GZIP.into(),
        }
    }

    fn set_last_used(index: &CacheIndex, key: &Digest, t: SystemTime) {
        index
            .conn()
            .execute(
                "UPDATE records SET last_used_ms = ?2 WHERE key = ?1",
                params![key.hex(), unix_ms(t)],
            )
            .unwrap();
    }

    #[test]
    fn put_get_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let index = CacheIndex::open(&dir.path().join("cache")).unwrap();
        let key = Digest::of(b"k");
        assert!(index.get(&key).is_none());
        let record = CacheRecord {
            layer: Some(layer(9)),
            description: "RUN true".into(),
        };
        index.put(&key, &record).unwrap();
        let got = index.get(&key).unwrap();
        assert_eq!(got.description, "RUN true");
        assert_eq!(got.layer.unwrap().digest, Digest::of(b"blob"));
        // A second handle (another process, as far as SQLite is concerned) sees it.
        let other = CacheIndex::open(&dir.path().join("cache")).unwrap();
        assert_eq!(other.entry(&key).unwrap().size, 9);
        assert!(other.remove(&key).unwrap());
        assert!(index.get(&key).is_none());
        assert!(index.check().unwrap().is_empty());
    }

    #[test]
    fn records_carry_size_times_and_get_touches() {
        let dir = tempfile::tempdir().unwrap();
        let index = CacheIndex::open(&dir.path().join("cache")).unwrap();
        let key = Digest::of(b"k");
        let record = CacheRecord {
            layer: Some(layer(1234)),
            description: "COPY a /".into(),
        };
        index.put(&key, &record).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        set_last_used(&index, &key, old);
        let before = index.entry(&key).unwrap();
        assert_eq!(before.size, 1234);
        assert!(before.last_used <= old + Duration::from_secs(1));
        index.get(&key).unwrap();
        let after = index.entry(&key).unwrap();
        assert!(after.last_used > old + Duration::from_secs(1800));
        assert_eq!(after.created, before.created);
        // A hit is written back when the index is dropped, for other processes to see.
        set_last_used(&index, &key, old);
        index.get(&key).unwrap();
        drop(index);
        let other = CacheIndex::open(&dir.path().join("cache")).unwrap();
        assert!(other.entry(&key).unwrap().last_used > old + Duration::from_secs(1800));
    }

    /// A hit on a record used less than a minute ago queues no write: a run of rebuilds does
    /// not grow the WAL. An older one is still refreshed (above).
    #[test]
    fn a_hit_on_a_record_just_used_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let index = CacheIndex::open(&dir.path().join("cache")).unwrap();
        let key = Digest::of(b"k");
        let record = CacheRecord {
            layer: None,
            description: "RUN true".into(),
        };
        index.put(&key, &record).unwrap();
        let recent = SystemTime::now() - Duration::from_secs(20);
        set_last_used(&index, &key, recent);
        index.get(&key).unwrap();
        assert!(index.hits.lock().unwrap().is_empty());
        let stale = SystemTime::now() - LAST_USE_GRANULARITY - Duration::from_secs(5);
        set_last_used(&index, &key, stale);
        index.get(&key).unwrap();
        assert_eq!(index.hits.lock().unwrap().len(), 1);
    }

    #[test]
    fn legacy_json_records_are_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        fs::create_dir_all(&cache).unwrap();
        let old_key = Digest::of(b"old");
        let new_key = Digest::of(b"new");
        let torn_key = Digest::of(b"torn");
        let old = serde_json::json!({"layer": layer(77), "description": "RUN x"});
        let new =
            serde_json::json!({"layer": null, "description": "RUN y", "created": 1000, "size": 0});
        let file = |k: &Digest| cache.join(format!("{}.json", k.hex()));
        fs::write(file(&old_key), old.to_string()).unwrap();
        fs::write(file(&new_key), new.to_string()).unwrap();
        fs::write(file(&torn_key), b"{not json").unwrap();
        let used = SystemTime::now() - Duration::from_secs(7200);
        fs::File::options()
            .write(true)
            .open(file(&old_key))
            .unwrap()
            .set_modified(used)
            .unwrap();

        let index = CacheIndex::open(&cache).unwrap();
        let entry = index.entry(&old_key).unwrap();
        assert_eq!(entry.size, 77);
        assert_eq!(entry.created, entry.last_used);
        assert!(entry.last_used <= used + Duration::from_secs(1));
        assert_eq!(
            index.entry(&new_key).unwrap().created,
            UNIX_EPOCH + Duration::from_secs(1000)
        );
        assert!(index.entry(&torn_key).is_none());
        assert_eq!(index.list().unwrap().len(), 2);
        for k in [&old_key, &new_key, &torn_key] {
            assert!(!file(k).exists(), "legacy file left behind");
        }
        // Reopening finds nothing more to import and keeps what was imported.
        drop(index);
        assert_eq!(CacheIndex::open(&cache).unwrap().list().unwrap().len(), 2);
    }

    #[test]
    fn find_by_prefix_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let index = CacheIndex::open(&dir.path().join("cache")).unwrap();
        let record = CacheRecord {
            layer: None,
            description: "x".into(),
        };
        let keys: Vec<Digest> = (0..20u8).map(|i| Digest::of(&[i])).collect();
        for k in &keys {
            index.put(k, &record).unwrap();
        }
        let full = keys[0].hex();
        assert_eq!(index.find(&full[..12]).unwrap().key, keys[0]);
        assert_eq!(index.find(&format!("sha256:{full}")).unwrap().key, keys[0]);
        assert_eq!(
            index.find(&full[..12].to_ascii_uppercase()).unwrap().key,
            keys[0]
        );
        assert!(matches!(index.find(""), Err(CacheIndexError::BadPrefix(_))));
        assert!(matches!(
            index.find("zz"),
            Err(CacheIndexError::BadPrefix(_))
        ));
        // 20 keys over 16 first hex digits: some single digit is shared.
        let shared = (0..16)
            .map(|d| format!("{d:x}"))
            .find(|p| keys.iter().filter(|k| k.hex().starts_with(p)).count() > 1)
            .unwrap();
        assert!(matches!(
            index.find(&shared),
            Err(CacheIndexError::Ambiguous { .. })
        ));
        assert!(index.remove(&keys[0]).unwrap());
        assert!(!index.remove(&keys[0]).unwrap());
        assert!(matches!(
            index.find(&full),
            Err(CacheIndexError::NotFound(_))
        ));
        assert_eq!(index.list().unwrap().len(), 19);
    }

    #[test]
    fn concurrent_writers_in_threads_and_handles() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let cache = &cache;
                s.spawn(move || {
                    let index = CacheIndex::open(cache).unwrap();
                    for i in 0..50u8 {
                        let record = CacheRecord {
                            layer: None,
                            description: format!("{t}/{i}"),
                        };
                        index.put(&Digest::of(&[t, i]), &record).unwrap();
                        assert!(index.get(&Digest::of(&[t, i])).is_some());
                    }
                });
            }
        });
        assert_eq!(CacheIndex::open(&cache).unwrap().list().unwrap().len(), 200);
    }
}
