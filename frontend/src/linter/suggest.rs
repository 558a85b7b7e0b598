//! "did you mean X?" hints: the closest option by edit distance, as BuildKit's `suggest`
//! package picks it (distance below 3, an exact match means the value was not the problem).

/// The option closest to `value`, if any is within two edits. Without `case_sensitive` the
/// comparison ignores case and the hint takes the case `value` was written in when that was
/// all lower or all upper.
pub fn search(value: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let fold = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let wanted = fold(value);
    let mut best: Option<(usize, String)> = None;
    for option in options {
        let candidate = fold(option);
        if candidate == wanted {
            return None;
        }
        let distance = strsim::levenshtein(&wanted, &candidate);
        if distance < 3 && best.as_ref().is_none_or(|(d, _)| distance < *d) {
            best = Some((distance, candidate));
        }
    }
    let (_, found) = best?;
    if case_sensitive || value == value.to_lowercase() {
        return Some(found);
    }
    if value == value.to_uppercase() {
        return Some(found.to_uppercase());
    }
    Some(found)
}

/// `message` with ` (did you mean X?)` when an option is close to `value`.
pub fn wrap(message: String, value: &str, options: &[&str], case_sensitive: bool) -> String {
    match search(value, options, case_sensitive) {
        Some(hint) => format!("{message} (did you mean {hint}?)"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_within_two_edits() {
        assert_eq!(
            search("RUNN", &["RUN", "CMD"], false).as_deref(),
            Some("RUN")
        );
        assert_eq!(
            search("runn", &["RUN", "CMD"], false).as_deref(),
            Some("run")
        );
        assert_eq!(
            search("biuld", &["build", "test"], true).as_deref(),
            Some("build")
        );
        assert_eq!(search("xyzzy", &["build"], true), None);
        // An exact match means the value is fine: no hint.
        assert_eq!(search("build", &["build", "buil"], true), None);
    }
}
