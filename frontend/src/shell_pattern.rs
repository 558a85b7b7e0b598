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

/// What a pattern operation may spend: automaton steps (one per text character per pattern
/// token) and the length of what it builds. `${v//p/r}` tries a match at every position, so on
/// a large value with a pattern that can always grow (`*x`) it is quadratic; hostile
/// Dockerfiles are stopped by this budget instead of running for hours.
#[derive(Debug)]
pub(crate) struct Work {
    pub(crate) steps_left: usize,
    pub(crate) max_len: usize,
}

/// A pattern operation ran out of [`Work`]: too many steps, or a result longer than allowed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OverBudget {
    Steps,
    Length,
}

impl Work {
    fn spend(&mut self, steps: usize) -> Result<(), OverBudget> {
        self.steps_left = self
            .steps_left
            .checked_sub(steps)
            .ok_or(OverBudget::Steps)?;
        Ok(())
    }

    /// The cost of running the automaton of `tokens` over `chars` characters.
    fn spend_scan(&mut self, tokens: &[Token], chars: usize) -> Result<(), OverBudget> {
        self.spend((chars + 1).saturating_mul(tokens.len() + 1))
    }
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

    /// `ends[n]`: the pattern matches `text[..n]`, for every n at once.
    fn match_ends(&self, text: &[char]) -> Vec<bool> {
        match_ends(&self.tokens, text)
    }

    /// `starts[n]`: the pattern matches `text[n..]`, for every n at once. A pattern is a plain
    /// sequence of single-character tokens and `*`s, so it matches a text exactly when the
    /// reversed pattern matches the reversed text.
    fn match_starts(&self, text: &[char]) -> Vec<bool> {
        let tokens: Vec<Token> = self.tokens.iter().rev().copied().collect();
        let reversed: Vec<char> = text.iter().rev().copied().collect();
        let mut starts = match_ends(&tokens, &reversed);
        starts.reverse();
        starts
    }

    /// `${v#p}` (shortest) / `${v##p}` (longest): remove a matching prefix.
    pub(crate) fn trim_prefix(
        &self,
        value: &str,
        longest: bool,
        work: &mut Work,
    ) -> Result<String, OverBudget> {
        let chars: Vec<char> = value.chars().collect();
        work.spend_scan(&self.tokens, chars.len())?;
        let ends = self.match_ends(&chars);
        let mut hits = (0..=chars.len()).filter(|&n| ends[n]);
        Ok(
            match if longest {
                hits.next_back()
            } else {
                hits.next()
            } {
                Some(n) => chars[n..].iter().collect(),
                None => value.to_string(),
            },
        )
    }

    /// `${v%p}` (shortest) / `${v%%p}` (longest): remove a matching suffix.
    pub(crate) fn trim_suffix(
        &self,
        value: &str,
        longest: bool,
        work: &mut Work,
    ) -> Result<String, OverBudget> {
        let chars: Vec<char> = value.chars().collect();
        work.spend_scan(&self.tokens, chars.len())?;
        let starts = self.match_starts(&chars);
        let mut hits = (0..=chars.len()).filter(|&n| starts[n]);
        Ok(
            match if longest {
                hits.next()
            } else {
                hits.next_back()
            } {
                Some(n) => chars[..n].iter().collect(),
                None => value.to_string(),
            },
        )
    }

    /// `${v/p/r}` / `${v//p/r}`: replace the leftmost (or every) longest non-empty match.
    /// Each position reads the text only as far as a match is still possible, and every step
    /// and the result's length are charged to `work`.
    pub(crate) fn replace(
        &self,
        value: &str,
        replacement: &str,
        all: bool,
        work: &mut Work,
    ) -> Result<String, OverBudget> {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        while i < chars.len() {
            let hit = if replaced && !all {
                None
            } else {
                longest_match(&self.tokens, &chars[i..], work)?.map(|n| i + n)
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
            if out.len() > work.max_len {
                return Err(OverBudget::Length);
            }
        }
        Ok(out)
    }
}

/// A `*` may match nothing: being before it is also being after it.
fn close_empty_runs(tokens: &[Token], active: &mut [bool]) {
    for k in 0..tokens.len() {
        if active[k] && tokens[k] == Token::AnyRun {
            active[k + 1] = true;
        }
    }
}

/// The automaton's states after reading `c` from `active` into `stepped`; false when none is
/// left alive, so the caller can stop reading.
fn step(tokens: &[Token], active: &[bool], stepped: &mut [bool], c: char) -> bool {
    stepped.fill(false);
    let mut any = false;
    for (k, token) in tokens.iter().enumerate() {
        if !active[k] {
            continue;
        }
        match *token {
            Token::AnyRun => stepped[k] = true,
            Token::AnyOne => stepped[k + 1] = true,
            Token::Literal(l) if l == c => stepped[k + 1] = true,
            Token::Literal(_) => continue,
        }
        any = true;
    }
    any
}

/// The longest non-empty prefix of `text` that `tokens` match, running the automaton of
/// [`match_ends`] only while some state is alive, one charged step per token per character.
fn longest_match(
    tokens: &[Token],
    text: &[char],
    work: &mut Work,
) -> Result<Option<usize>, OverBudget> {
    let mut active = vec![false; tokens.len() + 1];
    let mut stepped = vec![false; tokens.len() + 1];
    active[0] = true;
    let mut longest = None;
    for n in 0..=text.len() {
        work.spend(tokens.len() + 1)?;
        close_empty_runs(tokens, &mut active);
        if n > 0 && active[tokens.len()] {
            longest = Some(n);
        }
        let Some(&c) = text.get(n) else { break };
        if !step(tokens, &active, &mut stepped, c) {
            break;
        }
        std::mem::swap(&mut active, &mut stepped);
    }
    Ok(longest)
}

/// `ends[n]`: `tokens` match `text[..n]`. Simulates the pattern as an automaton whose states
/// are token positions, one text character at a time: O(tokens × text), where trying every
/// split of each `*` would backtrack exponentially (`*a*a*a*a*a*a*b` against `aaaa…`).
fn match_ends(tokens: &[Token], text: &[char]) -> Vec<bool> {
    let mut ends = vec![false; text.len() + 1];
    // `active[k]`: `tokens[..k]` match the text read so far.
    let mut active = vec![false; tokens.len() + 1];
    let mut stepped = vec![false; tokens.len() + 1];
    active[0] = true;
    for (n, end) in ends.iter_mut().enumerate() {
        close_empty_runs(tokens, &mut active);
        *end = active[tokens.len()];
        let Some(&c) = text.get(n) else { break };
        if !step(tokens, &active, &mut stepped, c) {
            break;
        }
        std::mem::swap(&mut active, &mut stepped);
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The straightforward backtracking matcher (exponential in the worst case): the
    /// reference the automaton must agree with.
    fn backtracking(tokens: &[Token], text: &[char]) -> bool {
        match tokens.split_first() {
            None => text.is_empty(),
            Some((Token::AnyRun, rest)) => (0..=text.len()).any(|n| backtracking(rest, &text[n..])),
            Some((token, rest)) => match text.split_first() {
                Some((c, text_rest)) => {
                    (*token == Token::AnyOne || *token == Token::Literal(*c))
                        && backtracking(rest, text_rest)
                }
                None => false,
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn matching_agrees_with_backtracking(pattern in "[ab*?]{0,8}", text in "[ab]{0,10}") {
            let p = Pattern::new(&pattern).unwrap();
            let chars: Vec<char> = text.chars().collect();
            let ends = p.match_ends(&chars);
            let starts = p.match_starts(&chars);
            for n in 0..=chars.len() {
                prop_assert_eq!(ends[n], backtracking(&p.tokens, &chars[..n]), "end {}", n);
                prop_assert_eq!(starts[n], backtracking(&p.tokens, &chars[n..]), "start {}", n);
            }
            let longest = (1..=chars.len()).rev().find(|&n| backtracking(&p.tokens, &chars[..n]));
            prop_assert_eq!(longest_match(&p.tokens, &chars, &mut unlimited()).unwrap(), longest);
        }
    }

    fn unlimited() -> Work {
        Work {
            steps_left: usize::MAX,
            max_len: usize::MAX,
        }
    }

    #[test]
    fn replacing_on_a_large_value_runs_out_of_work_instead_of_running_for_hours() {
        // `*x` can always grow, so every position reads to the end: quadratic in the value.
        let value = "a".repeat(1 << 20);
        let mut work = Work {
            steps_left: 4 << 20,
            max_len: 1 << 20,
        };
        assert_eq!(
            p("*x").replace(&value, "y", true, &mut work),
            Err(OverBudget::Steps)
        );
        // A pattern that fails at once costs two steps per character.
        let mut work = Work {
            steps_left: 4 << 20,
            max_len: 1 << 20,
        };
        assert_eq!(
            p("x").replace(&value, "y", true, &mut work).unwrap().len(),
            1 << 20
        );
        // Growing past the length cap stops as soon as it is reached.
        let mut work = Work {
            steps_left: usize::MAX,
            max_len: 1 << 20,
        };
        assert_eq!(
            p("a").replace(&value, "bb", true, &mut work),
            Err(OverBudget::Length)
        );
    }

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    #[test]
    fn prefix_and_suffix_trimming() {
        assert_eq!(
            p("*/")
                .trim_prefix("a/b/c", false, &mut unlimited())
                .unwrap(),
            "b/c"
        );
        assert_eq!(
            p("*/")
                .trim_prefix("a/b/c", true, &mut unlimited())
                .unwrap(),
            "c"
        );
        assert_eq!(
            p("/*")
                .trim_suffix("linux/arm/v7", false, &mut unlimited())
                .unwrap(),
            "linux/arm"
        );
        assert_eq!(
            p("/*")
                .trim_suffix("linux/arm/v7", true, &mut unlimited())
                .unwrap(),
            "linux"
        );
        assert_eq!(
            p("x").trim_prefix("abc", false, &mut unlimited()).unwrap(),
            "abc"
        );
        assert_eq!(
            p("a?").trim_prefix("a/b", false, &mut unlimited()).unwrap(),
            "b"
        );
    }

    #[test]
    fn replacement_first_and_all() {
        assert_eq!(
            p("o")
                .replace("foo boo", "0", false, &mut unlimited())
                .unwrap(),
            "f0o boo"
        );
        assert_eq!(
            p("o")
                .replace("foo boo", "0", true, &mut unlimited())
                .unwrap(),
            "f00 b00"
        );
        assert_eq!(
            p("\\*")
                .replace("a*b", "+", true, &mut unlimited())
                .unwrap(),
            "a+b"
        );
        assert_eq!(
            p("[a]")
                .replace("x[a]y", "-", true, &mut unlimited())
                .unwrap(),
            "x-y"
        );
        assert_eq!(
            p("a\\}")
                .replace("a}", "-", true, &mut unlimited())
                .unwrap(),
            "-"
        );
    }

    #[test]
    fn invalid_escapes() {
        assert_eq!(Pattern::new("\\x"), Err("invalid escape '\\x'".to_string()));
        assert!(Pattern::new("a\\").is_err());
    }
}
