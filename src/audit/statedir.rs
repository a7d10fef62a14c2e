//! The gateway's state directory (default `~/.openclaw` of the process owner): mode 0700 or
//! stricter, nothing inside group- or world-accessible, credential files 0600, everything
//! owned by the service user; and, if readable, the gateway config's bind address and
//! auth mode.
//!
//! Everything in it may be planted by the (possibly compromised) gateway user, and audit
//! usually runs as root, so nothing is acted on through a name: the state directory is
//! reached by `paths::resolve` (no symlink but root's own in root-only directories), the
//! tree is walked by directory fds (each entry opened O_PATH|O_NOFOLLOW beneath its
//! parent's fd and judged by fstat; a directory swapped for a link is never entered), the
//! config is opened beneath the directory's fd O_NOFOLLOW|O_NONBLOCK, must be a regular
//! file by fstat and is read up to 1 MiB (a FIFO named openclaw.json hung audit; a link to
//! /dev/zero ate 4 GB). Printed fixes are `find -P DIR ... -execdir CMD {} +`: find walks
//! without following links and runs the command from the pinned directory, so a fix run
//! later cannot act through a link swapped in meanwhile.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, Mode};

use crate::paths::{self, Meta, Trust};

use super::procs::ProcInfo;
use super::{Finding, Severity};

/// How deep and how many entries the walk visits (a state dir with a huge workspace
/// must not make audit slow).
const MAX_DEPTH: usize = 4;
const MAX_ENTRIES: usize = 20_000;
/// At most this many per-file findings per directory; the rest are counted.
const MAX_FILE_FINDINGS: usize = 20;
/// Most bytes of openclaw.json audit reads.
pub const CONFIG_MAX: u64 = 1024 * 1024;

/// A state directory to check and who should own it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    pub path: PathBuf,
    /// The service user's uid; `None` when no gateway process tells us (then the directory's
    /// own owner is expected throughout).
    pub owner: Option<u32>,
}

/// `--state-dir` if given, else `~/.openclaw` of each distinct gateway owner.
pub fn targets(flag: Option<&Path>, procs: &[ProcInfo]) -> Vec<StateDir> {
    let mut uids: Vec<u32> = procs.iter().map(|p| p.uid).collect();
    uids.sort_unstable();
    uids.dedup();
    if let Some(path) = flag {
        let owner = match uids.as_slice() {
            [one] => Some(*one),
            _ => None,
        };
        return vec![StateDir {
            path: path.to_path_buf(),
            owner,
        }];
    }
    uids.into_iter()
        .filter_map(|uid| {
            let u = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
            Some(StateDir {
                path: u.dir.join(".openclaw"),
                owner: Some(uid),
            })
        })
        .collect()
}

/// Whether a file name looks like it holds credentials.
pub fn is_credential_file(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == ".env"
        || n.ends_with(".env")
        || n.starts_with(".env.")
        || n.ends_with(".pem")
        || n.ends_with(".key")
        || [
            "credential",
            "secret",
            "token",
            "auth",
            "oauth",
            "apikey",
            "api-key",
        ]
        .iter()
        .any(|w| n.contains(w))
}

/// What is wrong with one path's mode, if anything: `(code, severity, problem)`.
pub fn mode_problem(
    is_dir: bool,
    credential: bool,
    mode: u32,
) -> Option<(&'static str, Severity, String)> {
    let perm = mode & 0o777;
    if perm & 0o077 == 0 {
        return None;
    }
    let what = format!("mode {perm:04o}");
    if credential {
        let fix_sev = if perm & 0o004 != 0 {
            Severity::Critical
        } else {
            Severity::High
        };
        return Some((
            "secret-file-mode",
            fix_sev,
            format!("{what}: a credential file readable or writable by others"),
        ));
    }
    let writable = perm & 0o022 != 0;
    Some(if is_dir {
        (
            "state-dir-mode",
            if writable {
                Severity::High
            } else {
                Severity::Medium
            },
            format!("{what}: others can list or enter it (want 0700)"),
        )
    } else if writable {
        (
            "state-file-writable",
            Severity::High,
            format!("{what}: others can modify it"),
        )
    } else {
        (
            "state-file-readable",
            Severity::Low,
            format!("{what}: others can read it"),
        )
    })
}

/// Shell-quote one argument (single quotes; an embedded quote closed and escaped).
fn sh(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// A fix that cannot act through a link: find walks `root` without following links (-P;
/// a symlinked `root` is not entered), matches `path` only if it is not a link, and runs
/// `cmd` with -execdir from the directory it reached by fd (find(1) "-execdir").
pub fn safe_fix(root: &Path, path: &Path, cmd: &str) -> String {
    if root == path {
        format!(
            "find -P {} -maxdepth 0 ! -type l -execdir {cmd} {{}} +",
            sh(root)
        )
    } else {
        format!(
            "find -P {} -path {} ! -type l -execdir {cmd} {{}} +",
            sh(root),
            sh(path)
        )
    }
}

fn fix_for(code: &str, root: &Path, path: &Path) -> String {
    let cmd = match code {
        "secret-file-mode" => "chmod 600",
        "state-dir-mode" => "chmod 700",
        _ => "chmod go-rwx",
    };
    safe_fix(root, path, cmd)
}

/// One directory entry opened beneath its parent's fd, never following it.
struct Node {
    fd: OwnedFd,
    path: PathBuf,
    meta: Meta,
    depth: usize,
}

fn meta_of(fd: &OwnedFd) -> Option<Meta> {
    let st = fstat(fd.as_fd()).ok()?;
    Some(Meta {
        id: paths::FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        },
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
    })
}

/// The entries of the directory behind `dir` (listed through /proc/self/fd/N, so the
/// pinned inode is listed, not whatever the name points to now), at most `budget`.
fn children(dir: &Node, budget: &mut usize) -> Vec<Node> {
    let Ok(rd) = fs::read_dir(format!("/proc/self/fd/{}", dir.fd.as_raw_fd())) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let name = ent.file_name();
        let Ok(fd) = openat(
            dir.fd.as_fd(),
            name.as_os_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        let Some(meta) = meta_of(&fd) else { continue };
        out.push(Node {
            fd,
            path: dir.path.join(&name),
            meta,
            depth: dir.depth + 1,
        });
    }
    out
}

/// Every finding for one state directory.
pub fn check(sd: &StateDir) -> Vec<Finding> {
    let subject = sd.path.display().to_string();
    let resolved = match paths::resolve(&sd.path, &Trust::for_caller()) {
        Ok(r) => r,
        Err(e @ paths::PathError::UnsafeSymlink { .. }) => {
            return vec![Finding::new(
                "state-dir-behind-link",
                Severity::Medium,
                subject,
                format!("not inspected: {e}; a symlinked state dir can be swapped under the gateway"),
                "make it a real directory owned by the service user, mode 0700, reached without symlinks",
            )]
        }
        Err(e) => {
            return vec![Finding::new(
                "state-dir-unreadable",
                Severity::Info,
                subject,
                format!("not inspected: {e}"),
                "pass --state-dir DIR if the gateway keeps its state elsewhere",
            )]
        }
    };
    if !resolved.meta.is_dir() {
        return vec![Finding::new(
            "state-dir-not-dir",
            Severity::Medium,
            subject,
            "is not a directory",
            "make it a real directory owned by the service user, mode 0700",
        )];
    }
    let root_path = resolved.path.clone();
    let owner = sd.owner.unwrap_or(resolved.meta.uid);
    let mut out = Vec::new();
    let mut per_file = 0usize;
    let mut suppressed = 0usize;
    let mut budget = MAX_ENTRIES;
    let mut add = |f: Finding, out: &mut Vec<Finding>, is_root: bool| {
        if is_root || per_file < MAX_FILE_FINDINGS {
            if !is_root {
                per_file += 1;
            }
            out.push(f);
        } else {
            suppressed += 1;
        }
    };
    let config = open_config(&resolved.fd, &root_path);
    let mut stack = vec![Node {
        fd: resolved.fd,
        path: root_path.clone(),
        meta: resolved.meta,
        depth: 0,
    }];
    while let Some(node) = stack.pop() {
        let m = node.meta;
        // Never followed, never fixed: a link is the name, not the file.
        if m.is_symlink() {
            continue;
        }
        let is_root = node.depth == 0;
        let name = node
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let subject = node.path.display().to_string();
        if m.uid != owner {
            add(
                Finding::new(
                    "state-owner",
                    Severity::Medium,
                    subject.clone(),
                    format!("owned by uid {}, not the service user (uid {owner})", m.uid),
                    safe_fix(&root_path, &node.path, &format!("chown -h {owner}")),
                ),
                &mut out,
                is_root,
            );
        }
        let credential = m.is_regular() && is_credential_file(&name);
        if let Some((code, sev, what)) = mode_problem(m.is_dir(), credential, m.mode) {
            add(
                Finding::new(
                    code,
                    sev,
                    subject,
                    what,
                    fix_for(code, &root_path, &node.path),
                ),
                &mut out,
                is_root,
            );
        }
        if m.is_dir() && node.depth < MAX_DEPTH && budget > 0 {
            stack.extend(children(&node, &mut budget));
        }
    }
    if suppressed > 0 {
        out.push(Finding::new(
            "state-more",
            Severity::Medium,
            root_path.display().to_string(),
            format!("{suppressed} more paths with the same problems (not listed)"),
            format!(
                "find -P {0} ! -type l -execdir chmod go-rwx {{}} + -execdir chown -h {owner} {{}} +",
                sh(&root_path)
            ),
        ));
    }
    out.extend(config);
    out
}

/// openclaw.json beneath the state directory's fd: O_PATH|O_NOFOLLOW, then (as a regular
/// file by fstat only) reopened O_NONBLOCK and read up to [`CONFIG_MAX`] bytes; anything
/// else is a finding, never a hang.
fn open_config(dir: &OwnedFd, dir_path: &Path) -> Vec<Finding> {
    let path = dir_path.join("openclaw.json");
    let subject = path.display().to_string();
    let Ok(fd) = openat(
        dir.as_fd(),
        "openclaw.json",
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return Vec::new();
    };
    let Some(meta) = meta_of(&fd) else {
        return Vec::new();
    };
    let r = paths::Resolved {
        fd,
        path: path.clone(),
        meta,
        ancestors: Vec::new(),
        followed: Vec::new(),
    };
    match paths::read_capped(&r, CONFIG_MAX) {
        Ok(bytes) => check_gateway_config(&path, &String::from_utf8_lossy(&bytes)),
        Err(e) => vec![Finding::new(
            "config-unsafe",
            Severity::Medium,
            subject,
            format!("not read: {e}; the gateway's config should be a small regular file"),
            "replace it with a regular file owned by the service user, mode 0600",
        )],
    }
}

/// `gateway.bind` and `gateway.auth.mode` from an OpenClaw config (JSON; `//` comment lines
/// of JSON5 are dropped first; anything else unparsable is reported as info).
pub fn gateway_config_settings(text: &str) -> Option<(Option<String>, Option<String>)> {
    let cleaned: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let v: serde_json::Value = serde_json::from_str(&cleaned).ok()?;
    let gw = v.get("gateway")?;
    let s = |x: Option<&serde_json::Value>| x.and_then(|x| x.as_str()).map(str::to_string);
    Some((
        s(gw.get("bind")),
        s(gw.get("auth").and_then(|a| a.get("mode"))),
    ))
}

fn check_gateway_config(path: &Path, text: &str) -> Vec<Finding> {
    let subject = path.display().to_string();
    let Some((bind, auth)) = gateway_config_settings(text) else {
        return vec![Finding::new(
            "config-unparsed",
            Severity::Info,
            subject,
            "no gateway section could be read (JSON5 beyond // comments is not parsed)",
            "check gateway.bind and gateway.auth.mode by hand",
        )];
    };
    let mut out = Vec::new();
    let public = bind
        .as_deref()
        .is_some_and(|b| !matches!(b, "loopback" | "127.0.0.1" | "localhost" | "::1"));
    if public {
        out.push(Finding::new(
            "config-bind-public",
            Severity::High,
            subject.clone(),
            format!("gateway.bind = {:?}: the gateway listens beyond loopback", bind.as_deref().unwrap_or("")),
            "set gateway.bind = \"loopback\" and reach it through an SSH tunnel or an authenticating proxy",
        ));
    }
    if matches!(auth.as_deref(), Some("none") | Some("off")) {
        out.push(Finding::new(
            "config-auth-off",
            if public {
                Severity::Critical
            } else {
                Severity::Medium
            },
            subject,
            format!(
                "gateway.auth.mode = {:?}: anyone who reaches the port controls the agent",
                auth.as_deref().unwrap_or("")
            ),
            "set gateway.auth.mode = \"token\" with a long random token kept in a 0600 file",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names() {
        for n in [
            ".env",
            "prod.env",
            "auth-profiles.json",
            "oauth.json",
            "tls.key",
            "credentials",
        ] {
            assert!(is_credential_file(n), "{n}");
        }
        assert!(!is_credential_file("workspace.md"));
    }

    #[test]
    fn modes() {
        assert_eq!(mode_problem(true, false, 0o40700), None);
        assert_eq!(mode_problem(false, true, 0o100600), None);
        assert_eq!(mode_problem(false, true, 0o100400), None);
        let (code, sev, _) = mode_problem(false, true, 0o100644).unwrap();
        assert_eq!((code, sev), ("secret-file-mode", Severity::Critical));
        let (code, sev, _) = mode_problem(true, false, 0o40755).unwrap();
        assert_eq!((code, sev), ("state-dir-mode", Severity::Medium));
        let (code, _, _) = mode_problem(false, false, 0o100666).unwrap();
        assert_eq!(code, "state-file-writable");
        let (code, _, _) = mode_problem(false, false, 0o100640).unwrap();
        assert_eq!(code, "state-file-readable");
    }

    #[test]
    fn gateway_config() {
        let t = "{\n  // comment\n  \"gateway\": {\"bind\": \"lan\", \"auth\": {\"mode\": \"none\"}}\n}";
        assert_eq!(
            gateway_config_settings(t),
            Some((Some("lan".into()), Some("none".into())))
        );
        assert_eq!(gateway_config_settings("{ bad"), None);
    }
}
