//! Writing to stdout and stderr when the reader may have gone (`builder images | head`).
//!
//! Rust ignores SIGPIPE, so `println!` panics on a closed pipe. Restoring the default
//! disposition for the whole process is not an option: a registry connection or an ssh-agent
//! relay that the peer closes would then kill a build mid-step instead of failing (or retrying)
//! one request. So the policy is Go's, which docker and buildx follow: a write to a broken pipe
//! on fd 1 or 2 ends the process by SIGPIPE, as for any Unix filter; any other descriptor gets
//! EPIPE as an error. Dying there loses nothing: the store is safe against a kill at any point,
//! and sandboxed steps die with their parent.

use std::io::Write;

#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Writes `args` to the stream; a closed pipe ends the process by SIGPIPE, another failure
/// (a full disk under `> file`) with exit code 1 and a message on stderr.
pub fn write(stream: Stream, args: std::fmt::Arguments) {
    let result = match stream {
        Stream::Stdout => std::io::stdout().lock().write_fmt(args),
        Stream::Stderr => std::io::stderr().lock().write_fmt(args),
    };
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => die_of_sigpipe(),
        Err(e) => {
            if let Stream::Stdout = stream {
                let _ = writeln!(std::io::stderr(), "error: writing to stdout: {e}");
            }
            std::process::exit(1);
        }
    }
}

/// Ends the process the way a default SIGPIPE would, so the shell (and `set -o pipefail`) sees
/// what it sees for `ls | head`.
fn die_of_sigpipe() -> ! {
    // SAFETY: restoring the default disposition and raising a signal at ourselves.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Only reached if the signal is blocked.
    std::process::exit(128 + libc::SIGPIPE);
}
