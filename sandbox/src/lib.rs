//! builder-sandbox
