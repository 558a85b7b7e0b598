//! What the linter needs from the source text beyond the parse tree: the comments above each
//! instruction (BuildKit's `PrevComment`), and the excerpt printed under a warning.

use crate::ast::{Node, parse_directive};

/// The comments directly above each node, in order, as BuildKit collects them: the text after
/// `#`, trimmed; blank lines do not interrupt them but an empty `#` line starts over; parser
/// directives at the top of the file are not comments.
pub(crate) fn comments_above(text: &str, nodes: &[Node]) -> Vec<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(nodes.len());
    let mut next = 0usize; // 0-based index of the first line after the previous instruction
    let mut in_directives = true;
    for node in nodes {
        let mut comments = Vec::new();
        let first = node.start_line.saturating_sub(1);
        for line in lines.iter().take(first).skip(next) {
            let trimmed = line.trim_start().trim_start_matches('\u{feff}');
            if in_directives {
                let is_directive = parse_directive(trimmed).is_some_and(|(name, _)| {
                    matches!(
                        name.to_ascii_lowercase().as_str(),
                        "escape" | "syntax" | "check"
                    )
                });
                if is_directive {
                    continue;
                }
                in_directives = false;
            }
            let Some(comment) = trimmed.strip_prefix('#') else {
                continue;
            };
            let comment = comment.trim();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_string());
            }
        }
        in_directives = false;
        next = node.end_line;
        out.push(comments);
    }
    out
}

/// BuildKit's source excerpt: `FILE:LINE`, a rule, the lines around `start..=end` with the
/// flagged ones marked `>>>`, a rule. Two lines of context around a multi-line range, four
/// around a single line (the way BuildKit's loop counts them).
pub fn excerpt(file: &str, data: &str, start: usize, end: usize) -> String {
    let lines: Vec<&str> = data.split('\n').collect();
    if start < 1 || start > lines.len() {
        return String::new();
    }
    let end = end.max(start).min(lines.len());
    let pad = if end == start { 4 } else { 2 };
    let (mut first, mut last) = (start, end);
    let mut p = 0;
    while p < pad {
        if first > 1 {
            first -= 1;
            p += 1;
        }
        if last != lines.len() {
            last += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{file}:{start}\n--------------------\n");
    for (i, line) in lines.iter().enumerate().take(last).skip(first - 1) {
        let n = i + 1;
        let marker = if (start..=end).contains(&n) {
            ">>>"
        } else {
            "   "
        };
        out.push_str(&format!(" {n:>3} | {marker} {line}\n"));
    }
    out.push_str("--------------------\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::parse;

    #[test]
    fn comments_follow_buildkit() {
        let src = "# syntax=docker/dockerfile:1\n# base image\n\nFROM a AS b\n# one\n#\n# two\nARG X\nRUN y\n";
        let nodes = parse(src.as_bytes()).unwrap().root.children;
        let c = comments_above(src, &nodes);
        assert_eq!(c[0], ["base image"]);
        assert_eq!(c[1], ["two"]);
        assert!(c[2].is_empty());
    }

    #[test]
    fn excerpt_matches_buildkit_layout() {
        let src = "FROM a\nRUN b\nCMD c\nENV d e\n";
        let x = excerpt("Dockerfile", src, 3, 3);
        assert_eq!(
            x,
            "Dockerfile:3\n--------------------\n   1 |     FROM a\n   2 |     RUN b\n   3 | >>> CMD c\n   4 |     ENV d e\n   5 |     \n--------------------\n"
        );
    }
}
