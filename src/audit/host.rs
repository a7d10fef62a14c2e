//! Host-level checks for the gateway's service user: sudo rights (sudoers), a writable
//! Docker socket, and root inside a container.
//!
//! Container detection is heuristic; every finding names the signal that fired
//! (`/.dockerenv`, `/run/.containerenv`, PID 1's cgroup or `container=` environment).
//! Sudoers parsing is deliberately simple: direct user, `%group` and `ALL` specs; aliases
//! and `#include`d files outside /etc/sudoers.d are not resolved (say so, don't guess).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::procs::ProcInfo;
use super::{Finding, Severity};

/// A service user: the uid of a gateway process with its name and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUser {
    pub uid: u32,
    pub name: Option<String>,
    /// Primary and supplementary gids as the process has them.
    pub gids: Vec<u32>,
}

/// Distinct non-root owners of the gateway processes (root is its own finding).
pub fn service_users(procs: &[ProcInfo]) -> Vec<ServiceUser> {
    let mut out: Vec<ServiceUser> = Vec::new();
    for p in procs.iter().filter(|p| p.uid != 0) {
        if out.iter().any(|u| u.uid == p.uid) {
            continue;
        }
        let mut gids = p.status.groups.clone();
        gids.push(p.status.gid);
        gids.sort_unstable();
        gids.dedup();
        out.push(ServiceUser {
            uid: p.uid,
            name: nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(p.uid))
                .ok()
                .flatten()
                .map(|u| u.name),
            gids,
        });
    }
    out
}

fn group_names(gids: &[u32]) -> Vec<String> {
    gids.iter()
        .filter_map(|g| {
            nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(*g))
                .ok()
                .flatten()
                .map(|g| g.name)
        })
        .collect()
}

/// Lines of a sudoers file that grant something to `user` or one of `groups`:
/// `(line number, line)`.
pub fn sudoers_grants(text: &str, user: &str, groups: &[String]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with('@')
            || line.starts_with("Defaults")
            || line.contains("_Alias")
        {
            continue;
        }
        let Some(spec) = line.split_whitespace().next() else {
            continue;
        };
        let hit = spec.split(',').any(|who| {
            let who = who.trim();
            who == user
                || who == "ALL"
                || who
                    .strip_prefix('%')
                    .is_some_and(|g| groups.iter().any(|x| x == g))
        });
        if hit {
            out.push((i + 1, line.to_string()));
        }
    }
    out
}

/// /etc/sudoers and the files sudo reads from /etc/sudoers.d (names without '.' or '~').
fn sudoers_files() -> Vec<std::path::PathBuf> {
    let mut v = vec![std::path::PathBuf::from("/etc/sudoers")];
    if let Ok(rd) = fs::read_dir("/etc/sudoers.d") {
        let mut more: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.contains('.') && !n.ends_with('~'))
            })
            .collect();
        more.sort();
        v.extend(more);
    }
    v
}

pub fn check_sudo(u: &ServiceUser) -> Vec<Finding> {
    let Some(name) = &u.name else {
        return Vec::new();
    };
    let groups = group_names(&u.gids);
    let mut out = Vec::new();
    for file in sudoers_files() {
        // Same rules as every other file audit reads: no untrusted link, regular by fstat,
        // O_NONBLOCK, at most 1 MiB.
        let trust = crate::paths::Trust::for_caller();
        let Ok(r) = crate::paths::resolve(&file, &trust) else {
            continue;
        };
        let Ok(bytes) = crate::paths::read_capped(&r, 1024 * 1024) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in sudoers_grants(&text, name, &groups) {
            out.push(Finding::new(
                "sudo-rights",
                Severity::Critical,
                format!("user {name}"),
                format!("{}:{n} grants sudo: {line}", file.display()),
                format!(
                    "remove the rule (visudo -f {}); the gateway user needs no sudo",
                    file.display()
                ),
            ));
        }
    }
    out
}

/// Whether uid/gids may write a file with this owner, group and mode (DAC only).
pub fn dac_writable(uid: u32, gids: &[u32], owner: u32, group: u32, mode: u32) -> bool {
    if uid == owner {
        mode & 0o200 != 0
    } else if gids.contains(&group) {
        mode & 0o020 != 0
    } else {
        mode & 0o002 != 0
    }
}

pub fn check_docker_socket(u: &ServiceUser) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in ["/var/run/docker.sock", "/run/docker.sock"] {
        let Ok(m) = fs::metadata(p) else { continue };
        if dac_writable(u.uid, &u.gids, m.uid(), m.gid(), m.mode()) {
            out.push(Finding::new(
                "docker-socket-writable",
                Severity::Critical,
                format!("uid {}", u.uid),
                format!("can write {p} (owner {}, group {}, mode {:04o}): that is root on the host", m.uid(), m.gid(), m.mode() & 0o7777),
                "remove the user from the docker group; keep network.unix = false so the sandbox cannot reach it either",
            ));
            break; // /var/run is usually a symlink to /run: one finding.
        }
    }
    out
}

/// Which container signals fire on this host.
pub fn container_signals() -> Vec<String> {
    let mut v = Vec::new();
    for f in ["/.dockerenv", "/run/.containerenv"] {
        if Path::new(f).exists() {
            v.push(format!("{f} exists"));
        }
    }
    if let Ok(cg) = fs::read_to_string("/proc/1/cgroup") {
        for w in ["docker", "kubepods", "containerd", "libpod", "lxc"] {
            if cg.contains(w) {
                v.push(format!("/proc/1/cgroup mentions {w}"));
                break;
            }
        }
    }
    if let Ok(env) = fs::read("/proc/1/environ") {
        if let Some(c) = env
            .split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(b"container="))
        {
            v.push(format!(
                "PID 1 has container={}",
                String::from_utf8_lossy(c)
            ));
        }
    }
    v
}

pub fn container_info(signals: &[String]) -> Finding {
    Finding::new(
        "container-detected",
        Severity::Info,
        "host",
        format!("looks like a container (heuristic: {})", signals.join("; ")),
        "none; container root is host root unless user namespaces remap it",
    )
}

pub fn container_root_finding(p: &ProcInfo, signals: &[String]) -> Finding {
    Finding::new(
        "container-root",
        Severity::High,
        format!("pid {} ({})", p.pid, p.comm),
        format!(
            "runs as root inside a container ({}); without a user namespace that is root on the host kernel",
            signals.join("; ")
        ),
        "use `clawjail run --init` as the entrypoint with [identity] user set, or USER in the Dockerfile",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudoers_matches_user_group_and_all() {
        let t = "# comment\nDefaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\nopenclaw ALL=(root) NOPASSWD: /usr/bin/systemctl\nUser_Alias X = a\n";
        let g = sudoers_grants(t, "openclaw", &["sudo".to_string()]);
        assert_eq!(g.iter().map(|x| x.0).collect::<Vec<_>>(), [4, 5]);
        assert!(sudoers_grants(t, "nobody", &[]).is_empty());
    }

    #[test]
    fn dac_write() {
        assert!(dac_writable(5, &[], 5, 0, 0o600));
        assert!(!dac_writable(5, &[9], 0, 9, 0o640));
        assert!(dac_writable(5, &[9], 0, 9, 0o660));
        assert!(dac_writable(5, &[], 0, 0, 0o666));
    }
}
