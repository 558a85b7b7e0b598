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
}

pub trait ProgressSink: Send + Sync {
    fn event(&self, event: Event);
}

/// Drops everything (library use and tests).
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn event(&self, _: Event) {}
}
