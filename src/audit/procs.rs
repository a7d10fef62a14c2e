//! Gateway processes: find them by command line, read /proc/<pid>/{status,cmdline,environ},
//! and check identity, no_new_privs, seccomp, capabilities, groups, secrets and whether a
//! run record shows they were started under clawjail.
//!
//! Secret values are never read into a finding: only variable names and flag names.

use std::fs;
use std::path::Path;

use serde::Serialize;

use super::{Finding, Severity};
use crate::runrecord;

/// Selects gateway processes by command line.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Both `openclaw` and `gateway` appear (case-insensitive).
    Default,
    /// This substring appears (case-sensitive).
    Substring(String),
}

impl Matcher {
    pub fn new(pattern: Option<&str>) -> Matcher {
        match pattern {
            Some(p) if !p.is_empty() => Matcher::Substring(p.to_string()),
            _ => Matcher::Default,
        }
    }

    pub fn matches(&self, cmdline: &str) -> bool {
        match self {
            Matcher::Default => {
                let l = cmdline.to_lowercase();
                l.contains("openclaw") && l.contains("gateway")
            }
            Matcher::Substring(s) => cmdline.contains(s.as_str()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Matcher::Default => "the default pattern (\"openclaw\" and \"gateway\")".into(),
            Matcher::Substring(s) => format!("--process {s:?}"),
        }
    }
}

/// The /proc/<pid>/status fields audit checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusFields {
    pub ppid: i32,
    /// Effective uid (second field of `Uid:`).
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub cap_amb: u64,
    pub no_new_privs: Option<u8>,
    pub seccomp: Option<u8>,
}

/// Parse the lines of /proc/<pid>/status that audit needs (proc_pid_status(5)).
pub fn parse_status(text: &str) -> StatusFields {
    let mut s = StatusFields::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let second = || value.split_whitespace().nth(1).and_then(|v| v.parse().ok());
        let hex = || u64::from_str_radix(value, 16).unwrap_or(0);
        match key {
            "PPid" => s.ppid = value.parse().unwrap_or(0),
            "Uid" => s.uid = second().unwrap_or(u32::MAX),
            "Gid" => s.gid = second().unwrap_or(u32::MAX),
            "Groups" => {
                s.groups = value
                    .split_whitespace()
                    .filter_map(|g| g.parse().ok())
                    .collect()
            }
            "CapEff" => s.cap_eff = hex(),
            "CapBnd" => s.cap_bnd = hex(),
            "CapAmb" => s.cap_amb = hex(),
            "NoNewPrivs" => s.no_new_privs = value.parse().ok(),
            "Seccomp" => s.seccomp = value.parse().ok(),
            _ => {}
        }
    }
    s
}

/// A matched process, as read from /proc.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub pid: i32,
    pub comm: String,
    pub cmdline: Vec<String>,
    pub uid: u32,
    pub status: StatusFields,
    /// Environment variable names; `None` when /proc/<pid>/environ was unreadable.
    pub env_names: Option<Vec<String>>,
}

/// What `--json` shows for each process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcSummary {
    pub pid: i32,
    pub uid: u32,
    pub cmdline: String,
}

impl From<&ProcInfo> for ProcSummary {
    fn from(p: &ProcInfo) -> Self {
        ProcSummary {
            pid: p.pid,
            uid: p.uid,
            cmdline: redact_cmdline(&p.cmdline).replace('\n', "\\n"),
        }
    }
}

/// Read one process; `None` if it vanished or is a kernel thread.
pub fn read_proc(pid: i32) -> Option<ProcInfo> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    let cmdline: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let status = parse_status(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?);
    let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
    let env_names = fs::read(format!("/proc/{pid}/environ")).ok().map(|e| {
        e.split(|b| *b == 0)
            .filter_map(|kv| kv.split(|b| *b == b'=').next())
            .filter(|k| !k.is_empty())
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    });
    Some(ProcInfo {
        pid,
        comm,
        cmdline,
        uid: status.uid,
        status,
        env_names,
    })
}

/// Every process whose command line matches, except audit itself and clawjail
/// supervisors (their child is the gateway; the supervisor's own record still counts).
/// Returns the gateways and notes on skipped processes.
///
/// A supervisor is recognised by what it runs, never by its name: comm is whatever the
/// process set with prctl(PR_SET_NAME), so an unconfined gateway calling itself
/// "clawjail" would otherwise vanish from the audit. It is skipped only when
/// /proc/<pid>/exe is a clawjail binary (the inode its run record names, or this very
/// binary) and a run record matches its pid and start time.
pub fn scan(m: &Matcher, record_dir: &Path) -> (Vec<ProcInfo>, Vec<Finding>) {
    let me = std::process::id() as i32;
    let Ok(dir) = fs::read_dir("/proc") else {
        return (Vec::new(), Vec::new());
    };
    let self_exe = runrecord::exe_of("self");
    let mut notes = Vec::new();
    let mut out: Vec<ProcInfo> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(read_proc)
        .filter(|p| m.matches(&p.cmdline.join(" ")))
        .filter(|p| match supervisor_kind(p.pid, record_dir, self_exe) {
            Supervisor::No => true,
            Supervisor::Recorded => false,
            Supervisor::Unrecorded => {
                notes.push(Finding::new(
                    "clawjail-unrecorded",
                    Severity::Info,
                    subject(p),
                    "runs the clawjail binary but no run record matches it (an unprivileged start writes none); its child is audited instead",
                    "none",
                ));
                false
            }
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    (out, notes)
}

/// What a matched process is, judged by its executable and the run records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervisor {
    /// Not a clawjail binary: audit it as a gateway.
    No,
    /// A clawjail binary with a matching run record.
    Recorded,
    /// This clawjail binary, no record.
    Unrecorded,
}

/// See [`scan`].
pub fn supervisor_kind(
    pid: i32,
    record_dir: &Path,
    self_exe: Option<runrecord::ExeId>,
) -> Supervisor {
    let Some(exe) = runrecord::exe_of(&pid.to_string()) else {
        return Supervisor::No;
    };
    match runrecord::matching_record(record_dir, pid) {
        Ok(Some(rec)) if rec.exe == Some(exe) || self_exe == Some(exe) => Supervisor::Recorded,
        _ if monitor_of_recorded(pid, record_dir, exe) => Supervisor::Recorded,
        _ if self_exe == Some(exe) => Supervisor::Unrecorded,
        _ => Supervisor::No,
    }
}

/// The pty session's monitor (docs/terminal.md) is a fork of the supervisor: the same
/// clawjail binary, and its parent is the supervisor whose run record matches.
fn monitor_of_recorded(pid: i32, record_dir: &Path, exe: runrecord::ExeId) -> bool {
    let Some(ppid) = read_proc(pid).map(|q| q.status.ppid) else {
        return false;
    };
    runrecord::exe_of(&ppid.to_string()) == Some(exe)
        && matches!(
            runrecord::matching_record(record_dir, ppid),
            Ok(Some(rec)) if rec.exe == Some(exe)
        )
}

/// AWS_* names that hold settings, not credentials.
const AWS_SETTINGS: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CA_BUNDLE",
    "AWS_CONFIG_FILE",
];

/// Names that usually hold credentials: *_TOKEN, *_KEY, *SECRET*, *PASSWORD*, AWS_*
/// (except region/profile/path settings).
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    if AWS_SETTINGS.contains(&n.as_str()) {
        return false;
    }
    n.ends_with("_TOKEN")
        || n.ends_with("_KEY")
        || n.contains("SECRET")
        || n.contains("PASSWORD")
        || n.contains("PASSWD")
        || n.starts_with("AWS_")
}

/// Flags whose value is a credential.
const SECRET_FLAGS: &[&str] = &[
    "--token",
    "--api-key",
    "--apikey",
    "--password",
    "--secret",
    "--auth-token",
];

/// Arguments that put a secret on the command line (world-readable in /proc/<pid>/cmdline):
/// the flag names, or `NAME=` for `NAME=value` arguments.
pub fn secret_args(cmdline: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for a in cmdline.iter().skip(1) {
        let flag = a.split_once('=').map_or(a.as_str(), |(k, _)| k);
        if SECRET_FLAGS.contains(&flag) {
            out.push(flag.to_string());
        } else if let Some((k, _)) = a.split_once('=') {
            if !k.starts_with('-') && is_secret_name(k) {
                out.push(format!("{k}="));
            }
        }
    }
    out
}

/// The command line with secret values replaced by `***`.
pub fn redact_cmdline(cmdline: &[String]) -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for a in cmdline {
        if hide_next {
            out.push("***".to_string());
            hide_next = false;
            continue;
        }
        match a.split_once('=') {
            Some((k, _)) if SECRET_FLAGS.contains(&k) || is_secret_name(k) => {
                out.push(format!("{k}=***"))
            }
            _ if SECRET_FLAGS.contains(&a.as_str()) => {
                out.push(a.clone());
                hide_next = true;
            }
            _ => out.push(a.clone()),
        }
    }
    out.join(" ")
}

/// Supplementary groups that amount to root or to reading every log/disk.
pub const POWER_GROUPS: &[&str] = &["sudo", "wheel", "docker", "adm", "disk", "lxd"];

fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

fn subject(p: &ProcInfo) -> String {
    format!("pid {} ({})", p.pid, p.comm)
}

/// All process-level findings for one gateway process.
pub fn check(p: &ProcInfo, record_dir: &Path) -> Vec<Finding> {
    let mut v = Vec::new();
    v.extend(check_identity(p));
    v.extend(check_hardening(p));
    v.extend(check_capabilities(p));
    v.extend(check_groups(p));
    v.extend(check_secrets(p));
    v.extend(check_started_under_clawjail(p, record_dir));
    v
}

fn severity_named(s: &str) -> Severity {
    match s {
        "critical" => Severity::Critical,
        "high" => Severity::High,
        "medium" => Severity::Medium,
        "low" => Severity::Low,
        _ => Severity::Info,
    }
}

/// Findings for what the launched policy leaves open (from its run record).
fn policy_findings(p: &ProcInfo, rec: &runrecord::RunRecord) -> Vec<Finding> {
    if !rec.assessed {
        return vec![Finding::new(
            "policy-unassessed",
            Severity::Low,
            subject(p),
            format!(
                "its run record (clawjail {}) does not say how strong policy {} is",
                rec.clawjail_version, rec.policy
            ),
            "restart it with this clawjail version so audit can judge the policy",
        )];
    }
    rec.weak
        .iter()
        .map(|w| {
            let code = crate::audit::strength::CODES
                .iter()
                .find(|c| **c == w.code)
                .copied()
                .unwrap_or("weak-confinement");
            Finding::new(
                code,
                severity_named(&w.severity),
                subject(p),
                format!("confined by a weak policy ({}): {}", rec.policy, w.what),
                "tighten the policy (start from policies/openclaw-gateway.toml) and restart the gateway; `clawjail verify --policy FILE` shows each row it fails",
            )
        })
        .collect()
}

fn check_identity(p: &ProcInfo) -> Option<Finding> {
    (p.uid == 0).then(|| {
        Finding::new(
            "root-uid",
            Severity::Critical,
            subject(p),
            "runs as uid 0: a prompt-injected command runs as root",
            "start it with `clawjail run` and a policy whose [identity] user is a dedicated account (useradd --system openclaw)",
        )
    })
}

fn check_hardening(p: &ProcInfo) -> Vec<Finding> {
    let mut v = Vec::new();
    if p.status.no_new_privs != Some(1) {
        v.push(Finding::new(
            "no-new-privs-off",
            Severity::Medium,
            subject(p),
            "NoNewPrivs is 0: a setuid binary (sudo, su, passwd) it runs gains privilege",
            "start it under clawjail (always sets no_new_privs) or systemd NoNewPrivileges=yes",
        ));
    }
    if p.status.seccomp != Some(2) {
        v.push(Finding::new(
            "seccomp-off",
            Severity::High,
            subject(p),
            "no seccomp filter: io_uring, user namespaces, ptrace, mount and TIOCSTI are all reachable",
            "start it under clawjail, which installs the default seccomp profile",
        ));
    }
    v
}

fn check_capabilities(p: &ProcInfo) -> Vec<Finding> {
    let mut v = Vec::new();
    let caps = |mask: u64| format!("{mask:#018x}");
    if p.status.cap_eff != 0 {
        v.push(Finding::new(
            "caps-effective",
            Severity::High,
            subject(p),
            format!("effective capabilities {}", caps(p.status.cap_eff)),
            "drop them: clawjail clears every set unless [capabilities] keep lists one",
        ));
    }
    if p.status.cap_amb != 0 {
        v.push(Finding::new(
            "caps-ambient",
            Severity::Medium,
            subject(p),
            format!(
                "ambient capabilities {} survive into every program it runs",
                caps(p.status.cap_amb)
            ),
            "keep only what the gateway needs (at most CAP_NET_BIND_SERVICE) in [capabilities] keep",
        ));
    }
    if p.status.cap_bnd != 0 {
        v.push(Finding::new(
            "caps-bounding",
            Severity::Low,
            subject(p),
            format!(
                "bounding set {}: capabilities can be regained through a setuid or file-capability binary{}",
                caps(p.status.cap_bnd),
                if p.status.no_new_privs == Some(1) { " (inert while NoNewPrivs is 1)" } else { "" }
            ),
            "start it under clawjail as root, which empties the bounding set before the uid switch",
        ));
    }
    v
}

fn check_groups(p: &ProcInfo) -> Vec<Finding> {
    let mut gids = p.status.groups.clone();
    gids.push(p.status.gid);
    gids.sort_unstable();
    gids.dedup();
    gids.into_iter()
        .filter_map(|g| group_name(g).map(|n| (g, n)))
        .filter(|(_, n)| POWER_GROUPS.contains(&n.as_str()))
        .map(|(g, n)| {
            Finding::new(
                "power-group",
                if n == "adm" {
                    Severity::Medium
                } else {
                    Severity::Critical
                },
                subject(p),
                format!("member of group {n} ({g}), which grants root-equivalent power or every log"),
                format!("remove the service user from {n} (gpasswd -d USER {n}) and set identity.supplementary_groups = []"),
            )
        })
        .collect()
}

fn check_secrets(p: &ProcInfo) -> Vec<Finding> {
    let mut v = Vec::new();
    if let Some(names) = &p.env_names {
        let secret: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| is_secret_name(n))
            .collect();
        if !secret.is_empty() {
            v.push(Finding::new(
                "secret-in-env",
                Severity::Medium,
                subject(p),
                format!(
                    "credentials in its environment: {} (every child process inherits them)",
                    secret.join(", ")
                ),
                "every program the agent runs inherits these (an injected `env` prints them): keep the gateway token in its 0600 config (gateway.auth.token) instead; if it must be an env var, deliver it with env.files (never argv, never env.pass from a shared shell)",
            ));
        }
    }
    let args = secret_args(&p.cmdline);
    if !args.is_empty() {
        v.push(Finding::new(
            "secret-in-cmdline",
            Severity::High,
            subject(p),
            format!(
                "a credential on the command line ({}): /proc/{}/cmdline is readable by every user",
                args.join(", "),
                p.pid
            ),
            "move it to a 0600 env file (env.files) or the gateway's config file",
        ));
    }
    v
}

/// The process or one of its two nearest ancestors (a clawjail supervisor: the parent, or
/// the grandparent behind the pty session's monitor) has a run record whose pid and start
/// time match; then the policy it recorded is judged too.
fn check_started_under_clawjail(p: &ProcInfo, dir: &Path) -> Vec<Finding> {
    let mut pid = p.pid;
    let mut problems = Vec::new();
    for _ in 0..3 {
        match runrecord::matching_record(dir, pid) {
            Ok(Some(rec)) => {
                let mut v = vec![Finding::new(
                    "under-clawjail",
                    Severity::Info,
                    subject(p),
                    format!(
                    "started under clawjail (run record of pid {pid}: policy {} sha256 {}, uid {})",
                    rec.policy, rec.policy_sha256, rec.uid
                ),
                    "none",
                )];
                v.extend(policy_findings(p, &rec));
                return v;
            }
            Ok(None) => {}
            Err(e) => problems.push(e.to_string()),
        }
        match read_proc(pid).map(|q| q.status.ppid) {
            Some(pp) if pp > 1 => pid = pp,
            _ => break,
        }
    }
    let extra = if problems.is_empty() {
        String::new()
    } else {
        format!(" (ignored: {})", problems.join("; "))
    };
    vec![Finding::new(
        "not-under-clawjail",
        Severity::High,
        subject(p),
        format!("no run record under {} matches this process or its supervisor{extra}: it was not started by `clawjail run`, so no Landlock or seccomp policy can be assumed", dir.display()),
        "start the gateway with `clawjail run --policy /etc/clawjail/policy.toml -- openclaw gateway`",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tnode\nPPid:\t77\nUid:\t1000\t1001\t1001\t1001\nGid:\t100\t100\t100\t100\nGroups:\t27 999 \nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000400\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";

    #[test]
    fn status_fields_are_parsed() {
        let s = parse_status(STATUS);
        assert_eq!(s.ppid, 77);
        assert_eq!(s.uid, 1001, "effective uid");
        assert_eq!(s.groups, vec![27, 999]);
        assert_eq!(s.cap_eff, 0x400);
        assert_eq!(s.cap_bnd, 0x1ff_ffff_ffff);
        assert_eq!(s.no_new_privs, Some(1));
        assert_eq!(s.seccomp, Some(2));
    }

    #[test]
    fn secret_names() {
        for n in [
            "OPENAI_API_KEY",
            "GITHUB_TOKEN",
            "MY_SECRET_X",
            "AWS_SESSION_TOKEN",
            "AWS_ACCESS_KEY_ID",
            "DB_PASSWORD",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "PATH",
            "HOME",
            "NODE_ENV",
            "KEYBOARD",
            "AWS_CA_BUNDLE",
            "AWS_REGION",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn secret_args_name_flags_never_values() {
        let c: Vec<String> = [
            "node",
            "gw",
            "--token",
            "abc",
            "--api-key=xyz",
            "SLACK_TOKEN=q",
            "--port=1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(secret_args(&c), ["--token", "--api-key", "SLACK_TOKEN="]);
        assert_eq!(
            redact_cmdline(&c),
            "node gw --token *** --api-key=*** SLACK_TOKEN=*** --port=1"
        );
    }

    #[test]
    fn default_matcher_needs_both_words() {
        let m = Matcher::new(None);
        assert!(m.matches("node /usr/lib/node_modules/openclaw/dist/index.js gateway --port 18789"));
        assert!(!m.matches("openclaw tui"));
        assert!(Matcher::new(Some("MARK")).matches("python3 -c MARK"));
    }

    fn proc_with(status: &str) -> ProcInfo {
        let status = parse_status(status);
        ProcInfo {
            pid: 1,
            comm: "node".into(),
            cmdline: vec!["node".into()],
            uid: status.uid,
            status,
            env_names: Some(vec!["PATH".into(), "OPENAI_API_KEY".into()]),
        }
    }

    #[test]
    fn confined_process_has_no_hardening_findings() {
        let p = proc_with(
            "Uid:\t5\t5\t5\t5\nCapEff:\t0\nCapBnd:\t0\nCapAmb:\t0\nNoNewPrivs:\t1\nSeccomp:\t2\n",
        );
        assert!(check_identity(&p).is_none());
        assert!(check_hardening(&p).is_empty());
        assert!(check_capabilities(&p).is_empty());
        let s = check_secrets(&p);
        assert_eq!(s.len(), 1);
        assert!(s[0].what.contains("OPENAI_API_KEY"));
    }

    #[test]
    fn root_unconfined_process_has_the_findings() {
        let p = proc_with(
            "Uid:\t0\t0\t0\t0\nCapEff:\tff\nCapBnd:\tff\nCapAmb:\t0\nNoNewPrivs:\t0\nSeccomp:\t0\n",
        );
        assert_eq!(check_identity(&p).map(|f| f.code), Some("root-uid"));
        let codes: Vec<&str> = check_hardening(&p).iter().map(|f| f.code).collect();
        assert_eq!(codes, ["no-new-privs-off", "seccomp-off"]);
        let codes: Vec<&str> = check_capabilities(&p).iter().map(|f| f.code).collect();
        assert_eq!(codes, ["caps-effective", "caps-bounding"]);
    }
}
