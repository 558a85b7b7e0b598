//! Events the solver reports while it works; the CLI renders them (plain, tty, JSON).

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Clone, Debug)]
pub enum Event {
    /// A vertex starts executing.
    Started { vertex: usize, name: String },
    /// A vertex's result came from the cache.
    Cached { vertex: usize, name: String },
    /// A vertex finished.
    Completed {
        vertex: usize,
        name: String,
        elapsed: Duration,
    },
    /// A vertex failed.
    Failed {
        vertex: usize,
        name: String,
        error: String,
    },
    /// Output of a running step.
    Log {
        vertex: usize,
        stream: Stream,
        data: Vec<u8>,
    },
    /// A free-form status line (exporting, writing image...).
    Status { message: String },
    /// Bytes of one blob moved so far (pull, push, export).
    Transfer(Transfer),
}

/// Sent when a blob's transfer starts (`current` 0, or where a resumed transfer picks up), every
/// so often while it runs, and with `current == total` when it is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The blob's digest.
    pub id: String,
    pub kind: TransferKind,
    pub current: u64,
    pub total: u64,
}

/// What a [`Event::Transfer`] is doing with its blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferKind {
    Pull,
    Push,
    Export,
}

impl TransferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Pull => "pull",
            TransferKind::Push => "push",
            TransferKind::Export => "export",
        }
    }
}

pub trait ProgressSink: Send + Sync {
    fn event(&self, event: Event);
}

/// Drops everything (library use and tests).
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn event(&self, _: Event) {}
}
