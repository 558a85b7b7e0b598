//! Shell glob patterns for `${var#pattern}`, `${var%pattern}` and `${var/pattern/repl}`:
//! `*` (any run), `?` (one char), `[...]` classes (with `!`/`^` negation and ranges), and the
//! escape character making the next character literal.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyRun,
    AnyOne,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    pub(crate) fn new(src: &str, escape: char) -> Pattern {
        let chars: Vec<char> = src.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            let token = match c {
                '*' => Token::AnyRun,
                '?' => Token::AnyOne,
                '[' => match parse_class(&chars[i..]) {
                    Some((token, used)) => {
                        i += used;
                        token
                    }
                    None => Token::Literal('['),
                },
                c if c == escape && i < chars.len() => {
                    i += 1;
                    Token::Literal(chars[i - 1])
                }
                c => Token::Literal(c),
            };
            tokens.push(token);
        }
        Pattern { tokens }
    }

    fn matches(&self, text: &[char]) -> bool {
        match_tokens(&self.tokens, text)
    }

    /// `${v#p}` (shortest) / `${v##p}` (longest): remove a matching prefix.
    pub(crate) fn trim_prefix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut ends: Vec<usize> = (0..=chars.len()).collect();
        if longest {
            ends.reverse();
        }
        match ends.into_iter().find(|&n| self.matches(&chars[..n])) {
            Some(n) => chars[n..].iter().collect(),
            None => value.to_string(),
        }
    }

    /// `${v%p}` (shortest) / `${v%%p}` (longest): remove a matching suffix.
    pub(crate) fn trim_suffix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut starts: Vec<usize> = (0..=chars.len()).collect();
        if !longest {
            starts.reverse();
        }
        match starts.into_iter().find(|&n| self.matches(&chars[n..])) {
            Some(n) => chars[..n].iter().collect(),
            None => value.to_string(),
        }
    }

    /// `${v/p/r}` / `${v//p/r}`: replace the first (or every) longest non-empty match.
    pub(crate) fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        while i < chars.len() {
            let hit = if replaced && !all {
                None
            } else {
                (i + 1..=chars.len())
                    .rev()
                    .find(|&j| self.matches(&chars[i..j]))
            };
            match hit {
                Some(j) => {
                    out.push_str(replacement);
                    i = j;
                    replaced = true;
                }
                None => {
                    out.push(chars[i]);
                    i += 1;
                }
            }
        }
        out
    }
}

/// Parses the inside of `[...]` (after the `[`); returns the token and chars consumed.
fn parse_class(chars: &[char]) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = matches!(chars.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            return Some((Token::Class { negated, items }, i + 1));
        }
        first = false;
        if i + 2 < chars.len() && chars[i + 1] == '-' && chars[i + 2] != ']' {
            items.push((c, chars[i + 2]));
            i += 3;
        } else {
            items.push((c, c));
            i += 1;
        }
    }
    None
}

fn match_tokens(tokens: &[Token], text: &[char]) -> bool {
    match tokens.split_first() {
        None => text.is_empty(),
        Some((Token::AnyRun, rest)) => (0..=text.len()).any(|n| match_tokens(rest, &text[n..])),
        Some((token, rest)) => match text.split_first() {
            Some((c, text_rest)) => token_matches(token, *c) && match_tokens(rest, text_rest),
            None => false,
        },
    }
}

fn token_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::AnyOne | Token::AnyRun => true,
        Token::Class { negated, items } => {
            items.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_suffix_trimming() {
        let p = Pattern::new("*/", '\\');
        assert_eq!(p.trim_prefix("a/b/c", false), "b/c");
        assert_eq!(p.trim_prefix("a/b/c", true), "c");
        let s = Pattern::new("/*", '\\');
        assert_eq!(s.trim_suffix("linux/arm/v7", false), "linux/arm");
        assert_eq!(s.trim_suffix("linux/arm/v7", true), "linux");
        assert_eq!(Pattern::new("x", '\\').trim_prefix("abc", false), "abc");
    }

    #[test]
    fn replacement_first_and_all() {
        let p = Pattern::new("o", '\\');
        assert_eq!(p.replace("foo boo", "0", false), "f0o boo");
        assert_eq!(p.replace("foo boo", "0", true), "f00 b00");
        assert_eq!(
            Pattern::new("[a-c]", '\\').replace("abcd", "_", true),
            "___d"
        );
        assert_eq!(
            Pattern::new("[!a]", '\\').replace("abca", "_", true),
            "a__a"
        );
        assert_eq!(Pattern::new("\\*", '\\').replace("a*b", "+", true), "a+b");
    }
}
