//! End to end: `COPY --link` makes a layer that does not depend on what is below it — a changed
//! base keeps the step cached and its layer blob byte-identical (BuildKit's rebase-friendly
//! copies), while a plain COPY reruns. Later steps still see base and copy together.

mod common;

use common::Env;

fn dockerfile(base_line: &str, link: &str) -> String {
    format!(
        "FROM busybox:test\n\
         RUN echo {base_line} > /base\n\
         COPY {link} --chown=1000:1000 app.txt /app/\n\
         RUN cat /base /app/app.txt > /out && stat -c '%u:%g' /app/app.txt >> /out\n"
    )
}

/// Builds and returns (plain progress log, layer digests of the image).
fn build(env: &Env, name: &str, dockerfile: &str) -> (String, Vec<String>) {
    let ctx = env.context(name, &[("Dockerfile", dockerfile), ("app.txt", "app\n")]);
    let tag = format!("{name}:1");
    let out = env.run(&[
        "build",
        "--progress=plain",
        "-t",
        &tag,
        ctx.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let layers = env.inspect(&tag)["rootfs"]["diff_ids"]
        .as_array()
        .expect("rootfs.diff_ids")
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    (log, layers)
}

/// Whether plain progress shows the COPY step (`#N [...] COPY ...`) as `#N CACHED`.
fn cached_copy(log: &str) -> bool {
    log.lines()
        .filter(|l| l.contains("] COPY"))
        .filter_map(|l| l.split_whitespace().next())
        .any(|n| log.lines().any(|l| l == format!("{n} CACHED")))
}

#[test]
fn a_linked_copy_survives_a_changed_base() {
    let env = Env::new();
    env.busybox_base();
    let (_, first) = build(&env, "linked-a", &dockerfile("one", "--link"));
    let (log, second) = build(&env, "linked-b", &dockerfile("two", "--link"));
    assert!(cached_copy(&log), "the linked COPY reran:\n{log}");
    // base layers + RUN + COPY + RUN: the COPY layer (index -2) is the very same blob.
    let n = first.len();
    assert_eq!(first[n - 2], second[n - 2], "COPY --link layer changed");
    assert_ne!(first[n - 3], second[n - 3], "the base RUN did change");
    assert_ne!(first[n - 1], second[n - 1], "the step after the copy reran");
    assert_eq!(
        env.ok(&["run", "--rm", "linked-b:1", "cat", "/out"]),
        "two\napp\n1000:1000\n"
    );

    // The same change with a plain COPY reruns it (what --link is for).
    build(&env, "plain-a", &dockerfile("three", ""));
    let (log, _) = build(&env, "plain-b", &dockerfile("four", ""));
    assert!(
        !cached_copy(&log),
        "a plain COPY was cached over a new base:\n{log}"
    );
}

#[test]
fn linked_copy_needs_numeric_chown() {
    let env = Env::new();
    let ctx = env.context(
        "named",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY --link --chown=app a.txt /\n",
            ),
            ("a.txt", "a\n"),
        ],
    );
    let out = env.run(&["build", ctx.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:2") && stderr.contains("numeric ids"),
        "{stderr}"
    );
}

/// `.` names the working directory even where nothing exists yet to tell it is one: a linked
/// copy runs on an empty root, so `COPY --link f .` under `WORKDIR /var/www` must still land at
/// `/var/www/f` (it made a file `/var/www`, and the next RUN could not enter its workdir).
#[test]
fn linked_copy_to_dot_lands_in_the_working_directory() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "dot",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\nWORKDIR /var/www\nCOPY --link testfile .\nRUN pwd && cat testfile\n",
            ),
            ("testfile", "test-content\n"),
        ],
    );
    let log = env.build_ok(&ctx, &[]);
    assert!(log.contains(" /var/www\n"), "{log}");
    assert!(log.contains(" test-content\n"), "{log}");
}
