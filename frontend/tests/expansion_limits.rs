//! Variable expansion is bounded: a word may not grow past `MAX_WORD_BYTES` through
//! substitutions, and one lexer (the builder uses one per Dockerfile) may not do more than
//! `MAX_EXPANSION_WORK`. Without these, `ENV A=<96 chars>` followed by forty
//! `ENV A=${A}${A}` lines (746 bytes) doubled `A` until memory ran out.

use builder_frontend::shell::{Lexer, MAX_EXPANSION_WORK, MAX_WORD_BYTES};
use builder_frontend::{FrontendError, InstructionKind, parse_dockerfile};

/// Dispatches the first stage like the builder: one lexer for the whole file, each ENV and
/// ARG value visible to the instructions after it. Returns the variables at the end.
fn dispatch(dockerfile: &str) -> Result<Vec<(String, String)>, FrontendError> {
    let df = parse_dockerfile(dockerfile.as_bytes(), "Dockerfile").unwrap();
    let lexer = Lexer::new(df.escape);
    let mut vars: Vec<(String, String)> = Vec::new();
    for inst in &df.stages[0].instructions {
        let (expanded, _) = inst.expand(&lexer, &vars)?;
        match expanded.kind {
            InstructionKind::Env(kvs) => {
                vars.extend(kvs.into_iter().map(|kv| (kv.key, kv.value)));
            }
            InstructionKind::Arg(decls) => {
                vars.extend(decls.into_iter().filter_map(|d| Some((d.name, d.default?))));
            }
            _ => {}
        }
    }
    Ok(vars)
}

/// `FROM scratch`, `<kind> A=<96 chars>`, then `lines` lines of `<kind> A=${A}${A}`.
fn doubling(kind: &str, lines: usize) -> String {
    let mut df = format!("FROM scratch\n{kind} A={}\n", "x".repeat(96));
    for _ in 0..lines {
        df.push_str(&format!("{kind} A=${{A}}${{A}}\n"));
    }
    df
}

/// The first doubling whose result is over the cap, as a Dockerfile line number.
fn first_line_over_the_cap() -> usize {
    let doublings = (1..).find(|n| 96usize << n > MAX_WORD_BYTES).unwrap();
    2 + doublings
}

fn assert_too_large(e: &FrontendError, line: usize) {
    let text = e.to_string();
    assert_eq!(e.line, line, "{text}");
    assert!(
        text.starts_with(&format!("Dockerfile:{line}:")),
        "the error names the line: {text}"
    );
    assert!(text.contains("expansion too large"), "{text}");
    assert!(text.contains("${A}${A}"), "the line is quoted: {text}");
}

#[test]
fn the_doubling_file_stops_at_the_word_cap_naming_the_line() {
    let start = std::time::Instant::now();
    let e = dispatch(&doubling("ENV", 40)).unwrap_err();
    assert_too_large(&e, first_line_over_the_cap());
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    // Up to the cap the doubling itself works.
    let vars = dispatch(&doubling("ENV", first_line_over_the_cap() - 3)).unwrap();
    let a = &vars.last().unwrap().1;
    assert!(a.len() <= MAX_WORD_BYTES && a.len() * 2 > MAX_WORD_BYTES);
}

#[test]
fn arg_label_and_other_fields_share_the_cap() {
    let e = dispatch(&doubling("ARG", 40)).unwrap_err();
    assert_too_large(&e, first_line_over_the_cap());
    // Every expanded field: a label, WORKDIR, COPY destination or USER built from the value
    // that is just under the cap.
    let big = first_line_over_the_cap() - 3;
    for inst in [
        "LABEL L=${A}${A}",
        "WORKDIR /${A}${A}",
        "COPY a /${A}${A}",
        "USER ${A}${A}",
        "EXPOSE ${A}${A}",
        "RUN --mount=type=cache,target=/${A}${A} true",
    ] {
        let df = format!("{}{inst}\n", doubling("ENV", big));
        let e = dispatch(&df).unwrap_err();
        assert_too_large(&e, big + 3);
    }
}

#[test]
fn pattern_operations_are_bounded() {
    // Replacing every character by the value itself would be a terabyte.
    let big = first_line_over_the_cap() - 3;
    let df = format!("{}ENV B=${{A//?/$A}}\n", doubling("ENV", big));
    let e = dispatch(&df).unwrap_err();
    assert_eq!(e.line, big + 3, "{e}");
    assert!(e.to_string().contains("expansion too large"), "{e}");
}

#[test]
fn total_expansion_work_of_a_dockerfile_is_capped() {
    // Every word below the word cap, but many of them: the shared budget stops them.
    let big = first_line_over_the_cap() - 3;
    let copies = MAX_EXPANSION_WORK / MAX_WORD_BYTES * 2 + 2;
    let mut df = doubling("ENV", big);
    for i in 0..copies {
        df.push_str(&format!("ENV B{i}=$A\n"));
    }
    let e = dispatch(&df).unwrap_err();
    assert!(e.to_string().contains("expansion too large"), "{e}");
    assert!(e.line > big + 2 && e.line <= big + 2 + copies, "{e}");
    // A fresh lexer (another build) has its own budget.
    assert!(dispatch(&doubling("ENV", big)).is_ok());
}
