//! Which rules run and whether a warning fails the build: the `# check=` directive, the
//! `BUILDKIT_DOCKERFILE_CHECK` build arg (same syntax, replaces the directive), and `# check=`
//! comments just above one instruction (merged in for that instruction only), as in BuildKit.

use super::rules::Rule;

/// `skip=Rule1,Rule2|all;error=true|false;experimental=Rule|all`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    pub skip_all: bool,
    pub skip: Vec<String>,
    pub experimental_all: bool,
    pub experimental: Vec<String>,
    /// `error=true`: any warning fails the build.
    pub error: bool,
}

/// Why a check option string was refused (BuildKit's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckOptionError(pub String);

fn rule_list(v: &str) -> Vec<String> {
    v.split(',').map(|r| r.trim().to_string()).collect()
}

/// Go's `strconv.ParseBool`.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl CheckConfig {
    pub fn parse(text: &str) -> Result<CheckConfig, CheckOptionError> {
        let text = text.trim();
        let mut config = CheckConfig::default();
        if text.is_empty() {
            return Ok(config);
        }
        // BuildKit splits into at most three parts: a fourth option stays glued to the third.
        for part in text.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(CheckOptionError(format!("invalid check option {part:?}")));
            };
            let value = value.trim();
            match key.trim() {
                "skip" if value == "all" => config.skip_all = true,
                "skip" => config.skip = rule_list(value),
                "experimental" if value == "all" => config.experimental_all = true,
                "experimental" => config.experimental = rule_list(value),
                "error" => {
                    config.error = go_bool(value).ok_or_else(|| {
                        CheckOptionError(format!(
                            "failed to parse check option {part:?}: strconv.ParseBool: parsing {value:?}: invalid syntax"
                        ))
                    })?
                }
                other => return Err(CheckOptionError(format!("invalid check option {other:?}"))),
            }
        }
        Ok(config)
    }

    /// Adds what `other` asks for (BuildKit merges, never un-skips).
    pub fn merged(&self, other: &CheckConfig) -> CheckConfig {
        let mut out = self.clone();
        out.skip_all |= other.skip_all;
        out.experimental_all |= other.experimental_all;
        out.skip.extend(other.skip.iter().cloned());
        out.experimental.extend(other.experimental.iter().cloned());
        out
    }

    /// The config for one instruction: the first `# check=...` among the comments above it is
    /// merged in (an unparsable one is ignored, as BuildKit does).
    pub fn with_comments(&self, comments: &[String]) -> CheckConfig {
        for comment in comments {
            let Some(value) = check_comment(comment) else {
                continue;
            };
            // Only the first word counts: `# check=skip=X some note`.
            let value = value.split(' ').next().unwrap_or_default();
            return match CheckConfig::parse(value) {
                Ok(c) => self.merged(&c),
                Err(_) => self.clone(),
            };
        }
        self.clone()
    }

    /// Whether `rule` is reported under this config.
    pub fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            return self.experimental_all || self.experimental.iter().any(|r| r == rule.name);
        }
        !(self.skip_all || self.skip.iter().any(|r| r == rule.name))
    }
}

/// `check=VALUE` in a comment's text (without the `#`), directive syntax.
fn check_comment(comment: &str) -> Option<&str> {
    let (name, value) = comment.split_once('=')?;
    if !name.trim().eq_ignore_ascii_case("check") {
        return None;
    }
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linter::rules;

    #[test]
    fn parses_buildkit_syntax() {
        let c = CheckConfig::parse("skip=JSONArgsRecommended, StageNameCasing;error=true").unwrap();
        assert_eq!(c.skip, ["JSONArgsRecommended", "StageNameCasing"]);
        assert!(c.error);
        assert!(!c.enabled(&rules::JSON_ARGS_RECOMMENDED));
        assert!(c.enabled(&rules::FROM_AS_CASING));
        let all = CheckConfig::parse("skip=all").unwrap();
        assert!(!all.enabled(&rules::FROM_AS_CASING));
        assert_eq!(
            CheckConfig::parse("bogus").unwrap_err().0,
            "invalid check option \"bogus\""
        );
        assert_eq!(
            CheckConfig::parse("foo=bar").unwrap_err().0,
            "invalid check option \"foo\""
        );
        assert!(CheckConfig::parse("error=maybe").is_err());
    }

    #[test]
    fn experimental_rules_need_opt_in() {
        let none = CheckConfig::default();
        assert!(!none.enabled(&rules::INVALID_DEFINITION_DESCRIPTION));
        let one = CheckConfig::parse("experimental=InvalidDefinitionDescription").unwrap();
        assert!(one.enabled(&rules::INVALID_DEFINITION_DESCRIPTION));
        // skip=all does not turn off an experimental rule asked for by name.
        let both = CheckConfig::parse("skip=all;experimental=all").unwrap();
        assert!(both.enabled(&rules::INVALID_DEFINITION_DESCRIPTION));
    }

    #[test]
    fn comment_merges_for_one_instruction() {
        let base = CheckConfig::default();
        let c = base.with_comments(&["check=skip=JSONArgsRecommended".to_string()]);
        assert!(!c.enabled(&rules::JSON_ARGS_RECOMMENDED));
        assert!(base.enabled(&rules::JSON_ARGS_RECOMMENDED));
    }
}
