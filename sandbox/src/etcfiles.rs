//! Contents of the generated /etc/hosts, /etc/resolv.conf and /etc/hostname. The sandbox
//! writes them into its private /dev tmpfs and bind-mounts them over the rootfs' files, so
//! neither the rootfs nor the host keeps anything once the sandbox is gone.

use std::fs;
use std::path::Path;

use crate::spec::{ExtraHost, Network};

/// Used when the host has no usable resolv.conf, and always without network (BuildKit does the same).
const DEFAULT_RESOLV_CONF: &str = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";

/// (in-container path, content) of the files the sandbox bind-mounts over the rootfs' own.
pub fn generate(
    hostname: &str,
    network: Network,
    extra_hosts: &[ExtraHost],
) -> Vec<(String, String)> {
    vec![
        ("/etc/hosts".to_string(), hosts(hostname, extra_hosts)),
        (
            "/etc/resolv.conf".to_string(),
            resolv_conf(network, Path::new("/etc/resolv.conf")),
        ),
        ("/etc/hostname".to_string(), format!("{hostname}\n")),
    ]
}

/// localhost (with the sandbox's hostname), then the `--add-host` entries in their order.
pub fn hosts(hostname: &str, extra_hosts: &[ExtraHost]) -> String {
    let name = if hostname.is_empty() {
        String::new()
    } else {
        format!(" {hostname}")
    };
    let mut out =
        format!("127.0.0.1\tlocalhost{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for h in extra_hosts {
        out.push_str(&format!("{}\t{}\n", h.address, h.name));
    }
    out
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
        assert!(hosts("box", &[]).starts_with("127.0.0.1\tlocalhost box\n"));
        assert!(hosts("", &[]).starts_with("127.0.0.1\tlocalhost\n"));
        let extra = [
            ExtraHost {
                name: "registry.internal".into(),
                address: "10.1.2.3".into(),
            },
            ExtraHost {
                name: "v6".into(),
                address: "::1".into(),
            },
        ];
        assert!(hosts("box", &extra).ends_with("10.1.2.3\tregistry.internal\n::1\tv6\n"));
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
    fn generate_covers_the_three_files() {
        let files = generate("box", Network::None, &[]);
        let targets: Vec<&str> = files.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(targets, ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"]);
        assert_eq!(files[2].1, "box\n");
        assert_eq!(files[1].1, DEFAULT_RESOLV_CONF);
    }
}
