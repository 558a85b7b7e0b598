//! End to end: Dockerfiles whose stages form long chains build, where walking the chain
//! recursively overflowed the stack (`thread 'main' has overflowed its stack`, exit 134) at
//! about 2,200 `FROM` stages or 3,000 `COPY --from` stages. The conversion of 10,000 stages
//! both ways is checked in `solver/tests/deep_stage_graphs.rs`; here the real binary builds
//! them, and `cache verify` stays clean.

mod common;

use std::os::unix::process::CommandExt;

use common::Env;

/// `FROM scratch AS s0` + `COPY f /f`, then `FROM s{i-1} AS s{i}` up to `s{n-1}`.
fn from_chain(n: usize) -> String {
    let mut df = String::from("FROM scratch AS s0\nCOPY f /f\n");
    for i in 1..n {
        df.push_str(&format!("FROM s{} AS s{i}\n", i - 1));
    }
    df
}

/// `FROM scratch AS s0` + `COPY f /f`, then stages that each `COPY --from` the previous one.
fn copy_from_chain(n: usize) -> String {
    let mut df = String::from("FROM scratch AS s0\nCOPY f /f\n");
    for i in 1..n {
        df.push_str(&format!(
            "FROM scratch AS s{i}\nCOPY --from=s{} /f /f\n",
            i - 1
        ));
    }
    df
}

/// Builds `dockerfile` with a context holding `f`, exporting the result to a local directory,
/// with the main thread's stack limited to `stack` bytes when given (as `ulimit -s`).
fn build_chain(env: &Env, dockerfile: &str, stack: Option<u64>) {
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile), ("f", "chained\n")]);
    let out_dir = env.path("out");
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress=quiet", "-t", "chain:1", "--output"])
        .arg(format!("type=local,dest={}", out_dir.display()))
        .arg(&ctx);
    if let Some(bytes) = stack {
        let limit = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: bytes,
        };
        // SAFETY: setrlimit is async-signal-safe; the main thread of the exec'd builder gets
        // a stack of this size.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_STACK, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().expect("spawn builder");
    assert!(
        out.status.success(),
        "build failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("f")).unwrap(),
        "chained\n"
    );
    verify_clean(env);
}

fn verify_clean(env: &Env) {
    let out = env.run(&["cache", "verify"]);
    assert!(
        out.status.success(),
        "cache verify:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_from_chain_of_10000_stages_builds() {
    // About 6 s in a debug build: the stages add no steps, only the first one's COPY runs.
    build_chain(&Env::new(), &from_chain(10_000), None);
}

#[test]
fn a_copy_from_chain_builds_on_a_small_stack() {
    // Every stage's COPY runs (about 30 ms each in a debug build), so 10,000 stages would take
    // five minutes: the 10,000-stage chain is checked at conversion level instead, and here
    // 100 stages build with a 1 MiB main-thread stack, on which the recursive walk already
    // overflowed at 100 stages (the builder itself needs less than 512 KiB).
    build_chain(&Env::new(), &copy_from_chain(100), Some(1 << 20));
}
