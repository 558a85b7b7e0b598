//! builder-snapshot
