//! builder-frontend
pub mod ast;
pub mod error;
mod gostr;
mod line_parsers;
pub mod shell;
mod shell_pattern;
