//! One build, end to end: parse → convert → solve → store the image.

use std::collections::{HashMap, HashSet};

use builder_frontend::dockerignore::IgnoreMatcher;
use builder_store::image::ImageConfig;
use builder_store::manifest::{Descriptor, ManifestFormat};
use builder_store::{Digest, Store, StoredImage};

use crate::cache_index::CacheRecord;
use crate::executor::{ConvertedInputs, Output, SolveError, Solved, Solver};
use crate::image_json::config_from_spec;
use crate::options::SolveOptions;
use crate::progress::{Event, ProgressSink};
use builder_dockerfile2graph::{
    ConvertError, ConvertOptions, ConvertedBuild, ImageResolver, convert,
};
use builder_graph::{Op, VertexId};

/// One build's inputs, each choice in exactly one place: how the Dockerfile becomes a graph
/// (`convert`) and how the graph is solved (`solve`); nothing is copied between them.
#[derive(Clone)]
pub struct BuildRequest {
    pub dockerfile: Vec<u8>,
    /// Contents of the applicable .dockerignore, if any.
    pub dockerignore: Option<String>,
    /// How the Dockerfile becomes a graph; its `file_name` names the Dockerfile in errors.
    pub convert: ConvertOptions,
    /// `--no-cache-filter`: names of stages whose steps skip the cache.
    pub no_cache_filter: Vec<String>,
    /// How the graph is solved.
    pub solve: SolveOptions,
}

#[derive(Debug)]
pub struct BuildOutput {
    pub image: StoredImage,
    pub config: ImageConfig,
    pub warnings: Vec<String>,
    /// Every step solved for this build, with its cache record: what `--cache-to` exports.
    pub steps: Vec<StepRecord>,
    /// The cache mounts RUN steps used (`--cache-to ...,mounts=true` exports their contents).
    pub cache_mounts: Vec<crate::executor::UsedCacheMount>,
    /// Every stage built, with its layers: what `--sbom` with `scan-stage` scans.
    pub stages: Vec<BuiltStageLayers>,
}

/// A built stage (see `builder_dockerfile2graph::BuiltStage`) and its file system's layers, bottom
/// first, as (blob digest, diff id).
#[derive(Clone, Debug)]
pub struct BuiltStageLayers {
    pub stage: builder_dockerfile2graph::BuiltStage,
    pub layers: Vec<(builder_store::Digest, builder_store::Digest)>,
}

/// One solved step: its cache key and record, and whether its layer is part of the image.
#[derive(Clone, Debug)]
pub struct StepRecord {
    pub key: builder_store::Digest,
    pub record: CacheRecord,
    /// The step is on the built image's chain of layers (not only in a stage it copies from):
    /// what `--cache-to mode=min` keeps.
    pub in_image: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error(transparent)]
    Solve(#[from] SolveError),
    #[error("invalid .dockerignore: {0}")]
    Ignore(String),
    #[error("storing the image: {0}")]
    Store(#[from] builder_store::StoreError),
    #[error("compressing layer {0} for the image: {1}")]
    Compress(
        builder_store::Digest,
        #[source] builder_snapshot::SnapshotError,
    ),
    #[error("taking the build lease (a `builder prune` may be running): {0}")]
    Lease(#[from] builder_store::gc::GcError),
}

pub fn build(
    store: &Store,
    req: &BuildRequest,
    resolver: &dyn ImageResolver,
    progress: &dyn ProgressSink,
) -> Result<BuildOutput, BuildError> {
    // While a build holds this shared lease, `builder prune` waits: it must not sweep blobs a
    // build has written but not yet recorded.
    let _lease = builder_store::gc::build_lease(store.root())?;
    let dockerfile = builder_frontend::parse_dockerfile(&req.dockerfile, &req.convert.file_name)
        .map_err(ConvertError::from)?;
    // builder has one frontend, its own: a `# syntax=` (or BUILDKIT_SYNTAX) naming another is
    // refused before anything runs; a pinned docker/dockerfile version gets a note.
    let syntax_arg = req
        .convert
        .build_args
        .get(builder_dockerfile2graph::SYNTAX_ARG);
    match builder_frontend::syntax::check_frontend(
        dockerfile.syntax.as_deref(),
        syntax_arg.map(String::as_str),
    ) {
        Ok(Some(note)) => progress.event(Event::Status {
            message: format!("note: {note}"),
        }),
        Ok(None) => {}
        Err(refusal) => return Err(ConvertError::General(refusal).into()),
    }
    let mut warnings = dockerfile.warnings.clone();
    let converted = convert(&dockerfile, &req.convert, resolver)?;
    // BUILDKIT_DOCKERFILE_CHECK configures the build checks (read before the build), not the
    // Dockerfile: it is consumed even when no ARG names it.
    let unused: Vec<&str> = converted
        .unused_build_args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "BUILDKIT_DOCKERFILE_CHECK")
        .collect();
    if !unused.is_empty() {
        warnings.push(format!(
            "one or more build-args [{}] were not consumed",
            unused.join(" ")
        ));
    }
    let ignore = match &req.dockerignore {
        Some(text) => IgnoreMatcher::parse(text).map_err(|e| BuildError::Ignore(e.to_string()))?,
        None => IgnoreMatcher::empty(),
    };
    let source_date_epoch = match req.solve.layer_options.source_date_epoch {
        Some(epoch) => Some(epoch),
        None => dockerfile_epoch(&converted, req)?,
    };
    let no_cache_vertices = no_cache_vertices(&converted, &req.no_cache_filter, &mut warnings);
    // The steps whose layers the image holds: stored compressed at once, and what
    // `--cache-to mode=min` keeps.
    let in_image = image_steps(&converted);
    let inputs = ConvertedInputs {
        dockerfile_name: req.convert.file_name.clone(),
        ignore,
        named_contexts: req
            .convert
            .build_contexts
            .iter()
            .filter_map(|(name, c)| match c {
                builder_dockerfile2graph::BuildContext::Dir(dir) => {
                    Some((name.clone(), dir.clone()))
                }
                builder_dockerfile2graph::BuildContext::Image(_) => None,
            })
            .chain(converted.git_contexts.clone())
            .collect(),
        no_cache_vertices,
        image_vertices: in_image.iter().map(|v| v.index()).collect(),
        source_date_epoch,
    };
    let solver = Solver::new(store, &req.solve, inputs, progress)?;
    let target = &converted.target;
    let solved = solver.solve(&converted.graph, target.vertex)?;
    let layers_of = |v| match solved.get(&v).map(|s| &s.output) {
        Some(Output::Rootfs(layers)) => layers.clone(),
        _ => Vec::new(),
    };
    let layers = layers_of(target.vertex);

    // Every step adds a layer (an empty one when it changed nothing, as in BuildKit); should one
    // ever add none, its history entry is marked empty_layer so history and layers agree.
    let mut spec = target.spec.clone();
    for (history_index, vertex) in &target.layer_history {
        let base_len = converted
            .graph
            .vertex(*vertex)
            .inputs
            .first()
            .map(|i| layers_of(*i).len())
            .unwrap_or(0);
        if layers_of(*vertex).len() <= base_len {
            spec.history[*history_index].empty_layer = true;
        }
    }
    progress.event(Event::Status {
        message: "exporting to image".into(),
    });
    let created = Some(match source_date_epoch {
        Some(epoch) => builder_store::time::rfc3339_from_unix(epoch),
        None => {
            let made = target.layer_history.iter().filter_map(|(i, v)| {
                let at = solved.get(v)?.layer_created?;
                Some((*i, builder_store::time::rfc3339_from_unix(unix_secs(at))))
            });
            date_history(&mut spec.history, made).unwrap_or_else(builder_store::time::rfc3339_now)
        }
    });
    let config = config_from_spec(&spec, layers.iter().map(|l| l.diff_id).collect(), created);
    let steps = step_records(&converted, &solved, &in_image);
    // The image carries its own steps' layers in the compression asked for, converted where a
    // cached record has another (base layers keep theirs, as in BuildKit).
    let made: HashSet<Digest> = steps
        .iter()
        .filter_map(|s| s.record.layer.as_ref().map(|l| l.digest))
        .collect();
    let compression = req.solve.layer_options.compression;
    let mut descriptors: Vec<Descriptor> = Vec::with_capacity(layers.len());
    for l in &layers {
        let l = if made.contains(&l.digest) {
            builder_snapshot::layer_in(store, l, compression)
                .map_err(|e| BuildError::Compress(l.diff_id, e))?
        } else {
            l.clone()
        };
        descriptors.push(Descriptor::new(
            oci_layer_media_type(&l.media_type),
            l.digest,
            l.size,
        ));
    }
    let image =
        builder_store::put_image(store.blobs(), &config, &descriptors, ManifestFormat::Oci)?;
    let stages = converted
        .built_stages
        .iter()
        .map(|stage| BuiltStageLayers {
            stage: stage.clone(),
            layers: layers_of(stage.vertex)
                .iter()
                .map(|l| (l.digest, l.diff_id))
                .collect(),
        })
        .collect();
    Ok(BuildOutput {
        stages,
        image,
        config,
        warnings,
        steps,
        cache_mounts: solver.used_cache_mounts(),
    })
}

/// The vertices of the stages `--no-cache-filter` names. As with buildx, a name matches a
/// stage's `AS` name; a name that matches no stage of the Dockerfile is reported, not fatal.
fn no_cache_vertices(
    converted: &ConvertedBuild,
    filter: &[String],
    warnings: &mut Vec<String>,
) -> HashSet<usize> {
    let mut vertices = HashSet::new();
    for name in filter {
        match converted.stage_steps.get(&name.to_lowercase()) {
            Some(steps) => vertices.extend(steps.iter().map(|v| v.index())),
            None => warnings.push(format!(
                "--no-cache-filter: no stage named {name:?} is part of this build"
            )),
        }
    }
    vertices
}

/// The steps whose layers the built image holds: from the target back through each step's
/// input 0 (its base).
fn image_steps(converted: &ConvertedBuild) -> HashSet<VertexId> {
    let graph = &converted.graph;
    let mut in_image = HashSet::new();
    let mut at = Some(converted.target.vertex);
    while let Some(v) = at.filter(|v| matches!(graph.vertex(*v).op, Op::Exec(_) | Op::File(_))) {
        in_image.insert(v);
        at = graph.vertex(v).inputs.first().copied();
    }
    in_image
}

/// The cache record of every solved step: a step added a layer when its rootfs has one more
/// than its input's.
fn step_records(
    converted: &ConvertedBuild,
    solved: &HashMap<VertexId, Solved>,
    in_image: &HashSet<VertexId>,
) -> Vec<StepRecord> {
    let graph = &converted.graph;
    let layers = |v: &VertexId| match solved.get(v).map(|s| &s.output) {
        Some(Output::Rootfs(layers)) => layers.as_slice(),
        _ => &[],
    };
    let mut steps: Vec<StepRecord> = solved
        .iter()
        .filter(|(v, _)| matches!(graph.vertex(**v).op, Op::Exec(_) | Op::File(_)))
        .map(|(v, s)| {
            let base = graph
                .vertex(*v)
                .inputs
                .first()
                .map_or(0, |i| layers(i).len());
            let own = layers(v);
            StepRecord {
                key: s.record_key,
                record: CacheRecord {
                    layer: (own.len() > base).then(|| own[own.len() - 1].clone()),
                    description: graph.vertex(*v).name.clone(),
                },
                in_image: in_image.contains(v),
            }
        })
        .collect();
    steps.sort_by_key(|s| s.key);
    steps
}

/// Layers pulled as Docker media types are the same bytes under OCI names.
fn oci_layer_media_type(media_type: &str) -> String {
    use builder_store::manifest::media_type::{
        DOCKER_LAYER, DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP,
    };
    match media_type {
        DOCKER_LAYER_GZIP => OCI_LAYER_GZIP.into(),
        DOCKER_LAYER => OCI_LAYER.into(),
        other => other.to_string(),
    }
}

/// The build's epoch from the Dockerfile's global `ARG SOURCE_DATE_EPOCH=…` default, as BuildKit
/// takes it when no `SOURCE_DATE_EPOCH` build arg is given: a number of seconds, or empty for
/// none. BuildKit also accepts a stage, a named context or `context` (the epoch then comes from
/// that source's files); builder refuses those by name rather than ignoring them.
fn dockerfile_epoch(
    converted: &ConvertedBuild,
    req: &BuildRequest,
) -> Result<Option<i64>, BuildError> {
    let Some(value) = converted.source_date_epoch_arg.as_deref() else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(epoch) = value.parse::<i64>() {
        return Ok(Some(epoch));
    }
    let names_source = value == "context"
        || req.convert.build_contexts.contains_key(value)
        || converted
            .stage_names
            .iter()
            .any(|s| s.eq_ignore_ascii_case(value));
    let message = if names_source {
        format!(
            "SOURCE_DATE_EPOCH={value}: an epoch taken from a stage, a named context or the build context is not supported yet; give a number of seconds"
        )
    } else {
        format!("invalid SOURCE_DATE_EPOCH: {value}")
    };
    Err(ConvertError::General(message).into())
}

/// Dates the build's history entries as BuildKit's image exporter does without
/// SOURCE_DATE_EPOCH: a layer's entry gets the time its layer was made (`made`: history index
/// and time; a cached step's layer keeps its first build's time), an entry without a layer the
/// time of the first new layer, or of the layer before it. Returns the image's creation time:
/// the last dated entry's. A fully cached rebuild so makes the same image.
fn date_history(
    history: &mut [builder_graph::image::HistoryEntry],
    made: impl Iterator<Item = (usize, String)>,
) -> Option<String> {
    for (index, at) in made {
        if let Some(h) = history.get_mut(index)
            && h.created.is_none()
        {
            h.created = Some(at);
        }
    }
    // The first dated entry after an undated one (the first new layer), else the last dated.
    let mut created: Option<String> = None;
    let mut undated_seen = false;
    for h in history.iter() {
        match &h.created {
            Some(at) => {
                created = Some(at.clone());
                if undated_seen {
                    break;
                }
            }
            None => undated_seen = true,
        }
    }
    undated_seen = false;
    for h in history.iter_mut() {
        match &h.created {
            Some(at) if undated_seen => created = Some(at.clone()),
            Some(_) => {}
            None => {
                undated_seen = true;
                h.created = created.clone();
            }
        }
    }
    history.iter().rev().find_map(|h| h.created.clone())
}

fn unix_secs(at: std::time::SystemTime) -> i64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod date_history_tests {
    use super::date_history;
    use builder_graph::image::HistoryEntry;

    fn entry(created: Option<&str>) -> HistoryEntry {
        HistoryEntry {
            created: created.map(String::from),
            created_by: String::new(),
            author: None,
            comment: None,
            empty_layer: false,
        }
    }

    #[test]
    fn layers_keep_their_times_and_metadata_takes_the_first_new_layers() {
        // base layer, ENV (no layer), COPY (layer made at t1), LABEL, RUN (made at t2)
        let mut history = vec![
            entry(Some("t0")),
            entry(None),
            entry(None),
            entry(None),
            entry(None),
        ];
        let created = date_history(
            &mut history,
            [(2, "t1".to_string()), (4, "t2".to_string())].into_iter(),
        );
        let times: Vec<_> = history.iter().map(|h| h.created.clone().unwrap()).collect();
        assert_eq!(times, ["t0", "t1", "t1", "t1", "t2"]);
        assert_eq!(created.as_deref(), Some("t2"));
    }

    #[test]
    fn no_dated_entry_leaves_the_time_to_the_caller() {
        let mut history = vec![entry(None)];
        assert_eq!(date_history(&mut history, std::iter::empty()), None);
        assert!(history[0].created.is_none());
    }
}
