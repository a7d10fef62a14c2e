//! The recording fake of [`Kernel`] and the tests that pin the exact order of a launch's
//! kernel calls without root and without changing the test process (issue 12).
//!
//! The plan is the one `run` builds (`plan::prepare` with `apply`, a policy without
//! private_tmp, create or [egress], so preparing only opens fds); the start it describes
//! (root or not, PID namespace or not) is then set as plain data, which the Plan is by
//! design. `launch::apply_with` runs on it against [`Fake`], which records every call with
//! the step it ran in and answers like a kernel that grants everything (and refuses
//! setresuid(0) once the uid is not 0). A scripted error on any call must stop the launch
//! right there: no later call, no exec (fail closed).
//!
//! What the fake does not see (kernel.rs says why): pipes, Landlock's ruleset fd and rules
//! (created for real here: an fd that enforces nothing), `[egress]`, the terminal step.

use std::ffi::CString;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use caps::{CapSet, Capability, CapsHashSet};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::signal::SigSet;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, ResGid, ResUid, Uid};

use crate::identity::Ids;
use crate::kernel::Kernel;
use crate::launch::{apply_with, exec_with, LaunchError, Step};
use crate::namespaces::NamespacePlan;
use crate::plan::{IdentityPlan, Plan, PrepareOptions};
use crate::session::SessionMode;

/// A kernel that records each call (the step it ran in, the call with its key arguments)
/// and grants it, unless it is the call scripted to fail.
pub(crate) struct Fake {
    pub calls: Vec<(&'static str, String)>,
    step: &'static str,
    /// The first call whose text starts with this fails with this errno.
    fail: Option<(String, i32)>,
    pid: libc::pid_t,
    ppid: libc::pid_t,
    sid: libc::pid_t,
    /// Real = effective = saved, as clawjail only ever sets all three.
    uid: u32,
    gid: u32,
    no_new_privs: bool,
    /// The bounding set, one bit per capability (inherited across the fake's fork).
    bounding: u64,
}

impl Fake {
    /// A process `pid` 1000 with parent 999, in session 1 (not its leader), running as `uid`.
    pub fn new(uid: u32) -> Self {
        Fake {
            calls: Vec::new(),
            step: "(before the first step)",
            fail: None,
            pid: 1000,
            ppid: 999,
            sid: 1,
            uid,
            gid: uid,
            no_new_privs: false,
            bounding: u64::MAX,
        }
    }

    /// Make the first call whose text starts with `prefix` fail with `errno`.
    pub fn failing(mut self, prefix: &str, errno: i32) -> Self {
        self.fail = Some((prefix.to_string(), errno));
        self
    }

    /// Record a call that cannot fail (getpid, umask) or whose answer is a value.
    fn note(&mut self, call: String) {
        self.calls.push((self.step, call));
    }

    /// Record a call; the scripted one fails (once).
    fn call(&mut self, call: String) -> io::Result<()> {
        let fails = matches!(&self.fail, Some((p, _)) if call.starts_with(p.as_str()));
        self.note(call);
        match self.fail.take() {
            Some((_, errno)) if fails => Err(io::Error::from_raw_os_error(errno)),
            other => {
                self.fail = other;
                Ok(())
            }
        }
    }

    /// The calls as "step: call" lines.
    pub fn lines(&self) -> Vec<String> {
        self.calls
            .iter()
            .map(|(s, c)| format!("{s}: {c}"))
            .collect()
    }
}

/// `A | B` for a bitflags value.
fn names<T>(it: impl Iterator<Item = (&'static str, T)>) -> String {
    it.map(|(n, _)| n).collect::<Vec<_>>().join(" | ")
}

fn cap_names(caps: &CapsHashSet) -> String {
    let mut v: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    v.sort();
    format!("[{}]", v.join(", "))
}

impl Kernel for Fake {
    fn begin_step(&mut self, step: &'static str) {
        self.step = step;
    }

    fn unshare(&mut self, flags: CloneFlags) -> io::Result<()> {
        self.call(format!("unshare({})", names(flags.iter_names())))
    }

    fn mount(
        &mut self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
    ) -> io::Result<()> {
        let flags = names(flags.iter_names());
        self.call(format!("mount({source:?}, {target}, {fstype:?}, {flags})"))
    }

    fn getpid(&mut self) -> libc::pid_t {
        self.note("getpid()".into());
        self.pid
    }

    fn getppid(&mut self) -> libc::pid_t {
        self.note("getppid()".into());
        self.ppid
    }

    fn getsid(&mut self) -> io::Result<libc::pid_t> {
        self.call("getsid(0)".into())?;
        Ok(self.sid)
    }

    fn setsid(&mut self) -> io::Result<()> {
        self.call("setsid()".into())?;
        self.sid = self.pid;
        Ok(())
    }

    fn set_child_subreaper(&mut self) -> io::Result<()> {
        self.call("prctl(PR_SET_CHILD_SUBREAPER, 1)".into())
    }

    fn block_signals(&mut self, set: &SigSet) -> io::Result<()> {
        let n = set.iter().count();
        self.call(format!("sigprocmask(SIG_BLOCK, {n} signals)"))
    }

    /// Continues as the child, as the launch does after a fork.
    fn fork(&mut self) -> io::Result<libc::pid_t> {
        self.call("fork()".into())?;
        self.ppid = self.pid;
        self.pid += 1;
        Ok(0)
    }

    /// The supervisor's ready byte.
    fn read(&mut self, _fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
        self.call("read(ready)".into())?;
        buf.fill(1);
        Ok(buf.len().min(1))
    }

    fn set_pdeathsig(&mut self, sig: i32) -> io::Result<()> {
        self.call(format!("prctl(PR_SET_PDEATHSIG, {sig})"))
    }

    fn capbset_read(&mut self, cap: u32) -> io::Result<bool> {
        self.call(format!("prctl(PR_CAPBSET_READ, {cap})"))?;
        Ok(self.bounding & (1 << cap) != 0)
    }

    fn capbset_drop(&mut self, cap: u32) -> io::Result<()> {
        self.call(format!("prctl(PR_CAPBSET_DROP, {cap})"))?;
        self.bounding &= !(1 << cap);
        Ok(())
    }

    fn set_securebits(&mut self, bits: u32) -> io::Result<()> {
        self.call(format!("prctl(PR_SET_SECUREBITS, {bits:#x})"))
    }

    fn ambient_clear_all(&mut self) -> io::Result<()> {
        self.call("prctl(PR_CAP_AMBIENT_CLEAR_ALL)".into())
    }

    fn capset(&mut self, set: CapSet, caps: &CapsHashSet) -> io::Result<()> {
        self.call(format!("capset({set:?}, {})", cap_names(caps)))
    }

    fn ambient_raise(&mut self, cap: Capability) -> io::Result<()> {
        self.call(format!("prctl(PR_CAP_AMBIENT_RAISE, {cap})"))
    }

    fn set_keepcaps(&mut self, on: bool) -> io::Result<()> {
        self.call(format!("prctl(PR_SET_KEEPCAPS, {})", u8::from(on)))
    }

    fn setgroups(&mut self, groups: &[Gid]) -> io::Result<()> {
        let g: Vec<u32> = groups.iter().map(|g| g.as_raw()).collect();
        self.call(format!("setgroups({g:?})"))
    }

    /// Without CAP_SETGID (uid not 0 any more) only the current gid is allowed.
    fn setresgid(&mut self, gid: Gid) -> io::Result<()> {
        let g = gid.as_raw();
        self.call(format!("setresgid({g}, {g}, {g})"))?;
        if self.uid != 0 && g != self.gid {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        self.gid = g;
        Ok(())
    }

    /// Without CAP_SETUID (uid not 0 any more) only the current uid is allowed.
    fn setresuid(&mut self, uid: Uid) -> io::Result<()> {
        let u = uid.as_raw();
        self.call(format!("setresuid({u}, {u}, {u})"))?;
        if self.uid != 0 && u != self.uid {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        self.uid = u;
        Ok(())
    }

    fn getresuid(&mut self) -> io::Result<ResUid> {
        self.call("getresuid()".into())?;
        let u = Uid::from_raw(self.uid);
        Ok(ResUid {
            real: u,
            effective: u,
            saved: u,
        })
    }

    fn getresgid(&mut self) -> io::Result<ResGid> {
        self.call("getresgid()".into())?;
        let g = Gid::from_raw(self.gid);
        Ok(ResGid {
            real: g,
            effective: g,
            saved: g,
        })
    }

    fn setrlimit(&mut self, resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
        self.call(format!("setrlimit({resource:?}, {soft}, {hard})"))
    }

    fn umask(&mut self, mask: Mode) {
        self.note(format!("umask({:04o})", mask.bits()));
    }

    fn chdir(&mut self, dir: &Path) -> io::Result<()> {
        self.call(format!("chdir({})", dir.display()))
    }

    fn set_no_new_privs(&mut self) -> io::Result<()> {
        self.call("prctl(PR_SET_NO_NEW_PRIVS, 1)".into())?;
        self.no_new_privs = true;
        Ok(())
    }

    fn get_no_new_privs(&mut self) -> io::Result<bool> {
        self.call("prctl(PR_GET_NO_NEW_PRIVS)".into())?;
        Ok(self.no_new_privs)
    }

    fn cloexec_from(&mut self, first: u32) -> io::Result<()> {
        self.call(format!("close_range({first}, ~0, CLOSE_RANGE_CLOEXEC)"))
    }

    fn signal_default(&mut self, sig: i32) -> io::Result<()> {
        self.call(format!("rt_sigaction({sig}, SIG_DFL)"))
    }

    fn unblock_all_signals(&mut self) -> io::Result<()> {
        self.call("rt_sigprocmask(SIG_SETMASK, {})".into())
    }

    /// The crate's error type cannot be built outside it, so a scripted failure answers
    /// "partially enforced", which the Landlock step must refuse as well.
    fn landlock_restrict_self(
        &mut self,
        ruleset: landlock::RulesetCreated,
    ) -> Result<landlock::RulesetStatus, landlock::RulesetError> {
        drop(ruleset);
        match self.call("landlock_restrict_self()".into()) {
            Ok(()) => Ok(landlock::RulesetStatus::FullyEnforced),
            Err(_) => Ok(landlock::RulesetStatus::PartiallyEnforced),
        }
    }

    fn seccomp_set_mode_filter(&mut self, prog: &[libc::sock_filter]) -> io::Result<()> {
        let n = if prog.is_empty() { "empty" } else { "prog" };
        self.call(format!("seccomp(SECCOMP_SET_MODE_FILTER, 0, {n})"))
    }

    fn seccomp_set_mode_filter_listener(
        &mut self,
        prog: &[libc::sock_filter],
    ) -> io::Result<OwnedFd> {
        let n = if prog.is_empty() { "empty" } else { "prog" };
        self.call(format!(
            "seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER, {n})"
        ))?;
        Ok(std::fs::File::open("/dev/null")?.into())
    }

    fn execveat(&mut self, _fd: BorrowedFd<'_>, argv: &[CString], _envp: &[CString]) -> io::Error {
        self.note(format!("execveat(fd, \"\", {argv:?}, AT_EMPTY_PATH)"));
        io::Error::other("the fake kernel execs nothing")
    }
}

/// The target user of the root starts.
const TARGET: u32 = 65534;
/// The cap_last_cap the plans pin (the kernel's answer differs between machines).
const LAST_CAP: u32 = 40;

const POLICY: &str = r#"version = 1
[identity]
user = 65534
group = 65534
[filesystem]
private_tmp = false
read = ["/usr"]
[env]
set = { PATH = "/usr/bin:/bin" }
[limits]
nofile = 1024
nproc = 64
[process]
umask = "0027"
workdir = "/"
[kernel]
landlock = "best-effort"
"#;

/// The plan `run` would build for `/bin/true` under [`POLICY`], made into the start
/// `start` describes: everything that depends on who runs the test is set here.
fn plan(start: Start) -> Plan {
    let loaded = crate::policy::load(crate::policy::Source::new(
        crate::policy::Origin::Embedded,
        POLICY.to_string(),
    ))
    .unwrap();
    let opts = PrepareOptions {
        command: Some(vec!["/bin/true".into()]),
        apply: true,
        ..Default::default()
    };
    let mut p = crate::plan::prepare(&loaded, &opts).unwrap();
    p.terminal = None;
    p.session = SessionMode::New;
    p.caps.last_cap = LAST_CAP;
    p.supervisor.last_cap = LAST_CAP;
    let ids = Ids {
        uid: TARGET,
        gid: TARGET,
        groups: vec![TARGET],
        user_name: None,
    };
    let (root, pid) = match start {
        Start::Unprivileged => (false, false),
        Start::Root { pid_namespace } => (true, pid_namespace),
    };
    p.privileged = root;
    p.identity = if root {
        IdentityPlan::Switch { ids: ids.clone() }
    } else {
        IdentityPlan::Keep {
            ids: ids.clone(),
            reason: "test".into(),
        }
    };
    p.supervisor.ids = root.then_some(ids);
    p.caps.keep = Vec::new();
    p.caps.securebits = crate::caps::securebits_for(false);
    p.namespaces = NamespacePlan {
        pid,
        ipc: root,
        not_used: Vec::new(),
    };
    p
}

#[derive(Debug, Clone, Copy)]
enum Start {
    Unprivileged,
    Root { pid_namespace: bool },
}

/// What `cli::run` does: apply, and exec only if every step succeeded.
fn launch(k: &mut Fake, plan: &Plan) -> Result<(), LaunchError> {
    let applied = apply_with(k, plan)?;
    let _exec_failed = exec_with(k, plan, &applied);
    Ok(())
}

fn lines(step: Step, calls: &[&str]) -> Vec<String> {
    calls.iter().map(|c| format!("{step}: {c}")).collect()
}

/// Steps 10 to 17 and exec: the same for every start (nothing is kept, no socket activation).
fn common_tail() -> Vec<String> {
    let mut v = lines(
        Step::SetCapabilitySets,
        &[
            "prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
            "capset(Inheritable, [])",
            "capset(Effective, [])",
            "capset(Permitted, [])",
        ],
    );
    v.extend(lines(
        Step::LimitsUmaskWorkdir,
        &[
            "setrlimit(RLIMIT_NOFILE, 1024, 1024)",
            "setrlimit(RLIMIT_NPROC, 64, 64)",
            // Not in the policy: core = 0 is clawjail's default (no core dumps of secrets).
            "setrlimit(RLIMIT_CORE, 0, 0)",
            "umask(0027)",
            "chdir(/)",
        ],
    ));
    v.extend(lines(
        Step::NoNewPrivs,
        &[
            "prctl(PR_SET_NO_NEW_PRIVS, 1)",
            "prctl(PR_GET_NO_NEW_PRIVS)",
        ],
    ));
    v.extend(lines(
        Step::CloexecFds,
        &["close_range(3, ~0, CLOSE_RANGE_CLOEXEC)"],
    ));
    // Every signal but SIGKILL and SIGSTOP, in order, then the mask.
    for sig in (1..=crate::sys::sigrtmax()).filter(|s| ![libc::SIGKILL, libc::SIGSTOP].contains(s))
    {
        v.push(format!(
            "{}: rt_sigaction({sig}, SIG_DFL)",
            Step::ResetSignals
        ));
    }
    v.push(format!(
        "{}: rt_sigprocmask(SIG_SETMASK, {{}})",
        Step::ResetSignals
    ));
    // Without a usable Landlock ABI the best-effort policy skips the step (and says so).
    if crate::sys::landlock_abi_version().is_ok_and(|v| v >= 1) {
        v.extend(lines(
            Step::LandlockRestrictSelf,
            &["landlock_restrict_self()"],
        ));
    }
    v.extend(lines(
        Step::SeccompFilter,
        &["seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)"],
    ));
    v.extend(lines(
        Step::Exec,
        &["execveat(fd, \"\", [\"/bin/true\"], AT_EMPTY_PATH)"],
    ));
    v
}

/// Step 5 of a root start, before the session fork: each capability read, then dropped.
fn bounding_set_drop() -> Vec<String> {
    (0..=LAST_CAP)
        .flat_map(|n| {
            [
                format!("{}: prctl(PR_CAPBSET_READ, {n})", Step::DropBoundingSet),
                format!("{}: prctl(PR_CAPBSET_DROP, {n})", Step::DropBoundingSet),
            ]
        })
        .collect()
}

/// Steps 5 (again) to 9 of a root start, in the process that will exec: the inherited
/// bounding set re-read (nothing left to drop), the securebits, then groups, gid, uid and
/// the proof that uid 0 is gone.
fn root_identity() -> Vec<String> {
    let mut v: Vec<String> = (0..=LAST_CAP)
        .map(|n| format!("{}: prctl(PR_CAPBSET_READ, {n})", Step::DropBoundingSet))
        .collect();
    v.extend(lines(
        Step::LockSecurebits,
        &["prctl(PR_SET_SECUREBITS, 0xcb)"],
    ));
    v.extend(lines(
        Step::SetIds,
        &[
            "setgroups([65534])",
            "setresgid(65534, 65534, 65534)",
            "setresuid(65534, 65534, 65534)",
            "getresuid()",
            "getresgid()",
            // Refused by the (fake) kernel: the launch goes on only because it is.
            "setresuid(0, 0, 0)",
        ],
    ));
    v
}

fn recorded(start: Start) -> Vec<String> {
    let p = plan(start);
    let mut k = Fake::new(if matches!(start, Start::Root { .. }) {
        0
    } else {
        1000
    });
    launch(&mut k, &p).unwrap();
    k.lines()
}

/// Laptop: no namespaces, no id change, setsid in place; everything else applies.
#[test]
fn an_unprivileged_start_makes_these_calls_in_this_order() {
    let mut want = lines(Step::NewSession, &["getpid()", "getsid(0)", "setsid()"]);
    want.extend(common_tail());
    assert_eq!(recorded(Start::Unprivileged), want);
}

/// Root start without a PID namespace: an IPC namespace, then the id switch.
#[test]
fn a_root_start_with_a_uid_change_makes_these_calls_in_this_order() {
    let mut want = lines(Step::NewNamespaces, &["unshare(CLONE_NEWIPC)"]);
    want.extend(bounding_set_drop());
    want.extend(lines(
        Step::NewSession,
        &["getpid()", "getsid(0)", "setsid()"],
    ));
    want.extend(root_identity());
    want.extend(common_tail());
    assert_eq!(
        recorded(Start::Root {
            pid_namespace: false
        }),
        want
    );
}

/// Root start with a PID namespace: unshare before the fork (only children move), the
/// supervisor's signals blocked before it, the child waits for the supervisor's ready
/// byte, mounts its namespace's /proc and forks the target under a namespace init; after
/// the id switch (which clears it) the target asks to die with that init.
#[test]
fn a_root_start_with_a_pid_namespace_forks_twice_before_the_id_switch() {
    let mut want = lines(
        Step::NewNamespaces,
        &["unshare(CLONE_NEWIPC | CLONE_NEWPID)"],
    );
    want.extend(bounding_set_drop());
    want.extend(lines(
        Step::NewSession,
        &[
            "sigprocmask(SIG_BLOCK, 8 signals)",
            "getpid()",
            "fork()",
            "setsid()",
            "read(ready)",
        ],
    ));
    want.extend(lines(
        Step::NewNamespaces,
        &[
            "unshare(CLONE_NEWNS)",
            "mount(None, /, None, MS_REC | MS_PRIVATE)",
            "mount(Some(\"proc\"), /proc, Some(\"proc\"), MS_NOSUID | MS_NODEV | MS_NOEXEC)",
            "getpid()",
            "fork()",
        ],
    ));
    want.extend(root_identity());
    want.extend(lines(
        Step::SetIds,
        &["prctl(PR_SET_PDEATHSIG, 9)", "getppid()"],
    ));
    want.extend(common_tail());
    assert_eq!(
        recorded(Start::Root {
            pid_namespace: true
        }),
        want
    );
}

/// A process-group leader (an interactive shell's job) gets EPERM from setsid(2): clawjail
/// forks once, the child takes a new session after the supervisor is ready, and after the
/// id step asks to die with the supervisor.
#[test]
fn a_process_group_leader_forks_when_setsid_is_refused() {
    let p = plan(Start::Unprivileged);
    let mut k = Fake::new(1000).failing("setsid()", libc::EPERM);
    launch(&mut k, &p).unwrap();
    let mut want = lines(
        Step::NewSession,
        &[
            "getpid()",
            "getsid(0)",
            "setsid()",
            "sigprocmask(SIG_BLOCK, 8 signals)",
            "getpid()",
            "fork()",
            "setsid()",
            "read(ready)",
        ],
    );
    want.extend(lines(
        Step::SetIds,
        &["prctl(PR_SET_PDEATHSIG, 9)", "getppid()"],
    ));
    want.extend(common_tail());
    assert_eq!(k.lines(), want);
}

/// Fail closed: whichever call fails, the launch stops right there with that call's step,
/// makes no later call and never execs. Every call of every start is tried.
#[test]
fn an_error_in_any_call_stops_the_launch_before_exec() {
    // Calls whose error is a decision, not a failure: getsid's error means "not a session
    // leader" (setsid then decides); setresuid(0) must fail for the launch to go on.
    let decisions = ["getsid(0)", "setresuid(0, 0, 0)"];
    for start in [
        Start::Unprivileged,
        Start::Root {
            pid_namespace: false,
        },
        Start::Root {
            pid_namespace: true,
        },
    ] {
        let p = plan(start);
        let uid = if matches!(start, Start::Root { .. }) {
            0
        } else {
            1000
        };
        let full = {
            let mut k = Fake::new(uid);
            launch(&mut k, &p).unwrap();
            k.calls
        };
        for (i, (step, call)) in full.iter().enumerate() {
            let infallible = call.starts_with("getpid")
                || call.starts_with("getppid")
                || call.starts_with("umask")
                || call.starts_with("execveat");
            if infallible || decisions.contains(&call.as_str()) {
                continue;
            }
            // The same text can occur twice (fork, setsid): fail the first occurrence.
            if full[..i].iter().any(|(_, c)| c == call) {
                continue;
            }
            let mut k = Fake::new(uid).failing(call, libc::EIO);
            let err = launch(&mut k, &p).expect_err(call);
            assert_eq!(err.step.name(), *step, "{start:?} {call}: {err}");
            assert_eq!(
                k.calls,
                full[..=i],
                "{start:?}: calls after a failed {call}"
            );
            assert!(!k.calls.iter().any(|(_, c)| c.starts_with("execveat")));
        }
    }
}

/// A kept capability: KEEP_CAPS across the switch, the cap raised into P/E/I and ambient,
/// its bounding bit kept, then KEEP_CAPS cleared so the target cannot carry P across its
/// own setuid.
#[test]
fn a_kept_capability_is_raised_after_the_switch_and_keepcaps_cleared() {
    let mut p = plan(Start::Root {
        pid_namespace: false,
    });
    let cap = Capability::CAP_NET_BIND_SERVICE;
    p.caps.keep = vec![cap];
    p.caps.securebits = crate::caps::securebits_for(true);
    let mut k = Fake::new(0);
    launch(&mut k, &p).unwrap();
    let got = k.lines();
    let bit = cap.index();
    assert!(!got.contains(&format!("drop-bounding-set: prctl(PR_CAPBSET_DROP, {bit})")));
    assert!(got.contains(&"lock-securebits: prctl(PR_SET_SECUREBITS, 0x1b)".to_string()));
    let caps_step: Vec<&String> = got
        .iter()
        .filter(|l| l.starts_with("set-capability-sets"))
        .collect();
    assert_eq!(
        caps_step,
        [
            "set-capability-sets: prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
            "set-capability-sets: capset(Inheritable, [CAP_NET_BIND_SERVICE])",
            "set-capability-sets: capset(Effective, [CAP_NET_BIND_SERVICE])",
            "set-capability-sets: capset(Permitted, [CAP_NET_BIND_SERVICE])",
            "set-capability-sets: prctl(PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE)",
            "set-capability-sets: prctl(PR_SET_KEEPCAPS, 0)",
        ]
    );
}

/// The steps the calls ran in are `Step::ALL`'s order (a step may recur only where the
/// namespace init's calls and the target's re-read of the bounding set sit inside the
/// session fork).
#[test]
fn recorded_steps_follow_step_all() {
    let got = recorded(Start::Root {
        pid_namespace: true,
    });
    let mut last = 0;
    for l in &got {
        let name = l.split(':').next().unwrap();
        let i = Step::ALL.iter().position(|s| s.name() == name).unwrap();
        // Inside the session fork: the init's namespace calls and the target's re-read of
        // the bounding set (both steps sit before new-session in `Step::ALL`).
        let session = Step::ALL
            .iter()
            .position(|s| *s == Step::NewSession)
            .unwrap();
        let inside_fork = (name == Step::NewNamespaces.name()
            || name == Step::DropBoundingSet.name())
            && last == session;
        assert!(i >= last || inside_fork, "{l} after step {last}");
        last = last.max(i);
    }
}
