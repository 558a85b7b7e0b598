//! `--chown=user:group` resolution against the destination's /etc/passwd and /etc/group, as
//! docker does for COPY and ADD (names need the files; numbers do not).

use std::path::Path;

use builder_rootpath::resolve_in_root;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

fn read_db(root: &Path, file: &str) -> String {
    resolve_in_root(root, file, true)
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}

/// Finds `name` (first field) in a colon-separated database and returns the record's fields.
fn lookup<'a>(db: &'a str, name: &str) -> Option<Vec<&'a str>> {
    db.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
}

/// Resolves `user[:group]` inside `root`. A user given alone takes its primary group from
/// /etc/passwd (or its own id when numeric and unknown, as docker does).
pub fn resolve_owner(root: &Path, spec: &str) -> Result<Owner, String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_db(root, "/etc/passwd");
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(uid) => {
            let gid = passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.get(2).and_then(|s| s.parse::<u32>().ok()) == Some(uid))
                .and_then(|f| f.get(3).and_then(|s| s.parse().ok()))
                .unwrap_or(uid);
            (uid, gid)
        }
        Err(_) => {
            let fields = lookup(&passwd, user).ok_or_else(|| {
                format!("unable to find user {user}: no matching entries in passwd file")
            })?;
            let num = |i: usize| fields.get(i).and_then(|s| s.parse::<u32>().ok());
            match (num(2), num(3)) {
                (Some(uid), Some(gid)) => (uid, gid),
                _ => return Err(format!("malformed /etc/passwd entry for user {user}")),
            }
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let groups = read_db(root, "/etc/group");
                lookup(&groups, g)
                    .and_then(|f| f.get(2).and_then(|s| s.parse().ok()))
                    .ok_or_else(|| {
                        format!("unable to find group {g}: no matching entries in group file")
                    })?
            }
        },
    };
    Ok(Owner { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:\napp:x:1001:\n",
        )
        .unwrap();
        let r = |s| resolve_owner(dir.path(), s);
        assert_eq!(
            r("app").unwrap(),
            Owner {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(r("app:staff").unwrap(), Owner { uid: 1000, gid: 50 });
        assert_eq!(
            r("1000").unwrap(),
            Owner {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(r("42:43").unwrap(), Owner { uid: 42, gid: 43 });
        assert_eq!(r("42").unwrap(), Owner { uid: 42, gid: 42 });
        assert!(
            r("nobody")
                .unwrap_err()
                .contains("unable to find user nobody")
        );
        assert!(r("app:nogroup").is_err());
    }
}
