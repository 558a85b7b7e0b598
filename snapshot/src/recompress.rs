//! `recompress_layer`: an existing layer blob in another compression, streamed.
//!
//! A cached step's layer was compressed with whatever the build that made it
//! asked for; a later build asking for another compression needs the same tar
//! (same diff_id) in a new blob, without re-running the step.

use std::io::{self, BufWriter, Read, Write};

use builder_store::HashingWriter;

use crate::compress::{Compression, LayerEncoder, default_threads};
use crate::error::SnapshotError;
use crate::reader::decompressed;
use crate::writer::LayerDigests;

/// Decodes `layer` (gzip, zstd or plain, sniffed) and writes its tar to `out`
/// compressed with `compression`. The returned `diff_id` is the tar's digest as
/// read, so the caller can check it against the one it expects. On error, what
/// was written to `out` is incomplete and must be discarded.
pub fn recompress_layer(
    layer: impl Read,
    out: impl Write,
    compression: Compression,
) -> Result<LayerDigests, SnapshotError> {
    let compressed = HashingWriter::new(BufWriter::with_capacity(256 * 1024, out));
    let encoder = LayerEncoder::new(compressed, compression, default_threads())
        .map_err(SnapshotError::ArchiveWrite)?;
    let mut tar = HashingWriter::new(encoder);
    let mut input = decompressed(layer)?;
    copy(&mut input, &mut tar)?;
    let (diff_id, uncompressed_size, encoder) = tar.finish();
    let compressed = encoder.finish().map_err(SnapshotError::ArchiveWrite)?;
    let (digest, size, buffered) = compressed.finish();
    buffered
        .into_inner()
        .map_err(|e| SnapshotError::ArchiveWrite(e.into_error()))?
        .flush()
        .map_err(SnapshotError::ArchiveWrite)?;
    Ok(LayerDigests {
        diff_id,
        digest,
        size,
        uncompressed_size,
    })
}

/// `io::copy`, keeping read errors (a corrupt input) apart from write errors.
fn copy(input: &mut dyn Read, out: &mut dyn Write) -> Result<(), SnapshotError> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SnapshotError::ArchiveRead(e)),
        };
        out.write_all(&buf[..n])
            .map_err(SnapshotError::ArchiveWrite)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use builder_store::Digest;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn converts_between_every_pair_keeping_the_diff_id() {
        let big = b"layer line\n".repeat(200_000);
        let tar = tar_of(&[("a", b"hello"), ("big", &big)]);
        let diff_id = Digest::of(&tar);
        let all = [
            Compression::Uncompressed,
            Compression::GZIP_DEFAULT,
            Compression::ZSTD_DEFAULT,
        ];
        for from in all {
            let mut src = Vec::new();
            recompress_layer(&tar[..], &mut src, from).unwrap();
            for to in all {
                let mut out = Vec::new();
                let d = recompress_layer(&src[..], &mut out, to).unwrap();
                assert_eq!(d.diff_id, diff_id, "{from:?} → {to:?}");
                assert_eq!(d.uncompressed_size, tar.len() as u64);
                assert_eq!((d.digest, d.size), (Digest::of(&out), out.len() as u64));
                // Back to plain: the very same tar.
                let mut plain = Vec::new();
                recompress_layer(&out[..], &mut plain, Compression::Uncompressed).unwrap();
                assert!(plain == tar, "{from:?} → {to:?}");
            }
        }
    }

    #[test]
    fn corrupt_input_is_a_read_error() {
        let mut gz = Vec::new();
        recompress_layer(
            &tar_of(&[("a", b"x")])[..],
            &mut gz,
            Compression::GZIP_DEFAULT,
        )
        .unwrap();
        let cut = gz.len() - 12;
        gz[cut] ^= 0xff;
        let err = recompress_layer(&gz[..], io::sink(), Compression::ZSTD_DEFAULT).unwrap_err();
        assert!(matches!(err, SnapshotError::ArchiveRead(_)), "{err}");
    }
}
