//! End to end: the build cache made visible (`du`, `cache ls|inspect`) and steerable (`prune`),
//! and cache keys that follow file content. Every build is `FROM scratch` + COPY: no busybox,
//! no registry.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{Env, fixtures};
use serde_json::Value;

/// `builder cache ls --format json`.
fn records(env: &Env) -> Vec<Value> {
    let out = env.ok(&["cache", "ls", "--format", "json"]);
    serde_json::from_str::<Value>(&out)
        .expect("cache ls prints JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn hex(digest: &Value) -> String {
    digest
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .into()
}

fn blob(env: &Env, digest: &Value) -> PathBuf {
    env.root().join("blobs/sha256").join(hex(digest))
}

fn snapshot(env: &Env, diff_id: &Value) -> PathBuf {
    env.root().join("snapshots").join(hex(diff_id))
}

/// Makes a cache record look last used `age` ago, straight in the index database.
fn age_record(env: &Env, record: &Value, age: Duration) {
    let db = rusqlite::Connection::open(env.root().join("cache/index.db")).unwrap();
    let ms = (SystemTime::now() - age)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let changed = db
        .execute(
            "UPDATE records SET last_used_ms = ?1 WHERE key = ?2",
            rusqlite::params![ms, hex(&record["ID"])],
        )
        .unwrap();
    assert_eq!(changed, 1, "no record {}", record["ID"]);
}

fn set_age(path: &Path, age: Duration) {
    // futimens needs ownership, not write access, so this works on directories too.
    let file = fs::File::open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

fn by_description<'a>(records: &'a [Value], needle: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["Description"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no record for {needle:?} in {records:#?}"))
}

/// Deterministic bytes that gzip cannot shrink much, so layer sizes are predictable.
fn noise(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A context of three files, each copied by its own step.
fn three_copies(env: &Env, name: &str) -> PathBuf {
    let ctx = env.context(
        name,
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY a.bin /a.bin\nCOPY b.bin /b.bin\nCOPY c.bin /c.bin\n",
        )],
    );
    for (n, file) in ["a.bin", "b.bin", "c.bin"].iter().enumerate() {
        fs::write(ctx.join(file), noise(n as u32 + 7, 20_000)).unwrap();
    }
    ctx
}

/// Builds with `--progress=rawjson` and returns (names started, names cached).
fn build_events(env: &Env, args: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut all = vec!["build", "--progress=rawjson"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build failed:\n{stderr}");
    let mut started = Vec::new();
    let mut cached = Vec::new();
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let event: Value = serde_json::from_str(line).unwrap();
        let name = event["name"].as_str().unwrap_or_default().to_string();
        match event["type"].as_str() {
            Some("started") => started.push(name),
            Some("cached") => cached.push(name),
            _ => {}
        }
    }
    (started, cached)
}

#[test]
fn du_and_ls_list_records_with_sizes() {
    let env = Env::new();
    let ctx = fixtures().join("scratch-multistage");
    env.ok(&["build", "-q", "-t", "demo:1", ctx.to_str().unwrap()]);
    let recs = records(&env);
    // WORKDIR, three COPYs in the final stage, two COPYs in the assets stage.
    assert_eq!(recs.len(), 6, "{recs:#?}");
    for r in &recs {
        let layer = &r["Layer"];
        let on_disk = fs::metadata(blob(&env, &layer["digest"])).unwrap().len();
        assert_eq!(r["Size"], on_disk, "size is the compressed blob's: {r:#}");
        assert!(r["CreatedAt"].as_str().unwrap().ends_with('Z'));
    }
    // The assets stage is not part of demo:1, so only its records are reclaimable.
    let config = by_description(&recs, "COPY --chown=1000:1000 config.json");
    assert_eq!(config["Reclaimable"], false);
    assert_eq!(config["Images"], serde_json::json!(["demo:1"]));
    let assets = by_description(&recs, "[assets 1/2]");
    assert_eq!(assets["Reclaimable"], true);

    let du = env.ok(&["du"]);
    let mut lines = du.lines();
    let header = lines.next().unwrap();
    for column in ["ID", "RECLAIMABLE", "SIZE", "LAST ACCESSED", "DESCRIPTION"] {
        assert!(header.contains(column), "{du}");
    }
    let short = &hex(&config["ID"])[..12];
    let row = du
        .lines()
        .find(|l| l.starts_with(short))
        .expect("row per record");
    assert!(
        row.contains("false") && row.contains("config.json"),
        "{row}"
    );
    assert!(row.contains(&format!("{}B", config["Size"])), "{row}");
    let total: u64 = recs.iter().map(|r| r["Size"].as_u64().unwrap()).sum();
    let human = if total < 1000 {
        format!("{total}B")
    } else {
        format!("{:.3}kB", total as f64 / 1000.0)
    };
    assert!(
        du.lines()
            .any(|l| l.starts_with("Total:") && l.contains(&human)),
        "total of {total} bytes:\n{du}"
    );
    assert!(du.contains("Reclaimable:"), "{du}");

    let verbose = env.ok(&["du", "--verbose"]);
    assert!(
        verbose.contains(&format!("ID:\t\t{}", config["ID"].as_str().unwrap())),
        "{verbose}"
    );
    assert!(verbose.contains("Images:\t\tdemo:1"), "{verbose}");
    let table = env.ok(&["cache", "ls"]);
    assert_eq!(table.lines().count(), 7, "{table}");
}

#[test]
fn cache_inspect_by_prefix() {
    let env = Env::new();
    let ctx = three_copies(&env, "ctx");
    env.ok(&["build", "-q", ctx.to_str().unwrap()]);
    let recs = records(&env);
    let b = by_description(&recs, "COPY b.bin");
    let key = hex(&b["ID"]);
    for query in [key[..8].to_string(), key.clone(), format!("sha256:{key}")] {
        let out = env.ok(&["cache", "inspect", &query]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1, "{out}");
        assert_eq!(v[0]["ID"], b["ID"]);
        assert_eq!(v[0]["Description"], b["Description"]);
        assert_eq!(v[0]["Layer"], b["Layer"]);
    }
    let missing = "0".repeat(64);
    let out = env.run(&["cache", "inspect", &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cache record"));
}

#[test]
fn prune_all_keeps_named_image_and_drops_untagged_images_blobs() {
    let env = Env::new();
    let fixture = fixtures().join("scratch-multistage");
    // SOURCE_DATE_EPOCH makes the layers reproducible, so the rebuild below can be compared.
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
    let demo_build = [&epoch[..], &["-t", "demo:1", fixture.to_str().unwrap()]].concat();
    env.ok(&[&["build", "-q"][..], &demo_build].concat());
    let demo = env.inspect("demo:1");
    let ctx = three_copies(&env, "other");
    let iid = env.path("iid");
    env.ok(&[
        "build",
        "-q",
        "--iidfile",
        iid.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    let id = fs::read_to_string(&iid).unwrap();
    let other = env.inspect(id.trim());
    let other_layers = other["Manifest"]["layers"].as_array().unwrap().clone();
    let other_diffs = other["rootfs"]["diff_ids"].as_array().unwrap().clone();
    assert!(
        other_layers
            .iter()
            .all(|l| blob(&env, &l["digest"]).exists())
    );
    assert!(other_diffs.iter().all(|d| snapshot(&env, d).is_dir()));

    let out = env.ok(&["prune", "--all", "-f"]);
    assert!(out.contains("Deleted build cache objects:"), "{out}");
    assert!(records(&env).is_empty());
    // The untagged image is gone with everything only it used.
    assert!(
        other_layers
            .iter()
            .all(|l| !blob(&env, &l["digest"]).exists())
    );
    assert!(other_diffs.iter().all(|d| !snapshot(&env, d).exists()));
    assert!(!blob(&env, &Value::String(id.trim().into())).exists());
    assert!(!env.ok(&["images", "-q", "--no-trunc"]).contains(id.trim()));
    // The named image is whole: manifest, config, layers and their unpacked snapshots.
    for layer in demo["Manifest"]["layers"].as_array().unwrap() {
        assert!(blob(&env, &layer["digest"]).exists());
    }
    for diff in demo["rootfs"]["diff_ids"].as_array().unwrap() {
        assert!(snapshot(&env, diff).is_dir());
    }
    let tar = env.path("demo.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "demo:1"]);
    assert!(fs::metadata(&tar).unwrap().len() > 0);
    // With its records gone a rebuild runs the steps again and yields the same layers.
    let (started, _) = build_events(&env, &demo_build);
    assert!(!started.is_empty());
    assert_eq!(env.inspect("demo:1")["Id"], demo["Id"]);
}

#[test]
fn prune_without_all_keeps_what_named_images_use() {
    let env = Env::new();
    let fixture = fixtures().join("scratch-multistage");
    env.ok(&["build", "-q", "-t", "demo:1", fixture.to_str().unwrap()]);
    let before = records(&env);
    let out = env.ok(&["prune", "-f"]);
    let after = records(&env);
    let kept: Vec<&Value> = before
        .iter()
        .filter(|r| r["Reclaimable"] == false)
        .collect();
    assert_eq!(after.len(), kept.len(), "{out}");
    assert!(after.iter().all(|r| r["Reclaimable"] == false));
    // The reclaimable (assets stage) layers are gone from disk.
    for r in before.iter().filter(|r| r["Reclaimable"] == true) {
        assert!(!blob(&env, &r["Layer"]["digest"]).exists());
        assert!(!snapshot(&env, &r["Layer"]["diffID"]).exists());
    }
    // The final stage's steps are still cached; only the pruned assets stage runs again.
    let (started, cached) = build_events(&env, &["-t", "demo:1", fixture.to_str().unwrap()]);
    assert!(
        started.iter().all(|n| n.starts_with("[assets")),
        "{started:?}"
    );
    assert_eq!(
        cached.iter().filter(|n| n.starts_with("[final")).count(),
        kept.len(),
        "{cached:?}"
    );
}

#[test]
fn filter_until_selects_records_unused_for_that_long() {
    let env = Env::new();
    let ctx = three_copies(&env, "ctx");
    env.ok(&["build", "-q", "-t", "three:1", ctx.to_str().unwrap()]);
    let recs = records(&env);
    let (a, b, c) = (
        by_description(&recs, "COPY a.bin"),
        by_description(&recs, "COPY b.bin"),
        by_description(&recs, "COPY c.bin"),
    );
    age_record(&env, a, Duration::from_secs(48 * 3600));
    age_record(&env, b, Duration::from_secs(25 * 3600));
    age_record(&env, c, Duration::from_secs(23 * 3600));
    // Without --all, records a named image uses are kept whatever their age.
    env.ok(&["prune", "-f", "--filter", "until=24h"]);
    assert_eq!(records(&env).len(), 3);
    env.ok(&["prune", "-a", "-f", "--filter", "until=24h"]);
    let left: Vec<Value> = records(&env).iter().map(|r| r["ID"].clone()).collect();
    assert_eq!(left, vec![c["ID"].clone()]);
    // The image still references a's and b's layers, so those blobs stay.
    assert!(blob(&env, &a["Layer"]["digest"]).exists());
    let out = env.run(&["prune", "-f", "--filter", "since=1h"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "unsupported filter is a usage error"
    );
}

#[test]
fn keep_storage_removes_least_recently_used_first() {
    let env = Env::new();
    let ctx = three_copies(&env, "ctx");
    env.ok(&["build", "-q", "-t", "three:1", ctx.to_str().unwrap()]);
    let recs = records(&env);
    let (a, b, c) = (
        by_description(&recs, "COPY a.bin"),
        by_description(&recs, "COPY b.bin"),
        by_description(&recs, "COPY c.bin"),
    );
    // Use order: b longest ago, then a, then c.
    age_record(&env, b, Duration::from_secs(3 * 3600));
    age_record(&env, a, Duration::from_secs(2 * 3600));
    age_record(&env, c, Duration::from_secs(3600));
    let size = |r: &Value| r["Size"].as_u64().unwrap();
    let total = size(a) + size(b) + size(c);
    env.ok(&["prune", "-af", "--keep-storage", &total.to_string()]);
    assert_eq!(records(&env).len(), 3, "already within the bound");
    // Room for a and c, not for all three: the least recently used (b) goes.
    let keep = (size(a) + size(c)).to_string();
    env.ok(&["prune", "-af", "--keep-storage", &keep]);
    let mut left: Vec<String> = records(&env)
        .iter()
        .map(|r| r["Description"].as_str().unwrap().to_string())
        .collect();
    left.sort();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left[0].contains("a.bin") && left[1].contains("c.bin"),
        "{left:?}"
    );
    // A bound below c alone leaves nothing.
    env.ok(&["prune", "-af", "--keep-storage", "1"]);
    assert!(records(&env).is_empty());
    let out = env.run(&["prune", "-af", "--keep-storage", "lots"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn editing_a_file_rebuilds_from_its_copy_and_touching_rebuilds_nothing() {
    let env = Env::new();
    let ctx = three_copies(&env, "ctx");
    let ctx_arg = ctx.to_str().unwrap();
    let (started, _) = build_events(&env, &[ctx_arg]);
    assert_eq!(started.len(), 3, "{started:?}");

    fs::write(ctx.join("b.bin"), b"changed").unwrap();
    let (started, cached) = build_events(&env, &[ctx_arg]);
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].contains("COPY a.bin"), "{cached:?}");
    assert_eq!(started.len(), 2, "{started:?}");
    assert!(started[0].contains("COPY b.bin") && started[1].contains("COPY c.bin"));

    // Same content, new mtime: the cache key is the content's, so everything hits.
    set_age(&ctx.join("a.bin"), Duration::ZERO);
    set_age(&ctx.join("c.bin"), Duration::from_secs(600));
    let (started, cached) = build_events(&env, &[ctx_arg]);
    assert!(started.is_empty(), "{started:?}");
    assert_eq!(cached.len(), 3);
}

#[test]
fn cache_hits_refresh_last_used() {
    let env = Env::new();
    let ctx = three_copies(&env, "ctx");
    env.ok(&["build", "-q", ctx.to_str().unwrap()]);
    let recs = records(&env);
    for r in &recs {
        age_record(&env, r, Duration::from_secs(48 * 3600));
    }
    let stale = records(&env);
    env.ok(&["build", "-q", ctx.to_str().unwrap()]);
    for (old, new) in stale.iter().zip(records(&env).iter()) {
        assert_eq!(old["ID"], new["ID"]);
        assert!(new["LastUsedAt"].as_str() > old["LastUsedAt"].as_str());
        assert_eq!(old["CreatedAt"], new["CreatedAt"]);
    }
}

#[test]
fn prune_sweeps_orphans_and_stale_leftovers_only() {
    let env = Env::new();
    let ctx = three_copies(&env, "ctx");
    env.ok(&["build", "-q", "-t", "three:1", ctx.to_str().unwrap()]);
    let root = env.root();
    let orphan_blob = root.join("blobs/sha256").join("ab".repeat(32));
    fs::write(&orphan_blob, b"nobody references me").unwrap();
    let orphan_snapshot = root.join("snapshots").join("cd".repeat(32));
    fs::create_dir_all(orphan_snapshot.join("ro/dir")).unwrap();
    fs::write(orphan_snapshot.join("ro/dir/f"), b"x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        orphan_snapshot.join("ro"),
        fs::Permissions::from_mode(0o555),
    )
    .unwrap();
    let old_tmp = root.join("tmp/blob-old");
    let new_tmp = root.join("tmp/blob-new");
    let old_work = root.join("work/snap-old");
    let old_unpack = root.join("snapshots/.unpack-old");
    // The solver's shared layer of sandbox mount points is kept on purpose.
    let mount_points = root.join("work/mountpoints-v1");
    fs::create_dir_all(mount_points.join("proc")).unwrap();
    for f in [&old_tmp, &new_tmp] {
        fs::write(f, b"partial").unwrap();
    }
    for d in [&old_work, &old_unpack] {
        fs::create_dir_all(d.join("upper")).unwrap();
    }
    for p in [&old_tmp, &old_work, &old_unpack, &mount_points] {
        set_age(p, Duration::from_secs(2 * 3600));
    }
    let out = env.ok(&["prune", "-f"]);
    assert!(out.contains("Total:"), "{out}");
    for gone in [
        &orphan_blob,
        &orphan_snapshot,
        &old_tmp,
        &old_work,
        &old_unpack,
    ] {
        assert!(
            !gone.exists(),
            "{} should be removed:\n{out}",
            gone.display()
        );
    }
    assert!(
        new_tmp.exists(),
        "a young temp file may belong to a live writer"
    );
    assert!(mount_points.join("proc").is_dir());
    assert_eq!(records(&env).len(), 3);
}

#[test]
fn prune_asks_first_and_waits_for_running_builds() {
    let env = Env::new();
    let ctx = three_copies(&env, "ctx");
    env.ok(&["build", "-q", ctx.to_str().unwrap()]);
    // Answering no (or nothing) removes nothing.
    let mut child = env
        .cmd()
        .arg("prune")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Are you sure"));
    assert_eq!(records(&env).len(), 3);

    // A build holds a shared lock on gc.lock; prune takes it exclusively, so it waits.
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env.root().join("gc.lock"))
        .unwrap();
    // SAFETY: flock on a descriptor this test owns.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_SH) };
    assert_eq!(rc, 0);
    let mut child = env
        .cmd()
        .args(["prune", "-af"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "prune must wait");
    assert_eq!(records(&env).len(), 3);
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting for running builds"));
    assert!(records(&env).is_empty());
}

#[test]
fn cache_mounts_are_listed_and_pruned() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\n\
             RUN --mount=type=cache,target=/cache dd if=/dev/zero of=/cache/blob bs=1000 count=5\n",
        )],
    );
    env.ok(&["build", "-q", ctx.to_str().unwrap()]);
    let mounts: Vec<Value> = records(&env)
        .into_iter()
        .filter(|r| r["Type"] == "exec.cachemount")
        .collect();
    assert_eq!(mounts.len(), 1, "{mounts:#?}");
    assert_eq!(mounts[0]["Size"], 5000);
    assert_eq!(mounts[0]["Reclaimable"], true);
    let dir = env
        .root()
        .join("cache-mounts")
        .join(mounts[0]["ID"].as_str().unwrap());
    assert!(dir.join("blob").is_file());
    let du = env.ok(&["du"]);
    assert!(du.contains("cache mount"), "{du}");

    // Fresh, so an age filter keeps it; a plain prune removes it (it is no image's).
    env.ok(&["prune", "-f", "--filter", "until=1h"]);
    assert!(dir.join("blob").is_file());
    let out = env.ok(&["prune", "-f"]);
    assert!(out.contains("Deleted cache mounts:"), "{out}");
    assert!(!dir.exists());
    assert!(records(&env).iter().all(|r| r["Type"] != "exec.cachemount"));
    env.ok(&["inspect", "busybox:test"]);
}
