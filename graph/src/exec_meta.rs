//! What a RUN step asks of its sandbox besides the command: privileges, extra /etc/hosts
//! entries and resource limits (BuildKit's exec "meta"). They are part of an exec op's cache
//! key, so they live with the graph; the sandbox has its own spec types and the executor maps
//! these onto them, as it maps [`crate::NetworkMode`].

use serde::{Deserialize, Serialize};

/// `RUN --security=`: the privileges of the step's process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Security {
    /// docker's default capabilities and `no_new_privs`.
    #[default]
    Sandbox,
    /// `RUN --security=insecure` (granted by `--allow security.insecure`): every capability.
    Insecure,
}

/// One `--add-host NAME:ADDRESS` entry: a line of the step's /etc/hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    pub name: String,
    /// An IPv4 or IPv6 address, as the user wrote it (without brackets).
    pub address: String,
}

impl ExtraHost {
    /// docker's `NAME:ADDRESS` or `NAME=ADDRESS` (an IPv6 address may be in brackets).
    /// `host-gateway` is refused: it names a daemon's bridge, and there is no daemon here.
    pub fn parse(spec: &str) -> Result<ExtraHost, String> {
        let (name, address) = spec
            .split_once('=')
            .or_else(|| spec.split_once(':'))
            .ok_or_else(|| format!("{spec:?}: expected NAME:ADDRESS or NAME=ADDRESS"))?;
        let address = address.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("{spec:?}: invalid host name {name:?}"));
        }
        if address == "host-gateway" {
            return Err(format!(
                "{spec:?}: host-gateway names a docker daemon's bridge address; builder runs steps in the host's network, so give the address itself (e.g. {name}:127.0.0.1)"
            ));
        }
        address
            .parse::<std::net::IpAddr>()
            .map_err(|_| format!("{spec:?}: {address:?} is not an IP address"))?;
        Ok(ExtraHost {
            name: name.to_string(),
            address: address.to_string(),
        })
    }
}

/// docker's `--ulimit` names (each an RLIMIT_* resource the sandbox sets).
pub const ULIMIT_NAMES: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// One `--ulimit NAME=SOFT[:HARD]` resource limit, set on the step's process before it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// docker's name, one of [`ULIMIT_NAMES`].
    pub name: String,
    /// None: unlimited (`-1`).
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl Ulimit {
    /// docker's `NAME=SOFT[:HARD]`; `-1` means unlimited; SOFT may not exceed HARD.
    pub fn parse(spec: &str) -> Result<Ulimit, String> {
        let (name, values) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected NAME=SOFT[:HARD]"))?;
        if !ULIMIT_NAMES.contains(&name) {
            return Err(format!(
                "{spec:?}: unknown limit {name:?} (one of {})",
                ULIMIT_NAMES.join(", ")
            ));
        }
        let value = |v: &str| -> Result<Option<u64>, String> {
            match v {
                "-1" | "unlimited" => Ok(None),
                v => v
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| format!("{spec:?}: {v:?} is not a number")),
            }
        };
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (value(s)?, value(h)?),
            None => (value(values)?, value(values)?),
        };
        let above = match (soft, hard) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(s), Some(h)) => s > h,
        };
        if above {
            return Err(format!("{spec:?}: the soft limit is above the hard one"));
        }
        Ok(Ulimit {
            name: name.to_string(),
            soft,
            hard,
        })
    }
}
