//! The gateway's state directory (default `~/.openclaw` of the process owner): mode 0700 or
//! stricter, nothing inside group- or world-accessible, credential files 0600, everything
//! owned by the service user; and, if readable, the gateway config's bind address and
//! auth mode. Symlinks are reported, never followed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::procs::ProcInfo;
use super::{Finding, Severity};

/// How deep and how many entries the walk visits (a state dir with a huge workspace
/// must not make audit slow).
const MAX_DEPTH: usize = 4;
const MAX_ENTRIES: usize = 20_000;
/// At most this many per-file findings per directory; the rest are counted.
const MAX_FILE_FINDINGS: usize = 20;

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

fn fix_for(code: &str, path: &Path) -> String {
    let p = path.display();
    match code {
        "secret-file-mode" => format!("chmod 600 {p}"),
        "state-dir-mode" => format!("chmod 700 {p}"),
        _ => format!("chmod go-rwx {p}"),
    }
}

/// Every finding for one state directory.
pub fn check(sd: &StateDir) -> Vec<Finding> {
    let meta = match fs::symlink_metadata(&sd.path) {
        Ok(m) => m,
        Err(e) => {
            return vec![Finding::new(
                "state-dir-unreadable",
                Severity::Info,
                sd.path.display().to_string(),
                format!("not inspected: {e}"),
                "pass --state-dir DIR if the gateway keeps its state elsewhere",
            )]
        }
    };
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return vec![Finding::new(
            "state-dir-not-dir",
            Severity::Medium,
            sd.path.display().to_string(),
            "is a symlink or not a directory; a symlinked state dir can be swapped under the gateway",
            "make it a real directory owned by the service user, mode 0700",
        )];
    }
    let owner = sd.owner.unwrap_or(meta.uid());
    let mut out = Vec::new();
    let mut per_file = 0usize;
    let mut suppressed = 0usize;
    let mut visited = 0usize;
    let mut stack = vec![(sd.path.clone(), 0usize)];
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
    while let Some((path, depth)) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&path) else {
            continue;
        };
        visited += 1;
        let is_root = depth == 0;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let subject = path.display().to_string();
        if m.file_type().is_symlink() {
            continue;
        }
        if m.uid() != owner {
            add(
                Finding::new(
                    "state-owner",
                    Severity::Medium,
                    subject.clone(),
                    format!(
                        "owned by uid {}, not the service user (uid {owner})",
                        m.uid()
                    ),
                    format!("chown {owner} {subject}"),
                ),
                &mut out,
                is_root,
            );
        }
        let credential = m.is_file() && is_credential_file(&name);
        if let Some((code, sev, what)) = mode_problem(m.is_dir(), credential, m.mode()) {
            add(
                Finding::new(code, sev, subject.clone(), what, fix_for(code, &path)),
                &mut out,
                is_root,
            );
        }
        if m.is_dir() && depth < MAX_DEPTH && visited < MAX_ENTRIES {
            if let Ok(rd) = fs::read_dir(&path) {
                stack.extend(rd.filter_map(|e| e.ok()).map(|e| (e.path(), depth + 1)));
            }
        }
    }
    if suppressed > 0 {
        out.push(Finding::new(
            "state-more",
            Severity::Medium,
            sd.path.display().to_string(),
            format!("{suppressed} more paths with the same problems (not listed)"),
            format!(
                "chmod -R go-rwx {0} && chown -R {owner} {0}",
                sd.path.display()
            ),
        ));
    }
    out.extend(check_gateway_config(&sd.path.join("openclaw.json")));
    out
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

fn check_gateway_config(path: &Path) -> Vec<Finding> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    let subject = path.display().to_string();
    let Some((bind, auth)) = gateway_config_settings(&text) else {
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
