//! `RUN --mount=type=...,key=value` parsing with BuildKit's defaults and validation.

use crate::flags::parse_go_bool;
use crate::linter::suggest;

/// Every key a mount takes, for "did you mean" hints (BuildKit's list).
const MOUNT_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheSharing {
    #[default]
    Shared,
    Private,
    Locked,
}

/// One `RUN --mount`. Defaults follow BuildKit: bind mounts are read-only, cache and tmpfs
/// mounts writable, secrets and ssh optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    Bind {
        target: String,
        source: Option<String>,
        from: Option<String>,
        read_write: bool,
    },
    Cache {
        target: String,
        id: Option<String>,
        sharing: CacheSharing,
        from: Option<String>,
        source: Option<String>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        read_only: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
    Secret {
        /// The secret's id: `id=`, else `source=`, else the last element of `target`.
        id: String,
        /// `None` means the default `/run/secrets/<id>` (unless only `env` is wanted).
        target: Option<String>,
        env: Option<String>,
        required: bool,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    Ssh {
        /// `default` unless given.
        id: String,
        target: Option<String>,
        required: bool,
        /// The agent socket's mode (BuildKit: 0600), uid and gid (0).
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    },
}

impl Mount {
    /// The stage or image a bind or cache mount reads (`from=`), if it names one.
    pub fn from(&self) -> Option<&str> {
        match self {
            Mount::Bind { from, .. } | Mount::Cache { from, .. } => from.as_deref(),
            _ => None,
        }
    }

    /// The cache key of a cache mount: its `id`, or its target when no id was given.
    pub fn cache_id(&self) -> Option<&str> {
        match self {
            Mount::Cache { id, target, .. } => Some(id.as_deref().unwrap_or(target)),
            _ => None,
        }
    }

    /// Applies `f` to every free-text field (the ones docker expands with build variables).
    pub(crate) fn map_strings<E>(
        &mut self,
        mut f: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<(), E> {
        let opt = |o: &mut Option<String>,
                   f: &mut dyn FnMut(&str) -> Result<String, E>|
         -> Result<(), E> {
            if let Some(v) = o {
                *v = f(v)?;
            }
            Ok(())
        };
        match self {
            Mount::Bind {
                target,
                source,
                from,
                ..
            } => {
                *target = f(target)?;
                opt(source, &mut f)?;
                opt(from, &mut f)?;
            }
            Mount::Cache {
                target,
                id,
                from,
                source,
                ..
            } => {
                *target = f(target)?;
                opt(id, &mut f)?;
                opt(from, &mut f)?;
                opt(source, &mut f)?;
            }
            Mount::Tmpfs { target, .. } => *target = f(target)?,
            Mount::Secret {
                id, target, env, ..
            } => {
                *id = f(id)?;
                opt(target, &mut f)?;
                opt(env, &mut f)?;
            }
            Mount::Ssh { id, target, .. } => {
                *id = f(id)?;
                opt(target, &mut f)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// Everything a `--mount` value may say, before it is checked against its type.
#[derive(Default)]
struct Fields {
    typ: Option<MountType>,
    source: Option<String>,
    target: Option<String>,
    read_only: Option<bool>,
    required: Option<bool>,
    id: Option<String>,
    sharing: Option<CacheSharing>,
    from: Option<String>,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    env: Option<String>,
}

/// Splits a CSV record (`"` quotes a field, `""` inside quotes is a literal quote).
fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = value.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    if quoted {
        return Err(format!("invalid mount value {value:?}: unterminated quote"));
    }
    fields.push(field);
    Ok(fields)
}

fn parse_u32(key: &str, value: &str, radix: u32) -> Result<u32, String> {
    u32::from_str_radix(value, radix).map_err(|_| format!("invalid value {value} for {key}"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    parse_go_bool(value).ok_or_else(|| format!("invalid value for {key}: {value}"))
}

/// docker's `units.RAMInBytes`: `64m`, `1g`, `512kb`, `1.5GiB` (binary multiples).
fn parse_ram_bytes(value: &str) -> Result<u64, String> {
    let bad = || format!("invalid size: {value:?}");
    let num_len = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let number: f64 = value[..num_len].parse().map_err(|_| bad())?;
    let unit = value[num_len..]
        .trim_start_matches(' ')
        .to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    Ok((number * (1u64 << shift) as f64) as u64)
}

/// Expands one field value (dispatch time); `None` at parse time.
pub(crate) type ValueExpander<'a> = Option<&'a mut dyn FnMut(&str) -> Result<String, String>>;

fn has_variable(value: &str) -> bool {
    value.find('$').is_some_and(|i| i + 1 < value.len())
}

fn apply_field(f: &mut Fields, field: &str, expander: &mut ValueExpander) -> Result<(), String> {
    let (key, raw) = match field.split_once('=') {
        Some((k, v)) => (k.to_lowercase(), Some(v)),
        None => (field.to_lowercase(), None),
    };
    let typ = f.typ.unwrap_or(MountType::Bind);
    let secret_or_ssh = matches!(typ, MountType::Secret | MountType::Ssh);
    let Some(raw) = raw else {
        match key.as_str() {
            "readonly" | "ro" => f.read_only = Some(true),
            "readwrite" | "rw" => f.read_only = Some(false),
            "required" if secret_or_ssh => f.required = Some(true),
            "required" => {
                return Err(format!(
                    "unexpected key 'required' for mount type '{}'",
                    typ.name()
                ));
            }
            _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
        }
        return Ok(());
    };
    let value = match expander {
        Some(expand) => expand(raw)?,
        None if key == "from" && has_variable(raw) => {
            return Err(format!(
                "'{key}' doesn't support variable expansion, define alias stage instead"
            ));
        }
        // Parse time: a value using variables is only known at dispatch; keep text fields
        // as written and leave numbers unset until `Instruction::expand` re-parses the mount.
        None if has_variable(raw)
            && matches!(
                key.as_str(),
                "mode"
                    | "uid"
                    | "gid"
                    | "size"
                    | "readonly"
                    | "ro"
                    | "readwrite"
                    | "rw"
                    | "required"
            ) =>
        {
            return Ok(());
        }
        None => raw.to_string(),
    };
    let value = value.as_str();
    let unexpected = || {
        Err(format!(
            "unexpected key '{key}' for mount type '{}'",
            typ.name()
        ))
    };
    match key.as_str() {
        "type" => {
            f.typ = Some(match value.to_lowercase().as_str() {
                "bind" => MountType::Bind,
                "cache" => MountType::Cache,
                "tmpfs" => MountType::Tmpfs,
                "secret" => MountType::Secret,
                "ssh" => MountType::Ssh,
                _ => {
                    return Err(suggest::wrap(
                        format!("unsupported mount type {value:?}"),
                        value,
                        &["bind", "cache", "tmpfs", "secret", "ssh"],
                        true,
                    ));
                }
            })
        }
        "source" | "src" => f.source = Some(value.to_string()),
        "target" | "dst" | "destination" => f.target = Some(value.to_string()),
        "readonly" | "ro" => f.read_only = Some(parse_bool(&key, value)?),
        "readwrite" | "rw" => f.read_only = Some(!parse_bool(&key, value)?),
        "required" if secret_or_ssh => f.required = Some(parse_bool(&key, value)?),
        "required" => return unexpected(),
        "id" => f.id = Some(value.to_string()),
        "sharing" => {
            f.sharing = Some(match value.to_lowercase().as_str() {
                "shared" => CacheSharing::Shared,
                "private" => CacheSharing::Private,
                "locked" => CacheSharing::Locked,
                _ => {
                    return Err(suggest::wrap(
                        format!("unsupported sharing value {value:?}"),
                        value,
                        &["shared", "private", "locked"],
                        true,
                    ));
                }
            })
        }
        "from" => f.from = Some(value.to_string()),
        "mode" => f.mode = Some(parse_u32(&key, value, 8)?),
        "uid" => f.uid = Some(parse_u32(&key, value, 10)?),
        "gid" => f.gid = Some(parse_u32(&key, value, 10)?),
        "size" if typ == MountType::Tmpfs => f.size = Some(parse_ram_bytes(value)?),
        "size" => return unexpected(),
        "env" if typ == MountType::Secret => f.env = Some(value.to_string()),
        "env" => return unexpected(),
        _ => {
            return Err(suggest::wrap(
                format!("unexpected key '{key}' in '{field}'"),
                &key,
                &MOUNT_KEYS,
                true,
            ));
        }
    }
    Ok(())
}

/// `type=` whose value uses a variable (`type=$MNT_TYPE`).
fn type_uses_variable(field: &str) -> bool {
    field
        .split_once('=')
        .is_some_and(|(k, v)| k.eq_ignore_ascii_case("type") && has_variable(v))
}

/// A mount whose type is only known at dispatch: as BuildKit, nothing that depends on the type
/// is checked before then (the mount is parsed again with the build's variables); only `from`
/// must be literal, since it decides which stages the step depends on. The placeholder keeps
/// `from` and the target as written.
fn deferred_mount(fields: &[String]) -> Result<Mount, String> {
    let (mut from, mut target) = (None, None);
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key.to_lowercase().as_str() {
            "from" if has_variable(value) => {
                return Err(
                    "'from' doesn't support variable expansion, define alias stage instead"
                        .to_string(),
                );
            }
            "from" => from = Some(value.to_string()),
            "target" | "dst" | "destination" => target = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(Mount::Bind {
        target: target.unwrap_or_default(),
        source: None,
        from,
        read_write: false,
    })
}

/// Parses one `--mount` value as written (parse time): fields using variables are kept as
/// text, or left unset for numbers, until [`crate::Instruction::expand`] re-parses the mount
/// with the build's variables.
pub fn parse_mount(value: &str) -> Result<Mount, String> {
    parse_mount_with(value, None)
}

/// Parses one `--mount` value, expanding each field value first (dispatch time).
pub(crate) fn parse_mount_with(value: &str, mut expander: ValueExpander) -> Result<Mount, String> {
    let fields = csv_fields(value)?;
    if expander.is_none() && fields.iter().any(|field| type_uses_variable(field)) {
        return deferred_mount(&fields);
    }
    let mut f = Fields::default();
    for field in fields {
        apply_field(&mut f, &field, &mut expander)?;
    }
    if f.sharing.is_some() && f.typ != Some(MountType::Cache) {
        let typ = f.typ.unwrap_or(MountType::Bind);
        return Err(format!(
            "invalid cache sharing set for {} mount",
            typ.name()
        ));
    }
    let typ = f.typ.unwrap_or(MountType::Bind);
    let file_info_allowed = matches!(typ, MountType::Secret | MountType::Ssh | MountType::Cache);
    for (name, set) in [
        ("mode", f.mode.is_some()),
        ("uid", f.uid.is_some()),
        ("gid", f.gid.is_some()),
    ] {
        if set && !file_info_allowed {
            return Err(format!(
                "{name} not allowed for \"{}\" type mounts",
                typ.name()
            ));
        }
    }
    let require_target = |t: Option<String>| {
        t.filter(|t| !t.is_empty())
            .ok_or_else(|| format!("mount type {} requires a target", typ.name()))
    };
    Ok(match typ {
        MountType::Bind => Mount::Bind {
            target: require_target(f.target)?,
            source: f.source,
            from: f.from,
            read_write: f.read_only == Some(false),
        },
        MountType::Cache => Mount::Cache {
            target: require_target(f.target)?,
            id: f.id,
            sharing: f.sharing.unwrap_or_default(),
            from: f.from,
            source: f.source,
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
            read_only: f.read_only.unwrap_or(false),
        },
        MountType::Tmpfs => Mount::Tmpfs {
            target: require_target(f.target)?,
            size: f.size,
        },
        MountType::Secret => {
            if f.from.is_some() {
                return Err("secret mount should not have a from".to_string());
            }
            if f.source.is_some() && f.id.is_some() {
                return Err("both source and id can't be set".to_string());
            }
            let from_target = f
                .target
                .as_deref()
                .and_then(|t| t.rsplit('/').find(|s| !s.is_empty()));
            let id = f.id.or(f.source).or(from_target.map(str::to_string));
            let Some(id) = id else {
                return Err("invalid secret mount. one of source, target required".to_string());
            };
            Mount::Secret {
                id,
                target: f.target,
                env: f.env,
                required: f.required.unwrap_or(false),
                mode: f.mode,
                uid: f.uid,
                gid: f.gid,
            }
        }
        MountType::Ssh => Mount::Ssh {
            id: f.id.unwrap_or_else(|| "default".to_string()),
            target: f.target,
            required: f.required.unwrap_or(false),
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_per_type() {
        assert_eq!(
            parse_mount("target=/src").unwrap(),
            Mount::Bind {
                target: "/src".into(),
                source: None,
                from: None,
                read_write: false
            }
        );
        assert_eq!(
            parse_mount("type=bind,from=builder,source=/out,target=/in,rw").unwrap(),
            Mount::Bind {
                target: "/in".into(),
                source: Some("/out".into()),
                from: Some("builder".into()),
                read_write: true
            }
        );
        let cache = parse_mount("type=cache,target=/root/.cache,sharing=locked,mode=0755,uid=1000")
            .unwrap();
        assert_eq!(
            cache,
            Mount::Cache {
                target: "/root/.cache".into(),
                id: None,
                sharing: CacheSharing::Locked,
                from: None,
                source: None,
                mode: Some(0o755),
                uid: Some(1000),
                gid: None,
                read_only: false
            }
        );
        assert_eq!(cache.cache_id(), Some("/root/.cache"));
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,size=64m").unwrap(),
            Mount::Tmpfs {
                target: "/t".into(),
                size: Some(64 << 20)
            }
        );
        assert_eq!(
            parse_mount("type=secret,target=/run/secrets/npmrc,required").unwrap(),
            Mount::Secret {
                id: "npmrc".into(),
                target: Some("/run/secrets/npmrc".into()),
                env: None,
                required: true,
                mode: None,
                uid: None,
                gid: None
            }
        );
        assert_eq!(
            parse_mount("type=secret,id=tok,env=TOKEN").unwrap(),
            Mount::Secret {
                id: "tok".into(),
                target: None,
                env: Some("TOKEN".into()),
                required: false,
                mode: None,
                uid: None,
                gid: None
            }
        );
        assert_eq!(
            parse_mount("type=ssh").unwrap(),
            Mount::Ssh {
                id: "default".into(),
                target: None,
                required: false,
                mode: None,
                uid: None,
                gid: None
            }
        );
        assert_eq!(
            parse_mount("type=ssh,id=gh,uid=1000,mode=0644,required").unwrap(),
            Mount::Ssh {
                id: "gh".into(),
                target: None,
                required: true,
                mode: Some(0o644),
                uid: Some(1000),
                gid: None
            }
        );
    }

    #[test]
    fn variables_are_deferred_then_expanded() {
        let m = parse_mount("type=cache,target=$DIR,uid=$UID,mode=0700").unwrap();
        assert_eq!(
            m,
            Mount::Cache {
                target: "$DIR".into(),
                id: None,
                sharing: CacheSharing::Shared,
                from: None,
                source: None,
                mode: Some(0o700),
                uid: None,
                gid: None,
                read_only: false
            }
        );
        let mut expand = |v: &str| Ok::<_, String>(v.replace("$DIR", "/c").replace("$UID", "42"));
        let m = parse_mount_with("type=cache,target=$DIR,uid=$UID", Some(&mut expand)).unwrap();
        assert_eq!(m.cache_id(), Some("/c"));
        assert!(matches!(m, Mount::Cache { uid: Some(42), .. }));
    }

    #[test]
    fn validation_errors() {
        let err = |v: &str| parse_mount(v).unwrap_err();
        assert_eq!(err("type=nfs,target=/x"), "unsupported mount type \"nfs\"");
        assert_eq!(
            err("type=cahce,target=/x"),
            "unsupported mount type \"cahce\" (did you mean cache?)"
        );
        assert_eq!(
            err("type=cache,target=/x,sharing=lockd"),
            "unsupported sharing value \"lockd\" (did you mean locked?)"
        );
        assert_eq!(
            err("type=cache,tagret=/x"),
            "unexpected key 'tagret' in 'tagret=/x' (did you mean target?)"
        );
        assert_eq!(
            err("type=bind,target=/x,mode=0700"),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            err("type=bind,target=/x,sharing=locked"),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(err("type=cache"), "mount type cache requires a target");
        assert_eq!(
            err("type=secret"),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            err("type=secret,id=a,source=b"),
            "both source and id can't be set"
        );
        assert_eq!(
            err("type=cache,target=/x,bogus=1"),
            "unexpected key 'bogus' in 'bogus=1'"
        );
        assert_eq!(
            err("type=cache,target=/x,required"),
            "unexpected key 'required' for mount type 'cache'"
        );
        assert_eq!(
            err("type=tmpfs,target=/x,flag"),
            "invalid field 'flag' must be a key=value pair"
        );
        assert_eq!(
            err("type=cache,target=/x,uid=abc"),
            "invalid value abc for uid"
        );
        assert_eq!(
            err("type=secret,id=x,ro=maybe"),
            "invalid value for ro: maybe"
        );
        assert_eq!(
            err("from=$STAGE,target=/x"),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        // Sharing may come before the type, as in BuildKit.
        assert!(parse_mount("sharing=locked,type=cache,target=/x").is_ok());
    }
}
