//! End to end: `--output type=image,name=A` and `type=docker,name=A` name the built image in the
//! store (several names comma-separated in a quoted field, as buildx takes them), with or
//! without `-t`; a docker archive written by such an output carries the names for
//! `docker load`.

mod common;

use common::{Env, tar_entries};

#[test]
fn output_names_tag_the_image_in_the_store() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "x")],
    );
    env.build_ok(&ctx, &["--output", "type=image,name=named:1"]);
    assert!(env.inspect("named:1")["Id"].is_string());

    // Several names, and -t as well: all of them name the image.
    env.build_ok(
        &ctx,
        &[
            "-t",
            "tagged:1",
            "--output",
            "type=image,\"name=multi:1,localhost:5000/app:2\"",
        ],
    );
    let id = env.inspect("tagged:1")["Id"].clone();
    for name in ["multi:1", "localhost:5000/app:2"] {
        assert_eq!(env.inspect(name)["Id"], id, "{name}");
    }
    let tags = env.inspect("multi:1")["RepoTags"].clone();
    for name in ["multi:1", "tagged:1", "localhost:5000/app:2"] {
        assert!(
            tags.as_array().unwrap().iter().any(|t| t == name),
            "{name} in {tags}"
        );
    }

    // type=docker without dest loads into the store; with dest the archive names the image too.
    env.build_ok(&ctx, &["--output", "type=docker,name=loaded:1"]);
    assert!(env.inspect("loaded:1")["Id"].is_string());
    let archive = env.path("img.tar");
    env.build_ok(
        &ctx,
        &[
            "--output",
            &format!("type=docker,name=archived:1,dest={}", archive.display()),
        ],
    );
    assert!(env.inspect("archived:1")["Id"].is_string());
    let entries = tar_entries(std::fs::File::open(&archive).unwrap());
    let manifest = &entries.iter().find(|e| e.0 == "manifest.json").unwrap().5;
    assert!(manifest.contains("archived:1"), "{manifest}");

    // A name that is not a reference is refused, naming it.
    let out = env.build(&ctx, &["--output", "type=image,name=Bad Name"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Bad Name"));
}
