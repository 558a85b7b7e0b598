//! The target platform type is shared with the rest of the build ([`builder_store::Platform`]);
//! the registry matches index entries with [`Platform::matches`].

pub use builder_store::platform::{InvalidPlatform, Platform};
