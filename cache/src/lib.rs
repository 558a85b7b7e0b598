//! builder-cache: the content-addressed store under a builder root.
//!
//! - [`digest`]: sha256 digests and hashing readers/writers.
//! - [`blobs`]: blobs stored by digest, written atomically and verified.
//! - [`images`]: the named image index (`builder images`, `tag`, `rmi`).

pub mod digest;

pub use digest::{Digest, DigestParseError, Hasher, HashingReader, HashingWriter};
