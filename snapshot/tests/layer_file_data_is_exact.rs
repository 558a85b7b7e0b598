//! A layer carries every regular file's bytes exactly, each padded to a whole tar block, for
//! sizes around the block and around the writer's 1 MiB read chunk, under a long name too;
//! and an uncompressed layer's digest and size are those of the bytes written.

use std::fs;
use std::io::Read;

use builder_snapshot::{Compression, LayerOptions, write_layer};
use builder_store::Digest;

#[test]
fn file_data_round_trips_at_block_and_chunk_edges() {
    let root = tempfile::tempdir().unwrap();
    let long = "n".repeat(180);
    let sizes = [
        0usize,
        1,
        511,
        512,
        513,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 3,
        (2 << 20) + 512,
    ];
    let mut files = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..*size).map(|b| (b * 31 + i) as u8).collect();
        let name = if i == 5 {
            format!("{long}{i}")
        } else {
            format!("f{i}")
        };
        fs::write(root.path().join(&name), &data).unwrap();
        files.push((name, data));
    }
    let mut out = Vec::new();
    let opts = LayerOptions {
        compression: Compression::Uncompressed,
        ..LayerOptions::default()
    };
    let d = write_layer(root.path(), &mut out, &opts).unwrap();
    assert_eq!(d.size, out.len() as u64);
    assert_eq!(d.uncompressed_size, out.len() as u64);
    assert_eq!(d.digest, Digest::of(&out));
    assert_eq!(d.diff_id, d.digest);
    assert_eq!(out.len() % 512, 0);

    let mut archive = tar::Archive::new(&out[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert_eq!(entry.header().size().unwrap(), data.len() as u64, "{name}");
        seen.push((name, data));
    }
    files.sort();
    assert_eq!(seen.len(), files.len());
    for ((name, data), (want_name, want)) in seen.iter().zip(&files) {
        assert_eq!(name, want_name);
        assert!(
            data == want,
            "{name}: {} bytes, want {}",
            data.len(),
            want.len()
        );
    }
}
