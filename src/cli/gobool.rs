//! Booleans as docker's and buildx's flags (and BuildKit's boolean build args) spell them: Go's
//! `strconv.ParseBool`.

/// `1 t T TRUE true True` and `0 f F FALSE false False`; anything else is an error naming the
/// value.
pub fn parse(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!("{other:?} is not a boolean (true or false)")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_spellings() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(super::parse(t), Ok(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(super::parse(f), Ok(false));
        }
        for bad in ["", "yes", "tRUE", " true"] {
            assert!(super::parse(bad).is_err());
        }
    }
}
