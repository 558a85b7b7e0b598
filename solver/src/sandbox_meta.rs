//! A step's exec options as the graph holds them (`builder_graph::exec_meta`, part of cache
//! keys) mapped onto the sandbox's own spec types. Kept apart so the graph never depends on
//! the sandbox and the sandbox never on the graph; `builder run` maps its flags here too.

pub fn security(s: builder_graph::Security) -> builder_sandbox::Security {
    match s {
        builder_graph::Security::Sandbox => builder_sandbox::Security::Sandbox,
        builder_graph::Security::Insecure => builder_sandbox::Security::Insecure,
    }
}

pub fn extra_hosts(hosts: &[builder_graph::ExtraHost]) -> Vec<builder_sandbox::ExtraHost> {
    hosts
        .iter()
        .map(|h| builder_sandbox::ExtraHost {
            name: h.name.clone(),
            address: h.address.clone(),
        })
        .collect()
}

pub fn ulimits(limits: &[builder_graph::Ulimit]) -> Vec<builder_sandbox::Ulimit> {
    limits
        .iter()
        .map(|u| builder_sandbox::Ulimit {
            name: u.name.clone(),
            soft: u.soft,
            hard: u.hard,
        })
        .collect()
}

/// The snapshotter a build's views must use under `isolation`, or `None` for the best the host
/// allows. The chroot sandbox fills mount points in place and moves entries in and out of the
/// rootfs: it needs a private directory on the store's file system, not an overlay mount (which
/// a container that refuses namespaces refuses anyway).
pub fn snapshotter_for(
    isolation: builder_sandbox::Isolation,
) -> Option<builder_snapshot::Snapshotter> {
    match isolation {
        builder_sandbox::Isolation::Chroot => Some(builder_snapshot::Snapshotter::Copy),
        builder_sandbox::Isolation::Rootless => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_accepted_ulimit_name_is_one_the_sandbox_can_set() {
        for name in builder_graph::exec_meta::ULIMIT_NAMES {
            let limit = builder_graph::Ulimit::parse(&format!("{name}=1")).unwrap();
            let mapped = super::ulimits(&[limit]);
            assert!(
                builder_sandbox::ulimit_is_known(&mapped[0]),
                "--ulimit {name} is accepted but the sandbox cannot set it"
            );
        }
    }
}
