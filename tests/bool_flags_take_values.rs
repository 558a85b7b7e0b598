//! End to end: build's on/off flags take buildx's `--flag=BOOL` spellings (Go's true/false,
//! 1/0, t/f...) and `=false` really turns them off: `--no-cache`, `--pull`, `--push`, `--quiet`
//! and `--load`. A bare flag still never swallows the next argument (the context).

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use common::{Env, have};
use registry_support::{Auth, Registry};

#[test]
fn no_cache_push_quiet_and_load_take_boolean_values() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox:test\nRUN echo one > /f\n")],
    );
    env.build_ok(&ctx, &[]);
    for (args, cached) in [
        (&["--no-cache=false"][..], true),
        (&["--no-cache=0"][..], true),
        (&["--no-cache"][..], false),
        (&["--no-cache=true"][..], false),
        (&["--no-cache=T"][..], false),
    ] {
        let log = env.build_ok(&ctx, args);
        assert_eq!(log.contains("CACHED"), cached, "{args:?}:\n{log}");
    }

    // --push=false pushes nothing, so it needs no name; --push does.
    env.build_ok(&ctx, &["--push=false"]);
    let out = env.build(&ctx, &["--push"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--push needs a name"));

    // -q prints the id alone; --quiet=false shows the build as usual.
    let out = env.build(&ctx, &["--quiet=false"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("writing image sha256:"));
    let out = env.build(&ctx, &["--quiet=true"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sha256:"));

    // The image is in the store whatever --load says (there is nowhere else to load it).
    env.build_ok(&ctx, &["--load=false", "-t", "loaded:1"]);
    assert_eq!(env.ok(&["run", "--rm", "loaded:1", "cat", "/f"]), "one\n");
    env.build_ok(&ctx, &["--load=true", "-t", "loaded:2"]);

    for arg in ["--no-cache=maybe", "--pull=yes", "--push=", "--load=2"] {
        let out = env.build(&ctx, &[arg]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {stderr}");
        assert!(stderr.contains("is not a boolean"), "{arg}: {stderr}");
    }
}

#[test]
fn pull_false_keeps_the_stored_base_and_pull_true_fetches_the_newer_one() {
    if !have("docker-registry") {
        eprintln!("SKIP: docker-registry is not installed");
        return;
    }
    let reg = Registry::start(Auth::None);
    let base = format!("{}/base/versioned:1", reg.host());
    // The publisher pushes version 1 of the base.
    let publisher = Env::new();
    publisher.busybox_base();
    let publish = |version: &str| {
        let ctx = publisher.context(
            &format!("base{version}"),
            &[(
                "Dockerfile",
                &format!("FROM busybox:test\nRUN echo {version} > /version\n"),
            )],
        );
        publisher.build_ok(&ctx, &["-t", &base, "--push"]);
    };
    publish("1");
    // The user's first build pulls it.
    let user = Env::new();
    let ctx = user.context(
        "app",
        &[(
            "Dockerfile",
            &format!("FROM {base}\nRUN cat /version > /seen\n"),
        )],
    );
    let seen = |args: &[&str]| {
        let mut all = vec!["-t", "app:1"];
        all.extend_from_slice(args);
        user.build_ok(&ctx, &all);
        user.ok(&["run", "--rm", "app:1", "cat", "/seen"])
    };
    assert_eq!(seen(&[]), "1\n");
    publish("2");
    assert_eq!(
        seen(&["--pull=false"]),
        "1\n",
        "--pull=false keeps the stored base"
    );
    assert_eq!(
        seen(&["--pull=true"]),
        "2\n",
        "--pull=true fetches the newer one"
    );
}
