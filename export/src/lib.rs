//! builder-export
