//! Shell patterns for `${var#pattern}`, `${var%pattern}` and `${var/pattern/repl}`, with
//! BuildKit's rules: `*` matches any run of characters, `?` any one character, `\*` `\?` `\\`
//! are literal, `\}` and `\/` drop the backslash, any other escape is an error, and bracket
//! expressions are not supported (`[` is literal).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyRun,
    AnyOne,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles `src`; the error text is BuildKit's (`invalid escape '\x'`).
    pub(crate) fn new(src: &str) -> Result<Pattern, String> {
        let mut chars = src.chars().peekable();
        let mut tokens = Vec::new();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::AnyRun,
                '?' => Token::AnyOne,
                '\\' if matches!(chars.peek(), Some('}' | '/')) => continue,
                '\\' => match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => Token::Literal(e),
                    Some(e) => return Err(format!("invalid escape '\\{e}'")),
                    None => return Err("invalid escape at end of pattern".to_string()),
                },
                c => Token::Literal(c),
            });
        }
        Ok(Pattern { tokens })
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

    /// `${v/p/r}` / `${v//p/r}`: replace the leftmost (or every) longest non-empty match.
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

fn match_tokens(tokens: &[Token], text: &[char]) -> bool {
    match tokens.split_first() {
        None => text.is_empty(),
        Some((Token::AnyRun, rest)) => (0..=text.len()).any(|n| match_tokens(rest, &text[n..])),
        Some((token, rest)) => match text.split_first() {
            Some((c, text_rest)) => {
                (*token == Token::AnyOne || *token == Token::Literal(*c))
                    && match_tokens(rest, text_rest)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    #[test]
    fn prefix_and_suffix_trimming() {
        assert_eq!(p("*/").trim_prefix("a/b/c", false), "b/c");
        assert_eq!(p("*/").trim_prefix("a/b/c", true), "c");
        assert_eq!(p("/*").trim_suffix("linux/arm/v7", false), "linux/arm");
        assert_eq!(p("/*").trim_suffix("linux/arm/v7", true), "linux");
        assert_eq!(p("x").trim_prefix("abc", false), "abc");
        assert_eq!(p("a?").trim_prefix("a/b", false), "b");
    }

    #[test]
    fn replacement_first_and_all() {
        assert_eq!(p("o").replace("foo boo", "0", false), "f0o boo");
        assert_eq!(p("o").replace("foo boo", "0", true), "f00 b00");
        assert_eq!(p("\\*").replace("a*b", "+", true), "a+b");
        assert_eq!(p("[a]").replace("x[a]y", "-", true), "x-y");
        assert_eq!(p("a\\}").replace("a}", "-", true), "-");
    }

    #[test]
    fn invalid_escapes() {
        assert_eq!(Pattern::new("\\x"), Err("invalid escape '\\x'".to_string()));
        assert!(Pattern::new("a\\").is_err());
    }
}
