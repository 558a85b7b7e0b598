//! The line-based Dockerfile parser (BuildKit's `parser` package): parser directives, line
//! continuations, comments, heredocs, and per-instruction argument splitting into a [`Node`]
//! tree. Nothing is expanded or validated beyond syntax here; see `instructions` for that.

use std::collections::BTreeSet;

use crate::error::FrontendError;
use crate::gostr;
use crate::line_parsers::{self as lp, Args};
use crate::shell::Lexer;

/// A heredoc attached to a `RUN`, `COPY` or `ADD` (`<<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The body exactly as written, each line with its newline; tabs are not yet removed
    /// for `<<-` (see [`Heredoc::chomped_content`]).
    pub content: String,
    /// False when the delimiter was quoted: the body must then not be expanded.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines (and the terminator).
    pub chomp_tabs: bool,
}

impl Heredoc {
    /// The body with leading tabs removed from every line when `chomp_tabs` is set.
    pub fn chomped_content(&self) -> String {
        if !self.chomp_tabs {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// One node of the parse tree. The root has an empty `value` and one child per instruction;
/// an instruction node has its lowercased name, flags and arguments; an `ONBUILD` node has its
/// trigger as its single child.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    pub value: String,
    pub args: Vec<String>,
    pub children: Vec<Node>,
    /// Leading `--flag[=value]` words, quotes removed.
    pub flags: Vec<String>,
    /// The arguments came from a JSON array (exec form).
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// The instruction text after joining continuation lines.
    pub original: String,
    pub start_line: usize,
    pub end_line: usize,
}

impl Node {
    /// BuildKit's `Node.Dump()`: the s-expression format of the conformance `result` files
    /// (without the final newline).
    pub fn dump(&self) -> String {
        let mut s = self.value.clone();
        if self.value.is_empty() {
            for child in &self.children {
                s.push('(');
                s.push_str(&child.dump());
                s.push_str(")\n");
            }
            return s.trim().to_string();
        }
        if !self.flags.is_empty() {
            let quoted: Vec<String> = self.flags.iter().map(|f| gostr::quote(f)).collect();
            s.push_str(&format!(" [{}]", quoted.join(" ")));
        }
        for child in &self.children {
            s.push_str(&format!(" ({})", child.dump()));
        }
        for arg in &self.args {
            s.push(' ');
            s.push_str(&gostr::quote(arg));
        }
        s.trim().to_string()
    }
}

/// The result of [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseResult {
    pub root: Node,
    /// The escape character in effect (`\` or `` ` ``).
    pub escape: char,
    /// The `# syntax=` directive, if any.
    pub syntax: Option<String>,
    /// The `# check=` directive, if any.
    pub check: Option<String>,
    pub warnings: Vec<String>,
    /// The last line of each instruction that has an empty continuation line (where BuildKit
    /// reports NoEmptyContinuation).
    pub empty_continuations: Vec<usize>,
}

/// Parser directives; only recognised before anything else in the file.
struct Directives {
    escape: char,
    done: bool,
    seen: BTreeSet<String>,
    syntax: Option<String>,
    check: Option<String>,
}

impl Directives {
    /// Looks for `# name=value` while still at the top of the file.
    fn possible_directive(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = parse_directive(line) else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "escape" | "syntax" | "check") {
            self.done = true;
            return Ok(());
        }
        if !self.seen.insert(name.clone()) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        match name.as_str() {
            "escape" => {
                self.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(format!(
                            "invalid escape token '{value}' does not match ` or \\"
                        ));
                    }
                }
            }
            "syntax" => self.syntax = Some(value.to_string()),
            _ => self.check = Some(value.to_string()),
        }
        Ok(())
    }
}

/// Matches `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
pub(crate) fn parse_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let name_len = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_alphabetic() || (*i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, after) = rest.split_at(name_len);
    let value = after.trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((name, value))
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(raw: &str) -> bool {
    trim_newline(raw).trim_start().starts_with('#')
}

/// Removes a trailing escape character (plus spaces/tabs) that continues the line, unless it
/// is itself escaped. Returns the text and whether the instruction ends on this line.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape)
        && (before.is_empty() || !before.ends_with(escape))
    {
        return (before.to_string(), false);
    }
    (line.to_string(), true)
}

/// Builds the node for one logical line (instruction name, flags, arguments).
fn node_from_line(line: &str, escape: char) -> Result<Node, String> {
    let (cmd, flags, rest) = lp::split_command(line);
    let value = cmd.to_lowercase();
    let mut node = Node {
        value: value.clone(),
        flags,
        original: line.to_string(),
        ..Node::default()
    };
    let args: Args = match value.as_str() {
        "add" | "copy" | "volume" => lp::parse_maybe_json_to_list(&rest)?,
        "arg" => Args {
            args: lp::parse_words(&rest, escape),
            json: false,
        },
        "cmd" | "entrypoint" | "run" | "shell" => lp::parse_maybe_json(&rest)?,
        "env" => lp::parse_name_val(&rest, "ENV", escape)?,
        "label" => lp::parse_name_val(&rest, "LABEL", escape)?,
        "expose" | "from" => lp::parse_strings_whitespace_delimited(&rest),
        "healthcheck" => lp::parse_health_config(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => lp::parse_string(&rest),
        "onbuild" => {
            if !rest.is_empty() {
                node.children.push(node_from_line(&rest, escape)?);
            }
            Args::default()
        }
        // Unknown instructions keep no arguments here; the typed layer rejects them.
        _ => Args::default(),
    };
    node.args = args.args;
    node.json = args.json;
    Ok(node)
}

impl Node {
    fn can_contain_heredoc(&self) -> bool {
        let node = match (self.value.as_str(), self.children.first()) {
            ("onbuild", Some(child)) => child,
            _ => self,
        };
        matches!(node.value.as_str(), "run" | "copy" | "add") && !node.json
    }
}

/// Recognises one heredoc word: `^(\d*)<<(-?)([^<]*)$` with a non-empty delimiter.
pub(crate) fn heredoc_from_word(word: &str) -> Result<Option<Heredoc>, String> {
    let after_fd = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(after) = after_fd.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let empty: Vec<(String, String)> = Vec::new();
    let lexer = Lexer::new('\\').with_skip_unset_env(true);
    let words = lexer.process_words(rest, &empty).map_err(|e| e.message)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw = lexer
        .with_raw_quotes(true)
        .process_words(rest, &empty)
        .map_err(|e| e.message)?;
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    // Quote characters only survive in raw mode: any difference means the word was quoted.
    let expand = raw.len() == 1 && quotes(name) == quotes(&raw[0]);
    Ok(Some(Heredoc {
        name: name.clone(),
        content: String::new(),
        expand,
        chomp_tabs: chomp,
    }))
}

/// Finds the heredoc words of an instruction line (quotes and escapes kept while splitting).
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let empty: Vec<(String, String)> = Vec::new();
    let lexer = Lexer::new('\\')
        .with_raw_quotes(true)
        .with_raw_escapes(true)
        .with_skip_unset_env(true);
    let words = lexer.process_words(line, &empty).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = heredoc_from_word(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

struct LineReader<'a> {
    lines: Vec<&'a str>,
    next: usize,
}

impl<'a> LineReader<'a> {
    fn read(&mut self) -> Option<&'a str> {
        let line = self.lines.get(self.next).copied();
        if line.is_some() {
            self.next += 1;
        }
        line
    }

    /// 1-based number of the last line read.
    fn current(&self) -> usize {
        self.next
    }
}

/// Parses a Dockerfile into BuildKit's node tree.
pub fn parse(source: &[u8]) -> Result<ParseResult, FrontendError> {
    let text = String::from_utf8_lossy(source);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut reader = LineReader {
        lines: text.split_inclusive('\n').collect(),
        next: 0,
    };
    let mut d = Directives {
        escape: '\\',
        done: false,
        seen: BTreeSet::new(),
        syntax: None,
        check: None,
    };
    let mut root = Node::default();
    let mut warnings = Vec::new();
    let mut empty_continuations = Vec::new();
    let located = |line: usize, message: String, reader: &LineReader| {
        let src = reader
            .lines
            .get(line.wrapping_sub(1))
            .map(|l| trim_newline(l));
        FrontendError::new(line, 1, message).with_source_line(src)
    };

    while let Some(raw) = reader.read() {
        let first = trim_newline(raw).trim_start();
        d.possible_directive(first)
            .map_err(|m| located(reader.current(), m, &reader))?;
        let processed = if first.starts_with('#') { "" } else { first };
        let start_line = reader.current();
        let (mut line, mut end) = trim_continuation(processed, d.escape);
        if end && line.is_empty() {
            continue;
        }
        let mut empty_continuation = false;
        while !end {
            let Some(raw) = reader.read() else { break };
            let text = trim_newline(raw);
            d.possible_directive(text)
                .map_err(|m| located(reader.current(), m, &reader))?;
            if is_comment(raw) {
                continue;
            }
            if text.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (cont, is_end) = trim_continuation(text, d.escape);
            line.push_str(&cont);
            end = is_end;
        }
        if empty_continuation {
            empty_continuations.push(reader.current());
            warnings.push(format!(
                "[WARNING]: Empty continuation line found in:\n    {line}"
            ));
        }
        let mut node =
            node_from_line(&line, d.escape).map_err(|m| located(start_line, m, &reader))?;
        if node.can_contain_heredoc() && line.contains("<<") {
            let docs = heredocs_from_line(&line).map_err(|m| located(start_line, m, &reader))?;
            for mut doc in docs {
                read_heredoc_body(&mut reader, &mut doc)
                    .map_err(|m| located(start_line, m, &reader))?;
                node.heredocs.push(doc);
            }
        }
        node.start_line = start_line;
        node.end_line = reader.current();
        root.children.push(node);
    }
    if warnings
        .iter()
        .any(|w| w.starts_with("[WARNING]: Empty continuation line"))
    {
        warnings.push(
            "[WARNING]: Empty continuation lines will become errors in a future release.".into(),
        );
    }
    let (Some(first), Some(last)) = (root.children.first(), root.children.last()) else {
        return Err(FrontendError::new(
            reader.current().max(1),
            1,
            "file with no instructions",
        ));
    };
    root.start_line = first.start_line;
    root.end_line = last.end_line;
    Ok(ParseResult {
        root,
        escape: d.escape,
        syntax: d.syntax,
        check: d.check,
        warnings,
        empty_continuations,
    })
}

fn read_heredoc_body(reader: &mut LineReader, doc: &mut Heredoc) -> Result<(), String> {
    while let Some(raw) = reader.read() {
        let mut candidate = trim_newline(raw);
        if doc.chomp_tabs {
            candidate = candidate.trim_start_matches('\t');
        }
        if candidate == doc.name {
            return Ok(());
        }
        doc.content.push_str(raw);
    }
    Err(format!("unterminated heredoc {}", doc.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(src: &str) -> String {
        parse(src.as_bytes())
            .map(|r| r.root.dump())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn directives_only_at_top() {
        let r = parse(b"# syntax=docker/dockerfile:1\n# ESCAPE = `\n# check=skip=all\nFROM a\n")
            .unwrap();
        assert_eq!(r.escape, '`');
        assert_eq!(r.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(r.check.as_deref(), Some("skip=all"));
        let r = parse(b"\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(r.escape, '\\');
        let r = parse(b"FROM a\n# escape=`\n").unwrap();
        assert_eq!(r.escape, '\\');
        let err = parse(b"# escape=x\nFROM a\n").unwrap_err();
        assert_eq!(
            err.message,
            "invalid escape token 'x' does not match ` or \\"
        );
        let err = parse(b"# escape=`\n# escape=\\\nFROM a\n").unwrap_err();
        assert_eq!(err.message, "only one escape parser directive can be used");
        assert_eq!(err.line, 2);
    }

    #[test]
    fn bom_crlf_and_continuations() {
        assert_eq!(
            dump("\u{feff}FROM a\r\nRUN a \\\r\n  # c\r\n\r\n  b\r\n"),
            "(from \"a\")\n(run \"a   b\")"
        );
        let r = parse(b"FROM a\nRUN x \\\n\n y\n").unwrap();
        assert_eq!(r.warnings.len(), 2);
        assert_eq!(r.root.children[1].end_line, 4);
    }

    #[test]
    fn heredocs_are_attached() {
        let src = "FROM a\nRUN <<EOF\necho $HOME\nEOF\nRUN python3 <<'PY' && cat <<-X\nprint(1)\nPY\n\tbody\n\tX\nCOPY <<EOF /x\nhi\nEOF\n";
        let r = parse(src.as_bytes()).unwrap();
        let run = &r.root.children[1];
        assert_eq!(
            run.heredocs,
            vec![Heredoc {
                name: "EOF".into(),
                content: "echo $HOME\n".into(),
                expand: true,
                chomp_tabs: false
            }]
        );
        assert_eq!((run.start_line, run.end_line), (2, 4));
        let two = &r.root.children[2];
        assert_eq!(two.heredocs.len(), 2);
        assert_eq!(two.heredocs[0].name, "PY");
        assert!(!two.heredocs[0].expand);
        assert!(two.heredocs[1].chomp_tabs);
        assert_eq!(two.heredocs[1].chomped_content(), "body\n");
        assert_eq!(r.root.children[3].heredocs[0].content, "hi\n");
        assert_eq!(r.root.children[3].args, ["<<EOF", "/x"]);
        let err = parse(b"FROM a\nRUN <<EOF\nnever ends\n").unwrap_err();
        assert_eq!(
            (err.line, err.message.as_str()),
            (2, "unterminated heredoc EOF")
        );
        // Exec form never has heredocs.
        let r = parse(b"FROM a\nRUN [\"cat\", \"<<EOF\"]\n").unwrap();
        assert!(r.root.children[1].heredocs.is_empty());
    }

    #[test]
    fn empty_file_errors() {
        assert_eq!(parse(b"").unwrap_err().message, "file with no instructions");
        assert_eq!(
            parse(b"# a\n\n").unwrap_err().message,
            "file with no instructions"
        );
    }
}
