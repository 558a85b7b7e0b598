//! Instruction flags (`--name=value`, `--bool`, repeatable `--list=v`), validated against the
//! flags each instruction accepts, with BuildKit's error messages.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    /// `--name=value`, at most once.
    Str,
    /// `--name` or `--name=true|false`, at most once.
    Bool,
    /// `--name=value`, repeatable.
    List,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FlagValue {
    Str(String),
    Bool(bool),
    List(Vec<String>),
}

/// A rejected flag: the raw flag text (to locate it in the source) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlagError {
    pub(crate) raw: String,
    pub(crate) message: String,
}

/// Parsed flag values, by name.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: BTreeMap<&'static str, FlagValue>,
    raw: BTreeMap<&'static str, String>,
}

impl Flags {
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        match self.values.get(name) {
            Some(FlagValue::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }

    pub(crate) fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(FlagValue::Bool(true)))
    }

    /// A bool flag's value, or None when it was not given (`ADD --unpack` has a default that
    /// depends on the source).
    pub(crate) fn opt_bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(FlagValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(FlagValue::List(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    /// The raw text of the (last) occurrence of a flag, for error locations.
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.raw.get(name).map(String::as_str)
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

pub(crate) fn parse_flags(
    raw: &[String],
    spec: &[(&'static str, FlagKind)],
) -> Result<Flags, FlagError> {
    let mut flags = Flags::default();
    for flag in raw {
        let fail = |message: String| FlagError {
            raw: flag.clone(),
            message,
        };
        let Some(body) = flag.strip_prefix("--") else {
            return Err(fail(format!("Arguments must start with '--': {flag}")));
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&(key, kind)) = spec.iter().find(|(n, _)| *n == name) else {
            // BuildKit names the flag as written and hints at the closest one it takes.
            let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
            let message =
                crate::linter::suggest::wrap(format!("unknown flag: --{name}"), name, &names, true);
            return Err(fail(message));
        };
        if kind != FlagKind::List && flags.values.contains_key(key) {
            return Err(fail(format!("Duplicate flag specified: {name}")));
        }
        let parsed = match (kind, value) {
            (FlagKind::Bool, None) => FlagValue::Bool(true),
            (FlagKind::Bool, Some(v)) => match parse_go_bool(&v.to_lowercase()) {
                Some(b) => FlagValue::Bool(b),
                None => {
                    return Err(fail(format!(
                        "expecting boolean value for flag {name}, not: {v}"
                    )));
                }
            },
            (_, None) => return Err(fail(format!("Missing a value on flag: {name}"))),
            (FlagKind::Str, Some(v)) => FlagValue::Str(v.to_string()),
            (FlagKind::List, Some(v)) => {
                let mut list = flags.list(key);
                list.push(v.to_string());
                FlagValue::List(list)
            }
        };
        flags.values.insert(key, parsed);
        flags.raw.insert(key, flag.clone());
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[(&str, FlagKind)] = &[
        ("from", FlagKind::Str),
        ("link", FlagKind::Bool),
        ("mount", FlagKind::List),
    ];

    fn parse(raw: &[&str]) -> Result<Flags, String> {
        let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
        parse_flags(&raw, SPEC).map_err(|e| e.message)
    }

    #[test]
    fn values_and_errors() {
        let f = parse(&["--from=a", "--link", "--mount=x", "--mount=y"]).unwrap();
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert!(f.bool("link"));
        assert_eq!(f.list("mount"), ["x", "y"]);
        assert!(!parse(&["--link=false"]).unwrap().bool("link"));
        assert_eq!(parse(&["--nope"]).unwrap_err(), "unknown flag: --nope");
        assert_eq!(
            parse(&["--from=a", "--from=b"]).unwrap_err(),
            "Duplicate flag specified: from"
        );
        assert_eq!(
            parse(&["--from"]).unwrap_err(),
            "Missing a value on flag: from"
        );
        assert_eq!(
            parse(&["--link=maybe"]).unwrap_err(),
            "expecting boolean value for flag link, not: maybe"
        );
    }
}
