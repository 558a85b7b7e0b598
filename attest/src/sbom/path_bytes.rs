//! Paths in the stored per-layer scans: a UTF-8 path as a JSON string, any other as its bytes,
//! so a file name that is not UTF-8 survives the round trip unchanged.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr<'a> {
    Text(std::borrow::Cow<'a, str>),
    Bytes(Vec<u8>),
}

pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    match path.to_str() {
        Some(text) => Repr::Text(text.into()).serialize(s),
        None => Repr::Bytes(path.as_os_str().as_bytes().to_vec()).serialize(s),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    Ok(match Repr::deserialize(d)? {
        Repr::Text(text) => PathBuf::from(text.into_owned()),
        Repr::Bytes(bytes) => PathBuf::from(OsStr::from_bytes(&bytes)),
    })
}

/// The same for a list of paths.
pub mod vec {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct One(#[serde(with = "super")] PathBuf);

    pub fn serialize<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(paths.iter().map(|p| One(p.clone())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        Ok(Vec::<One>::deserialize(d)?
            .into_iter()
            .map(|o| o.0)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct P(#[serde(with = "super")] PathBuf);

    #[test]
    fn non_utf8_paths_round_trip() {
        for raw in [&b"/usr/lib/a.so"[..], b"/bin/\xff\xfe"] {
            let p = P(PathBuf::from(OsStr::from_bytes(raw)));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<P>(&json).unwrap(), p);
        }
    }
}
