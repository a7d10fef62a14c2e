//! `clawjail verify [--policy FILE] [--json]`: attempt forbidden (and allowed) actions under
//! a policy, confined exactly as `run` confines its target, each with a control, and print
//! one row per action. Exit 0 only when every row passes.
//!
//! How (see `runner` for the processes, `checks` for the battery, `row` for verdicts):
//! 1. Plant a secret in verify's own environment, then prepare the Plan exactly like
//!    `run`, with the clawjail binary itself as the command (`clawjail __verify-exec
//!    ACTION ARGS`), so rows that must cross an exec can. Everything below comes from this
//!    Plan (ids, caps, expanded entries, ports, scopes, the rules by inode), never from a
//!    second expansion of the policy; absent deny paths get a stand-in and the Plan is
//!    prepared again.
//! 2. While root, set up fixtures (`fixtures`): scratch files no rule reaches, a
//!    loopback listener on an unlisted port, abstract and pathname unix sockets, a
//!    sleeping process of the target uid, an fd leaked on purpose.
//! 3. Derive the battery (`checks`) from the Plan and the fixtures.
//! 4. Control child: the target ids only. Confined child: `launch::apply(plan)`. Each runs
//!    every attempt in a grandchild and reports JSON lines over a pipe.
//! 5. Verdicts (`row::decide`), then `row::settle` (INCONCLUSIVE rows covered by a PASS of
//!    the same layer), then the table.
//!
//! Grants verify adds that `run` would not (printed with every report, see `GRANTS`).
//!
//! Probe actions verify expects (`probe::run(action, args)`, each printing `ok [detail]` or
//! `errno NAME`; a name no family knows makes the row INCONCLUSIVE "probe action missing",
//! never PASS). Owner in brackets:
//!
//! | action | args | ok output | family |
//! |---|---|---|---|
//! | `read` | PATH | `ok N bytes` | fs (exists) |
//! | `list` | DIR | `ok N entries` | fs (exists) |
//! | `write` | PATH (create/truncate) | `ok` | fs (exists) |
//! | `exec` | PATH [ARGS...] (fork+execve, wait) | `ok exit N` | fs |
//! | `symlink-read` | TARGET LINK (create LINK -> TARGET, read LINK) | `ok N bytes` | fs |
//! | `hardlink` | SRC DST (link(2)) | `ok` | fs |
//! | `tcp-connect` | HOST PORT | `ok` | net |
//! | `tcp-bind` | HOST PORT | `ok` | net |
//! | `udp-send` | HOST PORT | `ok N bytes` | net |
//! | `abstract-connect` | NAME (without the leading NUL) | `ok` | net |
//! | `unix-connect` | PATH | `ok` | net |
//! | `kill` | PID SIG | `ok` | net (scopes) |
//! | `ptrace-attach` | PID (PTRACE_ATTACH then detach) | `ok` | sys |
//! | `unshare-userns` | - | `ok` | sys |
//! | `io-uring-setup` | - | `ok` | sys |
//! | `tiocsti` | FD (a tty fd; inject one byte) | `ok` | sys |
//! | `mount` | DIR (tmpfs on DIR) | `ok` | sys |
//! | `tty-reach` | MAJ:MIN (a terminal; fds 0..1024 and /dev/tty) | `ok fd N ...` | tty |
//! | `setuid0` | - | `ok` | core (exists) |
//! | `read-fd` | N | `ok CONTENT` | core (exists) |
//! | `env-names` | - | `ok A,B,C` | core (exists) |
//! | `status` | - | status lines, then `ok` | core (exists) |
//! | `egress-tcp` | HOST PORT (connect, send, wait for an answer) | `ok answered, N bytes` | net (egress) |
//! | `egress-udp` | HOST PORT NAME (a DNS query for NAME, wait for an answer) | `ok answered, N bytes` | net (egress) |
//! | `egress-name` | NAME PORT (plain DNS lookup via resolv.conf, then `egress-tcp`) | `ok answered, N bytes` | net (egress) |
//! | `egress-control` | tcp\|udp\|name HOST PORT [NAME] (the same, in a fresh namespace where it listens) | `ok answered, N bytes` | net (egress) |

pub mod canary;
pub mod checks;
pub mod egress;
pub mod fixtures;
pub mod render;
pub mod row;
pub mod runner;

use std::collections::HashMap;
use std::ffi::OsString;

use serde::Serialize;

use crate::plan::{self, PlanError, PrepareOptions};
use crate::policy::{Loaded, PathEntry};
use checks::{Check, Inputs, PolicyLines};
use row::{Evidence, Got, Row, Status};

/// What verify adds that a `run` target would not have, printed with every report.
pub const GRANTS: &[&str] = &[
    "exec: the clawjail binary (and its ELF loader) is the plan's command, so rows marked \"after exec\" re-exec `clawjail __verify-exec`; `run` puts the target's own exec chain there instead",
    "tty: each child gets a fresh pty as its controlling terminal, so the TIOCSTI row meets only seccomp (a `run` target has no controlling tty)",
    "session: each attempt keeps the verify child's session (its pty), so the session step is skipped; `run` gives the target a session of its own (the terminal row runs the session and terminal steps as `run` does, with fds 0 and 2 on that pty)",
    "pid namespace: each attempt runs without the PID namespace a root `run` gives the target (it needs the launch's fork), so the same-uid process rows measure the seccomp pid-0 guards alone; the IPC namespace is applied as `run` applies it",
];

/// Added to the policy's `read` list when absent, so the "/proc/self/status" rows can read
/// the confined process's own status; said in the report.
const PROC_SELF_GRANT: &str = "read: /proc/self (the policy does not grant it; the status rows read /proc/self/status after exec)";

/// Why verify could not build its table at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Fixture(#[from] fixtures::FixtureError),
    #[error("cannot find the clawjail binary for re-exec: {0}")]
    SelfExe(std::io::Error),
}

/// Row counts by status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    pub inconclusive: usize,
    pub not_enforceable: usize,
    pub accepted: usize,
}

/// The verify run, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub policy: String,
    pub policy_sha256: String,
    pub uid: u32,
    pub privileged: bool,
    pub grants: Vec<String>,
    pub rows: Vec<Row>,
    pub counts: Counts,
    pub passed: bool,
}

/// `__verify-exec ACTION ARGS`: attempt one action and print its `Got` as one JSON line.
pub fn exec_probe(action: &[String]) -> i32 {
    let got = match action.split_first() {
        Some((a, rest)) => match crate::probe::Action::from_name(a) {
            Some(action) => attempt_in_process(action, rest),
            None => Got::Missing { action: a.clone() },
        },
        None => Got::Broken {
            why: "no action".into(),
        },
    };
    match serde_json::to_string(&got) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(_) => 2,
    }
}

/// One probe action in this process.
pub fn attempt_in_process(action: crate::probe::Action, args: &[String]) -> Got {
    match crate::probe::run(action, args) {
        Some(o) => Got::from_outcome(o),
        None => Got::Missing {
            action: action.to_string(),
        },
    }
}

/// Prepare the plan `run` would apply, with clawjail itself as the command. If the binary
/// cannot be the target (not executable by the target uid), prepare without a command:
/// the in-process rows still run, the "after exec" rows say why they could not.
fn prepare_plan(
    loaded: &Loaded,
    cli_vars: &[(String, String)],
    exe: &std::path::Path,
    added: &mut Vec<String>,
) -> Result<plan::Plan, PlanError> {
    let mut loaded = loaded.clone();
    let fs = &mut loaded.policy.filesystem;
    if !fs
        .read
        .iter()
        .chain(&fs.write)
        .any(|e| e.get_ref().written() == "/proc/self")
    {
        fs.read
            .push(toml::Spanned::new(0..0, PathEntry::required("/proc/self")));
        added.push(PROC_SELF_GRANT.to_string());
    }
    let loaded = &loaded;
    let mut opts = PrepareOptions {
        cli_vars: cli_vars.to_vec(),
        command: Some(vec![
            exe.as_os_str().to_owned(),
            OsString::from("__verify-exec"),
        ]),
        init: false,
        apply: true,
        ..Default::default()
    };
    match plan::prepare(loaded, &opts) {
        Ok(p) => Ok(p),
        Err(PlanError::Target(e)) => {
            tracing::warn!("verify: {e}; rows after exec cannot run");
            opts.command = None;
            plan::prepare(loaded, &opts)
        }
        Err(e) => Err(e),
    }
}

/// Run the whole battery.
pub fn run(loaded: &Loaded, cli_vars: &[(String, String)]) -> Result<Report, VerifyError> {
    let exe = std::env::current_exe().map_err(VerifyError::SelfExe)?;
    // Before the plan: prepare builds the target's envp from our environment, and the
    // planted secret must be in it (the env row checks it does not get through).
    fixtures::plant_secret();
    let lines = PolicyLines::new(loaded);
    // A plan `run` could not prepare is `run`'s error, not a table of "not confined" rows:
    // stop here (the fixtures and stand-ins are removed as they drop).
    let mut grants = Vec::new();
    let mut plan = prepare_plan(loaded, cli_vars, &exe, &mut grants)?;
    // The ids the plan applies (resolved once, in prepare).
    let ids = plan.identity.ids().clone();
    let privileged = plan.privileged;
    // Absent deny paths get an empty target-owned stand-in, so their rows attempt
    // something real (removed when `canaries` drops); the plan is then prepared again,
    // so its rules see them as `run` would.
    let canaries = if privileged {
        let deny: Vec<std::path::PathBuf> = plan
            .landlock
            .listed()
            .iter()
            .filter(|e| e.list == crate::landlock::ListKind::Deny)
            .map(|e| e.path.clone())
            .collect();
        canary::plant(&deny, &ids)
    } else {
        canary::Canaries::default()
    };
    let mut added = Vec::new();
    if !canaries.created().is_empty() {
        let list: Vec<String> = canaries
            .created()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        added.push(format!(
            "fixtures: empty directories for absent deny paths, owned by the target and removed afterwards: {}",
            list.join(", ")
        ));
        // The first plan's listeners, pty and fds go before the second is prepared.
        drop(plan);
        grants.clear();
        plan = prepare_plan(loaded, cli_vars, &exe, &mut grants)?;
    }
    added.extend(egress::note(loaded));
    added.extend(grants);
    // Scratch files go where no rule of the plan reaches (decided by inode); the
    // unlisted ports avoid every port the rules or the policy name.
    let (bind, connect) = plan.landlock.ports();
    let (listed_bind, listed_connect) = plan.landlock.listed_ports();
    let connect_all: Vec<u16> = listed_connect.iter().chain(connect).copied().collect();
    let bind_all: Vec<u16> = listed_bind.iter().chain(bind).copied().collect();
    let mut fx = fixtures::Fixtures::set_up(
        privileged.then_some(&ids),
        &|p| !plan.landlock.granted(p).rights.is_empty(),
        &connect_all,
        &bind_all,
    )?;
    let (checks, cleanup) = checks::derive(&Inputs {
        lines: &lines,
        home: plan.vars.get("HOME").map(std::path::PathBuf::from),
        fx: &fx,
        ids: &ids,
        privileged,
        keep_mask: plan.caps.keep.iter().fold(0, |m, c| m | c.bitmask()),
        ipc_namespace: plan.namespaces.ipc,
        landlock: &plan.landlock,
    });
    fx.cleanup.extend(cleanup);
    let runnable: Vec<&Check> = checks.iter().filter(|c| c.skip.is_none()).collect();
    let with_control: Vec<&Check> = runnable.iter().copied().filter(|c| c.control).collect();
    let [control_pty, confined_pty] = &fx.pty_slaves;
    use std::os::fd::AsFd;
    let control = runner::run_child(
        &with_control,
        runner::Confine::Control {
            ids: privileged.then_some(&ids),
        },
        control_pty.as_fd(),
        &exe,
    );
    let confined = runner::run_child(
        &runnable,
        runner::Confine::Confined { plan: &mut plan },
        confined_pty.as_fd(),
        &exe,
    );
    let mut rows: Vec<Row> = checks
        .iter()
        .map(|c| finish_row(c, &lines, &control, &confined))
        .collect();
    // [egress]: the destinations, each through `run` of this policy (src/verify/egress.rs).
    let egress_rules = plan.egress.as_ref().map(|e| &e.rules);
    rows.extend(egress::rows(loaded, egress_rules, cli_vars, &exe));
    let passed = row::settle(&mut rows);
    drop(fx);
    drop(canaries);
    Ok(Report {
        policy: loaded.source.origin.display_name().to_string(),
        policy_sha256: loaded.source.sha256.clone(),
        uid: ids.uid,
        privileged,
        grants: GRANTS.iter().map(|g| g.to_string()).chain(added).collect(),
        counts: count(&rows),
        rows,
        passed,
    })
}

fn finish_row(
    c: &Check,
    lines: &PolicyLines,
    control: &HashMap<String, Got>,
    confined: &HashMap<String, Got>,
) -> Row {
    let confined_got = match &c.skip {
        Some(why) => Got::NotRun { why: why.clone() },
        None => confined.get(&c.id).cloned().unwrap_or(Got::Broken {
            why: "no answer from the confined child".into(),
        }),
    };
    let control_got = (c.control && c.skip.is_none()).then(|| {
        control.get(&c.id).cloned().unwrap_or(Got::Broken {
            why: "no answer from the control child".into(),
        })
    });
    let ev = Evidence {
        kind: c.kind,
        expect: &c.expect,
        layer: c.layer,
        confined: &confined_got,
        control: control_got.as_ref(),
        policy_allows: c.policy_allows.as_deref(),
        risk: c.risk,
        accepted: c.risk.is_some_and(|r| lines.accepts(r)),
        limit_note: c.limit_note,
    };
    let (status, mut note, gap) = row::decide(&ev);
    if c.kind == row::Kind::Limit {
        note = format!("{note}; here: {}", confined_got.describe());
    }
    let got = match (&c.expect, &confined_got) {
        (row::Expect::StatusField { field, .. }, Got::Ok { detail }) => {
            row::status_field(detail, field)
                .map_or_else(|| format!("no {field} line"), |v| format!("{field} {v}"))
        }
        _ => confined_got.describe(),
    };
    Row {
        id: c.id.clone(),
        kind: c.kind,
        attempt: c.attempt.clone(),
        expect: c.expect.describe(),
        got,
        control: control_got.map(|g| g.describe()),
        status,
        layer: c.layer,
        note,
        gap,
    }
}

fn count(rows: &[Row]) -> Counts {
    let mut c = Counts::default();
    for r in rows {
        match r.status {
            Status::Pass => c.pass += 1,
            Status::Fail => c.fail += 1,
            Status::Inconclusive => c.inconclusive += 1,
            Status::NotEnforceable => c.not_enforceable += 1,
            Status::Accepted => c.accepted += 1,
        }
    }
    c
}
