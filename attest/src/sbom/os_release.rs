//! os-release(5): which distro the OS packages belong to (their purls' namespace).

/// `ID` and `VERSION_ID` of the image's os-release.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Distro {
    pub id: String,
    pub version_id: Option<String>,
}

pub(super) fn parse(data: &[u8]) -> Distro {
    let text = String::from_utf8_lossy(data);
    let mut d = Distro::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        match k.trim() {
            "ID" => d.id = v,
            "VERSION_ID" => d.version_id = Some(v),
            _ => {}
        }
    }
    d
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_values() {
        let d = super::parse(
            b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        );
        assert_eq!(d.id, "debian");
        assert_eq!(d.version_id.as_deref(), Some("12"));
    }
}
