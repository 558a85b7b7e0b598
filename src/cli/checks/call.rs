//! The `--call` methods' answers (`check`, `outline`, `targets`) as buildx prints them: text
//! tables padded as Go's tabwriter does, or `format=json`.

use super::*;

#[derive(Serialize)]
struct Location {
    ranges: Vec<serde_json::Value>,
}

fn location(start: usize, end: usize) -> Location {
    Location {
        ranges: vec![range(start, end)],
    }
}

fn is_false(b: &bool) -> bool {
    !b
}

#[derive(Serialize)]
struct JsonTarget {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "is_false")]
    default: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    base: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    platform: String,
    location: Location,
}

#[derive(Serialize)]
struct JsonArg {
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    value: String,
    location: Location,
}

#[derive(Serialize)]
struct JsonMount {
    name: String,
    #[serde(skip_serializing_if = "is_false")]
    required: bool,
    location: Location,
}

#[derive(Serialize)]
struct JsonOutline {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<JsonArg>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<JsonMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ssh: Vec<JsonMount>,
    sources: Vec<String>,
}

#[derive(Serialize)]
struct JsonWarning {
    #[serde(rename = "ruleName")]
    rule_name: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    url: &'static str,
    detail: String,
    location: Location,
}

#[derive(Serialize)]
struct JsonSource {
    filename: String,
    language: &'static str,
    data: String,
}

#[derive(Serialize)]
struct JsonBuildError {
    message: String,
    location: Location,
}

#[derive(Serialize)]
struct JsonLint {
    warnings: Vec<JsonWarning>,
    sources: Vec<JsonSource>,
    #[serde(rename = "buildError", skip_serializing_if = "Option::is_none")]
    build_error: Option<JsonBuildError>,
}

/// Go's text/tabwriter with minwidth 0, tabwidth 0 and padding `pad`: every cell but the
/// last of a line is padded to its column's width plus `pad`.
fn tabwrite(rows: &[Vec<String>], pad: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                let fill = widths[i] + pad - cell.chars().count();
                out.push_str(&" ".repeat(fill));
            }
        }
        out.push('\n');
    }
    out
}

fn outline_text(o: &outline::Outline) -> String {
    let mut out = String::new();
    if !o.name.is_empty() || !o.description.is_empty() {
        let name = if o.name.is_empty() {
            "(default)"
        } else {
            &o.name
        };
        let mut rows = vec![vec!["TARGET:".to_string(), name.to_string()]];
        if !o.description.is_empty() {
            rows.push(vec!["DESCRIPTION:".into(), o.description.clone()]);
        }
        out.push_str(&tabwrite(&rows, 1));
        out.push('\n');
    }
    if !o.args.is_empty() {
        let mut rows = vec![vec![
            "BUILD ARG".to_string(),
            "VALUE".into(),
            "DESCRIPTION".into(),
        ]];
        rows.extend(
            o.args
                .iter()
                .map(|a| vec![a.name.clone(), a.value.clone(), a.description.clone()]),
        );
        out.push_str(&tabwrite(&rows, 3));
        out.push('\n');
    }
    for (title, list) in [("SECRET", &o.secrets), ("SSH", &o.ssh)] {
        if list.is_empty() {
            continue;
        }
        let mut rows = vec![vec![title.to_string(), "REQUIRED".into()]];
        rows.extend(list.iter().map(|m| {
            let required = if m.required { "true" } else { "" };
            vec![m.name.clone(), required.to_string()]
        }));
        out.push_str(&tabwrite(&rows, 3));
        out.push('\n');
    }
    out
}

fn targets_text(targets: &[outline::Target]) -> String {
    let mut rows = vec![vec!["TARGET".to_string(), "DESCRIPTION".into()]];
    for t in targets {
        let name = match (t.name.is_empty(), t.default) {
            (true, true) => "(default)".to_string(),
            (false, true) => format!("{} (default)", t.name),
            _ => t.name.clone(),
        };
        rows.push(vec![name, t.description.clone()]);
    }
    tabwrite(&rows, 1)
}

fn lint_text(report: &LintReport, file: &str, source: &str) -> String {
    let mut out = String::new();
    for w in &report.warnings {
        out.push_str(&format!("\nWARNING: {}", w.rule.name));
        if !w.rule.url.is_empty() {
            out.push_str(&format!(" - {}", w.rule.url));
        }
        out.push_str(&format!("\n{}\n", w.message));
        out.push_str(&linter::excerpt(file, source, w.start_line, w.end_line));
    }
    out
}

fn json_warning(w: &Warning) -> JsonWarning {
    JsonWarning {
        rule_name: w.rule.name,
        description: w.rule.description,
        url: w.rule.url,
        detail: w.message.clone(),
        location: location(w.start_line, w.end_line),
    }
}

/// Runs a `--call` method other than build: prints its result on stdout and returns the exit
/// code (check: 1 when it found anything, unless `ignorestatus=true`).
pub fn run_call(
    call: &Call,
    request: &BuildRequest,
    resolver: &dyn ImageResolver,
) -> anyhow::Result<ExitCode> {
    let file = request.convert.file_name.as_str();
    let source = String::from_utf8_lossy(&request.dockerfile).into_owned();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&request.dockerfile);
    let platform_args = platform_args(request);
    let no_images = |_: &str, _: &str| None;
    let opts = LintOptions {
        file_name: file,
        build_args: &request.convert.build_args,
        platform_args,
        target: request.convert.target.as_deref(),
        all_stages: request.convert.target.is_none(),
        dockerignore: request.dockerignore.as_deref(),
        base_images: &no_images,
    };
    let mut stdout = std::io::stdout().lock();
    match call.method {
        Method::Build => bail!("--call=build builds: there is nothing to print"),
        Method::Targets => {
            let targets = outline::targets(&request.dockerfile, file)?;
            if call.json {
                let list: Vec<JsonTarget> = targets
                    .iter()
                    .map(|t| JsonTarget {
                        name: t.name.clone(),
                        default: t.default,
                        description: t.description.clone(),
                        base: t.base.clone(),
                        platform: t.platform.clone(),
                        location: location(t.start_line, t.end_line),
                    })
                    .collect();
                let value = serde_json::json!({"targets": list, "sources": [b64]});
                writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                stdout.write_all(targets_text(&targets).as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Method::Outline => {
            let o = outline::outline(&request.dockerfile, &opts)?;
            if call.json {
                let mount = |m: &outline::OutlineMount| JsonMount {
                    name: m.name.clone(),
                    required: m.required,
                    location: location(m.line, m.line),
                };
                let value = JsonOutline {
                    name: o.name.clone(),
                    description: o.description.clone(),
                    args: o
                        .args
                        .iter()
                        .map(|a| JsonArg {
                            name: a.name.clone(),
                            description: a.description.clone(),
                            value: a.value.clone(),
                            location: location(a.line, a.line),
                        })
                        .collect(),
                    secrets: o.secrets.iter().map(mount).collect(),
                    ssh: o.ssh.iter().map(mount).collect(),
                    sources: vec![b64],
                };
                writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                stdout.write_all(outline_text(&o).as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Method::Check => {
            let (report, build_error) =
                match run_lint(request, resolver, request.convert.target.is_none()) {
                    Ok(r) => (r, None),
                    Err(LintError::Config(m)) => bail!(UsageError(m)),
                    Err(LintError::Dockerfile { error, warnings }) => (
                        LintReport {
                            warnings,
                            error_on_warnings: false,
                        },
                        Some(error),
                    ),
                };
            let found = !report.warnings.is_empty() || build_error.is_some();
            if call.json {
                let value = JsonLint {
                    warnings: report.warnings.iter().map(json_warning).collect(),
                    sources: vec![JsonSource {
                        filename: file.to_string(),
                        language: "Dockerfile",
                        data: b64,
                    }],
                    build_error: build_error.as_ref().map(|e| JsonBuildError {
                        message: e.message.clone(),
                        location: location(e.line, e.line),
                    }),
                };
                writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                let n = report.warnings.len();
                if n > 0 {
                    let count = if n == 1 {
                        "1 warning has been found!".to_string()
                    } else {
                        format!("{n} warnings have been found!")
                    };
                    writeln!(stdout, "Check complete, {count}")?;
                }
                stdout.write_all(lint_text(&report, file, &source).as_bytes())?;
                if let Some(e) = &build_error {
                    if n > 0 {
                        writeln!(stdout)?;
                    }
                    stdout.flush()?;
                    bail!(
                        "{}\n{}",
                        e.message,
                        linter::excerpt(file, &source, e.line, e.line).trim_end()
                    );
                }
                if n == 0 {
                    writeln!(stdout, "Check complete, no warnings found.")?;
                }
            }
            if found && !call.ignore_status {
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_pads_like_go() {
        let rows = vec![
            vec![
                "BUILD ARG".to_string(),
                "VALUE".into(),
                "DESCRIPTION".into(),
            ],
            vec!["A".into(), "1".into(), "".into()],
        ];
        assert_eq!(
            tabwrite(&rows, 3),
            "BUILD ARG   VALUE   DESCRIPTION\nA           1       \n"
        );
    }
}
