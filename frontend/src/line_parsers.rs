//! Per-instruction argument parsers of the AST layer, following BuildKit's dispatch table:
//! they turn the text after the instruction (and its flags) into argument strings without
//! expanding anything. Quotes and escapes in words are kept for the expansion step.

use crate::gostr;

/// Arguments produced for one instruction.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub(crate) args: Vec<String>,
    pub(crate) json: bool,
}

impl Args {
    fn plain(args: Vec<String>) -> Args {
        Args { args, json: false }
    }
}

/// BuildKit's `[\t\v\f\r ]+` separator (newlines are deliberately not included).
fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Splits on runs of token whitespace, at most `limit` pieces (0 = unlimited).
pub(crate) fn split_ws(s: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        if limit != 0 && out.len() + 1 == limit {
            out.push(rest.to_string());
            return out;
        }
        match rest.find(is_token_space) {
            Some(i) => {
                out.push(rest[..i].to_string());
                rest = rest[i..].trim_start_matches(is_token_space);
            }
            None => {
                out.push(rest.to_string());
                return out;
            }
        }
    }
}

/// Splits a line into the instruction word, its `--flags` and the remaining argument text.
pub(crate) fn split_command(line: &str) -> (String, Vec<String>, String) {
    let parts = split_ws(line.trim(), 2);
    let cmd = parts.first().cloned().unwrap_or_default();
    match parts.get(1) {
        Some(rest) => {
            let (args, flags) = extract_builder_flags(rest);
            (cmd, flags, args.trim().to_string())
        }
        None => (cmd, Vec::new(), String::new()),
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Spaces,
    Word,
    Quote(char),
}

/// Takes leading `--flag[=value]` words (quotes removed, `\` escapes applied) off `line`; a
/// bare `--` ends the flags. Returns the rest of the line and the flags.
fn extract_builder_flags(line: &str) -> (String, Vec<String>) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    while i <= chars.len() {
        let at_end = i == chars.len();
        let (pos, ch) = chars.get(i).copied().unwrap_or((line.len(), '\0'));
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            let next_is_dash = chars.get(i + 1).map(|c| c.1) == Some('-');
            if ch != '-' || !next_is_dash {
                return (line[pos..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        match phase {
            Phase::Word if ch.is_whitespace() => {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[pos..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
            }
            Phase::Word if ch == '\'' || ch == '"' => {
                phase = Phase::Quote(ch);
                blank_ok = true;
            }
            Phase::Quote(q) if ch == q => phase = Phase::Word,
            _ if ch == '\\' => {
                if i + 1 == chars.len() {
                    if matches!(phase, Phase::Quote(_)) {
                        phase = Phase::Word;
                    }
                } else {
                    i += 1;
                    word.push(chars[i].1);
                }
            }
            _ => word.push(ch),
        }
        i += 1;
    }
    (String::new(), words)
}

/// Splits into words on whitespace, keeping quotes and escapes in the words.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    i += 1;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue; // an escape at the end of the line is dropped
                    }
                    word.push(ch);
                    i += 1;
                }
                word.push(chars[i]);
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                }
                // Inside '...' the escape character is literal.
                if ch == escape && q != '\'' {
                    if i + 1 == chars.len() {
                        phase = Phase::Word;
                        i += 1;
                        continue;
                    }
                    word.push(ch);
                    i += 1;
                }
                word.push(chars[i]);
            }
            Phase::Spaces => {}
        }
        i += 1;
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// `ENV`/`LABEL`: `key value` (legacy, separator "") or `k=v k2=v2` (separator "=").
/// Arguments come in triples: key, value, separator.
pub(crate) fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Args, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Args::default());
    };
    if !first.contains('=') {
        let parts = split_ws(rest, 2);
        if parts.len() < 2 {
            return Err(format!("{key} must have two arguments"));
        }
        return Ok(Args::plain(vec![
            parts[0].clone(),
            parts[1].clone(),
            String::new(),
        ]));
    }
    let mut args = Vec::new();
    for word in &words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                gostr::quote(word)
            ));
        };
        args.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(Args::plain(args))
}

pub(crate) fn parse_strings_whitespace_delimited(rest: &str) -> Args {
    if rest.is_empty() {
        return Args::default();
    }
    Args::plain(split_ws(rest, 0))
}

pub(crate) fn parse_string(rest: &str) -> Args {
    if rest.is_empty() {
        return Args::default();
    }
    Args::plain(vec![rest.to_string()])
}

pub(crate) enum JsonError {
    /// Not a JSON array at all: callers fall back to the shell/word form like docker.
    NotJson,
    /// A JSON array with a non-string element: always an error.
    NotStringArray,
}

pub(crate) const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// Decodes `rest` as one JSON value. Text after it other than white space makes it no JSON
/// (BuildKit's parser uses json.Unmarshal), so `RUN ["echo", "hello"]this is invalid` is the
/// shell form.
pub(crate) fn parse_json(rest: &str) -> Result<Vec<String>, JsonError> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Err(JsonError::NotJson);
    }
    let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
    let first = stream.next();
    if !rest[stream.byte_offset()..]
        .trim_matches([' ', '\t', '\n', '\r'])
        .is_empty()
    {
        return Err(JsonError::NotJson);
    }
    match first {
        Some(Ok(serde_json::Value::Array(items))) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(JsonError::NotStringArray),
            })
            .collect(),
        _ => Err(JsonError::NotJson),
    }
}

/// `RUN`/`CMD`/`ENTRYPOINT`/`SHELL`: a JSON string array, or else the text as one argument.
pub(crate) fn parse_maybe_json(rest: &str) -> Result<Args, String> {
    if rest.is_empty() {
        return Ok(Args::default());
    }
    match parse_json(rest) {
        Ok(args) => Ok(Args { args, json: true }),
        Err(JsonError::NotStringArray) => Err(NOT_STRING_ARRAY.to_string()),
        Err(JsonError::NotJson) => Ok(Args::plain(vec![rest.to_string()])),
    }
}

/// `ADD`/`COPY`/`VOLUME`: a JSON string array, or else whitespace-separated words.
pub(crate) fn parse_maybe_json_to_list(rest: &str) -> Result<Args, String> {
    match parse_json(rest) {
        Ok(args) => Ok(Args { args, json: true }),
        Err(JsonError::NotStringArray) => Err(NOT_STRING_ARRAY.to_string()),
        Err(JsonError::NotJson) => Ok(parse_strings_whitespace_delimited(rest)),
    }
}

/// `HEALTHCHECK`: a type word (`CMD`, `NONE`, ...) followed by a maybe-JSON command.
pub(crate) fn parse_health_config(rest: &str) -> Result<Args, String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok(Args::default());
    }
    let typ = &rest[..sep];
    let cmd = parse_maybe_json(rest[sep..].trim_start())?;
    let mut args = vec![typ.to_string()];
    args.extend(cmd.args);
    Ok(Args {
        args,
        json: cmd.json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words("foo bar 'abc xyz'", '\\'),
            ["foo", "bar", "'abc xyz'"]
        );
        assert_eq!(parse_words("foo\\ bar", '\\'), ["foo\\ bar"]);
        assert_eq!(
            parse_words("föo bàr \"âbc xÿz\"", '\\'),
            ["föo", "bàr", "\"âbc xÿz\""]
        );
        assert_eq!(parse_words("a=\"\" b", '\\'), ["a=\"\"", "b"]);
    }

    #[test]
    fn flags_are_split_off() {
        let (cmd, flags, rest) = split_command("COPY --from=a --chown=\"x y\" -- --b c");
        assert_eq!(cmd, "COPY");
        assert_eq!(flags, ["--from=a", "--chown=x y"]);
        assert_eq!(rest, "--b c");
        let (_, flags, rest) = split_command("RUN -x --y");
        assert!(flags.is_empty());
        assert_eq!(rest, "-x --y");
    }

    #[test]
    fn json_detection() {
        assert!(matches!(parse_json("[ 'x' ]"), Err(JsonError::NotJson)));
        assert!(matches!(parse_json("[1]"), Err(JsonError::NotStringArray)));
        assert!(matches!(
            parse_json("[\"a\"] trailing"),
            Err(JsonError::NotJson)
        ));
        assert_eq!(parse_json("[\"a\"] \t").ok(), Some(vec!["a".to_string()]));
        assert!(parse_maybe_json("[\"a\", [\"b\"]]").is_err());
    }
}
