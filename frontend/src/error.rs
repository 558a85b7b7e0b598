//! Error types of the frontend: one located error for everything a user can get wrong in a
//! Dockerfile, and a plain error for the shell word lexer (which knows nothing about files).

use std::fmt;

/// An error located in a Dockerfile: `file:line:column: message`, followed by the quoted
/// source line so the user sees what was rejected without opening the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendError {
    /// Whatever name the caller passed, normally "Dockerfile".
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column (in characters) on `line`.
    pub column: usize,
    pub message: String,
    /// The text of `line`, when the error refers to a real source line.
    pub source_line: Option<String>,
}

impl FrontendError {
    pub(crate) fn new(line: usize, column: usize, message: impl Into<String>) -> FrontendError {
        FrontendError {
            file: "Dockerfile".to_string(),
            line,
            column,
            message: message.into(),
            source_line: None,
        }
    }

    pub(crate) fn with_source_line(mut self, source_line: Option<&str>) -> FrontendError {
        self.source_line = source_line.map(str::to_string);
        self
    }

    /// Relabels the error with the caller's file name (parsing layers default to "Dockerfile").
    pub fn with_file(mut self, file: &str) -> FrontendError {
        self.file = file.to_string();
        self
    }
}

impl fmt::Display for FrontendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(src) = &self.source_line {
            write!(f, "\n{:>4} | {}", self.line, src)?;
        }
        Ok(())
    }
}

impl std::error::Error for FrontendError {}

/// An error from expanding a shell word (unterminated quote, bad substitution, `${x:?msg}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ShellError {
    pub message: String,
}

impl ShellError {
    pub(crate) fn new(message: impl Into<String>) -> ShellError {
        ShellError {
            message: message.into(),
        }
    }
}
