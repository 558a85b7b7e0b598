//! Ctrl-C (SIGINT) and SIGTERM during a build: cancel it cleanly instead of dying mid-write.
//!
//! The handler only records the signal and wakes a watcher thread through a pipe (the only
//! things a handler may safely do); the watcher cancels the build (builder_solver::cancel),
//! which kills running steps and lets the build unwind through its normal error paths:
//! scratch snapshots removed, leases released, exit code 128+signal as docker's. If the
//! build has not finished unwinding after [`GRACE`], or a second signal comes, it exits at once.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// How long a cancelled build may take to clean up before we stop waiting for it.
const GRACE: Duration = Duration::from_secs(10);

/// The first signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Write end of the wake-up pipe, -1 until installed.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = [0u8];
        // SAFETY: write is async-signal-safe; the buffer is valid for one byte.
        unsafe { libc::write(fd, byte.as_ptr().cast(), 1) };
    }
}

/// The exit code for a run that was interrupted, if it was.
pub fn exit_code() -> Option<u8> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(u8::try_from(128 + sig).unwrap_or(130)),
    }
}

/// Installs the handlers and the watcher thread. Call once, before the build starts.
pub fn cancel_build_on_signal() -> std::io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 returns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned this descriptor; nothing else owns it.
    let read_end = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    WAKE_FD.store(fds[1], Ordering::SeqCst);
    std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || watch(std::fs::File::from(read_end)))?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a valid handler and empty mask is well-formed.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        // SAFETY: act is fully initialised; the handler only makes async-signal-safe calls.
        if unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn watch(mut wake: std::fs::File) {
    let mut byte = [0u8; 1];
    if !matches!(wake.read(&mut byte), Ok(1)) {
        return;
    }
    errln!("interrupted: cancelling the build (again to quit at once)");
    builder_solver::cancel::cancel();
    // Unwinding normally ends the process well within the grace period; this thread only
    // matters when something does not notice the cancellation.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(wake.read(&mut byte));
    });
    let _ = rx.recv_timeout(GRACE);
    std::process::exit(i32::from(exit_code().unwrap_or(130)));
}
