//! The two children and their attempts.
//!
//! - Control: a forked child that only becomes the target uid/gid/groups (no session
//!   change beyond its pty, no no_new_privs, no Landlock, no seccomp): "the same uid
//!   without the confinement".
//! - Confined: a forked child that runs `launch::apply` on the very Plan `run` would
//!   apply, then attempts the actions.
//!
//! Each attempt runs in a grandchild of its own, so an attempt that changes the process
//! (unshare, ptrace) cannot spoil the next one, and a seccomp kill action (SIGSYS) is
//! observed as a denial rather than ending the run. The grandchild writes one JSON `Got`
//! line to a pipe on its stdout; rows marked "after exec" first re-exec
//! `clawjail __verify-exec ACTION ARGS` (in the confined child: through the plan's own
//! execveat with the plan's envp, exactly as `run` execs its target), so the cloexec step
//! and the environment allowlist are checked across a real exec. Results reach verify as
//! JSON lines over a pipe. Every attempt is killed after `ATTEMPT_TIMEOUT_SECS`.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::wait::{waitpid, WaitStatus};
use serde::{Deserialize, Serialize};

use super::checks::Check;
use super::row::Got;
use crate::identity::Ids;
use crate::plan::Plan;

/// An attempt that takes longer is killed (SIGALRM) and reported INCONCLUSIVE.
pub const ATTEMPT_TIMEOUT_SECS: u32 = 15;

/// How a child confines itself before its attempts.
pub enum Confine<'a> {
    /// Become the target ids only (`None`: unprivileged start, nothing to switch).
    Control { ids: Option<&'a Ids> },
    /// Apply the plan, exactly as `run` does.
    Confined { plan: &'a mut Plan },
}

/// One message from a child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "kebab-case")]
enum Msg {
    Result { id: String, got: Got },
    Fatal { why: String },
}

/// Run the checks in a fresh child confined as asked. Returns each check's `Got` by id;
/// a fatal setup error in the child becomes `NotConfined` (confined) or `Broken`
/// (control) for every check.
pub fn run_child(
    checks: &[&Check],
    mut confine: Confine<'_>,
    pty: BorrowedFd<'_>,
    exe: &Path,
) -> HashMap<String, Got> {
    let is_control = matches!(confine, Confine::Control { .. });
    let fail_all = |why: String| -> HashMap<String, Got> {
        checks
            .iter()
            .map(|c| {
                let got = if is_control {
                    Got::Broken { why: why.clone() }
                } else {
                    Got::NotConfined { why: why.clone() }
                };
                (c.id.clone(), got)
            })
            .collect()
    };
    let (r, w) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return fail_all(format!("pipe2: {e}")),
    };
    let pid = match crate::sys::fork() {
        Ok(p) => p,
        Err(e) => return fail_all(format!("fork: {e}")),
    };
    if pid == 0 {
        drop(r);
        child_main(checks, &mut confine, pty, exe, w);
    }
    drop(w);
    let mut text = String::new();
    let read = std::fs::File::from(r).read_to_string(&mut text);
    let status = waitpid(nix::unistd::Pid::from_raw(pid), None);
    let mut out = HashMap::new();
    for line in text.lines() {
        match serde_json::from_str::<Msg>(line) {
            Ok(Msg::Result { id, got }) => {
                out.insert(id, got);
            }
            Ok(Msg::Fatal { why }) => return fail_all(why),
            Err(e) => tracing::warn!("verify: unreadable line from a child ({e}): {line}"),
        }
    }
    if let Err(e) = read {
        tracing::warn!("verify: reading results: {e}");
    }
    if out.len() < checks.len() {
        let why = format!("the child ended early ({status:?})");
        for c in checks {
            out.entry(c.id.clone())
                .or_insert(Got::Broken { why: why.clone() });
        }
    }
    out
}

fn send(out: &mut std::fs::File, msg: &Msg) {
    if let Ok(line) = serde_json::to_string(msg) {
        // One write per line, below PIPE_BUF: atomic. A failed write leaves the row
        // unanswered, which the parent reports as Broken.
        if out.write_all(format!("{line}\n").as_bytes()).is_err() {
            std::process::exit(1);
        }
    }
}

/// The child: confine, attempt every check, exit. Never returns.
fn child_main(
    checks: &[&Check],
    confine: &mut Confine<'_>,
    pty: BorrowedFd<'_>,
    exe: &Path,
    w: OwnedFd,
) -> ! {
    let mut out = std::fs::File::from(w);
    if let Err(why) = set_up_child(confine, pty) {
        send(&mut out, &Msg::Fatal { why });
        std::process::exit(0);
    }
    for c in checks {
        let got = attempt(c, &mut *confine, pty.as_raw_fd(), exe);
        send(
            &mut out,
            &Msg::Result {
                id: c.id.clone(),
                got,
            },
        );
    }
    std::process::exit(0);
}

/// A session of its own with the pty as controlling terminal (so the TIOCSTI row meets
/// only seccomp), then the ids (control) or the whole launch (confined).
fn set_up_child(confine: &mut Confine<'_>, pty: BorrowedFd<'_>) -> Result<(), String> {
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    // A failure only leaves the TIOCSTI row without a controlling tty (its control says so).
    if let Err(e) = crate::sys::set_controlling_tty(pty) {
        tracing::debug!("verify: TIOCSCTTY: {e}");
    }
    match confine {
        Confine::Control { ids: Some(ids) } => {
            crate::identity::set_res_ids(&mut crate::kernel::Real, ids)
                .map_err(|(call, e)| format!("{call}: {e}"))
        }
        Confine::Control { ids: None } => Ok(()),
        // The plan is applied in each attempt's own process (see `grandchild`); this child
        // already leads a session with the pty as its terminal, so the attempts keep it.
        // No terminal step for the ordinary rows: verify's own stdio is not the
        // target's; the "terminal" row prepares its own (`on_caller_tty`).
        Confine::Confined { plan } => {
            plan.session = crate::session::SessionMode::Keep;
            plan.terminal = None;
            // A PID namespace needs the launch's fork, which verify replaces with its own
            // grandchild per attempt; the seccomp pid-0 guards still answer for other pids.
            plan.namespaces.pid = false;
            // [egress]: the attempts run without the target's network namespace (its
            // broker lives in `run`'s supervisor, which verify does not fork); Landlock's
            // connect rule is still the one `run` applies (capture ports and 53).
            // src/verify/egress.rs says what that leaves unattempted.
            plan.supervisor.egress = None;
            Ok(())
        }
    }
}

fn args_for(c: &Check, pty: i32) -> Vec<String> {
    // The pty's device number, for rows that look for it after the fd is gone.
    let dev = crate::sys::tty_device_raw(pty)
        .map(|(ma, mi)| format!("{ma}:{mi}"))
        .unwrap_or_else(|e| format!("unknown ({e})"));
    c.args
        .iter()
        .map(|a| {
            a.replace("{PTY_DEV}", &dev)
                .replace("{PTY}", &pty.to_string())
        })
        .collect()
}

/// One attempt in a grandchild; its stdout is a pipe the child reads to EOF.
fn attempt(c: &Check, confine: &mut Confine<'_>, pty: i32, exe: &Path) -> Got {
    let args = args_for(c, pty);
    let (r, w) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            return Got::Broken {
                why: format!("pipe2: {e}"),
            }
        }
    };
    let pid = match crate::sys::fork() {
        Ok(p) => p,
        Err(e) => {
            return Got::Broken {
                why: format!("fork: {e}"),
            }
        }
    };
    if pid == 0 {
        drop(r);
        grandchild(c, &args, confine, exe, w.as_fd(), pty);
    }
    drop(w);
    let mut text = String::new();
    if let Err(e) = std::fs::File::from(r).read_to_string(&mut text) {
        return Got::Broken {
            why: format!("reading the attempt: {e}"),
        };
    }
    let status = waitpid(nix::unistd::Pid::from_raw(pid), None);
    parse_answer(&text, status)
}

/// The last line is the JSON answer; lines before it (e.g. `status` output) join the detail.
fn parse_answer(text: &str, status: nix::Result<WaitStatus>) -> Got {
    let mut lines: Vec<&str> = text.lines().collect();
    let last = lines.pop();
    match last.and_then(|l| serde_json::from_str::<Got>(l).ok()) {
        Some(Got::Ok { detail }) if !lines.is_empty() => {
            let mut all = lines.join("\n");
            if !detail.is_empty() {
                all.push('\n');
                all.push_str(&detail);
            }
            Got::Ok { detail: all }
        }
        Some(g) => g,
        None => match status {
            Ok(WaitStatus::Signaled(_, sig, _)) => Got::Killed { signal: sig as i32 },
            other => Got::Broken {
                why: format!("no answer ({other:?})"),
            },
        },
    }
}

/// Put the child's pty (its controlling terminal: "the caller's terminal") on fds 0 and 2,
/// as a shell would start `clawjail run`; confined, prepare the terminal step from those
/// fds exactly as `run` does (a new pty, the relay, a session of its own).
fn on_caller_tty(confine: &mut Confine<'_>, pty: i32) -> Result<(), String> {
    crate::sys::dup_raw_onto(pty, 0).map_err(|e| format!("dup2(pty, 0): {e}"))?;
    crate::sys::dup_raw_onto(pty, 2).map_err(|e| format!("dup2(pty, 2): {e}"))?;
    if let Confine::Confined { plan } = confine {
        plan.terminal = crate::terminal::TerminalPlan::prepare(plan.terminal_mode, true)
            .map_err(|e| e.to_string())?;
        plan.session = crate::session::SessionMode::New;
    }
    Ok(())
}

fn print_got(g: &Got) {
    if let Ok(line) = serde_json::to_string(g) {
        println!("{line}");
    }
}

/// The grandchild: stdout to the pipe; confined, it applies the whole plan itself (so it
/// is the process the rules were made for, as a `run` target is: `/proc/self` rules name
/// its own pid); then the action in-process or after an exec.
fn grandchild(
    c: &Check,
    args: &[String],
    confine: &mut Confine<'_>,
    exe: &Path,
    w: BorrowedFd<'_>,
    pty: i32,
) -> ! {
    nix::unistd::alarm::set(ATTEMPT_TIMEOUT_SECS);
    if nix::unistd::dup2_stdout(w).is_err() {
        std::process::exit(2);
    }
    if c.caller_tty {
        if let Err(why) = on_caller_tty(confine, pty) {
            print_got(&Got::Broken { why });
            std::process::exit(0);
        }
    }
    let mut applied = None;
    if let Confine::Confined { plan } = confine {
        match crate::launch::apply(plan) {
            Ok(a) => applied = Some(a),
            Err(e) => {
                print_got(&Got::NotConfined { why: e.to_string() });
                if std::io::stdout().flush().is_err() {
                    std::process::exit(2);
                }
                std::process::exit(0);
            }
        }
    }
    if c.across_exec {
        let why = exec_self(c, args, confine, exe, applied.as_ref());
        print_got(&Got::Broken { why });
    } else {
        print_got(&match c.action {
            Some(a) => super::attempt_in_process(a, args),
            None => Got::Broken {
                why: "a policy-only row has nothing to attempt".into(),
            },
        });
    }
    if std::io::stdout().flush().is_err() {
        std::process::exit(2);
    }
    std::process::exit(0);
}

/// Re-exec `clawjail __verify-exec ACTION ARGS`; returns only on failure, with the reason.
fn exec_self(
    c: &Check,
    args: &[String],
    confine: &Confine<'_>,
    exe: &Path,
    applied: Option<&crate::launch::Applied>,
) -> String {
    let mut argv = vec![
        exe.as_os_str().as_bytes().to_vec(),
        b"__verify-exec".to_vec(),
        c.action.map_or("", |a| a.name()).as_bytes().to_vec(),
    ];
    argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let Ok(argv) = argv
        .into_iter()
        .map(CString::new)
        .collect::<Result<Vec<_>, _>>()
    else {
        return "an argument holds a NUL byte".into();
    };
    match confine {
        Confine::Confined { plan } => match &plan.target {
            Some(t) => {
                let envp = applied.map_or(&plan.envp[..], |a| a.envp(plan));
                let e = crate::sys::fexecve(t.exec_fd.as_fd(), &argv, envp);
                format!("execveat of {} failed: {e}", t.exec_path.display())
            }
            None => "the clawjail binary could not be prepared as an exec target".into(),
        },
        Confine::Control { .. } => {
            let env: Vec<CString> = std::env::vars_os()
                .filter_map(|(k, v)| {
                    let mut kv = k.as_bytes().to_vec();
                    kv.push(b'=');
                    kv.extend_from_slice(v.as_bytes());
                    CString::new(kv).ok()
                })
                .collect();
            let Ok(path) = CString::new(exe.as_os_str().as_bytes()) else {
                return "the clawjail path holds a NUL byte".into();
            };
            match nix::unistd::execve(&path, &argv, &env) {
                Err(e) => format!("execve of {} failed: {e}", exe.display()),
                Ok(never) => match never {},
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_join_the_detail() {
        let text = "Uid:\t1\t1\t1\t1\nNoNewPrivs:\t1\n{\"kind\":\"ok\",\"detail\":\"\"}\n";
        let g = parse_answer(
            text,
            Ok(WaitStatus::Exited(nix::unistd::Pid::from_raw(1), 0)),
        );
        assert_eq!(
            g,
            Got::Ok {
                detail: "Uid:\t1\t1\t1\t1\nNoNewPrivs:\t1".into()
            }
        );
    }

    #[test]
    fn a_silent_death_by_sigsys_is_reported_as_killed() {
        let g = parse_answer(
            "",
            Ok(WaitStatus::Signaled(
                nix::unistd::Pid::from_raw(1),
                nix::sys::signal::Signal::SIGSYS,
                false,
            )),
        );
        assert_eq!(
            g,
            Got::Killed {
                signal: libc::SIGSYS
            }
        );
        assert!(g.is_denied());
    }
}
