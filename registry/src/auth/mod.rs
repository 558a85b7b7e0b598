//! Authentication: where credentials come from (`credentials`), what the
//! registry asks for (`challenge`), and the per-scope token cache (`session`).

pub mod challenge;
pub mod credentials;
pub mod session;
