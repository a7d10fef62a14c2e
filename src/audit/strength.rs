//! How strong a launched policy is, judged at launch and kept in the run record, so
//! `audit` can tell a gateway under the shipped policy from one "confined" by
//! `seccomp action = "log"` and `write = ["/"]`. /proc shows Seccomp: 2 and NoNewPrivs: 1
//! for both; only the policy tells them apart.
//!
//! Pure: policy + expanded variables + the plan's degraded list in, weaknesses out
//! (unit-tested). Each weakness names the key and what it leaves open; its severity is
//! the score weight audit adds (docs/verify-audit.md).

use serde::{Deserialize, Serialize};

use crate::policy::{vars::Vars, LandlockMode, Policy, SeccompAction};

/// One way the launched policy leaves the target less confined than the shipped one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weakness {
    /// A code from [`CODES`].
    pub code: String,
    /// "critical" | "high" | "medium" | "low".
    pub severity: String,
    pub what: String,
}

/// Every code `assess` emits (audit maps a record's strings back to these).
pub const CODES: &[&str] = &[
    "weak-seccomp-log",
    "weak-write-broad",
    "weak-read-broad",
    "weak-exec-broad",
    "weak-landlock-best-effort",
    "weak-unix-sockets",
    "weak-degraded",
];

/// Directories whose write grant amounts to the whole system or every user's files.
const BROAD_WRITE: &[&str] = &[
    "/", "/home", "/root", "/etc", "/usr", "/var", "/bin", "/sbin", "/lib", "/boot", "/opt", "/srv",
];
/// Directories whose read grant reaches secrets (keys, tokens, other services' config).
/// Library and binary directories are not here: reading them is what every program does.
const BROAD_READ: &[&str] = &["/", "/home", "/root", "/etc", "/var"];
/// Directories whose exec grant runs any shell or tool.
const BROAD_EXEC: &[&str] = &[
    "/",
    "/usr",
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
];

fn w(code: &str, severity: &str, what: String) -> Weakness {
    Weakness {
        code: code.into(),
        severity: severity.into(),
        what,
    }
}

fn broad_entries(
    list: &[toml::Spanned<crate::policy::PathEntry>],
    vars: &Vars,
    broad: &[&str],
) -> Vec<String> {
    list.iter()
        .filter_map(|v| {
            let p = v.get_ref().path.expand(vars).ok()?;
            let s = p.to_str()?;
            let norm = s.trim_end_matches('/');
            let norm = if norm.is_empty() { "/" } else { norm };
            broad.contains(&norm).then(|| norm.to_string())
        })
        .collect()
}

/// The weaknesses of `p` as launched (`degraded`: the plan's list of what was not enforced).
pub fn assess(p: &Policy, vars: &Vars, degraded: &[String]) -> Vec<Weakness> {
    let mut out = Vec::new();
    if p.seccomp.action.get() == SeccompAction::Log {
        out.push(w(
            "weak-seccomp-log",
            "high",
            "seccomp action = \"log\": learning mode, every syscall the filter would refuse still runs (io_uring, ptrace, mount, namespaces)".into(),
        ));
    }
    let fs = &p.filesystem;
    let write = broad_entries(&fs.write, vars, BROAD_WRITE);
    if !write.is_empty() {
        out.push(w(
            "weak-write-broad",
            "critical",
            format!(
                "filesystem.write covers {}: the target may modify system or other users' files wherever DAC lets its uid",
                write.join(", ")
            ),
        ));
    }
    let read = broad_entries(&fs.read, vars, BROAD_READ);
    if !read.is_empty() {
        out.push(w(
            "weak-read-broad",
            "high",
            format!(
                "filesystem.read covers {}: every file its uid can read is reachable (keys, tokens, other services' config)",
                read.join(", ")
            ),
        ));
    }
    let exec = broad_entries(&fs.exec, vars, BROAD_EXEC);
    if !exec.is_empty() {
        out.push(w(
            "weak-exec-broad",
            "medium",
            format!(
                "filesystem.exec covers {}: any program there can be run (shells, curl, compilers)",
                exec.join(", ")
            ),
        ));
    }
    if p.kernel.landlock.get() == LandlockMode::BestEffort {
        out.push(w(
            "weak-landlock-best-effort",
            "medium",
            "kernel.landlock = \"best-effort\": Landlock features this kernel lacks were dropped instead of refusing to start".into(),
        ));
    }
    if p.network.unix.get() {
        out.push(w(
            "weak-unix-sockets",
            "medium",
            "network.unix = true: pathname unix sockets (docker.sock, ssh-agent) are reachable where Landlock cannot scope them".into(),
        ));
    }
    for d in degraded {
        // The identity line of an unprivileged start is expected there; the rest is not.
        if d.starts_with("identity:") {
            continue;
        }
        out.push(w(
            "weak-degraded",
            "low",
            format!("not enforced at launch: {d}"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assess_text(text: &str) -> Vec<String> {
        let p = crate::policy::parse(text).unwrap();
        let mut vars = Vars::new();
        vars.set("HOME", "/home/x");
        assess(&p, &vars, &[]).into_iter().map(|w| w.code).collect()
    }

    #[test]
    fn the_shipped_policy_has_no_weakness() {
        let p = crate::policy::parse(crate::policy::EMBEDDED_DEFAULT).unwrap();
        let mut vars = Vars::new();
        for (k, v) in [
            ("HOME", "/home/openclaw"),
            ("STATE_DIR", "/home/openclaw/.openclaw"),
            ("TMP", "/tmp/clawjail-999"),
            ("UID", "999"),
            ("PORT", "18789"),
            ("OPENCLAW_PREFIX", "/opt/openclaw"),
            ("CONFIG_DIR", "/etc/openclaw"),
            ("CREDENTIALS_DIRECTORY", "/etc/openclaw"),
        ] {
            vars.set(k, v);
        }
        assert_eq!(assess(&p, &vars, &[]), vec![]);
    }

    #[test]
    fn log_action_and_write_root_are_weak() {
        let codes = assess_text(
            "version = 1\n[seccomp]\naction = \"log\"\n[filesystem]\nwrite = [\"/\"]\nread = [\"~/\"]\n",
        );
        assert_eq!(codes, ["weak-seccomp-log", "weak-write-broad"]);
        let codes = assess_text("version = 1\n[filesystem]\nread = [\"/home/\"]\nexec = [\"/usr\"]\n[network]\nunix = true\n[kernel]\nlandlock = \"best-effort\"\n");
        assert_eq!(
            codes,
            [
                "weak-read-broad",
                "weak-exec-broad",
                "weak-landlock-best-effort",
                "weak-unix-sockets"
            ]
        );
    }
}
