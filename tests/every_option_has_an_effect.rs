//! The audit: every flag of every `builder` command (as its `--help` lists them) is either
//! exercised by an end-to-end test named here, or refused with a message a test checks, and is
//! described in docs/options.md. A new flag fails this test until it is added to the table with
//! the test that drives it: "accepted and ignored" cannot slip in unnoticed.
//!
//! Each table row names test files under tests/ as `file.rs` (the file must contain `--FLAG`)
//! or `file.rs:TEXT` (the file must contain TEXT, for short spellings like `"-q"`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::Env;

/// Flags every command has (clap's `global`), listed once under this name.
const GLOBAL: &str = "(all)";

/// (command, flag without dashes, test files exercising it)
const TABLE: &[(&str, &str, &[&str])] = &[
    (GLOBAL, "root", &["image_command_flags.rs"]),
    (
        GLOBAL,
        "isolation",
        &["chroot_isolation.rs", "sandbox_setup_failures.rs"],
    ),
    (
        "build",
        "tag",
        &[
            "output_names_tag_the_image.rs:\"-t\"",
            "bool_flags_take_values.rs:\"-t\"",
        ],
    ),
    ("build", "file", &["file_names.rs:\"-f\""]),
    (
        "build",
        "build-arg",
        &["buildkit_build_args.rs", "run_steps.rs"],
    ),
    ("build", "target", &["target_stage_arg.rs"]),
    ("build", "label", &["build_scratch.rs"]),
    ("build", "no-cache", &["bool_flags_take_values.rs"]),
    ("build", "no-cache-filter", &["cache_share.rs"]),
    (
        "build",
        "cache-from",
        &["cache_share.rs", "unknown_option_keys_are_refused.rs"],
    ),
    (
        "build",
        "cache-to",
        &["cache_share.rs", "unknown_option_keys_are_refused.rs"],
    ),
    ("build", "pull", &["bool_flags_take_values.rs"]),
    (
        "build",
        "push",
        &["bool_flags_take_values.rs", "registry_cli.rs"],
    ),
    ("build", "iidfile", &["build_scratch.rs"]),
    ("build", "metadata-file", &["registry_cli.rs"]),
    (
        "build",
        "output",
        &[
            "output_to_stdout.rs",
            "output_names_tag_the_image.rs",
            "unknown_option_keys_are_refused.rs",
        ],
    ),
    ("build", "secret", &["secret_sources.rs", "run_steps.rs"]),
    ("build", "ssh", &["ssh_mount.rs", "ssh_key_files.rs"]),
    (
        "build",
        "platform",
        &[
            "build_flags.rs",
            "multi_platform_index.rs",
            "foreign_platform_run_steps.rs",
        ],
    ),
    ("build", "annotation", &["output_annotations.rs"]),
    ("build", "on-error", &["debug_failed_step.rs"]),
    ("build", "check", &["build_checks.rs"]),
    (
        "build",
        "call",
        &["build_call_outline.rs", "build_checks.rs"],
    ),
    ("debug", "list", &["debug_failed_step.rs"]),
    ("debug", "rm", &["debug_failed_step.rs"]),
    ("debug", "stage", &["debug_failed_step.rs"]),
    ("debug", "context", &["debug_failed_step.rs"]),
    ("debug", "file", &["debug_failed_step.rs"]),
    ("debug", "build-arg", &["debug_failed_step.rs"]),
    ("build", "progress", &["progress.rs"]),
    ("build", "quiet", &["bool_flags_take_values.rs"]),
    ("build", "network", &["build_flags.rs"]),
    ("build", "build-context", &["build_context.rs"]),
    (
        "build",
        "allow",
        &["entitlements_gate_privileged_run_steps.rs"],
    ),
    (
        "build",
        "load",
        &["bool_flags_take_values.rs", "build_flags.rs"],
    ),
    (
        "build",
        "provenance",
        &["attestations.rs", "build_flags.rs"],
    ),
    ("build", "sbom", &["attestations.rs", "build_flags.rs"]),
    ("build", "attest", &["attestations.rs"]),
    ("build", "add-host", &["build_flags.rs"]),
    ("build", "shm-size", &["build_flags.rs"]),
    ("build", "ulimit", &["build_flags.rs"]),
    ("build", "memory", &["faults.rs"]),
    ("build", "cpus", &["faults.rs"]),
    ("build", "pids-limit", &["faults.rs"]),
    ("images", "quiet", &["errors.rs:\"images\", \"-q\""]),
    ("images", "no-trunc", &["cache_gc.rs"]),
    ("images", "format", &["image_command_flags.rs"]),
    ("rmi", "force", &["image_command_flags.rs"]),
    ("inspect", "format", &["inspect_format.rs"]),
    ("history", "no-trunc", &["image_command_flags.rs"]),
    ("save", "output", &["build_scratch.rs:\"save\", \"-o\""]),
    ("save", "format", &["build_scratch.rs"]),
    (
        "save",
        "progress",
        &["registry_cli.rs:\"save\",\n        \"--progress=rawjson\""],
    ),
    ("run", "rm", &["run_cmd.rs"]),
    ("run", "env", &["run_cmd.rs:\"-e\""]),
    ("run", "workdir", &["run_cmd.rs:\"-w\""]),
    ("run", "user", &["run_cmd.rs:\"-u\""]),
    ("run", "entrypoint", &["run_cmd.rs"]),
    (
        "run",
        "network",
        &["build_flags.rs:\"--network\", \"none\"]"],
    ),
    ("run", "add-host", &["build_flags.rs"]),
    ("run", "shm-size", &["build_flags.rs"]),
    ("run", "ulimit", &["build_flags.rs"]),
    ("run", "memory", &["faults.rs:\"run\", \"--memory\""]),
    ("run", "cpus", &["faults.rs:\"run\", \"--cpus\""]),
    (
        "run",
        "pids-limit",
        &["faults.rs:\"run\", \"--pids-limit\""],
    ),
    (
        "pull",
        "progress",
        &["registry_cli.rs:\"pull\", \"--progress=rawjson\""],
    ),
    (
        "pull",
        "platform",
        &["registry_cli.rs:\"pull\", \"-q\", \"--platform\""],
    ),
    ("pull", "quiet", &["registry_cli.rs:\"pull\", \"-q\""]),
    (
        "run",
        "platform",
        &["multi_platform_store.rs:builder run --platform"],
    ),
    (
        "inspect",
        "platform",
        &["multi_platform_store.rs:\"inspect\", \"--platform\""],
    ),
    (
        "save",
        "platform",
        &["multi_platform_store.rs:builder save --platform"],
    ),
    (
        "push",
        "progress",
        &["registry_cli.rs:\"push\", \"--progress=rawjson\""],
    ),
    ("push", "quiet", &["registry_cli.rs:\"push\", \"-q\""]),
    ("login", "username", &["registry_cli.rs:\"login\", \"-u\""]),
    ("login", "password", &["registry_cli.rs:\"-p\", \"s3cret\""]),
    ("login", "password-stdin", &["registry_cli.rs"]),
    ("du", "verbose", &["cache_gc.rs"]),
    ("prune", "all", &["cache_gc.rs"]),
    ("prune", "filter", &["cache_gc.rs"]),
    ("prune", "keep-storage", &["cache_gc.rs"]),
    ("prune", "force", &["cache_gc.rs:\"prune\", \"-f\""]),
    ("cache ls", "format", &["cache_gc.rs:\"ls\", \"--format\""]),
    ("cache verify", "repair", &["cache_store.rs"]),
];

/// `builder ARGS --help`.
fn help(env: &Env, command: &[&str]) -> String {
    let mut args = command.to_vec();
    args.push("--help");
    env.ok(&args)
}

/// The subcommand names a help text lists under `Commands:` (without clap's `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The long flags a help text lists (without `--help` and `--version`).
fn flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            let long = l.split_whitespace().find(|w| w.starts_with("--"))?;
            let name: String = long[2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            Some(name)
        })
        .filter(|f| f != "help" && f != "version")
        .collect()
}

/// Every (command, flag) the binary has, global flags once under [`GLOBAL`].
fn every_flag(env: &Env) -> BTreeSet<(String, String)> {
    let top = help(env, &[]);
    let global = flags(&top);
    let mut out: BTreeSet<(String, String)> = global
        .iter()
        .map(|f| (GLOBAL.to_string(), f.clone()))
        .collect();
    let mut commands: Vec<Vec<String>> = subcommands(&top).into_iter().map(|c| vec![c]).collect();
    while let Some(command) = commands.pop() {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let text = help(env, &args);
        for sub in subcommands(&text) {
            let mut path = command.clone();
            path.push(sub);
            commands.push(path);
        }
        for flag in flags(&text).difference(&global) {
            out.insert((command.join(" "), flag.clone()));
        }
    }
    out
}

#[test]
fn every_flag_is_exercised_by_a_test_and_documented() {
    let env = Env::new();
    let actual = every_flag(&env);
    let table: BTreeMap<(String, String), &[&str]> = TABLE
        .iter()
        .map(|(c, f, tests)| ((c.to_string(), f.to_string()), *tests))
        .collect();
    assert_eq!(table.len(), TABLE.len(), "a flag is listed twice in TABLE");

    let missing: Vec<_> = actual.iter().filter(|k| !table.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "flags without a test in this file's TABLE (add the test that drives each, or refuse \
         the flag): {missing:?}"
    );
    let stale: Vec<_> = table.keys().filter(|k| !actual.contains(*k)).collect();
    assert!(
        stale.is_empty(),
        "TABLE lists flags builder no longer has: {stale:?}"
    );

    let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/options.md"))
            .expect("docs/options.md");
    let mut problems = Vec::new();
    for ((command, flag), tests) in &table {
        assert!(!tests.is_empty(), "{command} --{flag}: no test named");
        for entry in *tests {
            let (file, needle) = match entry.split_once(':') {
                Some((file, needle)) => (file, needle.to_string()),
                None => (*entry, format!("--{flag}")),
            };
            match std::fs::read_to_string(tests_dir.join(file)) {
                Ok(text) if text.contains(&needle) => {}
                Ok(_) => problems.push(format!(
                    "{command} --{flag}: tests/{file} does not contain {needle:?}"
                )),
                Err(e) => problems.push(format!("{command} --{flag}: tests/{file}: {e}")),
            }
        }
        // One row per flag: `| command | `--flag...` | what it does | ... |`.
        let row = format!("| {command} | `--{flag}");
        if !docs.lines().any(|l| l.starts_with(&row)) {
            problems.push(format!("docs/options.md has no row starting {row:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
