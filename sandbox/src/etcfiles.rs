//! Generated /etc/hosts, /etc/resolv.conf and /etc/hostname, kept in a private temp directory
//! on the host and bind-mounted into the sandbox, so the rootfs itself is not modified.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::SandboxError;
use crate::spec::Network;

/// Used when the host has no usable resolv.conf, and always without network (BuildKit does the same).
const DEFAULT_RESOLV_CONF: &str = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";

/// A temp directory holding the generated files; removed on drop.
#[derive(Debug)]
pub struct EtcFiles {
    dir: PathBuf,
    pub files: Vec<(String, PathBuf)>,
}

impl EtcFiles {
    pub fn create(hostname: &str, network: Network) -> Result<Self, SandboxError> {
        let template = std::env::temp_dir().join("builder-sandbox-XXXXXX");
        let dir = nix::unistd::mkdtemp(&template).map_err(|e| {
            SandboxError::io(format!("create temp dir {}", template.display()), e.into())
        })?;
        let mut etc = EtcFiles {
            dir,
            files: Vec::new(),
        };
        etc.add("/etc/hosts", "hosts", &hosts(hostname))?;
        etc.add(
            "/etc/resolv.conf",
            "resolv.conf",
            &resolv_conf(network, Path::new("/etc/resolv.conf")),
        )?;
        etc.add("/etc/hostname", "hostname", &format!("{hostname}\n"))?;
        Ok(etc)
    }

    fn add(&mut self, target: &str, name: &str, content: &str) -> Result<(), SandboxError> {
        let path = self.dir.join(name);
        fs::write(&path, content)
            .map_err(|e| SandboxError::io(format!("write {}", path.display()), e))?;
        // World-readable so a payload running as a non-root USER can resolve names.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .map_err(|e| SandboxError::io(format!("chmod {}", path.display()), e))?;
        self.files.push((target.to_string(), path));
        Ok(())
    }
}

impl Drop for EtcFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn hosts(hostname: &str) -> String {
    let name = if hostname.is_empty() {
        String::new()
    } else {
        format!(" {hostname}")
    };
    format!("127.0.0.1\tlocalhost{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// The host's resolv.conf when sharing its network and it names a server, else the default.
pub fn resolv_conf(network: Network, host_file: &Path) -> String {
    if network == Network::Host
        && let Ok(content) = fs::read_to_string(host_file)
        && content
            .lines()
            .any(|l| l.trim_start().starts_with("nameserver"))
    {
        return content;
    }
    DEFAULT_RESOLV_CONF.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_names_the_sandbox() {
        assert!(hosts("box").starts_with("127.0.0.1\tlocalhost box\n"));
        assert!(hosts("").starts_with("127.0.0.1\tlocalhost\n"));
    }

    #[test]
    fn resolv_conf_copies_host_only_with_host_network() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("resolv.conf");
        fs::write(&f, "search x\nnameserver 10.0.0.1\n").unwrap();
        assert_eq!(
            resolv_conf(Network::Host, &f),
            "search x\nnameserver 10.0.0.1\n"
        );
        assert_eq!(resolv_conf(Network::None, &f), DEFAULT_RESOLV_CONF);
        fs::write(&f, "search only\n").unwrap();
        assert_eq!(resolv_conf(Network::Host, &f), DEFAULT_RESOLV_CONF);
        assert_eq!(
            resolv_conf(Network::Host, &dir.path().join("missing")),
            DEFAULT_RESOLV_CONF
        );
    }

    #[test]
    fn files_are_removed_on_drop() {
        let etc = EtcFiles::create("h", Network::None).unwrap();
        let hosts_path = etc.files[0].1.clone();
        assert_eq!(fs::read_to_string(&hosts_path).unwrap(), hosts("h"));
        drop(etc);
        assert!(!hosts_path.exists());
    }
}
