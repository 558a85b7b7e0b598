//! The Dockerfiles of BuildKit's check tests (`frontend/dockerfile/dockerfile_check_test.go`)
//! with the warnings BuildKit reports for each (rule, message, line), run through our linter.
//! Base images are taken to be linux/amd64 images whose only variable is PATH (busybox,
//! alpine), as in those tests.

use std::collections::BTreeMap;

use builder_frontend::linter::{BaseImage, LintError, LintOptions, lint};

#[test]
fn buildkit_check_cases() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/buildkit_check_cases.json"
    );
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(path).expect("read cases")).expect("cases JSON");
    let images = |_: &str, _: &str| {
        Some(BaseImage {
            env: vec!["PATH".into()],
            shell: false,
            platform: "linux/amd64".into(),
        })
    };
    let platform_args: BTreeMap<String, String> = [
        ("BUILDPLATFORM", "linux/amd64"),
        ("BUILDOS", "linux"),
        ("BUILDARCH", "amd64"),
        ("BUILDVARIANT", ""),
        ("TARGETPLATFORM", "linux/amd64"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "amd64"),
        ("TARGETVARIANT", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dockerfile = case["dockerfile"].as_str().unwrap();
        let build_args: BTreeMap<String, String> =
            serde_json::from_value(case["build_args"].clone()).unwrap();
        let opts = LintOptions {
            file_name: "Dockerfile",
            build_args: &build_args,
            platform_args: platform_args.clone(),
            target: None,
            all_stages: case["all_stages"].as_bool().unwrap(),
            dockerignore: case["dockerignore"].as_str(),
            base_images: &images,
        };
        let compare_lines = case["compare_lines"].as_bool().unwrap();
        let mut got: Vec<(String, String, usize)> = match lint(dockerfile.as_bytes(), &opts) {
            Ok(r) => r
                .warnings
                .iter()
                .map(|w| (w.rule.name.to_string(), w.message.clone(), w.start_line))
                .collect(),
            // BuildKit's tests whose Dockerfile then fails to parse still expect the warnings
            // of the instructions before the error.
            Err(LintError::Dockerfile { warnings, .. }) => warnings
                .iter()
                .map(|w| (w.rule.name.to_string(), w.message.clone(), w.start_line))
                .collect(),
            Err(e) => vec![("error".into(), e.to_string(), 0)],
        };
        let mut want: Vec<(String, String, usize)> = case["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["rule"].as_str().unwrap().to_string(),
                    w["detail"].as_str().unwrap().to_string(),
                    w["line"].as_u64().unwrap() as usize,
                )
            })
            .collect();
        // BuildKit's tests order warnings by line only; unmarshalled results are not compared
        // by line at all there.
        for list in [&mut got, &mut want] {
            if !compare_lines {
                list.iter_mut().for_each(|w| w.2 = 0);
            }
            list.sort_by(|a, b| (a.2, &a.0, &a.1).cmp(&(b.2, &b.0, &b.1)));
        }
        if got != want {
            failures.push(format!(
                "case {i} ({}):\n{dockerfile}\n  want {want:?}\n  got  {got:?}",
                case["source"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
