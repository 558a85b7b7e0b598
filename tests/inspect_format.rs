//! End to end: `builder inspect --format` applies docker's Go-template subset to the JSON
//! `inspect` prints — field paths, `json`, `index`, `len`, `join` — one line per image, and
//! refuses template syntax it does not implement instead of printing something else.

mod common;

use common::Env;

fn image(env: &Env) -> serde_json::Value {
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nENV A=b C=d\nLABEL team=core\nCOPY f /f\n",
        )],
    );
    std::fs::write(ctx.join("f"), "x").unwrap();
    env.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "fmt:1",
        ctx.to_str().unwrap(),
    ]);
    env.ok(&["tag", "fmt:1", "fmt:2"]);
    env.inspect("fmt:1")
}

#[test]
fn format_fields_json_and_index_as_docker_prints_them() {
    let env = Env::new();
    let full = image(&env);
    let format = |f: &str| env.ok(&["inspect", "--format", f, "fmt:1"]);

    assert_eq!(
        format("{{.Id}}"),
        format!("{}\n", full["Id"].as_str().unwrap())
    );
    let config: serde_json::Value = serde_json::from_str(&format("{{json .Config}}")).unwrap();
    assert_eq!(config, full["config"]);
    assert_eq!(format("{{index .RepoTags 0}}"), "fmt:1\n");
    assert_eq!(
        format("{{len .RepoTags}} {{join .RepoTags \",\"}}"),
        "2 fmt:1,fmt:2\n"
    );
    assert_eq!(
        format("{{.Os}}/{{.Architecture}}"),
        format!(
            "{}/{}\n",
            full["os"].as_str().unwrap(),
            full["architecture"].as_str().unwrap()
        )
    );
    // Go prints a list as [a b], a map as map[k:v].
    let env_list: Vec<&str> = full["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        format("{{.Config.Env}}"),
        format!("[{}]\n", env_list.join(" "))
    );
    assert_eq!(format("{{.Config.Labels}}"), "map[team:core]\n");
    assert_eq!(format("{{index .Config.Labels \"team\"}}"), "core\n");
    // Literal text around actions is kept; -f is the short form; one line per image.
    let two = env.ok(&[
        "inspect",
        "-f",
        "id={{.Id}} tag={{index .RepoTags 1}}",
        "fmt:1",
        "fmt:2",
    ]);
    let line = format!("id={} tag=fmt:2", full["Id"].as_str().unwrap());
    assert_eq!(two, format!("{line}\n{line}\n"));
}

#[test]
fn unsupported_template_syntax_is_refused() {
    let env = Env::new();
    image(&env);
    for (template, says) in [
        ("{{if .Id}}x{{end}}", "if"),
        ("{{range .RepoTags}}{{.}}{{end}}", "range"),
        ("{{.Id | printf \"%s\"}}", "|"),
        ("{{printf \"%s\" .Id}}", "printf"),
        ("{{- .Id}}", "trim"),
        ("{{$x := .Id}}", "$"),
        ("{{.Id", "unclosed"),
    ] {
        let out = env.run(&["inspect", "--format", template, "fmt:1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{template}: {stderr}");
        assert!(stderr.contains(says), "{template}: {stderr}");
        assert!(out.stdout.is_empty(), "{template} printed something");
    }
    // A field inspect does not have is an error naming it, not an empty line.
    let out = env.run(&["inspect", "--format", "{{.Nope}}", "fmt:1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(".Nope: no such field"), "{stderr}");
    assert!(out.stdout.is_empty());
}
