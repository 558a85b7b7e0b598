//! builder-solver
