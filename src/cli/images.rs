//! `builder images`, `tag`, `rmi`, `inspect`, `history`: the local image store.

use std::process::ExitCode;

use anyhow::Context as _;
use builder_store::{read_config, read_manifest};
use clap::Args;

use super::{Context, UsageError, familiar, find_image, normalize, short_id};

#[derive(Args)]
pub struct ImagesArgs {
    /// Show only image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show full ids.
    #[arg(long)]
    no_trunc: bool,
    /// Print as JSON (one object per line).
    #[arg(long, value_parser = ["table", "json"], default_value = "table")]
    format: String,
}

pub fn images(ctx: &Context, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let id_text = |d: &builder_store::Digest| {
        if args.no_trunc {
            d.to_string()
        } else {
            short_id(d)
        }
    };
    if args.format == "table" && !args.quiet {
        outln!(
            "{:<40} {:<16} {:<14} {:<22} SIZE",
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED"
        );
    }
    for entry in store.images().list()? {
        let (size, platforms) = image_size(&store, &entry.record.manifest)?;
        let names: Vec<String> = if entry.names.is_empty() {
            vec![String::new()]
        } else {
            entry.names.iter().cloned().collect()
        };
        for name in names {
            let (repo, tag) = split_name(&name);
            if args.quiet {
                outln!("{}", id_text(&entry.record.config));
            } else if args.format == "json" {
                let mut v = serde_json::json!({"Repository": repo, "Tag": tag, "ID": entry.record.config.to_string(),
                    "CreatedAt": entry.record.created, "Size": size, "Name": name});
                if let Some(platforms) = &platforms {
                    v["Platforms"] = serde_json::json!(platforms);
                }
                outln!("{v}");
            } else {
                // An index is one row, its platforms after the size.
                let held = platforms
                    .as_ref()
                    .map(|p| format!("  ({})", p.join(", ")))
                    .unwrap_or_default();
                outln!(
                    "{:<40} {:<16} {:<14} {:<22} {}{held}",
                    repo,
                    tag,
                    id_text(&entry.record.config),
                    entry.record.created,
                    human_size(size)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `docker.io/library/app:1` → (`app`, `1`); unnamed → (`<none>`, `<none>`).
/// The bytes an image's manifest names (config and layers); for an index, those of every
/// platform's image it holds, counted once, and its platforms.
fn image_size(
    store: &builder_store::Store,
    manifest: &builder_store::Digest,
) -> anyhow::Result<(u64, Option<Vec<String>>)> {
    let Some(index) = builder_store::stored_index::read_index(store, manifest)? else {
        let m = read_manifest(store.blobs(), manifest)?;
        return Ok((
            m.layers.iter().map(|l| l.size).sum::<u64>() + m.config.size,
            None,
        ));
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut size = 0;
    for entry in &index.manifests {
        let Ok(m) = read_manifest(store.blobs(), &entry.digest) else {
            continue;
        };
        for d in m.layers.iter().chain([&m.config]) {
            if seen.insert(d.digest) {
                size += d.size;
            }
        }
    }
    let platforms = builder_store::stored_index::platforms(&index)
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok((size, Some(platforms)))
}

fn split_name(name: &str) -> (String, String) {
    if name.is_empty() {
        return ("<none>".into(), "<none>".into());
    }
    let short = familiar(name);
    match short.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((r, t)) => (r.to_string(), t.to_string()),
        None => (short, "<none>".into()),
    }
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}{}", UNITS[unit])
    }
}

pub fn tag(ctx: &Context, source: &str, target: &str) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let record = find_image(&store, source)?;
    let name =
        normalize(target).map_err(|e| UsageError(format!("invalid name {target:?}: {e}")))?;
    store.images().set(&name, record)?;
    Ok(ExitCode::SUCCESS)
}

pub fn rmi(ctx: &Context, images: &[String], force: bool) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let mut failed = false;
    for image in images {
        let by_name = normalize(image)
            .ok()
            .filter(|n| store.images().get(n).ok().flatten().is_some());
        let report = match by_name {
            Some(name) => store.images().rmi_name(&name),
            None => store
                .images()
                .rmi_id(image.strip_prefix("sha256:").unwrap_or(image), force),
        };
        match report {
            Ok(report) => {
                for name in report.untagged {
                    outln!("Untagged: {}", familiar(&name));
                }
                if let Some(id) = report.deleted {
                    outln!("Deleted: {id}");
                }
            }
            Err(e) => {
                errln!("error: {image}: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn inspect(
    ctx: &Context,
    images: &[String],
    format: Option<&str>,
    platform: Option<&str>,
) -> anyhow::Result<ExitCode> {
    if images.is_empty() {
        anyhow::bail!(UsageError("inspect needs at least one image".into()));
    }
    let template = format
        .map(|f| {
            super::template::Template::parse(f)
                .map_err(|e| UsageError(format!("--format {f:?}: {e}")))
        })
        .transpose()?;
    let store = ctx.store()?;
    let mut out = Vec::new();
    for image in images {
        let found = find_image(&store, image)?;
        if platform.is_none()
            && let Some(index) = builder_store::stored_index::read_index(&store, &found.manifest)?
        {
            out.push(index_object(&store, &found, &index)?);
            continue;
        }
        let record = super::find_platform_image(&store, image, platform)?;
        let manifest = read_manifest(store.blobs(), &record.manifest)?;
        let config = read_config(store.blobs(), &record.config)?;
        let names: Vec<String> = store
            .images()
            .get_by_id(&record.config)?
            .map(|e| e.names.iter().map(|n| familiar(n)).collect())
            .unwrap_or_default();
        let mut value = serde_json::to_value(&config).context("encoding the config")?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("Id".into(), serde_json::json!(record.config.to_string()));
            obj.insert("RepoTags".into(), serde_json::json!(names));
            obj.insert(
                "ManifestDigest".into(),
                serde_json::json!(record.manifest.to_string()),
            );
            obj.insert("Manifest".into(), serde_json::to_value(&manifest)?);
        }
        out.push(value);
    }
    if let Some(template) = &template {
        // docker: one line per image, the template applied to its inspect object.
        let lines = out
            .iter()
            .map(|v| template.render(v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
        for line in lines {
            outln!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// `inspect` of a name holding an image index: the index, its platforms and their
/// manifests (docker's containerd store shows the index's id too); `--platform` picks one.
fn index_object(
    store: &builder_store::Store,
    record: &builder_store::ImageRecord,
    index: &builder_store::manifest::Index,
) -> anyhow::Result<serde_json::Value> {
    let names: Vec<String> = store
        .images()
        .get_by_id(&record.config)?
        .map(|e| e.names.iter().map(|n| familiar(n)).collect())
        .unwrap_or_default();
    let platforms: Vec<String> = builder_store::stored_index::platforms(index)
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(serde_json::json!({
        "Id": record.manifest.to_string(),
        "RepoTags": names,
        "Created": record.created,
        "ManifestDigest": record.manifest.to_string(),
        "MediaType": index.media_type,
        "Platforms": platforms,
        "Attestations": attestation_entries(store, index)?,
        "Manifest": index,
    }))
}

/// The index's attestation manifests (BuildKit's `vnd.docker.reference.type:
/// attestation-manifest` entries): the image each is about, that image's platform, and the
/// predicate types of its statements (read from the stored manifest's layer annotations).
fn attestation_entries(
    store: &builder_store::Store,
    index: &builder_store::manifest::Index,
) -> anyhow::Result<Vec<serde_json::Value>> {
    const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
    const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
    const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
    let mut out = Vec::new();
    for d in &index.manifests {
        if d.annotations.get(REFERENCE_TYPE).map(String::as_str) != Some("attestation-manifest") {
            continue;
        }
        let subject = d
            .annotations
            .get(REFERENCE_DIGEST)
            .cloned()
            .unwrap_or_default();
        let platform = index
            .manifests
            .iter()
            .find(|m| m.digest.to_string() == subject)
            .and_then(|m| m.platform.as_ref())
            .map(|p| {
                builder_store::Platform::normalized(&p.os, &p.architecture, p.variant.as_deref())
                    .to_string()
            });
        let predicate_types: Vec<String> = if store.blobs().contains(&d.digest) {
            read_manifest(store.blobs(), &d.digest)?
                .layers
                .iter()
                .filter_map(|l| l.annotations.get(PREDICATE_TYPE).cloned())
                .collect()
        } else {
            Vec::new()
        };
        out.push(serde_json::json!({
            "Digest": d.digest.to_string(),
            "For": subject,
            "Platform": platform,
            "PredicateTypes": predicate_types,
        }));
    }
    Ok(out)
}

pub fn history(ctx: &Context, image: &str, no_trunc: bool) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let record = super::find_platform_image(&store, image, None)?;
    let manifest = read_manifest(store.blobs(), &record.manifest)?;
    let config = read_config(store.blobs(), &record.config)?;
    outln!(
        "{:<22} {:<60} {:>10} COMMENT",
        "CREATED",
        "CREATED BY",
        "SIZE"
    );
    let mut layers = manifest.layers.iter();
    let mut rows = Vec::new();
    for h in &config.history {
        let size = if h.empty_layer {
            0
        } else {
            layers.next().map(|l| l.size).unwrap_or(0)
        };
        let mut by = h.created_by.clone().unwrap_or_default();
        if !no_trunc && by.chars().count() > 57 {
            by = by.chars().take(57).collect::<String>() + "...";
        }
        rows.push(format!(
            "{:<22} {:<60} {:>10} {}",
            h.created.clone().unwrap_or_default(),
            by,
            human_size(size),
            h.comment.clone().unwrap_or_default()
        ));
    }
    // Newest first, as docker shows it.
    for row in rows.iter().rev() {
        outln!("{row}");
    }
    Ok(ExitCode::SUCCESS)
}
