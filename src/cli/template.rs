//! `builder inspect --format`: the part of Go's text/template that docker users write against
//! inspect output, evaluated over the JSON `inspect` prints. Field paths (`{{.Id}}`,
//! `{{.Config.Env}}`), and the functions `json`, `index`, `len` and `join`. Anything else
//! (pipelines, parentheses, variables, `if`/`range`, trim markers) is an error, never skipped.

use serde_json::Value;

/// A parsed template: literal text and actions, in order.
#[derive(Debug)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Action(Call),
}

/// A function applied to arguments, or a lone argument (`{{.Id}}`).
#[derive(Debug)]
enum Call {
    Value(Arg),
    Json(Arg),
    Len(Arg),
    Index(Arg, Vec<Arg>),
    Join(Arg, Arg),
}

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B`: keys from the top; empty for `.` itself.
    Field(Vec<String>),
    Str(String),
    Int(i64),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed action at {:?}", &rest[start..]))?;
            let action = &after[..end];
            parts.push(Part::Action(parse_action(action)?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The template applied to one inspected object.
    pub fn render(&self, data: &Value) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Action(call) => out.push_str(&call.eval(data)?),
            }
        }
        Ok(out)
    }
}

fn parse_action(action: &str) -> Result<Call, String> {
    let unsupported = |what: &str| {
        Err(format!(
            "{{{{{action}}}}}: {what} is not supported (builder's --format knows field paths like .Config.Env and the functions json, index, len and join)"
        ))
    };
    if action.starts_with('-') || action.ends_with('-') {
        return unsupported("a trim marker");
    }
    let words = tokenize(action)?;
    let Some((first, args)) = words.split_first() else {
        return Err("empty action {{}}".into());
    };
    let arg = |w: &Token| match w {
        Token::Word(word) => parse_arg(word),
        Token::Str(s) => Ok(Arg::Str(s.clone())),
    };
    let name = match first {
        Token::Word(w) if !w.starts_with('.') && !w.starts_with(|c: char| c.is_ascii_digit()) => {
            w.as_str()
        }
        _ => {
            if !args.is_empty() {
                return unsupported("a value followed by arguments");
            }
            return Ok(Call::Value(arg(first)?));
        }
    };
    let args = args.iter().map(arg).collect::<Result<Vec<_>, _>>()?;
    let count = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{{{{{action}}}}}: {name} takes {n} argument(s), got {}",
                args.len()
            ))
        }
    };
    match name {
        "json" => count(1).map(|_| Call::Json(args[0].clone())),
        "len" => count(1).map(|_| Call::Len(args[0].clone())),
        "join" => count(2).map(|_| Call::Join(args[0].clone(), args[1].clone())),
        "index" if !args.is_empty() => Ok(Call::Index(args[0].clone(), args[1..].to_vec())),
        "index" => Err(format!("{{{{{action}}}}}: index needs a value")),
        "if" | "range" | "with" | "else" | "end" | "define" | "template" | "block" => {
            unsupported(&format!("the {name} action"))
        }
        other => unsupported(&format!("the function {other:?}")),
    }
}

enum Token {
    Word(String),
    Str(String),
}

fn tokenize(action: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '`' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("{{{{{action}}}}}: unterminated string")),
                    Some(q) if q == c => break,
                    Some('\\') if c == '"' => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(e @ ('\\' | '"')) => s.push(e),
                        other => {
                            return Err(format!(
                                "{{{{{action}}}}}: unsupported escape \\{}",
                                other.map(String::from).unwrap_or_default()
                            ));
                        }
                    },
                    Some(ch) => s.push(ch),
                }
            }
            out.push(Token::Str(s));
        } else if matches!(c, '(' | ')' | '|' | '$' | ':' | '=' | ',') {
            return Err(format!(
                "{{{{{action}}}}}: {c:?} (pipelines, parentheses, variables) is not supported"
            ));
        } else {
            let mut w = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || matches!(ch, '"' | '`' | '(' | ')' | '|') {
                    break;
                }
                w.push(ch);
                chars.next();
            }
            out.push(Token::Word(w));
        }
    }
    Ok(out)
}

fn parse_arg(word: &str) -> Result<Arg, String> {
    if word == "." {
        return Ok(Arg::Field(Vec::new()));
    }
    if let Some(path) = word.strip_prefix('.') {
        let keys: Vec<String> = path.split('.').map(str::to_string).collect();
        if keys
            .iter()
            .any(|k| k.is_empty() || !k.chars().all(|c| c.is_alphanumeric() || c == '_'))
        {
            return Err(format!("{word:?} is not a field path like .Config.Env"));
        }
        return Ok(Arg::Field(keys));
    }
    word.parse::<i64>()
        .map(Arg::Int)
        .map_err(|_| format!("{word:?} is not a field path, a string or a number"))
}

impl Arg {
    fn eval(&self, data: &Value) -> Result<Value, String> {
        match self {
            Arg::Str(s) => Ok(Value::String(s.clone())),
            Arg::Int(i) => Ok(Value::from(*i)),
            Arg::Field(keys) => {
                let mut v = data;
                let mut path = String::new();
                for (depth, key) in keys.iter().enumerate() {
                    path.push('.');
                    path.push_str(key);
                    v = match v {
                        // inspect always prints every top-level field, so a name it lacks is a
                        // typo; below, empty config fields are left out of the JSON and read as
                        // Go reads a missing map key.
                        // docker's inspect names its top-level fields `Config`, `Architecture`,
                        // `Os`; ours carry the image config's own names (`config`,
                        // `architecture`, `os`), so a top-level name also matches regardless of
                        // case.
                        Value::Object(map) if depth == 0 => map
                            .get(key)
                            .or_else(|| {
                                map.iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                                    .map(|(_, v)| v)
                            })
                            .ok_or_else(|| {
                                let mut known: Vec<&String> = map.keys().collect();
                                known.sort();
                                format!(
                                    "{path}: no such field (inspect has {})",
                                    known
                                        .iter()
                                        .map(|k| k.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )
                            })?,
                        Value::Object(map) => match map.get(key) {
                            Some(v) => v,
                            None => return Ok(Value::Null),
                        },
                        Value::Null => return Ok(Value::Null),
                        other => {
                            return Err(format!("{path}: {} has no fields", kind(other)));
                        }
                    };
                }
                Ok(v.clone())
            }
        }
    }
}

impl Call {
    fn eval(&self, data: &Value) -> Result<String, String> {
        match self {
            Call::Value(a) => Ok(display(&a.eval(data)?)),
            Call::Json(a) => serde_json::to_string(&a.eval(data)?).map_err(|e| e.to_string()),
            Call::Len(a) => match a.eval(data)? {
                Value::Array(v) => Ok(v.len().to_string()),
                Value::Object(m) => Ok(m.len().to_string()),
                Value::String(s) => Ok(s.len().to_string()),
                Value::Null => Ok("0".into()),
                other => Err(format!("len of {}", kind(&other))),
            },
            Call::Join(a, sep) => {
                let Value::String(sep) = sep.eval(data)? else {
                    return Err("join: the separator must be a string".into());
                };
                match a.eval(data)? {
                    Value::Array(v) => Ok(v.iter().map(display).collect::<Vec<_>>().join(&sep)),
                    Value::Null => Ok(String::new()),
                    other => Err(format!("join of {}", kind(&other))),
                }
            }
            Call::Index(a, keys) => {
                let mut v = a.eval(data)?;
                for key in keys {
                    v = match (v, key.eval(data)?) {
                        (Value::Array(items), Value::Number(n)) => {
                            let len = items.len();
                            n.as_u64()
                                .and_then(|i| items.into_iter().nth(i as usize))
                                .ok_or_else(|| format!("index {n} out of range (length {len})"))?
                        }
                        (Value::Object(mut map), Value::String(k)) => {
                            // Go's index of a missing map key is the zero value.
                            map.remove(&k).unwrap_or(Value::Null)
                        }
                        (Value::Null, _) => Value::Null,
                        (v, k) => {
                            return Err(format!("cannot index {} with {}", kind(&v), kind(&k)));
                        }
                    };
                }
                Ok(display(&v))
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// How Go's template prints a decoded JSON value (fmt's `%v`): strings bare, lists as
/// `[a b]`, objects as `map[k:v]` with sorted keys, null (a nil interface) as `<no value>`.
fn display(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(display).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", display(&map[k])))
                .collect();
            format!("map[{}]", body.join(" "))
        }
    }
}
