//! Measures what one build step costs on top of a big base layer:
//! a 50,000-file lower, a step that changes one file, then finish + write_layer.
//!
//! cargo run --release -p builder-snapshot --example diff_cost [-- <files>]
//! (as root, or under `unshare --user --map-root-user --mount` for overlay).

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use builder_snapshot::{
    Compression, LayerOptions, Snapshotter, apply_layer, detect_snapshotter, prepare, write_layer,
};

fn build_lower(root: &Path, files: usize) -> Result<PathBuf, Box<dyn Error>> {
    let lower = root.join("lower");
    for i in 0..files {
        // 100 files per directory, like a real distro tree is spread out.
        let dir = lower.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&dir)?;
        }
        fs::write(dir.join(format!("f{i}")), format!("file {i}\n"))?;
    }
    Ok(lower)
}

struct Timing {
    prepare: Duration,
    finish: Duration,
    write: Duration,
    layer_bytes: u64,
}

fn one_step(kind: Snapshotter, lower: &Path, work: &Path) -> Result<Timing, Box<dyn Error>> {
    let t0 = Instant::now();
    let snap = prepare(kind, &[lower.to_path_buf()], work)?;
    let prepare_t = t0.elapsed();
    fs::write(snap.rootfs().join("d042/f4242"), b"changed by the step\n")?;
    let t1 = Instant::now();
    let diff = snap.finish()?;
    let finish_t = t1.elapsed();
    let t2 = Instant::now();
    let opts = LayerOptions {
        compression: Compression::Gzip { level: 6 },
        ..LayerOptions::default()
    };
    let digests = write_layer(&diff, std::io::sink(), &opts)?;
    let write_t = t2.elapsed();
    fs::remove_dir_all(&diff)?;
    Ok(Timing {
        prepare: prepare_t,
        finish: finish_t,
        write: write_t,
        layer_bytes: digests.size,
    })
}

/// For scale: the whole lower as one layer, written and applied back.
fn full_layer_cost(lower: &Path, tmp: &Path) -> Result<(), Box<dyn Error>> {
    let layer = tmp.join("full.tar.gz");
    let t = Instant::now();
    let d = write_layer(lower, fs::File::create(&layer)?, &LayerOptions::default())?;
    println!(
        "write_layer of the whole lower: {:?} ({} bytes gzip, {} uncompressed)",
        t.elapsed(),
        d.size,
        d.uncompressed_size
    );
    let dest = tmp.join("applied");
    fs::create_dir(&dest)?;
    let t = Instant::now();
    let stats = apply_layer(fs::File::open(&layer)?, &dest)?;
    println!(
        "apply_layer of that layer: {:?} ({} entries)",
        t.elapsed(),
        stats.entries
    );
    fs::remove_dir_all(&dest)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let files: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    let tmp = tempfile::tempdir()?;
    let t = Instant::now();
    let lower = build_lower(tmp.path(), files)?;
    println!("lower: {files} files created in {:?}", t.elapsed());
    full_layer_cost(&lower, tmp.path())?;
    let work = tmp.path().join("work");
    fs::create_dir(&work)?;
    let mut kinds = vec![Snapshotter::Copy];
    if detect_snapshotter(&work) == Snapshotter::Overlay {
        kinds.insert(0, Snapshotter::Overlay);
    } else {
        println!("overlay unavailable here: measuring the copy fallback only");
    }
    for kind in kinds {
        let r = one_step(kind, &lower, &work)?;
        println!(
            "{kind:?}: prepare {:?}, finish (unmount/diff) {:?}, write_layer {:?} ({} bytes gzip)",
            r.prepare, r.finish, r.write, r.layer_bytes
        );
    }
    Ok(())
}
