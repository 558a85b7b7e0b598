//! Authentication: where credentials come from (`credentials`), what the
//! registry asks for (`challenge`), which token realms may receive them (`realm`), and the
//! per-scope token cache (`session`).

pub mod challenge;
pub mod credentials;
pub mod realm;
pub mod session;
