//! `.dockerignore` matching with docker's (moby patternmatcher) semantics: `#` comments,
//! `!` exceptions, `*`/`?`/`[...]`/`**` wildcards, leading `/` and `./` cleaned, a pattern that
//! matches a directory also excludes everything under it, and later rules win.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// A path as the matcher reads it. Linux names are bytes and need not be UTF-8; patterns are
/// text. As Go's matcher (which docker uses) reads a string, each byte that is not part of
/// valid UTF-8 is one U+FFFD character: `?` and `*` match it, a literal never does (unless the
/// pattern holds U+FFFD itself). This is only how a name is matched: the walk keeps and copies
/// the name's own bytes.
fn text(path: &OsStr) -> Cow<'_, str> {
    let bytes = path.as_bytes();
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        // One replacement per byte (`from_utf8_lossy` gives one per invalid sequence), so `?`
        // counts bytes as Go's `utf8.DecodeRuneInString` does.
        out.extend(std::iter::repeat_n('\u{FFFD}', chunk.invalid().len()));
    }
    Cow::Owned(out)
}

/// A `.dockerignore` that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".dockerignore:{line}: {message}")]
pub struct IgnoreError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: any run of non-`/` characters.
    Star,
    /// `?`: one non-`/` character.
    One,
    /// `**` (optionally followed by `/`) inside a pattern: zero or more whole directories.
    AnyDirs,
    /// `**` at the end: anything at all.
    AnyRest,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct IgnorePattern {
    exclusion: bool,
    tokens: Vec<Tok>,
    /// The literal text the pattern starts with and the literal text it ends with. A path that
    /// does not start and end with them cannot match, which settles most (pattern, path) pairs
    /// of a walk without running the matcher: a context walk asks every pattern about every
    /// file and each of its parent directories.
    head: String,
    tail: String,
    /// The whole pattern is literal text (`.git`, `node_modules`): equality decides.
    literal: bool,
}

/// For one directory, which patterns match it or one of its parents (see
/// [`IgnoreMatcher::parent_matches`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentMatches(Vec<bool>);

/// Compiled `.dockerignore` rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IgnoreMatcher {
    patterns: Vec<IgnorePattern>,
}

/// `p` as `clean_path` would give it, without allocating when it is already clean: the
/// paths a context walk asks about are built from directory entries and nearly always are.
fn cleaned(p: &str) -> std::borrow::Cow<'_, str> {
    let clean = !p.is_empty()
        && !p.ends_with('/')
        && p.split('/')
            .enumerate()
            .all(|(i, part)| !matches!(part, "." | "..") && (i == 0 || !part.is_empty()));
    if clean {
        std::borrow::Cow::Borrowed(p)
    } else {
        std::borrow::Cow::Owned(clean_path(p))
    }
}

/// Go's `filepath.Clean` for slash-separated paths.
fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn compile(pattern: &str, line: usize) -> Result<Vec<Tok>, IgnoreError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i == chars.len() {
                    Tok::AnyRest
                } else {
                    Tok::AnyDirs
                });
            }
            '*' => tokens.push(Tok::Star),
            '?' => tokens.push(Tok::One),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    i += 1;
                    tokens.push(Tok::Lit(n));
                }
                None => tokens.push(Tok::Lit('\\')),
            },
            '[' => {
                let (tok, used) = compile_class(&chars[i..]).ok_or_else(|| IgnoreError {
                    line,
                    message: format!("syntax error in pattern {pattern:?}"),
                })?;
                i += used;
                tokens.push(tok);
            }
            c => tokens.push(Tok::Lit(c)),
        }
    }
    Ok(tokens)
}

fn compile_class(chars: &[char]) -> Option<(Tok, usize)> {
    let negated = chars.first() == Some(&'^');
    let mut i = usize::from(negated);
    let mut ranges = Vec::new();
    while i < chars.len() {
        let mut c = chars[i];
        if c == ']' && !ranges.is_empty() {
            return Some((Tok::Class { negated, ranges }, i + 1));
        }
        if c == '\\' {
            i += 1;
            c = *chars.get(i)?;
        }
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|e| *e != ']') {
            ranges.push((c, chars[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}

/// Matches `tokens` against `text`. With `prefix`, succeeds as soon as the whole text is
/// consumed (used to ask "could something under this directory match?").
///
/// A dynamic program over (token, text position), computed one token row at a time from the
/// end: O(tokens × text) time, where trying every split of each `*` and `**` would backtrack
/// exponentially (`*a*a*a*a*a*a*a*b` against `aaaa…`).
fn matches(tokens: &[Tok], text: &[char], prefix: bool) -> bool {
    let n = text.len();
    // `next[j]`: the tokens after the current one match `text[j..]`. No tokens match only the
    // empty text (which, with `prefix`, matches anything anyway).
    let mut next: Vec<bool> = (0..=n).map(|j| j == n).collect();
    let mut cur = vec![false; n + 1];
    for tok in tokens.iter().rev() {
        // For `**`: some `/` at or after j ends a run of directories the rest matches after.
        let mut dirs_then_rest = false;
        for j in (0..=n).rev() {
            cur[j] = if prefix && j == n {
                true
            } else {
                match tok {
                    // Zero characters, or one non-`/` character and any run after it.
                    Tok::Star => next[j] || (j < n && text[j] != '/' && cur[j + 1]),
                    Tok::AnyRest => true,
                    Tok::AnyDirs => {
                        dirs_then_rest |= j < n && text[j] == '/' && next[j + 1];
                        next[j] || dirs_then_rest
                    }
                    _ => j < n && tok_matches(tok, text[j]) && next[j + 1],
                }
            };
        }
        std::mem::swap(&mut next, &mut cur);
    }
    next[0]
}

fn tok_matches(tok: &Tok, c: char) -> bool {
    match tok {
        Tok::Lit(l) => *l == c,
        Tok::One => c != '/',
        Tok::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
        Tok::Star | Tok::AnyDirs | Tok::AnyRest => true,
    }
}

impl IgnorePattern {
    fn new(exclusion: bool, tokens: Vec<Tok>) -> IgnorePattern {
        let lit = |t: &Tok| match t {
            Tok::Lit(c) => Some(*c),
            _ => None,
        };
        let head: String = tokens.iter().map_while(lit).collect();
        let mut tail: Vec<char> = tokens.iter().rev().map_while(lit).collect();
        tail.reverse();
        IgnorePattern {
            exclusion,
            literal: head.chars().count() == tokens.len(),
            tokens,
            head,
            tail: tail.into_iter().collect(),
        }
    }

    /// One rule as written (None for a blank one); `line` is only for errors.
    fn parse(raw: &str, line: usize) -> Result<Option<IgnorePattern>, IgnoreError> {
        let mut text = raw.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let exclusion = text.starts_with('!');
        if exclusion {
            text = text[1..].trim();
            if text.is_empty() {
                return Err(IgnoreError {
                    line,
                    message: "illegal exclusion pattern: \"!\"".to_string(),
                });
            }
        }
        let mut cleaned = clean_path(text);
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
        Ok(Some(IgnorePattern::new(
            exclusion,
            compile(&cleaned, line)?,
        )))
    }

    fn is_match(&self, path: &str) -> bool {
        if self.literal {
            return path == self.head;
        }
        // (Empty ones are common, `**/...` or `*.log`, and skipping them spares a memcmp call.)
        if (!self.head.is_empty() && !path.starts_with(&self.head))
            || (!self.tail.is_empty() && !path.ends_with(&self.tail))
        {
            return false;
        }
        let chars: Vec<char> = path.chars().collect();
        matches(&self.tokens, &chars, false)
    }

    /// This pattern or one of the path's parent directories matches.
    fn matches_or_parent(&self, path: &str) -> bool {
        if self.is_match(path) {
            return true;
        }
        path.char_indices()
            .filter(|(_, c)| *c == '/')
            .any(|(i, _)| self.is_match(&path[..i]))
    }
}

impl IgnoreMatcher {
    /// Parses `.dockerignore` contents.
    pub fn parse(contents: &str) -> Result<IgnoreMatcher, IgnoreError> {
        let contents = contents.strip_prefix('\u{feff}').unwrap_or(contents);
        let mut patterns = Vec::new();
        for (n, raw) in contents.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            patterns.extend(IgnorePattern::parse(raw, n + 1)?);
        }
        Ok(IgnoreMatcher { patterns })
    }

    /// Rules given one by one (`COPY --exclude=PATTERN`): the same syntax as a .dockerignore
    /// line, `!` exceptions included, but no comments. Errors name the pattern's position.
    pub fn from_patterns(patterns: &[String]) -> Result<IgnoreMatcher, IgnoreError> {
        let mut out = Vec::new();
        for (n, raw) in patterns.iter().enumerate() {
            out.extend(IgnorePattern::parse(raw, n + 1)?);
        }
        Ok(IgnoreMatcher { patterns: out })
    }

    /// A matcher that excludes nothing (no `.dockerignore`).
    pub fn empty() -> Self {
        IgnoreMatcher::default()
    }

    /// Whether no pattern was given: nothing is excluded, and walkers need not ask per file.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `rel_path` (slash-separated, relative to the context root) is excluded.
    pub fn is_excluded(&self, rel_path: impl AsRef<OsStr>) -> bool {
        let rel_path = text(rel_path.as_ref());
        let path = cleaned(rel_path.trim_start_matches('/'));
        let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        self.is_excluded_below(&self.parent_matches(dir), &*path)
    }

    /// Which patterns match `rel_dir` (relative to the context root) or one of its parents:
    /// what [`is_excluded_below`](Self::is_excluded_below) needs, so a walker asks about each
    /// directory once rather than about every parent of every file.
    pub fn parent_matches(&self, rel_dir: impl AsRef<OsStr>) -> ParentMatches {
        let rel_dir = text(rel_dir.as_ref());
        let dir = cleaned(rel_dir.trim_start_matches('/'));
        let at_root = dir == ".";
        ParentMatches(
            self.patterns
                .iter()
                .map(|p| !at_root && p.matches_or_parent(&dir))
                .collect(),
        )
    }

    /// [`parent_matches`](Self::parent_matches) of `child`, a directory directly inside the
    /// one `parent` describes (`child` is its clean path relative to the context root).
    pub fn child_matches(&self, parent: &ParentMatches, child: impl AsRef<OsStr>) -> ParentMatches {
        let child = text(child.as_ref());
        let child = child.as_ref();
        ParentMatches(
            self.patterns
                .iter()
                .zip(&parent.0)
                .map(|(p, &hit)| hit || p.is_match(child))
                .collect(),
        )
    }

    /// [`is_excluded`](Self::is_excluded) of `child`, an entry directly inside the directory
    /// `parent` describes (`child` is its clean path relative to the context root).
    pub fn is_excluded_below(&self, parent: &ParentMatches, child: impl AsRef<OsStr>) -> bool {
        let child = text(child.as_ref());
        let child = child.as_ref();
        let mut excluded = false;
        for (p, &hit) in self.patterns.iter().zip(&parent.0) {
            // As in is_excluded: only a rule that could change the answer is tried.
            if p.exclusion != excluded {
                continue;
            }
            if hit || p.is_match(child) {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// Whether an exception (`!pattern`) could re-include something below `rel_dir`, so a walker
    /// must descend into an excluded directory instead of skipping it.
    pub fn may_include_children(&self, rel_dir: impl AsRef<OsStr>) -> bool {
        let rel_dir = text(rel_dir.as_ref());
        let dir = clean_path(rel_dir.trim_start_matches('/'));
        let under: Vec<char> = format!("{dir}/").chars().collect();
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| matches(&p.tokens, &under, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The straightforward backtracking matcher (exponential in the worst case): the
    /// reference the dynamic program must agree with.
    fn backtracking(tokens: &[Tok], text: &[char], prefix: bool) -> bool {
        if prefix && text.is_empty() {
            return true;
        }
        let Some((tok, rest)) = tokens.split_first() else {
            return text.is_empty();
        };
        match tok {
            Tok::Star => {
                let run = text.iter().take_while(|c| **c != '/').count();
                (0..=run).any(|n| backtracking(rest, &text[n..], prefix))
            }
            Tok::AnyRest => true,
            Tok::AnyDirs => {
                backtracking(rest, text, prefix)
                    || (0..text.len())
                        .any(|i| text[i] == '/' && backtracking(rest, &text[i + 1..], prefix))
            }
            _ => match text.split_first() {
                Some((c, text_rest)) => {
                    tok_matches(tok, *c) && backtracking(rest, text_rest, prefix)
                }
                None => false,
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn matches_agrees_with_backtracking(
            pattern in prop::collection::vec(
                prop::sample::select(vec![
                    "a", "b", "/", "*", "?", "**", "**/", "[^a]", "[a-b]", "\\*",
                ]),
                0..8,
            ).prop_map(|parts| parts.concat()),
            text in "[ab/]{0,10}",
            prefix in any::<bool>(),
        ) {
            let tokens = compile(&pattern, 1).unwrap();
            let text: Vec<char> = text.chars().collect();
            prop_assert_eq!(
                matches(&tokens, &text, prefix),
                backtracking(&tokens, &text, prefix),
                "{:?}", tokens
            );
        }

        #[test]
        fn cleaned_agrees_with_clean_path(p in "[a./]{0,8}") {
            let expected = clean_path(&p);
            let got = cleaned(&p);
            prop_assert_eq!(got.as_ref(), expected.as_str());
        }

        /// The literal head/tail shortcut never changes an answer of the full matcher.
        #[test]
        fn shortcut_agrees_with_the_matcher(
            pattern in prop::collection::vec(
                prop::sample::select(vec!["a", "b", "ab", "/", "*", "?", "**", "**/", "[^a]", "\\*"]),
                0..6,
            ).prop_map(|parts| parts.concat()),
            text in "[ab/*]{0,10}",
        ) {
            let tokens = compile(&pattern, 1).unwrap();
            let chars: Vec<char> = text.chars().collect();
            let full = matches(&tokens, &chars, false);
            prop_assert_eq!(IgnorePattern::new(false, tokens).is_match(&text), full);
        }
    }

    fn m(s: &str) -> IgnoreMatcher {
        IgnoreMatcher::parse(s).unwrap()
    }

    /// Asking per directory (as a walk does) gives is_excluded's answers for every entry.
    #[test]
    fn parent_matches_give_is_excluded_answers() {
        let ig =
            m("**/*.log\n!**/keep.log\nsrc/gen\n!src/gen/api/*.rs\n*.md\n!README.md\nb?d/**\n");
        // (path, excluded): later rules win, a rule matching a parent directory counts.
        let cases = [
            ("a.log", true),
            ("README.md", false),
            ("x.md", true),
            ("src/a.log", true),
            ("src/keep.log", false),
            ("src/gen", true),
            ("src/gen/x.rs", true),
            ("src/gen/api", true),
            ("src/gen/api/y.rs", false),
            ("src/gen/api/z.txt", true),
            ("bad", false),
            ("bad/x", true),
            ("bad/x/keep.log", true),
            ("good/x.md", false),
            ("src/gen/api/deep/keep.log", true),
        ];
        for (path, excluded) in cases {
            assert_eq!(ig.is_excluded(path), excluded, "{path}");
            // Walking down to the entry's directory one level at a time gives the same
            // parent matches as computing them for that directory at once.
            let (dir, _) = path.rsplit_once('/').unwrap_or(("", path));
            let mut parents = ig.parent_matches("");
            let mut walked = String::new();
            for part in dir.split('/').filter(|p| !p.is_empty()) {
                walked = if walked.is_empty() {
                    part.to_string()
                } else {
                    format!("{walked}/{part}")
                };
                parents = ig.child_matches(&parents, &walked);
            }
            assert_eq!(parents, ig.parent_matches(dir), "{dir}");
            assert_eq!(ig.is_excluded_below(&parents, path), excluded, "{path}");
        }
    }

    #[test]
    fn basics_and_directories() {
        let ig = m("# comment\n\nnode_modules\n*.log\n/build/\n./tmp\n");
        assert!(ig.is_excluded("node_modules"));
        assert!(ig.is_excluded("node_modules/x/y.js"));
        assert!(ig.is_excluded("a.log"));
        assert!(!ig.is_excluded("dir/a.log")); // `*` does not cross `/`
        assert!(ig.is_excluded("build/out.o"));
        assert!(ig.is_excluded("tmp/x"));
        assert!(!ig.is_excluded("src/main.rs"));
        assert!(!ig.is_excluded("# comment"));
        assert!(!IgnoreMatcher::empty().is_excluded("x"));
    }

    #[test]
    fn double_star_and_classes() {
        let ig = m("**/*.tmp\ndocs/**\nf[0-9]?\n");
        assert!(ig.is_excluded("a.tmp"));
        assert!(ig.is_excluded("x/y/z.tmp"));
        assert!(ig.is_excluded("docs/a/b.md"));
        assert!(!ig.is_excluded("docs"));
        assert!(ig.is_excluded("f1x"));
        assert!(!ig.is_excluded("fxx"));
    }

    #[test]
    fn exceptions_later_rules_win() {
        let ig = m("*.md\n!README.md\nREADME-secret.md\n");
        assert!(ig.is_excluded("CHANGES.md"));
        assert!(!ig.is_excluded("README.md"));
        assert!(ig.is_excluded("README-secret.md"));
        let ig = m("!keep.txt\n*.txt\n");
        assert!(ig.is_excluded("keep.txt"));
    }

    #[test]
    fn walker_descends_only_when_an_exception_can_match() {
        let ig = m("vendor\n!vendor/keep/**\n");
        assert!(ig.is_excluded("vendor/other/x"));
        assert!(!ig.is_excluded("vendor/keep/a.go"));
        assert!(ig.may_include_children("vendor"));
        assert!(ig.may_include_children("vendor/keep"));
        assert!(!ig.may_include_children("vendor/other"));
        assert!(!m("vendor\n").may_include_children("vendor"));
        assert!(m("a\n!**/x\n").may_include_children("a"));
    }

    /// Names that are not UTF-8 are matched byte for byte as Go reads them: each stray byte is
    /// one character for `?`, `*` spans them, literals around them still count.
    #[test]
    fn names_that_are_not_utf8_match_by_wildcards() {
        let name = |b: &'static [u8]| OsStr::from_bytes(b);
        let ig = m("bad??\nsub?(/x\n*.l\u{e9}\n");
        assert!(ig.is_excluded(name(b"bad\xff\xfe")));
        assert!(!ig.is_excluded(name(b"bad\xff")));
        assert!(!ig.is_excluded(name(b"bax\xff\xfe")));
        assert!(ig.is_excluded(name(b"sub\xc3\x28/x")));
        assert!(ig.is_excluded(name(b"sub\xc3\x28/x/deeper\x80")));
        assert!(ig.is_excluded(name(b"\x80\x81.l\xc3\xa9")));
        assert!(!ig.is_excluded(name(b"\x80\x81.l\xe9")));
        let walked = ig.child_matches(&ig.parent_matches(""), name(b"sub\xc3\x28"));
        assert_eq!(walked, ig.parent_matches(name(b"sub\xc3\x28")));
        assert!(ig.is_excluded_below(&walked, name(b"sub\xc3\x28/x")));
        assert!(m("a\n!a/b?\n").may_include_children(name(b"a")));
        // A cut-short sequence is two bytes for `?`, where a lossy string has one U+FFFD.
        assert!(m("t??\n").is_excluded(name(b"t\xe2\x82")));
        assert!(!m("t?\n").is_excluded(name(b"t\xe2\x82")));
    }

    #[test]
    fn errors_and_cleaning() {
        assert_eq!(IgnoreMatcher::parse("ok\n!\n").unwrap_err().line, 2);
        assert!(IgnoreMatcher::parse("[a-\n").is_err());
        assert_eq!(clean_path("./a//b/../c/"), "a/c");
        assert!(m("/a/../b\n").is_excluded("b"));
    }
}
