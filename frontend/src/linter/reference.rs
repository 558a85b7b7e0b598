//! Whether a base image name is a valid reference (distribution's grammar, as
//! `reference.ParseNormalizedNamed` accepts it): what InvalidDefaultArgInFrom asks.

use std::sync::LazyLock;

use regex::Regex;

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let alnum = "[a-z0-9]+";
    let separator = "(?:[._]|__|[-]+)";
    let component = format!("{alnum}(?:{separator}{alnum})*");
    let domain_part = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
    let host = format!("(?:{domain_part}(?:\\.{domain_part})*|{ipv6})");
    let domain = format!("{host}(?::[0-9]+)?");
    // Go's `\w`, which distribution's grammar uses, is ASCII: `[0-9A-Za-z_]`. The regex
    // crate's is Unicode, whose class made this the costliest thing a no-op rebuild did
    // (a quarter of its CPU time compiling the NFA; see BENCHMARKS.md, issue #17).
    let tag = "[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
    let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    let name = format!("(?:{domain}/)?{component}(?:/{component})*");
    Regex::new(&format!("^({name})(?::({tag}))?(?:@({digest}))?$")).expect("valid pattern")
});

/// A name `FROM` could pull (or a stage name, which has the same shape).
pub(crate) fn is_valid(reference: &str) -> bool {
    let Some(m) = REFERENCE.captures(reference) else {
        return false;
    };
    let name = m.get(1).map_or("", |n| n.as_str());
    // distribution refuses names over 255 characters and 64-hex strings (image ids).
    let is_id = name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit());
    name.len() <= 255 && !is_id
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn reference_grammar() {
        for ok in [
            "busybox",
            "busybox:1.36",
            "docker.io/library/alpine:3.20",
            "localhost:5000/a/b:tag",
            "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "scratch",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        // Go's `\w` is ASCII: a tag with any other letter is no reference.
        for bad in [
            "",
            "busybox:",
            ":latest",
            "Busybox",
            "a//b",
            "busybox:-x",
            "busybox:caf\u{e9}",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
