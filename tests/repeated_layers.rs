//! End to end: two steps of one stage that produce the very same layer (`COPY sub sub` twice)
//! stack and run. overlayfs refuses a directory given twice as a lower layer (ELOOP), so the
//! snapshot must not hand it the same unpacked layer twice.

mod common;

use common::Env;

#[test]
fn the_same_layer_twice_in_one_stage_still_runs() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\nCOPY sub sub\nCOPY sub sub\nRUN cat sub/a && echo ran\n",
            ),
            ("sub/a", "content-a\n"),
        ],
    );
    let log = env.build_ok(&ctx, &[]);
    assert!(log.contains("content-a"), "{log}");
    assert!(log.contains(" ran"), "{log}");
}
