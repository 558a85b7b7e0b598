//! `builder du`, `builder cache ls|inspect|verify` and `builder prune`: the build cache, made visible and
//! steerable. Records come from the solver's cache index; what images keep alive and the sweep of
//! unreferenced blobs and snapshots come from `builder_store::gc`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use builder_solver::cache_index::{CacheEntry, CacheIndex};
use builder_solver::cache_usage::{self, CacheUsage, Pruned};
use builder_store::gc::{self, CacheMount, PrunePolicy};
use builder_store::verify;
use builder_store::{Digest, Store};
use clap::{Args, Subcommand};
use serde_json::json;

use super::images::human_size;
use super::{Context, UsageError, familiar};

#[derive(Args)]
pub struct DuArgs {
    /// Show every detail of each record.
    #[arg(long)]
    verbose: bool,
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// List build cache records.
    Ls {
        #[arg(long, value_parser = ["table", "json"], default_value = "table")]
        format: String,
    },
    /// Print cache records (by full key or unique prefix) as a JSON array.
    Inspect {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Check every blob, cache record and image in the store; exit 1 listing any damage.
    Verify {
        /// Remove damaged blobs and the cache records, snapshots and images that need them.
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all cache records, not just those no named image uses.
    #[arg(short, long)]
    all: bool,
    /// Only `until=DURATION` (Go syntax, e.g. 24h, 1h30m): records unused for that long
    /// (last-use times are kept to the minute, so a record may stay up to a minute longer).
    #[arg(long)]
    filter: Vec<String>,
    /// Keep this much cache (e.g. 5GB; units are powers of 1024, as docker's).
    #[arg(long)]
    keep_storage: Option<String>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
}

/// Shown for cache mounts: the store keeps only a hash of their id.
const MOUNT_DESCRIPTION: &str = "cache mount (RUN --mount=type=cache)";

/// How the CLI shows cache records: JSON for `cache ls --format json` and `cache inspect`.
trait Rendered {
    fn json(&self, entry: &CacheEntry) -> serde_json::Value;
    /// The images using the record, by their familiar names (`busybox:latest`).
    fn user_names(&self, entry: &CacheEntry) -> Vec<String>;
}

impl Rendered for CacheUsage {
    fn user_names(&self, entry: &CacheEntry) -> Vec<String> {
        self.users(entry).iter().map(|n| familiar(n)).collect()
    }

    fn json(&self, entry: &CacheEntry) -> serde_json::Value {
        json!({
            "ID": entry.key.to_string(),
            "Type": "regular",
            "Description": entry.record.description,
            "CreatedAt": rfc3339(entry.created),
            "LastUsedAt": rfc3339(entry.last_used),
            "Size": entry.size,
            "Reclaimable": self.reclaimable(entry),
            "Images": self.user_names(entry),
            "Layer": entry.record.layer.as_ref().map(|l| json!({
                "digest": l.digest.to_string(),
                "diffID": l.diff_id.to_string(),
                "size": l.size,
                "mediaType": l.media_type,
            })),
        })
    }
}

fn mount_json(mount: &CacheMount) -> serde_json::Value {
    json!({
        "ID": mount.name,
        "Type": "exec.cachemount",
        "Description": MOUNT_DESCRIPTION,
        "LastUsedAt": rfc3339(mount.last_used),
        "Size": mount.size,
        "Reclaimable": true,
        "Images": [],
        "Layer": null,
    })
}

fn index(store: &Store) -> anyhow::Result<CacheIndex> {
    cache_usage::open_index(store).context("opening the build cache index")
}

/// `builder du`: docker buildx du's table, most recently used first, and the totals.
pub fn du(ctx: &Context, args: DuArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let mut listing = CacheUsage::load(&store)?;
    listing
        .entries
        .sort_by_key(|e| std::cmp::Reverse(e.last_used));
    let now = SystemTime::now();
    if args.verbose {
        for e in &listing.entries {
            print_verbose(&listing, e, now);
        }
        for m in &listing.mounts {
            print_mount_verbose(m, now);
        }
    } else {
        outln!(
            "{:<14} {:<12} {:<10} {:<24} DESCRIPTION",
            "ID",
            "RECLAIMABLE",
            "SIZE",
            "LAST ACCESSED"
        );
        for e in &listing.entries {
            outln!(
                "{:<14} {:<12} {:<10} {:<24} {}",
                e.key.short(),
                listing.reclaimable(e),
                human_size(e.size),
                ago(e.last_used, now),
                e.record.description
            );
        }
        for m in &listing.mounts {
            outln!(
                "{:<14} {:<12} {:<10} {:<24} {MOUNT_DESCRIPTION}",
                &m.name[..12],
                true,
                human_size(m.size),
                ago(m.last_used, now),
            );
        }
    }
    // Failed steps kept by `--on-error=keep`: all reclaimable (prune removes them).
    let kept = super::debug::kept_rows(&store)?;
    for (id, size, what) in &kept {
        if args.verbose {
            outln!(
                "ID:\t\t{id}\nReclaimable:\ttrue\nSize:\t\t{}\nDescription:\t{what}\n",
                human_size(*size)
            );
        } else {
            outln!(
                "{:<14} {:<12} {:<10} {:<24} {what}",
                &id[..id.len().min(14)],
                true,
                human_size(*size),
                "",
            );
        }
    }
    let kept_bytes: u64 = kept.iter().map(|k| k.1).sum();
    let (reclaimable, total) = listing.totals();
    outln!("Reclaimable:\t{}", human_size(reclaimable + kept_bytes));
    outln!("Total:\t\t{}", human_size(total + kept_bytes));
    Ok(ExitCode::SUCCESS)
}

fn print_verbose(listing: &CacheUsage, e: &CacheEntry, now: SystemTime) {
    outln!("ID:\t\t{}", e.key);
    outln!("Created at:\t{}", rfc3339(e.created));
    outln!("Last used:\t{}", ago(e.last_used, now));
    outln!("Reclaimable:\t{}", listing.reclaimable(e));
    outln!("Size:\t\t{}", human_size(e.size));
    outln!("Description:\t{}", e.record.description);
    if let Some(layer) = &e.record.layer {
        outln!("Layer:\t\t{}", layer.digest);
    }
    let users = listing.user_names(e);
    if !users.is_empty() {
        outln!("Images:\t\t{}", users.join(", "));
    }
    outln!();
}

fn print_mount_verbose(m: &CacheMount, now: SystemTime) {
    outln!("ID:\t\t{}", m.name);
    outln!("Type:\t\texec.cachemount");
    outln!("Last used:\t{}", ago(m.last_used, now));
    outln!("Reclaimable:\ttrue");
    outln!("Size:\t\t{}", human_size(m.size));
    outln!("Description:\t{MOUNT_DESCRIPTION}");
    outln!();
}

pub fn cache(ctx: &Context, command: CacheCommand) -> anyhow::Result<ExitCode> {
    match command {
        CacheCommand::Ls { format } => ls(ctx, &format),
        CacheCommand::Inspect { keys } => inspect(ctx, &keys),
        CacheCommand::Verify { repair } => verify(ctx, repair),
    }
}

fn ls(ctx: &Context, format: &str) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let listing = CacheUsage::load(&store)?;
    if format == "json" {
        let records = listing.entries.iter().map(|e| listing.json(e));
        let all: Vec<_> = records
            .chain(listing.mounts.iter().map(mount_json))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<14} {:<10} {:<22} {:<22} {:<12} DESCRIPTION",
        "ID",
        "SIZE",
        "CREATED",
        "LAST USED",
        "RECLAIMABLE"
    );
    for e in &listing.entries {
        outln!(
            "{:<14} {:<10} {:<22} {:<22} {:<12} {}",
            e.key.short(),
            human_size(e.size),
            rfc3339(e.created),
            rfc3339(e.last_used),
            listing.reclaimable(e),
            e.record.description
        );
    }
    for m in &listing.mounts {
        outln!(
            "{:<14} {:<10} {:<22} {:<22} {:<12} {MOUNT_DESCRIPTION}",
            &m.name[..12],
            human_size(m.size),
            "-",
            rfc3339(m.last_used),
            true,
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(ctx: &Context, keys: &[String]) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let listing = CacheUsage::load(&store)?;
    let index = index(&store)?;
    let mut out = Vec::new();
    for key in keys {
        let entry = index.find(key)?;
        out.push(listing.json(&entry));
    }
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// `builder prune`: removes the records the policy selects and nameless images, then sweeps
/// every blob and snapshot that neither a remaining record nor a remaining image references.
pub fn prune(ctx: &Context, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let policy = policy(&args)?;
    if !args.force && !confirm(args.all)? {
        return Ok(ExitCode::SUCCESS);
    }
    let lease = wait_for_builds(ctx)?;
    let store = ctx.store()?;
    // First, so the layers only they used are swept with the rest.
    let kept = super::debug::remove_all(&store)?;
    let pruned = cache_usage::prune(&store, &policy, SystemTime::now())?;
    drop(lease);
    if kept > 0 {
        outln!("Deleted {kept} failed step(s) kept for debugging");
    }
    print_pruned(&pruned);
    Ok(ExitCode::SUCCESS)
}

/// The exclusive GC lease: running builds (and pulls) finish first, new ones wait for us.
fn wait_for_builds(ctx: &Context) -> anyhow::Result<gc::Lease> {
    Ok(match gc::try_exclusive_lease(&ctx.root)? {
        Some(lease) => lease,
        None => {
            errln!("waiting for running builds to finish...");
            gc::exclusive_lease(&ctx.root)?
        }
    })
}

fn print_pruned(p: &Pruned) {
    if !p.records.is_empty() {
        outln!("Deleted build cache objects:");
        for key in &p.records {
            outln!("{}", key.short());
        }
    }
    if !p.mounts.is_empty() {
        outln!("Deleted cache mounts:");
        for name in &p.mounts {
            outln!("{}", &name[..12]);
        }
    }
    if !p.images.is_empty() {
        outln!("Deleted images:");
        for id in &p.images {
            outln!("deleted: {id}");
        }
    }
    let s = &p.sweep;
    outln!(
        "Removed {} blobs ({}), {} snapshots ({}), {} stale temp entries ({})",
        s.blobs,
        human_size(s.blob_bytes),
        s.snapshots,
        human_size(s.snapshot_bytes),
        s.stale,
        human_size(s.stale_bytes)
    );
    outln!("Total:\t{}", human_size(s.total_bytes() + p.mount_bytes));
}

/// `builder cache verify [--repair]`. Holds the exclusive lease so no writer is live: every
/// leftover of an interrupted one can then be removed, and nothing changes under the check.
fn verify(ctx: &Context, repair: bool) -> anyhow::Result<ExitCode> {
    let _lease = wait_for_builds(ctx)?;
    let store = ctx.store()?;
    let mut leftovers = gc::SweepReport::default();
    gc::sweep_leftovers(&store, SystemTime::now(), &mut leftovers)?;
    if leftovers.stale > 0 {
        outln!(
            "Cleaned {} leftover temporary entries ({})",
            leftovers.stale,
            human_size(leftovers.stale_bytes)
        );
    }
    let store_check = verify::check_store(&store)?;
    let (index, index_problem) = open_checked_index(&store);
    let records = match &index {
        Some(index) => builder_solver::verify::check_records(&store, index, &store_check)?,
        None => Default::default(),
    };
    let problems = print_problems(&store_check, &records, index_problem.as_deref());
    if problems == 0 {
        outln!(
            "Checked {} blobs ({}), {} images, {} cache records: no problems found",
            store_check.blobs,
            human_size(store_check.blob_bytes),
            store_check.images,
            records.records
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !repair {
        outln!(
            "{problems} problems found; `builder cache verify --repair` removes the damaged data"
        );
        return Ok(ExitCode::from(1));
    }
    let fixed = verify::repair_store(&store, &store_check)?;
    for digest in &fixed.blobs {
        outln!("removed damaged blob {digest}");
    }
    for (id, names) in &fixed.images {
        errln!(
            "WARNING: removed image {}: blobs it needs were damaged or missing; build or pull it again",
            image_label(id, names)
        );
    }
    let mut snapshots = fixed.snapshots;
    match index {
        Some(index) => {
            let fixed = builder_solver::verify::repair_records(&store, &index, &records)
                .map_err(anyhow::Error::msg)?;
            for entry in &fixed.records {
                outln!(
                    "removed cache record {} ({})",
                    entry.key.short(),
                    entry.record.description
                );
            }
            snapshots.extend(fixed.snapshots);
        }
        None => {
            reset_index(&store)?;
            outln!("removed the damaged cache index: every step runs again once");
        }
    }
    for path in &snapshots {
        outln!("removed snapshot {}", path.display());
    }
    outln!("Repaired {problems} problems");
    Ok(ExitCode::SUCCESS)
}

/// The cache index if it opens and SQLite finds it sound; else why not.
fn open_checked_index(store: &Store) -> (Option<CacheIndex>, Option<String>) {
    let index = match CacheIndex::open(&store.cache_index_dir()) {
        Ok(index) => index,
        Err(e) => return (None, Some(e.to_string())),
    };
    match index.check() {
        Ok(faults) if faults.is_empty() => (Some(index), None),
        Ok(faults) => (
            None,
            Some(format!(
                "cache index {}: {}",
                index.path().display(),
                faults.join("; ")
            )),
        ),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// Deletes the cache index database (with its WAL); the next build starts an empty one.
fn reset_index(store: &Store) -> anyhow::Result<()> {
    let dir = store.cache_index_dir();
    for suffix in ["", "-wal", "-shm"] {
        let path = dir.join(format!(
            "{}{suffix}",
            builder_solver::cache_index::INDEX_FILE
        ));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", path.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `app:1, app:latest (0123456789ab)`, or `<none> (…)` for an image without names.
fn image_label(id: &Digest, names: &std::collections::BTreeSet<String>) -> String {
    let names: Vec<String> = names.iter().map(|n| familiar(n)).collect();
    let names = if names.is_empty() {
        "<none>".to_string()
    } else {
        names.join(", ")
    };
    format!("{names} ({})", id.short())
}

/// Lists what the checks found, one line each; returns how many problems there are.
fn print_problems(
    store_check: &verify::StoreCheck,
    records: &builder_solver::verify::RecordCheck,
    index_problem: Option<&str>,
) -> usize {
    for bad in &store_check.bad_blobs {
        outln!("damaged blob {}: {}", bad.digest, bad.reason);
    }
    for path in &store_check.bad_snapshots {
        outln!("damaged snapshot {}: not a directory", path.display());
    }
    for p in &store_check.image_problems {
        outln!(
            "image {}: {} {}: {}",
            image_label(&p.image, &p.names),
            p.role,
            p.blob,
            p.reason
        );
    }
    for p in &records.problems {
        outln!(
            "cache record {} ({}): {}",
            p.entry.key.short(),
            p.entry.record.description,
            p.reason
        );
    }
    if let Some(problem) = index_problem {
        outln!("{problem}");
    }
    store_check.bad_blobs.len()
        + store_check.bad_snapshots.len()
        + store_check.image_problems.len()
        + records.problems.len()
        + usize::from(index_problem.is_some())
}

/// Asks on stderr, as docker does; only `y`/`yes` proceeds. Without a terminal on stdin a
/// missing answer (EOF) is a no.
fn confirm(all: bool) -> anyhow::Result<bool> {
    let what = if all {
        "all build cache"
    } else {
        "all build cache no named image uses"
    };
    errout!("WARNING! This will remove {what}. Are you sure you want to continue? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    if !std::io::stdin().is_terminal() {
        errln!();
    }
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

fn policy(args: &PruneArgs) -> Result<PrunePolicy, UsageError> {
    let mut until = None;
    for filter in &args.filter {
        match filter.split_once('=') {
            Some(("until", value)) => {
                until = Some(
                    builder_frontend::parse_go_duration(value)
                        .map_err(|e| UsageError(format!("filter {filter:?}: {e}")))?,
                )
            }
            _ => {
                return Err(UsageError(format!(
                    "unsupported filter {filter:?} (supported: until=DURATION)"
                )));
            }
        }
    }
    let keep_storage = args
        .keep_storage
        .as_deref()
        .map(|s| {
            builder_store::units::ram_in_bytes(s)
                .map_err(|e| UsageError(format!("--keep-storage: {e}")))
        })
        .transpose()?;
    Ok(PrunePolicy {
        all: args.all,
        until,
        keep_storage,
    })
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    builder_store::time::rfc3339_from_unix(secs as i64)
}

/// docker's `HumanDuration` plus " ago": `2 minutes ago`, `About an hour ago`.
fn ago(then: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(then).map_or(0, |d| d.as_secs());
    let (minutes, hours) = (secs / 60, secs / 3600);
    let text = match secs {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".to_string(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_string(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    };
    format!("{text} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let now = SystemTime::now();
        let at = |s: u64| ago(now - std::time::Duration::from_secs(s), now);
        assert_eq!(at(0), "Less than a second ago");
        assert_eq!(at(90), "About a minute ago");
        assert_eq!(at(600), "10 minutes ago");
        assert_eq!(at(3700), "About an hour ago");
        assert_eq!(at(30 * 3600), "30 hours ago");
        assert_eq!(at(3 * 86400), "3 days ago");
    }
}
