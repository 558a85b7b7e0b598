//! BuildKit's own parser and shell vectors (issue #8), read at test time from
//! `/work/shared/conformance` (beside the repository); never copied into the repo.

use std::path::{Path, PathBuf};

use builder_frontend::ast;
use builder_frontend::shell::Lexer;

fn root() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/buildkit"
    ));
    if dir.is_dir() {
        Some(dir.to_path_buf())
    } else {
        println!(
            "SKIPPED: conformance vectors not found at {}",
            dir.display()
        );
        None
    }
}

fn case_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn conformance() {
    let Some(root) = root() else { return };
    let mut failures = Vec::new();
    let parser = parser_cases(&root, &mut failures);
    let negative = negative_cases(&root, &mut failures);
    let lines = line_numbers(&root, &mut failures);
    let env = env_var_test(&root, &mut failures);
    let words = words_test(&root, &mut failures);
    println!(
        "conformance: parser {parser}, negative {negative}, lines {lines}, envVarTest {env}, wordsTest {words}"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn score(passed: usize, total: usize) -> String {
    format!("{passed}/{total}")
}

fn parser_cases(root: &Path, failures: &mut Vec<String>) -> String {
    let dirs = case_dirs(&root.join("parser/testfiles"));
    let mut passed = 0;
    for dir in &dirs {
        let expected = String::from_utf8_lossy(&read(&dir.join("result"))).into_owned();
        match ast::parse(&read(&dir.join("Dockerfile"))) {
            Ok(r) if r.root.dump() + "\n" == expected => passed += 1,
            Ok(r) => failures.push(format!(
                "{}:\n got: {}\nwant: {expected}",
                dir.display(),
                r.root.dump()
            )),
            Err(e) => failures.push(format!("{}: {e}", dir.display())),
        }
    }
    score(passed, dirs.len())
}

fn negative_cases(root: &Path, failures: &mut Vec<String>) -> String {
    let dirs = case_dirs(&root.join("parser/testfiles-negative"));
    let mut passed = 0;
    for dir in &dirs {
        match ast::parse(&read(&dir.join("Dockerfile"))) {
            Err(_) => passed += 1,
            Ok(r) => failures.push(format!(
                "{}: parsed but must fail: {}",
                dir.display(),
                r.root.dump()
            )),
        }
    }
    score(passed, dirs.len())
}

/// BuildKit's TestParseIncludesLineNumbers: root spans 5-31; children 5-5, 11-12, 17-31.
fn line_numbers(root: &Path, failures: &mut Vec<String>) -> String {
    let r = match ast::parse(&read(&root.join("parser/testfile-line/Dockerfile"))) {
        Ok(r) => r,
        Err(e) => {
            failures.push(format!("testfile-line: {e}"));
            return score(0, 1);
        }
    };
    let mut got = vec![(r.root.start_line, r.root.end_line)];
    got.extend(r.root.children.iter().map(|c| (c.start_line, c.end_line)));
    let want = vec![(5, 31), (5, 5), (11, 12), (17, 31)];
    if got == want {
        score(1, 1)
    } else {
        failures.push(format!("testfile-line: got {got:?}, want {want:?}"));
        score(0, 1)
    }
}

fn env_var_test(root: &Path, failures: &mut Vec<String>) -> String {
    let text = String::from_utf8_lossy(&read(&root.join("shell/envVarTest"))).into_owned();
    let env: Vec<(String, String)> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let lexer = Lexer::new('\\');
    let (mut passed, mut total) = (0, 0);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        let [platform, input, expected] = fields.as_slice() else {
            failures.push(format!("envVarTest:{}: malformed line {line:?}", n + 1));
            continue;
        };
        if platform.trim() == "W" {
            continue;
        }
        total += 1;
        let (input, expected) = (input.trim(), expected.trim());
        let got = lexer.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(v), e) => v == e,
            _ => false,
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!(
                "envVarTest:{}: {input:?} gave {got:?}, want {expected:?}",
                n + 1
            ));
        }
    }
    score(passed, total)
}

fn words_test(root: &Path, failures: &mut Vec<String>) -> String {
    let text = String::from_utf8_lossy(&read(&root.join("shell/wordsTest"))).into_owned();
    let lexer = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let (mut passed, mut total) = (0, 0);
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(assign) = line.strip_prefix("ENV ") {
            let assign = assign.trim_start_matches(' ');
            let (k, v) = assign.split_once('=').unwrap_or((assign, ""));
            env.push((k.to_string(), v.to_string()));
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        let [input, expected] = fields.as_slice() else {
            failures.push(format!("wordsTest:{}: malformed line {line:?}", n + 1));
            continue;
        };
        total += 1;
        let input = input.trim();
        let expected: Vec<String> = expected
            .trim_start_matches(' ')
            .split(',')
            .map(str::to_string)
            .collect();
        let got = lexer.process_words(input, &env);
        let ok = match &got {
            Ok(words) => *words == expected,
            Err(_) => expected == ["error"],
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!(
                "wordsTest:{}: {input:?} gave {got:?}, want {expected:?}",
                n + 1
            ));
        }
    }
    score(passed, total)
}
