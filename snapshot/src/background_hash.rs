//! The layer tar's sha256 computed on a thread of its own.
//!
//! Why: sha256 runs at ~2 GB/s on one core (sha2 and `openssl speed -evp sha256` agree on this
//! VM's SHA-NI), and it is the only thing a plain layer's writer does besides reading files
//! and handing bytes to the blob writer (which writes on its own thread, see
//! `builder_store`'s direct writer). Done on the writing thread, a 1 GB layer took the read,
//! the copy and the hash in turn; here the thread reads and writes while another hashes: ten
//! 100 MB files, uncompressed, 789 → 727 ms for the whole build (BENCHMARKS.md, "Issue #17
//! (item 4)").
//!
//! A layer under one batch (1 MiB) is hashed on the caller's thread at the end: most layers
//! are small, and starting a thread would cost more than hashing them.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use builder_store::{Digest, Hasher};

/// Bytes handed to the hashing thread at a time.
const BATCH: usize = 1 << 20;

/// Batches in flight at most (being filled, queued, being hashed): bounds the memory to
/// `BATCHES` MiB and makes the writer wait when hashing falls behind.
const BATCHES: usize = 4;

/// Like `builder_store::HashingWriter`: passes everything to `inner`, and hashes and counts it.
pub(crate) struct BackgroundHashingWriter<W> {
    inner: W,
    /// Written, not yet handed to the hasher.
    pending: Vec<u8>,
    hashing: Hashing,
    len: u64,
}

enum Hashing {
    /// Less than a batch so far.
    Here(Hasher),
    Thread {
        full: SyncSender<Vec<u8>>,
        empty: Receiver<Vec<u8>>,
        /// Batches allocated so far (at most `BATCHES`).
        batches: usize,
        thread: JoinHandle<Hasher>,
    },
}

impl<W: Write> BackgroundHashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        BackgroundHashingWriter {
            inner,
            pending: Vec::with_capacity(BATCH),
            hashing: Hashing::Here(Hasher::new()),
            len: 0,
        }
    }

    /// Digest and byte count of what was written, and the inner writer.
    pub(crate) fn finish(self) -> (Digest, u64, W) {
        let BackgroundHashingWriter {
            inner,
            pending,
            hashing,
            len,
        } = self;
        let hasher = match hashing {
            Hashing::Here(mut hasher) => {
                hasher.update(&pending);
                hasher
            }
            Hashing::Thread { full, thread, .. } => {
                // The thread is alive until it has the sender's drop, so this send succeeds.
                let _ = full.send(pending);
                drop(full);
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }
        };
        (hasher.finish(), len, inner)
    }

    /// Hands the full batch to the hashing thread (starting it with the first) and takes an
    /// empty one.
    fn pass_on(&mut self) {
        let next = match &mut self.hashing {
            Hashing::Here(hasher) => {
                let hasher = std::mem::take(hasher);
                let (full, full_rx) = sync_channel::<Vec<u8>>(BATCHES);
                let (empty_tx, empty) = sync_channel::<Vec<u8>>(BATCHES);
                let thread = std::thread::spawn(move || hash_batches(hasher, &full_rx, &empty_tx));
                self.hashing = Hashing::Thread {
                    full,
                    empty,
                    batches: 1,
                    thread,
                };
                return self.pass_on();
            }
            Hashing::Thread { empty, batches, .. } => match empty.try_recv() {
                Ok(batch) => batch,
                Err(_) if *batches < BATCHES => {
                    *batches += 1;
                    Vec::with_capacity(BATCH)
                }
                // The hasher is behind: wait for it. If it is gone (it panicked), `finish`
                // reports the panic; until then batches are kept here.
                Err(_) => empty.recv().unwrap_or_else(|_| Vec::with_capacity(BATCH)),
            },
        };
        let batch = std::mem::replace(&mut self.pending, next);
        if let Hashing::Thread { full, .. } = &self.hashing
            && let Err(back) = full.send(batch)
        {
            // Only a panicked hasher refuses: keep the bytes so `finish` still joins it.
            self.pending = back.0;
        }
    }
}

fn hash_batches(
    mut hasher: Hasher,
    full: &Receiver<Vec<u8>>,
    empty: &SyncSender<Vec<u8>>,
) -> Hasher {
    while let Ok(mut batch) = full.recv() {
        hasher.update(&batch);
        batch.clear();
        // The writer may be finishing and no longer take batches back.
        let _ = empty.send(batch);
    }
    hasher
}

impl<W: Write> Write for BackgroundHashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.len += n as u64;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let room = BATCH - self.pending.len();
            let take = room.min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == BATCH {
                self.pass_on();
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_and_length_are_those_of_every_byte_written() {
        for lens in [
            vec![],
            vec![5],
            vec![BATCH],
            vec![BATCH - 1, 1, 1],
            vec![3 * BATCH + 17, 100, BATCH * 2],
            vec![BATCH / 3; 40],
        ] {
            let mut w = BackgroundHashingWriter::new(Vec::new());
            let mut all = Vec::new();
            for (i, &len) in lens.iter().enumerate() {
                let data: Vec<u8> = (0..len).map(|k| (k * 7 + i) as u8).collect();
                w.write_all(&data).unwrap();
                all.extend_from_slice(&data);
            }
            let (digest, len, inner) = w.finish();
            assert_eq!(len, all.len() as u64, "{lens:?}");
            assert_eq!(digest, Digest::of(&all), "{lens:?}");
            assert!(
                inner == all,
                "the inner writer got other bytes for {lens:?}"
            );
        }
    }
}
