//! Terminal isolation (docs/terminal.md): clawjail driven under a real pty, as a user in a
//! terminal would run it, each behaviour next to a control run of the same program
//! without clawjail (`setpriv` to the same uid), which shows the theft or the behaviour.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::util::*;

/// A pseudo-terminal standing for the user's terminal, with a program (a shell) running
/// in a session of its own whose controlling terminal it is.
struct Term {
    master: OwnedFd,
    /// The slave's path (/dev/pts/N): the caller's terminal.
    path: String,
    child: Child,
    seen: String,
    cursor: usize,
}

impl Term {
    fn spawn(argv: &[&str]) -> Term {
        let ws = nix::pty::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&ws), None).unwrap();
        let path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
            .unwrap()
            .display()
            .to_string();
        // setsid -c: a new session with stdin's terminal as its controlling tty. env
        // --default-signal: a terminal's shell starts with SIGINT and SIGQUIT at their
        // defaults, but a test run started in the background (`cargo test &`) inherits them
        // ignored, and the bare control would then ignore Ctrl-C (exec keeps ignored
        // signals, signal(7)).
        let mut c = Command::new("setsid");
        c.args(["-c", "env", "--default-signal=INT,QUIT"])
            .args(argv);
        c.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("CLAWJAIL_LOG", "warn")
            .env("TERM", "dumb")
            .env("PS1", "PROMPT$ ");
        c.stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave));
        let child = c.spawn().unwrap();
        Term {
            master: pty.master,
            path,
            child,
            // Values are matched at the start of a line ("\nTAG:"), never in the echo
            // of a typed command (which follows a prompt).
            seen: "\n".to_string(),
            cursor: 0,
        }
    }

    fn send(&self, s: &str) {
        nix::unistd::write(&self.master, s.as_bytes()).unwrap();
    }

    /// Read what arrives within `d`.
    fn pump(&mut self, d: Duration) {
        let end = Instant::now() + d;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, PollTimeout::try_from(left).unwrap()) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let mut buf = [0u8; 4096];
            match nix::unistd::read(&self.master, &mut buf) {
                Ok(0) | Err(_) => return, // EIO: the session is gone
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    }

    /// Wait for `pat` after the cursor; return the text up to its end and move past it.
    #[track_caller]
    fn expect(&mut self, pat: &str, secs: u64) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(i) = self.seen[self.cursor..].find(pat) {
                let upto = self.cursor + i + pat.len();
                let text = self.seen[self.cursor..upto].to_string();
                self.cursor = upto;
                return text;
            }
            if Instant::now() >= end {
                panic!(
                    "timed out waiting for {pat:?}; screen so far:\n{}",
                    self.seen
                );
            }
            self.pump(Duration::from_millis(50));
        }
    }

    /// Everything after the cursor that arrives within `d` (the cursor moves past it).
    fn quiet_for(&mut self, d: Duration) -> String {
        self.pump(d);
        let text = self.seen[self.cursor..].to_string();
        self.cursor = self.seen.len();
        text
    }

    /// The value printed as `TAG:value` at the start of a line.
    fn value(&mut self, tag: &str) -> String {
        self.expect(&format!("\n{tag}:"), 10);
        self.line()
    }

    /// The rest of the current line; the cursor stays before its newline.
    fn line(&mut self) -> String {
        let text = self.expect("\n", 10);
        self.cursor -= 1;
        text.trim().to_string()
    }

    fn close(mut self) {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            self.pump(Duration::from_millis(50));
        }
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// How the target is started: under clawjail (root, or unprivileged via setpriv) or
/// bare as the same uid (the control).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    Bare,
    Clawjail,
    ClawjailUnprivileged,
}

const SETPRIV: &str = "setpriv --reuid=65534 --regid=65534 --clear-groups";

fn cmd(via: Via, policy: &Path, target: &str) -> String {
    match via {
        Via::Bare => format!("{SETPRIV} {target}"),
        Via::Clawjail => format!(
            "{} run --policy {} -- {target}",
            clawjail_bin(),
            policy.display()
        ),
        Via::ClawjailUnprivileged => format!(
            "{SETPRIV} {} run --policy {} -- {target}",
            clawjail_bin(),
            policy.display()
        ),
    }
}

fn probe_cmd(args: &str) -> String {
    format!("{} {args}", probe().display())
}

/// For tests about what the target leaves behind: without a PID namespace of its own
/// (issue 9's default on a root start), so a daemon outlives the target and the relay
/// alone must keep it from the caller's terminal; with one, the namespace's teardown kills
/// it anyway, and its pids would not be the host's.
const NO_PIDNS: &str = "\n[process]\npid_namespace = false\n";

/// A scratch dir the target (uid 65534) may write, and a policy for it.
fn setup(name: &str, extra: &str) -> (Scratch, std::path::PathBuf) {
    let s = Scratch::new(name);
    std::fs::set_permissions(&s.path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let dir = s.path.display().to_string();
    let pol = s.policy(&format!(
        "{}{extra}",
        base_policy(&[], &[dir.as_str(), "/dev/null", "/dev/tty"])
    ));
    (s, pol)
}

fn wait_for_file(p: &Path, pat: &str, secs: u64) -> String {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        if text.contains(pat) || Instant::now() >= end {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The terminals a process holds on fds 0-2, by path.
fn fd_paths(pid: &str) -> Vec<String> {
    (0..3)
        .filter_map(|i| std::fs::read_link(format!("/proc/{pid}/fd/{i}")).ok())
        .map(|p| p.display().to_string())
        .collect()
}

/// A daemon left behind by the target reads the caller's terminal after `run` returned:
/// the line typed next, and what its fds 0-2 are. Returns (daemon's log, shell's line,
/// daemon's fds, run's duration in ms).
fn daemon_after_return(via: Via) -> (String, String, Vec<String>, u64) {
    let (s, pol) = setup("tty-steal", NO_PIDNS);
    let out = s.join("stolen.txt");
    let target = cmd(
        via,
        &pol,
        &probe_cmd(&format!("tty-steal {} 0 1200", out.display())),
    );
    let script = format!(
        "s=$(date +%s%N); {target} >/dev/null; e=$(date +%s%N); echo \"RETURNED:$(( (e-s)/1000000 ))\"; sleep 1.5; read -r line; echo \"SHELL:[$line]\""
    );
    let mut t = Term::spawn(&["sh", "-c", &script]);
    let ms: u64 = t.value("RETURNED").parse().unwrap();
    let log = wait_for_file(&out, "pid ", 5);
    let pid = log
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .unwrap_or_else(|| panic!("no daemon pid in {log:?}"))
        .to_string();
    let fds = fd_paths(&pid);
    std::thread::sleep(Duration::from_millis(200));
    t.send("secret-1\n");
    std::thread::sleep(Duration::from_millis(1700));
    t.send("second-2\n");
    let shell = t.value("SHELL");
    let log = wait_for_file(&out, "read", 5);
    t.close();
    (log, shell, fds, ms)
}

#[test]
fn a_daemon_left_behind_gets_nothing_typed_after_run_returns() {
    require_root!();
    // Control: the bare daemon keeps the caller's terminal and takes the next line.
    let (log, shell, fds, _) = daemon_after_return(Via::Bare);
    assert!(log.contains("secret-1"), "control did not steal: {log}");
    assert_eq!(shell, "[second-2]", "{log}");
    assert!(!fds.is_empty());
    for via in [Via::Clawjail, Via::ClawjailUnprivileged] {
        let (log, shell, fds, ms) = daemon_after_return(via);
        assert!(!log.contains("secret-1"), "{via:?}: the daemon read {log}");
        assert_eq!(
            shell, "[secret-1]",
            "{via:?}: the shell lost its line; daemon: {log}"
        );
        assert!(!fds.is_empty(), "{via:?}");
        // The daemon holds the slave for 3 s; `run` must not wait for it.
        assert!(
            ms < 1000,
            "{via:?}: run took {ms} ms with a daemon on the pty"
        );
    }
}

#[test]
fn nothing_left_behind_holds_the_callers_terminal() {
    require_root!();
    for via in [Via::Bare, Via::Clawjail, Via::ClawjailUnprivileged] {
        let (s, pol) = setup("tty-hold", NO_PIDNS);
        let out = s.join("daemon.txt");
        let target = cmd(
            via,
            &pol,
            &probe_cmd(&format!("tty-steal {} 0 2000", out.display())),
        );
        let mut t = Term::spawn(&["sh", "-c", &format!("{target}; echo DONE:1; sleep 3")]);
        t.value("DONE");
        let log = wait_for_file(&out, "pid ", 5);
        let pid = log
            .lines()
            .find_map(|l| l.strip_prefix("pid "))
            .unwrap()
            .to_string();
        let fds = fd_paths(&pid);
        let holds = fds.contains(&t.path);
        if via == Via::Bare {
            assert!(
                holds,
                "control: the daemon should hold {} ({fds:?})",
                t.path
            );
        } else {
            assert!(
                !holds,
                "{via:?}: the daemon holds the caller's {} ({fds:?})",
                t.path
            );
            assert!(fds.iter().any(|p| p.starts_with("/dev/pts/")), "{fds:?}");
        }
        t.close();
    }
}

fn modes_around(via: Via, target: &str) -> (String, String) {
    let (_s, pol) = setup("tty-modes", "");
    let target = cmd(via, &pol, target);
    let script =
        format!("echo \"B:$(stty -g)\"; {target}; sleep 1.2; echo \"A:$(stty -g)\"; stty sane");
    let mut t = Term::spawn(&["sh", "-c", &script]);
    let before = t.value("B");
    let after = t.value("A");
    t.close();
    (before, after)
}

#[test]
fn terminal_modes_are_identical_before_and_after() {
    require_root!();
    let (s, _) = setup("tty-modes-out", "");
    let out = s.join("noecho.txt").display().to_string();
    let daemon = probe_cmd(&format!("tty-steal {out} 300 1000 noecho"));
    for target in ["stty -echo -icanon", daemon.as_str()] {
        let (b, a) = modes_around(Via::Bare, target);
        assert_ne!(b, a, "control: {target} did not change the terminal");
        for via in [Via::Clawjail, Via::ClawjailUnprivileged] {
            let (b, a) = modes_around(via, target);
            assert_eq!(b, a, "{via:?}: {target} changed the caller's terminal");
        }
    }
}

fn interrupt(via: Via, key: &str) -> String {
    let (_s, pol) = setup("tty-intr", "");
    let target = cmd(via, &pol, &probe_cmd("announce-sleep 10"));
    // The trap keeps the shell alive after the control's Ctrl-C (it is in the foreground
    // group too); a handled signal is reset to default in the child at exec.
    let script = format!("trap 'echo TRAPPED' INT QUIT; {target}; rc=$?; echo; echo \"RC:$rc\"");
    let mut t = Term::spawn(&["sh", "-c", &script]);
    t.expect("ready", 10);
    t.send(key);
    let rc = t.value("RC");
    t.close();
    rc
}

#[test]
fn ctrl_c_and_ctrl_backslash_reach_the_target_and_exit_status_is_kept() {
    require_root!();
    for via in [Via::Bare, Via::Clawjail, Via::ClawjailUnprivileged] {
        assert_eq!(interrupt(via, "\x03"), "130", "{via:?}: Ctrl-C");
        assert_eq!(interrupt(via, "\x1c"), "131", "{via:?}: Ctrl-\\");
        let (_s, pol) = setup("tty-exit", "");
        let target = cmd(via, &pol, &probe_cmd("exit 7"));
        let mut t = Term::spawn(&["sh", "-c", &format!("{target}; echo \"RC:$?\"")]);
        assert_eq!(t.value("RC"), "7", "{via:?}");
        t.close();
    }
}

#[test]
fn output_order_is_kept() {
    require_root!();
    let (_s, pol) = setup("tty-order", "");
    let target = cmd(Via::Clawjail, &pol, &probe_cmd("ticks 200 0"));
    let mut t = Term::spawn(&["sh", "-c", &format!("{target}; echo \"RC:$?\"")]);
    assert_eq!(t.value("RC"), "0");
    let ticks: Vec<u32> = t
        .seen
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tick ").and_then(|n| n.parse().ok()))
        .collect();
    assert_eq!(ticks, (1..=200).collect::<Vec<_>>());
    t.close();
}

fn ctrl_z_then_fg(via: Via) {
    let (_s, pol) = setup("tty-jobs", "");
    let target = cmd(via, &pol, &probe_cmd("ticks 12 250"));
    let mut t = Term::spawn(&["bash", "--norc", "--noprofile", "-i"]);
    t.expect("PROMPT$ ", 10);
    t.send("echo \"B:$(stty -g)\"\n");
    let before = t.value("B");
    t.send(&format!("{target}\n"));
    t.expect("tick 2", 10);
    t.send("\x1a");
    t.expect("Stopped", 10);
    t.expect("PROMPT$ ", 10);
    let quiet = t.quiet_for(Duration::from_millis(800));
    assert!(
        !quiet.contains("tick"),
        "{via:?}: ticks while stopped: {quiet}"
    );
    t.send("echo \"M:$(stty -g)\"\n");
    assert_eq!(t.value("M"), before, "{via:?}: modes while stopped");
    t.send("fg\n");
    t.expect("tick 12", 10);
    t.expect("PROMPT$ ", 10);
    t.send("echo \"RC:$?\"\n");
    assert_eq!(t.value("RC"), "0", "{via:?}");
    t.send("echo \"A:$(stty -g)\"\n");
    assert_eq!(t.value("A"), before, "{via:?}: modes after");
    t.send("exit\n");
    t.close();
}

#[test]
fn ctrl_z_stops_the_job_and_fg_resumes_it() {
    require_root!();
    ctrl_z_then_fg(Via::Bare);
    ctrl_z_then_fg(Via::Clawjail);
    ctrl_z_then_fg(Via::ClawjailUnprivileged);
}

fn resize(via: Via) -> (String, String) {
    let (_s, pol) = setup("tty-winch", "");
    let target = cmd(via, &pol, &probe_cmd("winsize-wait 5"));
    let mut t = Term::spawn(&["sh", "-c", &format!("{target}; echo \"RC:$?\"")]);
    t.expect("ready ", 10);
    let start = t.line();
    std::thread::sleep(Duration::from_millis(200));
    let ws = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 132,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    clawjail::sys::set_winsize(t.master.as_fd(), &ws).unwrap();
    t.expect("ok winch ", 10);
    let after = t.line();
    t.close();
    (start, after)
}

#[test]
fn a_window_resize_reaches_the_target() {
    require_root!();
    for via in [Via::Bare, Via::Clawjail, Via::ClawjailUnprivileged] {
        let (start, after) = resize(via);
        assert_eq!(start, "24x80", "{via:?}: the size at start");
        assert_eq!(after, "40x132", "{via:?}: the size after SIGWINCH");
    }
}

/// Returns the whole screen.
fn background(via: Via) -> String {
    let (_s, pol) = setup("tty-bg", "");
    let target = cmd(via, &pol, &probe_cmd("read-line"));
    let mut t = Term::spawn(&["bash", "--norc", "--noprofile", "-i"]);
    t.expect("PROMPT$ ", 10);
    t.send("echo \"B:$(stty -g)\"\n");
    let before = t.value("B");
    t.send(&format!("{target} &\n"));
    std::thread::sleep(Duration::from_millis(700));
    // The shell, not the background job, gets what is typed now.
    t.send("echo \"S:$((40+2))\"\n");
    assert_eq!(t.value("S"), "42", "{via:?}");
    t.send("echo \"M:$(stty -g)\"\n");
    assert_eq!(
        t.value("M"),
        before,
        "{via:?}: a background job changed the modes"
    );
    std::thread::sleep(Duration::from_millis(300));
    t.send("jobs\n");
    t.expect("PROMPT$ ", 10);
    t.send("fg\n");
    std::thread::sleep(Duration::from_millis(700));
    t.send("for-target\r");
    t.expect("got:for-target", 10);
    t.expect("PROMPT$ ", 10);
    t.send("echo \"A:$(stty -g)\"\n");
    assert_eq!(t.value("A"), before, "{via:?}: modes after");
    t.send("exit\n");
    let screen = t.seen.clone();
    t.close();
    screen
}

#[test]
fn a_background_start_does_not_steal_the_terminal() {
    require_root!();
    // Control: the kernel stops a bare background reader (SIGTTIN).
    let screen = background(Via::Bare);
    assert!(screen.contains("Stopped"), "control: {screen}");
    // Under clawjail the relay simply does not read until the job is in the foreground.
    for via in [Via::Clawjail, Via::ClawjailUnprivileged] {
        let screen = background(via);
        assert!(!screen.contains("Stopped"), "{via:?}: {screen}");
    }
}

#[test]
fn the_target_holds_a_new_pty_never_the_callers_terminal() {
    require_root!();
    let rdev = |t: &Term| {
        let st = nix::sys::stat::stat(t.path.as_str()).unwrap();
        format!("{}:{}", libc::major(st.st_rdev), libc::minor(st.st_rdev))
    };
    for via in [Via::Bare, Via::Clawjail, Via::ClawjailUnprivileged] {
        let (_s, pol) = setup("tty-info", "");
        let target = cmd(via, &pol, &probe_cmd("tty-info"));
        let mut t = Term::spawn(&["sh", "-c", &target]);
        t.expect("ok ", 10);
        let info = t.line();
        let caller = rdev(&t);
        let fields: Vec<&str> = info.split(' ').collect();
        let fd0 = fields[0].trim_start_matches("0=");
        if via == Via::Bare {
            assert_eq!(fd0, caller, "control: {info}");
        } else {
            assert_ne!(fd0, caller, "{via:?}: {info}");
            assert_ne!(
                fd0, "-",
                "{via:?}: stdin should be a (new) terminal: {info}"
            );
            // All three are the one new pty, and it is the controlling terminal.
            assert_eq!(
                info,
                format!("0={fd0} 1={fd0} 2={fd0} tty={fd0}"),
                "{via:?}"
            );
        }
        t.close();
    }
}

#[test]
fn null_stdin_gives_dev_null_and_relays_output_only() {
    require_root!();
    let (_s, pol) = setup("tty-null", "\n[process]\nterminal = \"null-stdin\"\n");
    let target = cmd(Via::Clawjail, &pol, &probe_cmd("tty-info"));
    let mut t = Term::spawn(&[
        "sh",
        "-c",
        &format!("echo \"B:$(stty -g)\"; {target}; echo \"A:$(stty -g)\""),
    ]);
    let before = t.value("B");
    t.expect("ok ", 10);
    let info = t.line();
    assert!(
        info.starts_with("0=- 1="),
        "stdin must be /dev/null: {info}"
    );
    let fd1 = info.split(' ').nth(1).unwrap().trim_start_matches("1=");
    let st = nix::sys::stat::stat(t.path.as_str()).unwrap();
    let caller = format!("{}:{}", libc::major(st.st_rdev), libc::minor(st.st_rdev));
    assert_ne!(fd1, caller, "{info}");
    assert_ne!(fd1, "-", "{info}");
    assert_eq!(t.value("A"), before);
    // One line ending per line: the caller's cooked terminal adds the \r, not the pty too.
    assert!(!t.seen.contains("\r\r\n"), "{:?}", t.seen);
    t.close();
    // A reader gets EOF at once instead of the keyboard.
    let target = cmd(Via::Clawjail, &pol, &probe_cmd("read-line"));
    let mut t = Term::spawn(&["sh", "-c", &format!("{target}; echo \"RC:$?\"")]);
    t.expect("ok got:", 10);
    assert_eq!(t.value("RC"), "0");
    t.close();
}

#[test]
fn check_says_whether_a_pty_relay_will_be_used() {
    let (_s, pol) = setup("tty-check", "");
    let check = format!("{} check --policy {}", clawjail_bin(), pol.display());
    let mut t = Term::spawn(&["sh", "-c", &format!("{check}; echo DONE:1")]);
    let text = t.expect("DONE:", 10);
    assert!(text.contains("pty relay"), "{text}");
    t.close();
    let o = Command::new(clawjail_bin())
        .args(["check", "--policy"])
        .arg(&pol)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("no terminal on fds 0-2"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn the_target_cannot_take_the_terminal_from_its_supervisor() {
    require_root!();
    // /proc readable, so only the supervisor's own protections (not dumpable; the
    // target's Landlock domain) stand between the target and /proc/<supervisor>/fd/0.
    let (_s, pol) = setup("tty-anc", NO_PIDNS);
    let pol_text = std::fs::read_to_string(&pol)
        .unwrap()
        .replace("read = [", "read = [\"/proc\", ");
    std::fs::write(&pol, pol_text).unwrap();
    // Control: a same-uid parent that is an ordinary (dumpable) process hands it over.
    let bare = format!(
        "sleep 0.2; {SETPRIV} sh -c '{}; true'; echo RC:$?",
        probe_cmd("ancestor-fd 1 0")
    );
    let mut t = Term::spawn(&["sh", "-c", &bare]);
    // As on a laptop, the terminal belongs to the user the target runs as (reopening a
    // tty through /proc checks the device's own permissions too).
    chown(Path::new(&t.path), NOBODY, NOBODY);
    let got = t.expect("RC:", 10);
    assert!(
        got.contains("ok /proc/") && got.contains(&t.path),
        "control: {got}"
    );
    t.close();
    for via in [Via::Clawjail, Via::ClawjailUnprivileged] {
        // Grandparent = the supervisor (parent = the pty session's monitor).
        for level in ["1", "2"] {
            let target = cmd(via, &pol, &probe_cmd(&format!("ancestor-fd {level} 0")));
            let mut t = Term::spawn(&["sh", "-c", &format!("sleep 0.2; {target}; echo \"RC:$?\"")]);
            chown(Path::new(&t.path), NOBODY, NOBODY);
            let got = t.expect("RC:", 10);
            assert!(got.contains("errno EACCES"), "{via:?} level {level}: {got}");
            t.close();
        }
    }
}

#[test]
fn killing_the_supervisor_kills_the_target() {
    require_root!();
    let (_s, pol) = setup("tty-kill", "");
    let target = cmd(Via::Clawjail, &pol, &probe_cmd("announce-sleep 30"));
    let mut t = Term::spawn(&["sh", "-c", &format!("{target} & echo \"PID:$!\"; wait")]);
    let sup = t.value("PID");
    t.expect("ready", 10);
    let children = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let monitor = children(&sup).pop().expect("the supervisor has a child");
    let target_pid = children(&monitor).pop().expect("the monitor has a child");
    let alive = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map(|s| !s.contains("State:\tZ"))
            .unwrap_or(false)
    };
    assert!(alive(&target_pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup.parse().unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    while alive(&target_pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(&target_pid), "the target outlived its supervisor");
    assert!(!alive(&monitor), "the monitor outlived the supervisor");
    t.close();
}

#[test]
fn the_supervisor_is_not_dumpable_for_its_own_uid() {
    require_root!();
    for via in [Via::Clawjail, Via::ClawjailUnprivileged] {
        let (_s, pol) = setup("tty-dump", "");
        let target = cmd(via, &pol, &probe_cmd("announce-sleep 5"));
        let mut t = Term::spawn(&[
            "sh",
            "-c",
            &format!("sleep 0.2; {target} & echo \"PID:$!\"; wait"),
        ]);
        chown(Path::new(&t.path), NOBODY, NOBODY);
        let sup = t.value("PID");
        t.expect("ready", 10);
        let open = |pid: &str| {
            let o = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(probe())
                .args(["proc-fd", pid, "0"])
                .output()
                .unwrap();
            answer(&o)
        };
        // Control: an ordinary process of the same uid holding the same terminal.
        let mut control = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(probe())
            .args(["announce-sleep", "2"])
            .stdin(Stdio::from(std::fs::File::open(&t.path).unwrap()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let c = open(&control.id().to_string());
        control.kill().ok();
        control.wait().ok();
        assert!(
            c.starts_with("ok /proc/"),
            "control (a same-uid process): {c}"
        );
        let got = open(&sup);
        assert_eq!(got, "errno EACCES", "{via:?}: the supervisor's fd 0");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(sup.parse().unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .ok();
        t.close();
    }
}

#[test]
fn a_child_left_running_survives_the_targets_exit() {
    require_root!();
    // The pty session's leader exits with the target; it must not hang up what the target
    // left running in its process group (no shell does that to a finished command).
    for via in [Via::Bare, Via::Clawjail, Via::ClawjailUnprivileged] {
        let (_s, pol) = setup("tty-orphan", NO_PIDNS);
        let target = cmd(via, &pol, &probe_cmd("orphan 3"));
        let mut t = Term::spawn(&["sh", "-c", &format!("{target}; echo DONE:$?; sleep 1")]);
        t.expect("ok ", 10);
        let pid = t.line();
        assert_eq!(t.value("DONE"), "0");
        std::thread::sleep(Duration::from_millis(500));
        let state = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(
            state.contains("State:\tS") || state.contains("State:\tR"),
            "{via:?}: the child {pid} did not survive: {state}"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid.parse().unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        )
        .ok();
        t.close();
    }
}

#[test]
fn audit_sees_one_gateway_under_clawjail_behind_the_monitor() {
    require_root!();
    let (_s, pol) = setup("tty-audit", "");
    let marker = format!("cj-tty-audit-{}", std::process::id());
    let target = cmd(
        Via::Clawjail,
        &pol,
        &probe_cmd(&format!("announce-sleep 5 {marker}")),
    );
    let mut t = Term::spawn(&["sh", "-c", &format!("{target} & echo \"PID:$!\"; wait")]);
    let sup = t.value("PID");
    t.expect("ready", 10);
    let child = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .last()
            .unwrap()
            .to_string()
    };
    let monitor = child(&sup);
    let gateway = child(&monitor);
    let (_, v) = crate::audit::audit(&["--process", &marker]);
    let codes = crate::audit::codes_for(&v, &format!("pid {gateway} "));
    assert!(
        codes.iter().any(|c| c == "under-clawjail"),
        "{codes:?}\n{v:#}"
    );
    for other in [&sup, &monitor] {
        let c = crate::audit::codes_for(&v, &format!("pid {other} "));
        assert!(
            c.is_empty(),
            "supervisor/monitor {other} audited as a gateway: {c:?}"
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup.parse().unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .ok();
    t.close();
}
