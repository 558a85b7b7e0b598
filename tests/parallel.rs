//! End to end: independent stages run at the same time, and identical steps run once.

mod common;

use std::time::Instant;

use common::Env;

#[test]
fn four_independent_stages_run_concurrently() {
    let env = Env::new();
    env.busybox_base();
    let mut dockerfile = String::new();
    for n in 1..=4 {
        dockerfile.push_str(&format!(
            "FROM busybox:test AS s{n}\nRUN sleep 2 && echo {n} > /out{n}\n"
        ));
    }
    dockerfile.push_str("FROM busybox:test\n");
    for n in 1..=4 {
        dockerfile.push_str(&format!("COPY --from=s{n} /out{n} /\n"));
    }
    let ctx = env.context("par", &[("Dockerfile", &dockerfile)]);
    let start = Instant::now();
    env.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "par:1",
        ctx.to_str().unwrap(),
    ]);
    let elapsed = start.elapsed();
    // Sequentially this is at least 8 s of sleeping.
    assert!(
        elapsed.as_secs_f64() < 6.0,
        "four 2 s stages took {elapsed:?}"
    );
    assert_eq!(
        env.ok(&[
            "run", "--rm", "par:1", "cat", "/out1", "/out2", "/out3", "/out4"
        ]),
        "1\n2\n3\n4\n"
    );
}

#[test]
fn identical_steps_in_two_stages_run_once() {
    let env = Env::new();
    env.busybox_base();
    let step = "RUN cat /proc/sys/kernel/random/uuid > /stamp";
    let dockerfile = format!(
        "FROM busybox:test AS a\n{step}\nFROM busybox:test AS b\n{step}\nFROM busybox:test\nCOPY --from=a /stamp /a\nCOPY --from=b /stamp /b\n"
    );
    let ctx = env.context("dedup", &[("Dockerfile", &dockerfile)]);
    env.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "dedup:1",
        ctx.to_str().unwrap(),
    ]);
    let stamps = env.ok(&["run", "--rm", "dedup:1", "cat", "/a", "/b"]);
    let lines: Vec<&str> = stamps.lines().collect();
    assert_eq!(
        lines[0], lines[1],
        "the second stage reused the first one's result"
    );
}
