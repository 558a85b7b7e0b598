//! Test harness for tests/: `builder-sandbox-harness '<json HarnessSpec>'` (or `-` to read
//! the JSON from stdin).
//!
//! It is what a real CLI does (dispatch_init, enter_rootless_userns, then run) and prints one
//! JSON `HarnessOutput` line: the user-namespace mode, the uid map, the run outcome, and the
//! payload's stdout/stderr captured through pipes (Stdio::Fd).

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use builder_sandbox::{MountSpec, Network, RunSpec, Stdio};
use serde::{Deserialize, Serialize};

#[derive(Clone, Deserialize)]
struct HarnessSpec {
    rootfs: PathBuf,
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default = "root_dir")]
    cwd: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    hostname: String,
    #[serde(default = "host_network")]
    network: Network,
    #[serde(default)]
    mounts: Vec<MountSpec>,
    /// Cancel the sandbox after this long (exercises Sandbox::kill).
    #[serde(default)]
    kill_after_ms: Option<u64>,
    /// Run this many copies concurrently from separate threads of this one process.
    #[serde(default)]
    parallel: Option<usize>,
    /// Remove the created mount stubs after the run (remove_mount_stubs).
    #[serde(default)]
    remove_stubs: bool,
    /// Drop the Sandbox after this long without waiting (cancel by drop).
    #[serde(default)]
    drop_after_ms: Option<u64>,
    /// Exit the harness after this long without waiting (a crashing caller).
    #[serde(default)]
    abandon_after_ms: Option<u64>,
}

fn root_dir() -> String {
    "/".into()
}

fn host_network() -> Network {
    Network::Host
}

#[derive(Serialize)]
struct HarnessOutput {
    userns: String,
    uid_map: String,
    /// "Exited(0)" style status, or the error's Display text.
    status: Option<String>,
    error: Option<String>,
    created_mount_points: Vec<String>,
    removed_stubs: Vec<String>,
    stdout: String,
    stderr: String,
    /// With `parallel`, the outputs of the other concurrent runs.
    parallel: Vec<HarnessOutput>,
}

fn main() {
    builder_sandbox::dispatch_init();
    let userns = match builder_sandbox::enter_rootless_userns() {
        Ok(info) => format!("{:?}", info.mode),
        Err(e) => {
            eprintln!("harness: {e}");
            std::process::exit(2);
        }
    };
    let Some(arg) = std::env::args().nth(1) else {
        eprintln!("usage: builder-sandbox-harness '<json spec>'");
        std::process::exit(2);
    };
    // "-": read the spec from stdin (argv strings are capped at 128 KiB by the kernel).
    let text = if arg == "-" {
        let mut buf = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut buf) {
            eprintln!("harness: read spec from stdin: {e}");
            std::process::exit(2);
        }
        buf
    } else {
        arg
    };
    let spec: HarnessSpec = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("harness: bad spec: {e}");
            std::process::exit(2);
        }
    };
    let out = match spec.parallel {
        Some(n) if n > 1 => run_parallel(spec, userns, n),
        _ => run(spec, userns),
    };
    println!("{}", serde_json::to_string(&out).unwrap_or_default());
}

fn run(spec: HarnessSpec, userns: String) -> HarnessOutput {
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let mut output = HarnessOutput {
        userns,
        uid_map,
        status: None,
        error: None,
        created_mount_points: Vec::new(),
        removed_stubs: Vec::new(),
        stdout: String::new(),
        stderr: String::new(),
        parallel: Vec::new(),
    };
    let pipes = std::io::pipe().and_then(|o| std::io::pipe().map(|e| (o, e)));
    let ((out_r, out_w), (err_r, err_w)) = match pipes {
        Ok(p) => p,
        Err(e) => {
            output.error = Some(format!("pipe: {e}"));
            return output;
        }
    };
    let rootfs = spec.rootfs.clone();
    let run_spec = RunSpec {
        rootfs: spec.rootfs,
        args: spec.args,
        env: spec.env,
        cwd: spec.cwd,
        user: spec.user,
        hostname: spec.hostname,
        network: spec.network,
        security: Default::default(),
        extra_hosts: vec![],
        shm_size: None,
        ulimits: vec![],
        mounts: spec.mounts,
        stdin: Stdio::Null,
        stdout: Stdio::Fd(OwnedFd::from(out_w)),
        stderr: Stdio::Fd(OwnedFd::from(err_w)),
        limits: Default::default(),
        isolation: builder_sandbox::Isolation::Rootless,
    };
    let out_reader = drain(out_r);
    let err_reader = drain(err_r);
    let result = builder_sandbox::spawn(run_spec).and_then(|sandbox| {
        if let Some(ms) = spec.kill_after_ms {
            std::thread::sleep(Duration::from_millis(ms));
            sandbox.kill()?;
        }
        if let Some(ms) = spec.drop_after_ms {
            std::thread::sleep(Duration::from_millis(ms));
            drop(sandbox);
            return Err(builder_sandbox::SandboxError::Protocol("dropped".into()));
        }
        if let Some(ms) = spec.abandon_after_ms {
            std::thread::sleep(Duration::from_millis(ms));
            std::process::exit(3);
        }
        sandbox.wait()
    });
    match result {
        Ok(report) => {
            output.status = Some(format!("{:?}", report.status));
            if spec.remove_stubs {
                match builder_sandbox::remove_mount_stubs(&rootfs, &report.created_mount_points) {
                    Ok(removed) => output.removed_stubs = removed,
                    Err(e) => output.error = Some(e.to_string()),
                }
            }
            output.created_mount_points = report.created_mount_points;
        }
        Err(e) => output.error = Some(e.to_string()),
    }
    output.stdout = out_reader.join().unwrap_or_default();
    output.stderr = err_reader.join().unwrap_or_default();
    output
}

fn run_parallel(spec: HarnessSpec, userns: String, n: usize) -> HarnessOutput {
    let threads: Vec<JoinHandle<HarnessOutput>> = (0..n)
        .map(|_| {
            let (spec, userns) = (spec.clone(), userns.clone());
            std::thread::spawn(move || run(spec, userns))
        })
        .collect();
    let mut outputs: Vec<HarnessOutput> =
        threads.into_iter().filter_map(|t| t.join().ok()).collect();
    let mut first = outputs.remove(0);
    first.parallel = outputs;
    first
}

fn drain(mut r: std::io::PipeReader) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}
