//! builder-registry
