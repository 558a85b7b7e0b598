//! End to end: a `--output`, `--cache-to` or `--cache-from` key that builder does not implement
//! (buildx's `mounts=`, `registry.insecure=`, `store=`, `oci-artifact=`...) fails
//! the build before anything runs, naming the key — never accepted and ignored. So does a key
//! given twice, and `dest=-` for type=local (a directory cannot be a stream).

mod common;

use common::Env;

#[test]
fn unimplemented_output_and_cache_keys_are_refused_by_name() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "x")],
    );
    let d = env.path("out");
    let d = d.to_str().unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        // (mounts=true exports cache mounts: tests/cache_mounts_travel_with_the_cache.rs.)
        (
            "--cache-to",
            format!("type=local,dest={d},mode=max,mounts=sometimes"),
            "mounts",
        ),
        (
            "--cache-to",
            format!("type=local,dest={d},compression=zstd"),
            "compression",
        ),
        (
            "--cache-to",
            "type=registry,ref=localhost:5000/c:1,oci-mediatypes=true".into(),
            "oci-mediatypes",
        ),
        (
            "--cache-to",
            "type=registry,ref=localhost:5000/c:1,image-manifest=true".into(),
            "image-manifest",
        ),
        (
            "--cache-to",
            "type=inline,ignore-error=true".into(),
            "ignore-error",
        ),
        (
            "--cache-to",
            format!("type=local,dest={d},dest={d}2"),
            "dest is given twice",
        ),
        (
            "--cache-from",
            format!("type=local,src={d},digest=sha256:00"),
            "digest",
        ),
        (
            "--cache-from",
            "type=registry,ref=localhost:5000/c:1,tag=x".into(),
            "tag",
        ),
        (
            "--output",
            "type=image,name=localhost:5000/app:1,registry.insecure=true".into(),
            "registry.insecure",
        ),
        ("--output", "type=image,push=true".into(), "tag is needed"),
        (
            "--output",
            "type=image,name=localhost:5000/app:1,store=false".into(),
            "store",
        ),
        (
            "--output",
            format!("type=oci,dest={d}.tar,annotation-bogus.org.example=x"),
            "annotation-bogus.org.example",
        ),
        (
            "--output",
            format!("type=oci,dest={d}.tar,oci-mediatypes=maybe"),
            "oci-mediatypes",
        ),
        (
            "--output",
            format!("type=oci,dest={d}.tar,oci-artifact=true"),
            "oci-artifact",
        ),
        (
            "--output",
            format!("type=docker,dest={d}.tar,force-compression=maybe"),
            "force-compression",
        ),
        (
            "--output",
            format!("type=tar,dest={d}.tar,oci-mediatypes=true"),
            "oci-mediatypes",
        ),
        (
            "--output",
            format!("type=local,dest={d},platform-split=false"),
            "platform-split",
        ),
        (
            "--output",
            format!("type=tar,dest={d}.tar,dest={d}2.tar"),
            "dest is given twice",
        ),
        ("--output", "type=local,dest=-".into(), "stdout"),
    ];
    for (flag, value, names) in &cases {
        let out = env.build(&ctx, &[flag, value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(names),
            "{flag} {value} should name {names}: {stderr}"
        );
        assert!(!stderr.contains("#1 "), "nothing runs: {stderr}");
    }
    // Nothing was written where the refused outputs pointed, not even a directory named `-`.
    assert!(!std::path::Path::new(d).exists());
    assert!(!ctx.join("-").exists() && !std::path::Path::new("-").exists());

    // The keys that have an effect are still accepted.
    env.build_ok(
        &ctx,
        &[
            "--output",
            &format!("type=oci,dest={d}.tar,compression=gzip,compression-level=6"),
            "--cache-to",
            &format!("type=local,dest={d}-cache,mode=max,ignore-error=false"),
            "--cache-to",
            "type=inline,mode=min",
        ],
    );
    env.build_ok(
        &ctx,
        &["--cache-from", &format!("type=local,src={d}-cache")],
    );
}
