//! Shell-word lexer with BuildKit's semantics: quote removal, escapes (with a configurable
//! escape character), and `$var` / `${var...}` expansion. Dockerfiles expand words with this
//! at dispatch time; nothing here ever runs a shell.
//!
//! Supported forms: `$a ${a} ${a:-b} ${a-b} ${a:+b} ${a+b} ${a:?msg} ${a?msg} ${a#p} ${a##p}
//! ${a%p} ${a%%p} ${a/p/r} ${a//p/r}`. Positional (`$1`) and special (`$@ $# $? ...`)
//! parameters are recognised as names but are never set, exactly like BuildKit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::ShellError;
use crate::shell_pattern::{OverBudget, Pattern, Work};

/// The longest word substitutions may produce (1 MiB). BuildKit's lexer has no limit of its
/// own, so `ENV A=${A}${A}` repeated forty times grew until memory ran out; a real value is far
/// smaller: Linux refuses any single environment string over `MAX_ARG_STRLEN` (128 KiB) to a
/// RUN step, and this leaves eight times that for labels and file contents.
pub const MAX_WORD_BYTES: usize = 1 << 20;

/// The most expansion work one [`Lexer`] (and its clones: the whole Dockerfile, for the
/// builder) may do: bytes produced by substitutions at every nesting level, plus pattern
/// matching steps of `${v#p}`, `${v%p}` and `${v/p/r}` (64 Mi). Caps the total that many words
/// just under [`MAX_WORD_BYTES`] could add up to, in memory and in time.
pub const MAX_EXPANSION_WORK: usize = 64 << 20;

/// Where variable values come from. Implemented for the common map types and for ordered
/// `(name, value)` lists, where the last entry for a name wins (like an image's `Env`).
pub trait EnvLookup {
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl EnvLookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> EnvLookup for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl EnvLookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl EnvLookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

/// The word lexer: the escape character, mode switches, and the expansion work budget
/// ([`MAX_EXPANSION_WORK`]) that it and its clones share.
#[derive(Clone, Debug)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset_env: bool,
    skip_process_quotes: bool,
    work_done: Arc<AtomicUsize>,
}

impl Default for Lexer {
    fn default() -> Lexer {
        Lexer::new('\\')
    }
}

impl Lexer {
    /// A lexer in BuildKit's normal mode: quotes removed, escapes applied, unset variables empty.
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
            work_done: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn escape(&self) -> char {
        self.escape
    }

    /// Another escape character (the budget stays shared).
    pub fn with_escape(mut self, escape: char) -> Lexer {
        self.escape = escape;
        self
    }

    /// Expansion work spent so far by this lexer and its clones.
    pub fn work_done(&self) -> usize {
        self.work_done.load(Ordering::Relaxed)
    }

    /// Keep quote characters in the output (they still group words).
    pub fn with_raw_quotes(mut self, on: bool) -> Lexer {
        self.raw_quotes = on;
        self
    }

    /// Keep escape characters in the output (they still protect the next character).
    pub fn with_raw_escapes(mut self, on: bool) -> Lexer {
        self.raw_escapes = on;
        self
    }

    /// Leave references to unset variables as written instead of expanding them to "".
    pub fn with_skip_unset_env(mut self, on: bool) -> Lexer {
        self.skip_unset_env = on;
        self
    }

    /// Treat quotes as ordinary characters (escapes and `$` still apply). BuildKit expands
    /// unquoted-delimiter COPY/ADD heredoc bodies this way.
    pub fn with_skip_process_quotes(mut self, on: bool) -> Lexer {
        self.skip_process_quotes = on;
        self
    }

    /// Expands `word` as a single word; whitespace inside it is kept.
    pub fn process_word(&self, word: &str, env: &dyn EnvLookup) -> Result<String, ShellError> {
        Ok(self.process_word_with_matches(word, env)?.0)
    }

    /// Expands `word` and splits the result into words: unquoted expansions split on
    /// whitespace, quoted text and escaped whitespace do not.
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn EnvLookup,
    ) -> Result<Vec<String>, ShellError> {
        let mut sw = ShellWord::new(self, word, env);
        let (_, words, _) = sw.process_stop_on(&[], self.raw_escapes)?;
        Ok(words.finish())
    }

    /// Like [`Lexer::process_word`], also returning every variable name the word referenced
    /// (set or not), so callers can tell which variables a result depends on.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn EnvLookup,
    ) -> Result<(String, BTreeSet<String>), ShellError> {
        let mut sw = ShellWord::new(self, word, env);
        let (result, _, _) = sw.process_stop_on(&[], self.raw_escapes)?;
        Ok((result, sw.referenced))
    }
}

/// Accumulates words while a string is being expanded.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    /// An unquoted character: whitespace ends the current word.
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    /// A protected character (escaped or quoted): always part of the word.
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

struct ShellWord<'a> {
    chars: Vec<char>,
    pos: usize,
    lexer: &'a Lexer,
    env: &'a dyn EnvLookup,
    referenced: BTreeSet<String>,
    /// How many `${...}` are open around the current position (see [`MAX_NESTING`]).
    depth: usize,
    /// Length of the word as written: literal text may be longer than [`MAX_WORD_BYTES`],
    /// substitutions may not make a word longer than both.
    max_len: usize,
}

/// The deepest `${...}` nesting accepted. Each level recurses through the lexer, so without a
/// limit `${A:-${A:-...}}` nested a few thousand deep overflows the stack and aborts the
/// process; real Dockerfiles nest a handful of levels.
const MAX_NESTING: usize = 256;

const UNSET_MESSAGE: &str = "is not allowed to be unset";
const EMPTY_MESSAGE: &str = "is not allowed to be empty";

impl<'a> ShellWord<'a> {
    fn new(lexer: &'a Lexer, word: &str, env: &'a dyn EnvLookup) -> ShellWord<'a> {
        ShellWord {
            chars: word.chars().collect(),
            pos: 0,
            lexer,
            env,
            referenced: BTreeSet::new(),
            depth: 0,
            max_len: MAX_WORD_BYTES.max(word.len()),
        }
    }

    /// Charges `amount` to the lexer's shared budget.
    fn spend(&self, amount: usize) -> Result<(), ShellError> {
        let before = self.lexer.work_done.fetch_add(amount, Ordering::Relaxed);
        if before.saturating_add(amount) > MAX_EXPANSION_WORK {
            return Err(too_much_work());
        }
        Ok(())
    }

    /// Fails once substitutions have made a word longer than allowed.
    fn check_len(&self, len: usize) -> Result<(), ShellError> {
        if len > self.max_len {
            return Err(word_too_long());
        }
        Ok(())
    }

    /// A budget for one pattern operation: what is left of the lexer's.
    fn pattern_work(&self) -> Work {
        Work {
            steps_left: MAX_EXPANSION_WORK.saturating_sub(self.lexer.work_done()),
            max_len: self.max_len,
        }
    }

    /// Charges what a pattern operation spent; maps running out to the user-facing errors.
    fn settle(
        &self,
        start: usize,
        work: Work,
        result: Result<String, OverBudget>,
    ) -> Result<String, ShellError> {
        self.spend(start.saturating_sub(work.steps_left))?;
        match result {
            Ok(v) => Ok(v),
            Err(OverBudget::Steps) => Err(too_much_work()),
            Err(OverBudget::Length) => Err(word_too_long()),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        self.referenced.insert(name.to_string());
        self.env.lookup(name).map(str::to_string)
    }

    /// Processes characters until one of `stops` (consumed) or the end. With non-empty
    /// `stops`, reaching the end is an error. Returns the text, its words and the stop found.
    fn process_stop_on(
        &mut self,
        stops: &[char],
        raw_escapes: bool,
    ) -> Result<(String, Words, Option<char>), ShellError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stops.contains(&ch) {
                self.pos += 1;
                return Ok((result, words, Some(ch)));
            }
            match ch {
                '\'' | '"' if !self.lexer.skip_process_quotes => {
                    let quoted = if ch == '\'' {
                        self.process_single_quote()?
                    } else {
                        self.process_double_quote()?
                    };
                    result.push_str(&quoted);
                    self.check_len(result.len())?;
                    words.add_raw_string(&quoted);
                }
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    self.check_len(result.len())?;
                    words.add_string(&value);
                }
                _ => {
                    self.pos += 1;
                    if ch != self.lexer.escape {
                        words.add_char(ch);
                        result.push(ch);
                        continue;
                    }
                    if raw_escapes {
                        words.add_raw_char(ch);
                        result.push(ch);
                    }
                    // An escape at the very end is dropped, like BuildKit.
                    let Some(escaped) = self.next() else { break };
                    words.add_raw_char(escaped);
                    result.push(escaped);
                }
            }
        }
        if let Some(stop) = stops.first() {
            return Err(ShellError::new(format!(
                "unexpected end of statement while looking for matching {stop}"
            )));
        }
        Ok((result, words, None))
    }

    fn process_single_quote(&mut self) -> Result<String, ShellError> {
        // Everything up to the next ' is literal; ' cannot be escaped inside.
        let mut out = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(ShellError::new(
                        "unexpected end of statement while looking for matching single-quote",
                    ));
                }
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ShellError> {
        // Literal except `$` expansions; the escape char protects only `"`, `$` and itself.
        let mut out = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(ShellError::new(
                        "unexpected end of statement while looking for matching double-quote",
                    ));
                }
                Some('"') => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    out.push_str(&self.process_dollar()?);
                    self.check_len(out.len())?;
                }
                Some(ch) => {
                    self.pos += 1;
                    if ch == self.lexer.escape {
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lexer.escape => {
                                if self.lexer.raw_escapes {
                                    out.push(ch);
                                }
                                self.pos += 1;
                                out.push(n);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// Reads a parameter name: a run of digits, one special character, or `[letter|digit|_]*`.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!') {
                self.pos += 1;
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }

    /// A `$` substitution; what it produces is charged to the budget and length-checked, at
    /// every nesting level (`${A:-${B}${B}}` builds `${B}${B}` even when it is discarded).
    fn process_dollar(&mut self) -> Result<String, ShellError> {
        let value = self.process_dollar_unchecked()?;
        self.spend(value.len())?;
        self.check_len(value.len())?;
        Ok(value)
    }

    fn process_dollar_unchecked(&mut self) -> Result<String, ShellError> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // '{'
        if self.depth >= MAX_NESTING {
            return Err(ShellError::new(format!(
                "bad substitution: ${{...}} nested more than {MAX_NESTING} levels deep"
            )));
        }
        self.depth += 1;
        let result = self.process_braced();
        self.depth -= 1;
        result
    }

    /// The rest of `${...}` after the `{`.
    fn process_braced(&mut self) -> Result<String, ShellError> {
        match self.peek() {
            None => return Err(missing_brace()),
            Some('{' | '}' | ':') => return Err(ShellError::new("syntax error: bad substitution")),
            Some(_) => {}
        }
        let name = self.process_name();
        match self.next() {
            Some('}') => {
                let value = self.get_env(&name);
                if value.is_none() && self.lexer.skip_unset_env {
                    return Ok(format!("${{{name}}}"));
                }
                Ok(value.unwrap_or_default())
            }
            Some(':') => {
                let modifier = self.next();
                let op = format!(":{}", modifier.map(String::from).unwrap_or_default());
                self.modifier(&name, modifier, &op, true)
            }
            Some(c @ ('+' | '-' | '?' | '#' | '%')) => {
                self.modifier(&name, Some(c), &c.to_string(), false)
            }
            Some('/') => self.replace(&name),
            None => Err(missing_brace()),
            Some(c) => Err(unsupported(&c.to_string())),
        }
    }

    /// `${name<op>word}` for op in `- + ? # % ## %%` (and the `:` forms, where an empty value
    /// counts as unset).
    fn modifier(
        &mut self,
        name: &str,
        modifier: Option<char>,
        op: &str,
        null_is_unset: bool,
    ) -> Result<String, ShellError> {
        let pattern_op = matches!(modifier, Some('#' | '%'));
        if null_is_unset && pattern_op {
            return Err(unsupported(op));
        }
        // Patterns keep their escapes so `\*` stays a literal star.
        let mut word = self.until(&['}'], pattern_op)?.0;
        let value = self.get_env(name);
        if value.is_none() && self.lexer.skip_unset_env {
            return Ok(format!("${{{name}{op}{word}}}"));
        }
        let set = value.is_some();
        let value = value.unwrap_or_default();
        let unset = !set || (null_is_unset && value.is_empty());
        match modifier {
            Some('-') => Ok(if unset { word } else { value }),
            Some('+') => Ok(if unset { String::new() } else { word }),
            Some('?') if unset => {
                let default = if set { EMPTY_MESSAGE } else { UNSET_MESSAGE };
                let message = if word.is_empty() {
                    default
                } else {
                    word.as_str()
                };
                Err(ShellError::new(format!("{name}: {message}")))
            }
            Some('?') => Ok(value),
            Some(c @ ('#' | '%')) => {
                let longest = word.starts_with(c);
                if longest {
                    word.remove(0);
                }
                let pattern = Pattern::new(&word).map_err(|e| bad_pattern(&word, &e))?;
                let mut work = self.pattern_work();
                let start = work.steps_left;
                let trimmed = if c == '#' {
                    pattern.trim_prefix(&value, longest, &mut work)
                } else {
                    pattern.trim_suffix(&value, longest, &mut work)
                };
                self.settle(start, work, trimmed)
            }
            _ => Err(unsupported(op)),
        }
    }

    /// `${name/pattern/replacement}` (first match) and `${name//pattern/replacement}` (all).
    fn replace(&mut self, name: &str) -> Result<String, ShellError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pattern = self
            .process_stop_on(&['/'], true)
            .map_err(|e| {
                if self.peek().is_none() {
                    ShellError::new("syntax error: missing '/' in ${}")
                } else {
                    e
                }
            })?
            .0;
        let replacement = self.until(&['}'], true)?.0;
        let value = self.get_env(name);
        if value.is_none() && self.lexer.skip_unset_env {
            let slash = if all { "//" } else { "/" };
            return Ok(format!("${{{name}{slash}{pattern}/{replacement}}}"));
        }
        let compiled = Pattern::new(&pattern).map_err(|e| bad_pattern(&pattern, &e))?;
        let mut work = self.pattern_work();
        let start = work.steps_left;
        let replaced = compiled.replace(&value.unwrap_or_default(), &replacement, all, &mut work);
        self.settle(start, work, replaced)
    }

    /// Processes up to a closing character inside `${...}`; running out of input is a missing `}`.
    fn until(
        &mut self,
        stops: &[char],
        raw_escapes: bool,
    ) -> Result<(String, Words, Option<char>), ShellError> {
        self.process_stop_on(stops, raw_escapes).map_err(|e| {
            if self.peek().is_none() {
                missing_brace()
            } else {
                e
            }
        })
    }
}

fn word_too_long() -> ShellError {
    ShellError::new(format!(
        "expansion too large: substitutions make this word longer than {MAX_WORD_BYTES} bytes (1 MiB)"
    ))
}

fn too_much_work() -> ShellError {
    ShellError::new(format!(
        "expansion too large: variable substitutions in this Dockerfile exceed {MAX_EXPANSION_WORK} bytes and pattern steps (64 MiB)"
    ))
}

fn unsupported(op: &str) -> ShellError {
    ShellError::new(format!("unsupported modifier ({op}) in substitution"))
}

fn bad_pattern(pattern: &str, e: &str) -> ShellError {
    ShellError::new(format!("invalid pattern ({pattern}) in substitution: {e}"))
}

fn missing_brace() -> ShellError {
    ShellError::new("syntax error: missing '}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}x{}", "${A:-".repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn nesting_is_limited_instead_of_overflowing_the_stack() {
        let env: BTreeMap<String, String> = BTreeMap::new();
        // Runs on a test thread's default 2 MiB stack: the deepest accepted nesting fits there.
        let lexer = Lexer::default();
        assert_eq!(lexer.process_word(&nested(MAX_NESTING), &env).unwrap(), "x");
        let quoted = format!(
            "{}x{}",
            "\"${A:-".repeat(MAX_NESTING),
            "}\"".repeat(MAX_NESTING)
        );
        assert_eq!(lexer.process_word(&quoted, &env).unwrap(), "x");
        let e = lexer
            .process_word(&nested(MAX_NESTING + 1), &env)
            .unwrap_err();
        assert!(e.message.contains("nested more than"), "{e}");
        let e = lexer.process_word(&nested(100_000), &env).unwrap_err();
        assert!(e.message.contains("nested more than"), "{e}");
        // Sequential (not nested) substitutions are not limited.
        let flat = "${A:-y}".repeat(10 * MAX_NESTING);
        assert_eq!(
            lexer.process_word(&flat, &env).unwrap().len(),
            10 * MAX_NESTING
        );
    }
}
