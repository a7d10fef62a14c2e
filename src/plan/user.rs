//! Resolve the target user and groups through NSS (getpwnam_r/getgrnam_r), before Landlock
//! and seccomp: NSS reads /etc and talks to nscd, which fail once confined.

use nix::unistd::{Group, User};

use crate::identity::Ids;
use crate::policy::{IdSpec, PolicyError, Source};

/// The resolved target user with what variables need.
#[derive(Debug, Clone)]
pub struct TargetUser {
    pub ids: Ids,
    pub home: Option<String>,
}

fn lookup_user(
    src: &Source,
    spec: &toml::Spanned<IdSpec>,
) -> Result<(u32, Option<User>), PolicyError> {
    let err = |m: String| PolicyError::at(src, spec.span(), "unknown-user", "identity.user", m);
    match spec.get_ref() {
        IdSpec::Id(uid) => {
            let u = User::from_uid(nix::unistd::Uid::from_raw(*uid))
                .map_err(|e| err(format!("looking up uid {uid}: {e}")))?;
            Ok((*uid, u))
        }
        IdSpec::Name(name) => {
            if let Ok(uid) = name.parse::<u32>() {
                return lookup_user(src, &toml::Spanned::new(spec.span(), IdSpec::Id(uid)));
            }
            match User::from_name(name) {
                Ok(Some(u)) => Ok((u.uid.as_raw(), Some(u))),
                Ok(None) => Err(err(format!(
                    "unknown user {name:?}: no such user in the passwd database; create it (useradd --system {name}) or give a numeric uid"
                ))),
                Err(e) => Err(err(format!("looking up user {name:?}: {e}"))),
            }
        }
    }
}

fn lookup_group(src: &Source, spec: &toml::Spanned<IdSpec>, key: &str) -> Result<u32, PolicyError> {
    let err = |m: String| PolicyError::at(src, spec.span(), "unknown-group", key, m);
    match spec.get_ref() {
        IdSpec::Id(gid) => Ok(*gid),
        IdSpec::Name(name) => {
            if let Ok(gid) = name.parse::<u32>() {
                return Ok(gid);
            }
            match Group::from_name(name) {
                Ok(Some(g)) => Ok(g.gid.as_raw()),
                Ok(None) => Err(err(format!(
                    "unknown group {name:?}: no such group in the group database"
                ))),
                Err(e) => Err(err(format!("looking up group {name:?}: {e}"))),
            }
        }
    }
}

/// Resolve `[identity]` for a root start.
pub fn resolve(src: &Source, ident: &crate::policy::Identity) -> Result<TargetUser, PolicyError> {
    let user = ident.user.as_ref().ok_or_else(|| {
        PolicyError::at(
            src,
            0..0,
            "missing-key",
            "identity.user",
            "clawjail runs as root, so [identity] user is required: the target must not keep root (name a dedicated user, e.g. user = \"openclaw\")",
        )
    })?;
    let (uid, entry) = lookup_user(src, user)?;
    let gid = match (&ident.group, &entry) {
        (Some(g), _) => lookup_group(src, g, "identity.group")?,
        (None, Some(u)) => u.gid.as_raw(),
        (None, None) => {
            return Err(PolicyError::at(
                src,
                user.span(),
                "missing-key",
                "identity.group",
                format!("uid {uid} has no passwd entry, so its primary group is unknown: set identity.group"),
            ))
        }
    };
    let mut groups = Vec::new();
    for g in &ident.supplementary_groups {
        let gid = lookup_group(src, g, "identity.supplementary_groups")?;
        if !groups.contains(&gid) {
            groups.push(gid);
        }
    }
    Ok(TargetUser {
        ids: Ids {
            uid,
            gid,
            groups,
            user_name: entry.as_ref().map(|u| u.name.clone()),
        },
        home: entry.map(|u| u.dir.display().to_string()),
    })
}

/// The caller as the target (unprivileged start).
pub fn caller() -> TargetUser {
    let ids = crate::identity::current();
    let home = User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir.display().to_string())
        .or_else(|| std::env::var("HOME").ok());
    TargetUser { ids, home }
}
