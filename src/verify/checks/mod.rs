//! The battery, derived from the policy (not from hard-coded paths) and the fixtures:
//! enforcement rows for every denial and allowance the policy implies, baseline rows for
//! what no gateway should be able to do, and limit rows for what no policy can enforce.
//!
//! One file per probe family: `fs` (Landlock filesystem), `net` (TCP, UDP, unix sockets,
//! scopes), `baseline` (secrets, ptrace, seccomp guards), `isolation` (what Landlock does
//! not mediate), `process` (ids, caps, no_new_privs, fds, env), `limits`. `lines` names
//! the policy lines for messages (from the typed policy's spans); paths, ports, scopes and
//! coverage come from the Plan `run` applies (`Inputs`), never from a second expansion.

use std::path::{Path, PathBuf};

use super::fixtures::{Fixtures, PLANTED_ENV};
use super::row::{Expect, Kind};
use landlock::AccessFs;

use crate::identity::Ids;
use crate::landlock::{ListKind, Listed};
use crate::policy::Loaded;
use crate::probe::Action;

mod baseline;
mod fs;
mod isolation;
mod limits;
mod lines;
mod net;
mod process;

use baseline::*;
use fs::*;
use isolation::*;
use limits::*;
pub use lines::PolicyLines;
use net::*;
use process::*;

/// Risk names `[risk] accept` understands: each lets one baseline row be ACCEPTED
/// instead of FAIL when the policy allows that action (docs/verify-audit.md).
pub const RISKS: &[(&str, &str)] = &[
    ("ssh-keys", "the target may read the target user's ~/.ssh"),
    (
        "cloud-credentials",
        "the target may read the target user's ~/.aws",
    ),
    ("etc-shadow", "the target may read /etc/shadow"),
    ("ptrace", "seccomp allows ptrace"),
    ("user-namespaces", "seccomp allows creating user namespaces"),
    ("io-uring", "seccomp allows io_uring"),
    ("mount", "seccomp allows mount"),
    ("tiocsti", "seccomp allows ioctl without its TIOCSTI guard"),
    (
        "unix-sockets",
        "network.unix = true: pathname sockets such as docker.sock are reachable",
    ),
    ("setuid-exec", "the exec set contains a setuid binary"),
];

/// One attempt to make, in both children.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: String,
    pub kind: Kind,
    pub attempt: String,
    /// None for a policy-only row, which is never attempted (`skip` is set).
    pub action: Option<Action>,
    /// Arguments; `{PTY}` is replaced by each child's own pty fd.
    pub args: Vec<String>,
    pub expect: Expect,
    pub layer: &'static str,
    /// Run after an exec of `clawjail __verify-exec` (what the target would see).
    pub across_exec: bool,
    /// Run the same attempt as the same uid without confinement.
    pub control: bool,
    /// Baseline: the policy line that allows the action.
    pub policy_allows: Option<String>,
    pub risk: Option<&'static str>,
    pub limit_note: Option<&'static str>,
    /// Why the attempt is not made at all (e.g. the path does not exist).
    pub skip: Option<String>,
    /// Run with fds 0 and 2 on the child's pty (its controlling terminal), which stands
    /// for the caller's terminal; confined, through the terminal step `run` applies.
    pub caller_tty: bool,
}

impl Check {
    fn new(
        id: &str,
        kind: Kind,
        layer: &'static str,
        attempt: String,
        action: impl Into<Option<Action>>,
        args: Vec<String>,
        expect: Expect,
    ) -> Check {
        Check {
            id: id.to_string(),
            kind,
            attempt,
            action: action.into(),
            args,
            expect,
            layer,
            across_exec: false,
            control: true,
            policy_allows: None,
            risk: None,
            limit_note: None,
            skip: None,
            caller_tty: false,
        }
    }

    fn exec(mut self) -> Check {
        self.across_exec = true;
        self
    }

    fn on_caller_tty(mut self) -> Check {
        self.caller_tty = true;
        self
    }

    fn no_control(mut self) -> Check {
        self.control = false;
        self
    }

    fn risk(mut self, r: &'static str) -> Check {
        self.risk = Some(r);
        self
    }

    fn allowed_by(mut self, line: Option<String>) -> Check {
        self.policy_allows = line;
        self
    }
}

/// Everything verify needs to derive the battery.
pub struct Inputs<'a> {
    /// Policy lines for messages and `[risk] accept`.
    pub lines: &'a PolicyLines,
    /// The target user's home (`${HOME}` as the plan expanded it).
    pub home: Option<PathBuf>,
    pub fx: &'a Fixtures,
    pub ids: &'a Ids,
    /// Started as root: ids switch and the bounding set is emptied.
    pub privileged: bool,
    /// The kept capabilities' mask.
    pub keep_mask: u64,
    /// The plan gives the target an IPC namespace of its own.
    pub ipc_namespace: bool,
    /// The Landlock rules `run` applies: every coverage decision is made on them, by inode.
    pub landlock: &'a crate::landlock::LandlockPlan,
}

impl Inputs<'_> {
    /// The policy line that makes `path` readable (to read a file or list a directory)
    /// under the rules `run` applies; None when no rule reaches it. The line is the list
    /// entry naming a parent when there is one, else the rules' own reasons (a name the
    /// policy does not spell: a symlinked entry, the automatic exec chain).
    pub fn reachable(&self, path: &Path) -> Option<String> {
        let g = self.landlock.granted(path);
        if !g.any(AccessFs::ReadFile | AccessFs::ReadDir) {
            return None;
        }
        Some(
            self.located(path)
                .map(|e| e.at.clone())
                .unwrap_or_else(|| format!("Landlock rule: {}", g.why.join("; "))),
        )
    }

    /// The `[filesystem]` entries of one list, as the plan expanded them.
    pub fn listed(&self, list: ListKind) -> impl Iterator<Item = &Listed> {
        listed(self.landlock, list)
    }

    /// The entry that names a parent of `path`, for messages only (`located`).
    pub fn located(&self, path: &Path) -> Option<&Listed> {
        located(self.landlock, path)
    }

    /// The first `network.connect` port the policy lists (not 0).
    pub fn listed_connect_port(&self) -> Option<u16> {
        self.landlock
            .listed_ports()
            .1
            .iter()
            .copied()
            .find(|p| *p != 0)
    }

    /// A file can be created in `path`'s directory under the rules `run` applies.
    pub fn writable(&self, path: &Path) -> bool {
        self.landlock.granted(path).any(AccessFs::MakeReg.into())
    }

    /// `path` can be executed under the rules `run` applies.
    pub fn executable(&self, path: &Path) -> bool {
        self.landlock.granted(path).any(AccessFs::Execute.into())
    }
}

fn listed(
    landlock: &crate::landlock::LandlockPlan,
    list: ListKind,
) -> impl Iterator<Item = &Listed> {
    landlock.listed().iter().filter(move |e| e.list == list)
}

/// The write, read or exec entry that names a parent of `path`, for messages only:
/// whether `path` is reachable is decided by the rules (`Inputs::reachable`), by inode.
fn located<'a>(landlock: &'a crate::landlock::LandlockPlan, path: &Path) -> Option<&'a Listed> {
    [ListKind::Write, ListKind::Read, ListKind::Exec]
        .into_iter()
        .find_map(|k| listed(landlock, k).find(|e| path.starts_with(&e.path)))
}

/// The whole battery, in display order.
pub fn derive(inp: &Inputs<'_>) -> (Vec<Check>, Vec<PathBuf>) {
    let mut cleanup = Vec::new();
    let mut v = Vec::new();
    v.extend(risk_names(inp.lines));
    v.extend(deny_paths(inp));
    v.extend(outside_paths(inp, &mut cleanup));
    v.extend(links(inp, &mut cleanup));
    v.extend(network(inp));
    v.extend(scopes(inp));
    v.extend(allowed(inp, &mut cleanup));
    v.extend(baseline(inp));
    v.extend(isolation(inp));
    v.extend(process_state(inp));
    v.extend(limits(inp));
    (v, cleanup)
}

/// A FAIL row for every `[risk] accept` name verify does not know (a typo accepts nothing).
fn risk_names(lines: &PolicyLines) -> Vec<Check> {
    lines
        .accept
        .iter()
        .filter(|a| !RISKS.iter().any(|(n, _)| n == a))
        .map(|a| {
            let mut c = Check::new(
                &format!("risk-{a}"),
                Kind::Baseline,
                "policy",
                format!("risk.accept names {a:?}"),
                None,
                vec![],
                Expect::Denied,
            )
            .no_control();
            c.skip = Some("a policy check, nothing to attempt".into());
            c.policy_allows = Some(format!(
                "risk.accept {a:?} is not a known risk name (known: {})",
                RISKS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ));
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Origin, Source};

    fn loaded(text: &str) -> Loaded {
        crate::policy::load(Source::new(Origin::Flag("p.toml".into()), text.into())).unwrap()
    }

    fn lines(text: &str) -> PolicyLines {
        PolicyLines::new(&loaded(text))
    }

    /// Entries and ports come from the plan, expanded once by `plan::prepare`.
    #[test]
    fn entries_and_ports_come_from_the_plan() {
        let l = loaded(
            "version = 1\n[identity]\nuser = 65534\ngroup = 65534\n[filesystem]\nread = [\"/usr\"]\ndeny = [\"?/usr/no-such-dir-cj\"]\n[network]\nbind = [\"${PORT}\"]\nconnect = [443]\n",
        );
        let opts = crate::plan::PrepareOptions {
            cli_vars: vec![("PORT".into(), "18789".into())],
            ..Default::default()
        };
        let plan = crate::plan::prepare(&l, &opts).unwrap();
        let deny: Vec<&Listed> = plan
            .landlock
            .listed()
            .iter()
            .filter(|e| e.list == ListKind::Deny)
            .collect();
        assert_eq!(deny.len(), 1);
        assert_eq!(
            deny[0].at,
            "filesystem.deny \"?/usr/no-such-dir-cj\" (p.toml:7:9)"
        );
        assert_eq!(plan.landlock.listed_ports(), (&[18789][..], &[443][..]));
        let e = located(&plan.landlock, Path::new("/usr/lib/x")).unwrap();
        assert_eq!(e.at, "filesystem.read \"/usr\" (p.toml:6:9)");
    }

    #[test]
    fn seccomp_allowances_are_located() {
        let v = lines("version = 1\n[seccomp]\nallow = [\"io_uring_setup\"]\n");
        assert_eq!(
            v.seccomp_allows(&["io_uring_setup"]).as_deref(),
            Some("seccomp.allow \"io_uring_setup\" (p.toml:3:10)")
        );
        let v = lines("version = 1\n[seccomp]\naction = \"log\"\n");
        assert!(v.seccomp_allows(&["ptrace"]).unwrap().contains("p.toml:3"));
        let v = lines("version = 1\n[network]\nunix = true\n");
        assert_eq!(v.unix.as_deref(), Some("network.unix = true (p.toml:3)"));
    }

    #[test]
    fn unknown_risk_names_fail() {
        let v = lines("version = 1\n[risk]\naccept = [\"io-uring\", \"io_uring\"]\n");
        let rows = risk_names(&v);
        assert_eq!(rows.len(), 1);
        assert!(rows[0]
            .policy_allows
            .as_deref()
            .unwrap()
            .contains("\"io_uring\" is not a known"));
        assert!(v.accepts("io-uring"));
    }

    #[test]
    fn attack_prefers_a_file_inside_a_directory() {
        let d = std::env::temp_dir().join(format!("cj-attack-{}", std::process::id()));
        std::fs::create_dir_all(d.join("sub")).unwrap();
        assert_eq!(attack_for(&d), Some((Action::List, d.clone())));
        std::fs::write(d.join("sub/key"), "k").unwrap();
        assert_eq!(attack_for(&d), Some((Action::Read, d.join("sub/key"))));
        assert_eq!(attack_for(&d.join("nope")), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
