//! docker `USER` resolution against the rootfs' /etc/passwd and /etc/group.

/// Credentials the payload runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub supplementary_gids: Vec<u32>,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Resolve `spec` ("", "name", "uid", "name:group", "uid:gid", ...). `passwd` and `group` are
/// the file contents (empty when the file is missing: numeric ids still work).
/// Like runc, supplementary groups come from /etc/group membership only when no group was given;
/// the primary group is always among them.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser, UserError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let users: Vec<PasswdEntry> = passwd.lines().filter_map(parse_passwd).collect();
    let groups: Vec<GroupEntry> = group.lines().filter_map(parse_group).collect();

    let entry = find_user(&users, user_part)?;
    let uid = match (entry, user_part.parse::<u32>()) {
        (Some(e), _) => e.uid,
        (None, Ok(n)) => n,
        (None, Err(_)) if user_part.is_empty() => 0,
        (None, Err(_)) => return Err(UserError::UnknownUser(user_part.to_string())),
    };
    let home = entry.map_or("/", |e| e.home).to_string();

    let (gid, mut supplementary_gids) = match group_part {
        Some(g) if !g.is_empty() => (find_group(&groups, g)?, Vec::new()),
        _ => {
            let gid = entry.map_or(0, |e| e.gid);
            let sgids = entry.map_or_else(Vec::new, |e| memberships(&groups, e.name));
            (gid, sgids)
        }
    };
    // The primary group is a supplementary one too, as containerd and BuildKit make it
    // (CVE-2023-25173): otherwise a process that drops to it with setgid loses nothing, and a
    // file denying that group by its group bits would be readable through "other" access.
    if !supplementary_gids.contains(&gid) {
        supplementary_gids.insert(0, gid);
    }
    Ok(ResolvedUser {
        uid,
        gid,
        supplementary_gids,
        home,
    })
}

/// "" means root (uid 0). A name must exist; a number need not.
fn find_user<'a>(
    users: &'a [PasswdEntry<'a>],
    user: &str,
) -> Result<Option<&'a PasswdEntry<'a>>, UserError> {
    if user.is_empty() {
        return Ok(users.iter().find(|e| e.uid == 0));
    }
    if let Some(e) = users.iter().find(|e| e.name == user) {
        return Ok(Some(e));
    }
    match user.parse::<u32>() {
        Ok(uid) => Ok(users.iter().find(|e| e.uid == uid)),
        Err(_) => Err(UserError::UnknownUser(user.to_string())),
    }
}

fn find_group(groups: &[GroupEntry], group: &str) -> Result<u32, UserError> {
    if let Some(g) = groups.iter().find(|g| g.name == group) {
        return Ok(g.gid);
    }
    group
        .parse::<u32>()
        .map_err(|_| UserError::UnknownGroup(group.to_string()))
}

fn memberships(groups: &[GroupEntry], user: &str) -> Vec<u32> {
    let mut gids: Vec<u32> = groups
        .iter()
        .filter(|g| g.members.contains(&user))
        .map(|g| g.gid)
        .collect();
    gids.sort_unstable();
    gids.dedup();
    gids
}

fn parse_passwd(line: &str) -> Option<PasswdEntry<'_>> {
    let f: Vec<&str> = line.split(':').collect();
    if line.starts_with('#') || f.len() < 7 {
        return None;
    }
    Some(PasswdEntry {
        name: f[0],
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        home: f[5],
    })
}

fn parse_group(line: &str) -> Option<GroupEntry<'_>> {
    let f: Vec<&str> = line.split(':').collect();
    if line.starts_with('#') || f.len() < 4 {
        return None;
    }
    Some(GroupEntry {
        name: f[0],
        gid: f[2].parse().ok()?,
        members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        tester:x:1000:1001:Test:/home/tester:/bin/sh\n\
        broken line\n";
    const GROUP: &str = "root:x:0:\nusers:x:1001:\nextra:x:2000:tester,other\nwheel:x:10:tester\n";

    fn r(spec: &str) -> Result<ResolvedUser, UserError> {
        resolve_user(spec, PASSWD, GROUP)
    }

    #[test]
    fn empty_is_root() {
        let u = r("").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn name_uses_passwd_gid_and_memberships() {
        let u = r("tester").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1001));
        assert_eq!(u.supplementary_gids, vec![1001, 10, 2000]);
        assert_eq!(u.home, "/home/tester");
    }

    #[test]
    fn numeric_uid_known_and_unknown() {
        assert_eq!(r("1000").unwrap().gid, 1001);
        let u = r("4242").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
    }

    #[test]
    fn explicit_group_by_name_or_number() {
        let u = r("tester:extra").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 2000));
        assert_eq!(u.supplementary_gids, vec![2000]);
        assert_eq!(r("5:77").unwrap().gid, 77);
    }

    #[test]
    fn numeric_ids_without_files() {
        let u = resolve_user("1000:1000", "", "").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
    }

    #[test]
    fn unknown_names_are_errors() {
        assert_eq!(r("nobody2"), Err(UserError::UnknownUser("nobody2".into())));
        assert_eq!(
            r("tester:nogroup"),
            Err(UserError::UnknownGroup("nogroup".into()))
        );
    }
}
