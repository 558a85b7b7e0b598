//! BuildKit's dockerfile_history_test.go, ported: what the image history records for each
//! instruction, against the real binary and the offline `busybox:test` base.

mod common;

use common::Env;
use serde_json::{Value, json};

/// The history entries the build added on top of `busybox:test` (whose own 3 come first).
fn new_history(env: &Env, name: &str) -> Vec<Value> {
    let base = env.inspect("busybox:test")["history"]
        .as_array()
        .expect("base history")
        .len();
    let history = env.inspect(name)["history"]
        .as_array()
        .expect("history")
        .clone();
    history[base..].to_vec()
}

fn empty(h: &Value) -> bool {
    h["empty_layer"] == json!(true)
}

/// testExportedHistory: metadata instructions and `WORKDIR /` are empty layers; every other
/// step has a layer, the no-op `RUN ["ls"]` too (an empty one).
#[test]
fn exported_history() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "hist",
        &[
            (
                "Dockerfile",
                "FROM busybox:test AS base\nENV foo=bar\nCOPY foo /foo2\n\
                 FROM busybox:test\nLABEL lbl=val\nCOPY --from=base foo2 foo3\nWORKDIR /\n\
                 RUN echo bar > foo4\nRUN [\"ls\"]\nEXPOSE 2375 5000 1234/udp\n",
            ),
            ("foo", "contents0"),
        ],
    );
    env.build_ok(&ctx, &["-t", "hist:1"]);
    let h = new_history(&env, "hist:1");
    assert_eq!(h.len(), 6, "{h:#?}");
    let created_by = |i: usize| h[i]["created_by"].as_str().unwrap_or("").to_string();
    assert!(created_by(0).contains("lbl=val") && empty(&h[0]), "{h:#?}");
    assert!(
        created_by(1).contains("COPY foo2 foo3") && !empty(&h[1]),
        "{h:#?}"
    );
    assert!(
        created_by(2).contains("WORKDIR /") && empty(&h[2]),
        "{h:#?}"
    );
    assert!(
        created_by(3).contains("echo bar > foo4") && !empty(&h[3]),
        "{h:#?}"
    );
    assert!(created_by(4).contains("RUN ls") && !empty(&h[4]), "{h:#?}");
    assert!(
        created_by(5).contains("EXPOSE [1234/udp 2375/tcp 5000/tcp]") && empty(&h[5]),
        "{h:#?}"
    );
    for entry in &h {
        assert!(entry["created"].is_string(), "{h:#?}");
    }
    // One layer per non-empty entry: busybox:test's 3, the COPY and both RUNs.
    let diff_ids = env.inspect("hist:1")["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(diff_ids, 6);
}

/// testExportedHistoryFlattenArgs: a redeclared ARG is listed once in RUN's history, in the
/// place of its first declaration, with its last value.
#[test]
fn exported_history_flatten_args() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "flatten",
        &[(
            "Dockerfile",
            "FROM busybox:test\nARG foo=bar\nARG bar=123\nARG foo=bar2\nRUN ls /etc/\n",
        )],
    );
    env.build_ok(&ctx, &["-t", "flatten:1"]);
    let h = new_history(&env, "flatten:1");
    assert_eq!(h.len(), 4, "{h:#?}");
    assert_eq!(h[0]["created_by"], "ARG foo=bar");
    assert!(h[1]["created_by"].as_str().unwrap().contains("ARG bar=123"));
    assert!(
        h[2]["created_by"]
            .as_str()
            .unwrap()
            .contains("ARG foo=bar2")
    );
    let run = h[3]["created_by"].as_str().unwrap();
    assert!(run.contains("ls /etc/"), "{run}");
    assert!(!run.contains("ARG foo=bar"), "{run}");
    assert!(run.contains("RUN |2 foo=bar2 bar=123 "), "{run}");
}

/// WORKDIR's history is the absolute, cleaned directory (BuildKit's dispatchWorkdir), and
/// `WORKDIR /` adds no layer.
#[test]
fn workdir_history_records_the_absolute_directory() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "workdir",
        &[(
            "Dockerfile",
            "FROM busybox:test\nARG D=app\nWORKDIR /\nWORKDIR $D/sub\nWORKDIR ../other/\n",
        )],
    );
    env.build_ok(&ctx, &["-t", "workdir:1"]);
    let h = new_history(&env, "workdir:1");
    let texts: Vec<(&str, bool)> = h
        .iter()
        .map(|e| (e["created_by"].as_str().unwrap(), empty(e)))
        .collect();
    assert_eq!(
        texts,
        [
            ("ARG D=app", true),
            ("WORKDIR /", true),
            ("WORKDIR /app/sub", false),
            ("WORKDIR /app/other", false),
        ]
    );
    assert_eq!(
        env.inspect("workdir:1")["config"]["WorkingDir"],
        "/app/other"
    );
}

/// BuildKit's COPY/ADD history: the keyword, --parents, --chown and --chmod, the expanded
/// sources and the destination (not --from, --link or --exclude).
#[test]
fn copy_history_is_written_as_buildkit_writes_it() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "copyhist",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\nARG F=a.txt\n\
                 COPY --link --chown=0:0 --chmod=640 --exclude=*.md $F b.txt /dst/\n\
                 ADD --chmod=600 $F /added\nCOPY <<EOT /doc\nhi\nEOT\n",
            ),
            ("a.txt", "a"),
            ("b.txt", "b"),
        ],
    );
    env.build_ok(&ctx, &["-t", "copyhist:1"]);
    let h = new_history(&env, "copyhist:1");
    let texts: Vec<&str> = h
        .iter()
        .map(|e| e["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts[1..],
        [
            "COPY --chown=0:0 --chmod=640 a.txt b.txt /dst/ # buildkit",
            "ADD --chmod=600 a.txt /added # buildkit",
            "COPY <<EOT /doc # buildkit",
        ]
    );
}

/// As BuildKit: a step that changes nothing still adds a layer, an empty one (`RUN true`,
/// `WORKDIR` of a directory that exists), and its history entry is a layer's; a rebuild keeps
/// them cached.
#[test]
fn a_step_that_changes_nothing_adds_an_empty_layer() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "noop",
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN true\nWORKDIR /tmp\nRUN true\n",
        )],
    );
    env.build_ok(&ctx, &["-t", "noop:1"]);
    let h = new_history(&env, "noop:1");
    assert_eq!(h.len(), 3, "{h:#?}");
    assert!(h.iter().all(|e| !empty(e)), "{h:#?}");
    let image = env.inspect("noop:1");
    let diff_ids = image["rootfs"]["diff_ids"].as_array().unwrap();
    let base = env.inspect("busybox:test")["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(diff_ids.len(), base + 3);
    // The three are the same empty tar: 1024 zero bytes.
    let empty_tar = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
    assert!(
        diff_ids[base..].iter().all(|d| d == empty_tar),
        "{diff_ids:?}"
    );
    let log = env.build_ok(&ctx, &["-t", "noop:2"]);
    assert_eq!(log.matches("CACHED").count(), 3, "{log}");
    assert_eq!(env.inspect("noop:2")["rootfs"], image["rootfs"]);
}
