//! `write_layer` throughput on an existing directory: the tar stream (and its compression)
//! of a large layer, written to a counter, so the disk only reads.
//!
//! cargo run --release -p builder-snapshot --example layer_write_bench -- DIR [none|gzip|zstd] [RUNS]
//!
//! Prints one line per run: compression, bytes in, bytes out, seconds. Run it once first (or
//! `cat` the files) to have the page cache warm: this times the writer, not the disk.

use std::error::Error;
use std::path::Path;
use std::time::Instant;

use builder_snapshot::{Compression, LayerOptions, write_layer};

#[path = "common/counter.rs"]
mod counter;
use counter::Counter;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .ok_or("usage: layer_write_bench DIR [none|gzip|zstd] [RUNS]")?;
    let compression = match args.get(2).map(String::as_str).unwrap_or("none") {
        "none" => Compression::Uncompressed,
        "gzip" => Compression::GZIP_DEFAULT,
        "zstd" => Compression::ZSTD_DEFAULT,
        other => return Err(format!("unknown compression {other}").into()),
    };
    let runs: usize = args.get(3).map_or(Ok(1), |r| r.parse())?;
    let opts = LayerOptions {
        compression,
        ..LayerOptions::default()
    };
    for _ in 0..runs {
        let mut out = Counter(0);
        let start = Instant::now();
        let d = write_layer(Path::new(dir), &mut out, &opts)?;
        println!(
            "{compression:?} in={} out={} {:.2}s",
            d.uncompressed_size,
            d.size,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
