//! Cancelling a build (Ctrl-C, SIGTERM): the CLI's signal watcher calls [`cancel`]; every
//! running RUN sandbox is told to stop (its init SIGKILLs the step's whole pid namespace), and
//! the scheduler starts nothing new. The steps then fail with [`crate::executor::SolveError::Cancelled`]
//! and unwind normally, so their scratch snapshots and the build lease are released by the
//! same code paths as any failure, instead of being left behind by a process that just died.
//!
//! Process-wide on purpose: a signal is.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static CANCELLED: AtomicBool = AtomicBool::new(false);
/// Pids of the sandbox inits of running steps.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Stop the build: no new steps, running sandboxes killed. Not for signal handlers
/// (it locks); call it from a thread that the handler wakes.
pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
    // Long COPYs and layer writes poll this one.
    builder_snapshot::cancel::request_cancel();
    for pid in RUNNING.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        stop(*pid);
    }
}

pub fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// A running sandbox, known to [`cancel`] until this is dropped.
pub(crate) struct Tracked(u32);

/// Registers a started sandbox; stops it at once if the build was cancelled meanwhile.
pub(crate) fn track(init_pid: u32) -> Tracked {
    RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(init_pid);
    if is_cancelled() {
        stop(init_pid);
    }
    Tracked(init_pid)
}

impl Drop for Tracked {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| *p != self.0);
    }
}

/// SIGTERM to a sandbox init means "cancel" (see builder_sandbox::Sandbox::kill).
fn stop(init_pid: u32) {
    if let Ok(pid) = i32::try_from(init_pid) {
        // SAFETY: kill has no memory effects. The pid is a child that is untracked right
        // after the wait that reaps it, so reuse by another process is all but impossible.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}
