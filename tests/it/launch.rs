//! Integration tests: the core launcher (identity, capabilities, no_new_privs, env, fds,
//! signals, rlimits, session, supervisor, script targets, logging).
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::util::*;

/// /proc/self/status of the probe run under `policy`, as (key, value) lines.
fn status_under(policy: &std::path::Path) -> std::collections::HashMap<String, String> {
    let o = run_probe(policy, "status", &[]);
    assert!(o.status.success(), "status probe failed: {}", stderr(&o));
    stdout(&o)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn root_start_switches_ids_and_clears_every_capability_set() {
    require_root!();
    let s = Scratch::new("ids");
    let pol = s.policy(&base_policy(&["/proc/self"], &[]));
    let st = status_under(&pol);
    assert_eq!(st["Uid"], "65534\t65534\t65534\t65534");
    assert_eq!(st["Gid"], "65534\t65534\t65534\t65534");
    assert_eq!(st["Groups"], "");
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(st[k], "0000000000000000", "{k}");
    }
    assert_eq!(st["NoNewPrivs"], "1");
    // The target cannot get root back.
    assert_answer(&run_probe(&pol, "setuid0", &[]), "errno EPERM");
    assert_answer(&run_probe(&pol, "setgid0", &[]), "errno EPERM");
}

#[test]
fn supplementary_groups_are_exactly_the_policy_list() {
    require_root!();
    let s = Scratch::new("groups");
    let pol = s.policy(&base_policy(&["/proc/self"], &[]).replace(
        "group = 65534\n",
        "group = 65534\nsupplementary_groups = [4242, 100]\n",
    ));
    let st = status_under(&pol);
    assert_eq!(st["Groups"], "100 4242");
}

#[test]
fn kept_capability_survives_through_ambient_and_works() {
    require_root!();
    let s = Scratch::new("keepcap");
    let with_cap = s.policy(&format!(
        "{}\n[capabilities]\nkeep = [\"CAP_NET_BIND_SERVICE\"]\n[network]\nbind = [80]\n",
        base_policy(&["/proc/self"], &[])
    ));
    let st = status_under(&with_cap);
    for k in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(st[k], "0000000000000400", "{k}");
    }
    assert_eq!(st["CapInh"], "0000000000000400");
    assert_eq!(st["NoNewPrivs"], "1");
    assert_answer(&run_probe(&with_cap, "tcp-bind", &["80"]), "ok");
    // Control: the same bind without the kept cap fails, so the cap is what made it work.
    let s2 = Scratch::new("keepcap-control");
    let without = s2.policy(&format!(
        "{}\n[network]\nbind = [80]\n",
        base_policy(&[], &[])
    ));
    assert_answer(&run_probe(&without, "tcp-bind", &["80"]), "errno EACCES");
}

/// Start clawjail with signals ignored and blocked, as a careless parent might.
fn with_dirty_signals(c: &mut Command) {
    // SAFETY: pre_exec runs in the forked child before exec; sigaction/sigprocmask are
    // async-signal-safe and touch no allocator state.
    unsafe {
        c.pre_exec(|| {
            use nix::sys::signal::{
                sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
            };
            let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
            sigaction(Signal::SIGUSR1, &ign).map_err(std::io::Error::from)?;
            sigaction(Signal::SIGPIPE, &ign).map_err(std::io::Error::from)?;
            let mut block = SigSet::empty();
            block.add(Signal::SIGUSR2);
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&block), None)
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

fn status_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn ignored_and_blocked_signals_do_not_leak_into_the_target() {
    require_root!();
    let s = Scratch::new("signals");
    let pol = s.policy(&base_policy(&["/proc/self"], &[]));
    // /bin/cat, not the probe: Rust's runtime ignores SIGPIPE at startup, so a Rust target
    // would show SigIgn 0x1000 whatever clawjail did.
    let mut c = Command::new(clawjail_bin());
    c.args(["run", "--policy"])
        .arg(&pol)
        .args(["--", "/bin/cat", "/proc/self/status"]);
    with_dirty_signals(&mut c);
    let o = c.output().unwrap();
    let out = stdout(&o);
    assert_eq!(
        status_field(&out, "SigIgn"),
        "0000000000000000",
        "{out}{}",
        stderr(&o)
    );
    assert_eq!(status_field(&out, "SigBlk"), "0000000000000000", "{out}");
    // Control: the same parent without clawjail leaks both into the probe.
    let mut bare = Command::new("/bin/cat");
    bare.arg("/proc/self/status");
    with_dirty_signals(&mut bare);
    let out = stdout(&bare.output().unwrap());
    assert_ne!(status_field(&out, "SigIgn"), "0000000000000000");
    assert_ne!(status_field(&out, "SigBlk"), "0000000000000000");
}

/// Hand `file` to the child as fd `fd`, without O_CLOEXEC (a leak, or a socket-activation
/// fd). With `activation`, also set LISTEN_FDS=1 and LISTEN_PID to the child's own pid
/// (known only after fork; Command passes the child's `environ` when its env is not
/// modified), as systemd would.
fn inherit_fd(c: &mut Command, file: &std::path::Path, fd: i32, activation: bool) {
    let f = std::fs::File::open(file).unwrap();
    // SAFETY: runs in the forked child before exec; single-threaded there, so setenv
    // cannot race; dup2/fcntl are async-signal-safe. `f` outlives spawn in the parent.
    unsafe {
        use std::os::fd::AsRawFd;
        let raw = f.as_raw_fd();
        c.pre_exec(move || {
            // Clear O_CLOEXEC explicitly: dup2(fd, fd) would be a no-op that keeps it.
            if libc::dup2(raw, fd) < 0 || libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if activation {
                let pid = std::ffi::CString::new(libc::getpid().to_string()).unwrap_or_default();
                libc::setenv(c"LISTEN_PID".as_ptr(), pid.as_ptr(), 1);
                libc::setenv(c"LISTEN_FDS".as_ptr(), c"1".as_ptr(), 1);
            }
            Ok(())
        });
    }
    std::mem::forget(f);
}

#[test]
fn a_leaked_fd_is_not_readable_by_the_target() {
    require_root!();
    let s = Scratch::new("fdleak");
    let secret = s.file("secret", "s3cret\n", 0o600);
    let pol = s.policy(&base_policy(&[], &[]));
    let mut c = Command::new(clawjail_bin());
    c.args(["run", "--policy"])
        .arg(&pol)
        .arg("--")
        .arg(probe())
        .args(["read-fd", "7"]);
    inherit_fd(&mut c, &secret, 7, false);
    let o = c.output().unwrap();
    assert_answer(&o, "errno EBADF");
    // Control: without clawjail the leaked fd reads the secret (even as uid 65534).
    let mut bare = Command::new("setpriv");
    bare.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(probe())
        .args(["read-fd", "7"]);
    inherit_fd(&mut bare, &secret, 7, false);
    assert_answer(&bare.output().unwrap(), "ok s3cret");
}

#[test]
fn only_allowlisted_environment_reaches_the_target() {
    require_root!();
    let s = Scratch::new("env");
    let envf = s.file("token.env", "GATEWAY_TOKEN=t0k\n", 0o600);
    let pol = s.policy(&format!(
        "{}\n[env]\npass = [\"LANG\", \"ABSENT_VAR\"]\nset = {{ HOME = \"/nonexistent\", MODE = \"${{UID}}\" }}\nfiles = [{:?}]\n",
        base_policy(&[], &[]),
        envf.display().to_string()
    ));
    let o = clawjail_run(
        &pol,
        &[probe().to_str().unwrap(), "env-names"],
        &[
            ("LANG", "C.UTF-8"),
            ("AWS_SECRET_ACCESS_KEY", "leak"),
            ("LD_PRELOAD", "/x.so"),
        ],
    );
    assert_answer(&o, "ok GATEWAY_TOKEN,HOME,LANG,MODE");
    let o = clawjail_run(&pol, &[probe().to_str().unwrap(), "env-get", "MODE"], &[]);
    assert_answer(&o, "ok 65534");
    // Names are logged, values never.
    assert!(!stderr(&o).contains("t0k"), "{}", stderr(&o));
}

#[test]
fn rlimits_umask_and_workdir_are_applied() {
    require_root!();
    let s = Scratch::new("limits");
    let work = s.dir("work", 0o755, None);
    let pol = s.policy(&format!(
        "{}\n[limits]\nnofile = 123\nfsize = 4096\ncpu = 30\n[process]\numask = \"0027\"\nworkdir = {:?}\n",
        base_policy(&[], &[]),
        work.display().to_string()
    ));
    assert_answer(&run_probe(&pol, "rlimit", &["nofile"]), "ok 123 123");
    assert_answer(&run_probe(&pol, "rlimit", &["fsize"]), "ok 4096 4096");
    assert_answer(&run_probe(&pol, "rlimit", &["cpu"]), "ok 30 30");
    assert_answer(&run_probe(&pol, "rlimit", &["core"]), "ok 0 0");
    assert_answer(&run_probe(&pol, "umask", &[]), "ok 0027");
    assert_answer(
        &run_probe(&pol, "cwd", &[]),
        &format!("ok {}", work.display()),
    );
}

#[test]
fn nproc_limit_is_enforced_for_a_uid_of_its_own() {
    require_root!();
    // A uid no other test uses: RLIMIT_NPROC counts every process of the real uid.
    let uid = 61_001;
    let s = Scratch::new("nproc");
    let pol = s.policy(
        &format!("{}\n[limits]\nnproc = 1\n", base_policy(&[], &[])).replace(
            "user = 65534\ngroup = 65534",
            &format!("user = {uid}\ngroup = {uid}"),
        ),
    );
    assert_answer(&run_probe(&pol, "rlimit", &["nproc"]), "ok 1 1");
    // The target itself is the one process allowed; its fork must fail.
    assert_answer(&run_probe(&pol, "orphan", &["0"]), "errno EAGAIN");
    // Control: with a higher limit the same fork works.
    let pol2 = s.policy(
        &format!("{}\n[limits]\nnproc = 10\n", base_policy(&[], &[])).replace(
            "user = 65534\ngroup = 65534",
            &format!("user = {uid}\ngroup = {uid}"),
        ),
    );
    assert_answer(&run_probe(&pol2, "orphan", &["0"]), "ok");
}

fn sid_of(out: &str) -> (i32, i32, i32, i32) {
    let v: Vec<i32> = out
        .trim()
        .trim_start_matches("ok ")
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1], v[2], v[3])
}

#[test]
fn target_gets_a_new_session_when_clawjail_leads_one() {
    require_root!();
    let s = Scratch::new("sid-leader");
    let pol = s.policy(&shared_pid_ns(&base_policy(&[], &[])));
    let o = Command::new("setsid")
        .arg("--wait")
        .arg(clawjail_bin())
        .args(["run", "--policy"])
        .arg(&pol)
        .arg("--")
        .arg(probe())
        .arg("sid")
        .output()
        .unwrap();
    let (sid, _pgid, pid, _ppid) = sid_of(&answer(&o));
    let mine = nix::unistd::getsid(None).unwrap().as_raw();
    assert_ne!(sid, mine, "target shares the caller's session");
    // Exec in place: the target is the session leader setsid(1) made.
    assert_eq!(sid, pid);
}

#[test]
fn process_group_leader_forks_a_supervisor_that_relays_and_propagates() {
    require_root!();
    let s = Scratch::new("sid-pgrp");
    let pol = s.policy(&shared_pid_ns(&base_policy(&[], &[])));
    // An interactive-style job: clawjail leads its own process group, not a session.
    let run = |args: &[&str]| {
        let mut c = Command::new(clawjail_bin());
        c.args(["run", "--policy"])
            .arg(&pol)
            .arg("--")
            .arg(probe())
            .args(args);
        c.process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let o = run(&["sid"]).output().unwrap();
    let (sid, _pgid, pid, ppid) = sid_of(&answer(&o));
    let mine = nix::unistd::getsid(None).unwrap().as_raw();
    assert_ne!(sid, mine);
    assert_eq!(sid, pid, "the child leads its new session");
    assert_ne!(
        ppid,
        std::process::id() as i32,
        "the target's parent is the supervisor"
    );

    // Exit status propagates.
    let o = run(&["exit", "7"]).output().unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));

    // SIGTERM to the supervisor reaches the target; 128+15 comes back.
    let mut child = run(&["sleep", "30"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let st = child.wait().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(st.code(), Some(128 + 15));
}

#[test]
fn unprivileged_start_keeps_ids_and_still_confines() {
    let s = Scratch::new("unpriv");
    let pol = s.policy(&base_policy(&["/proc/self"], &[]));
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            clawjail_bin(),
        ]);
        c
    } else {
        Command::new(clawjail_bin())
    };
    c.args(["run", "--policy"])
        .arg(&pol)
        .arg("--")
        .arg(probe())
        .arg("status");
    c.env_clear().env("PATH", "/usr/bin:/bin");
    let o = c.output().unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    let uid = nix::unistd::getuid().as_raw();
    let expect_uid = if is_root() { 65534 } else { uid };
    assert_eq!(
        status_field(&out, "Uid"),
        format!("{0}\t{0}\t{0}\t{0}", expect_uid)
    );
    for k in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(status_field(&out, k), "0000000000000000", "{k}");
    }
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    assert!(
        stderr(&o).contains("identity=\"kept (unprivileged start)\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_shebang_script_runs_and_sees_no_clawjail_fd() {
    require_root!();
    let s = Scratch::new("script");
    let script = s.file(
        "list-fds.sh",
        "#!/bin/sh\nexec /bin/ls -l /proc/$$/fd/\n",
        0o755,
    );
    let pol = s.policy(&format!(
        "version = 1\n[identity]\nuser = 65534\ngroup = 65534\n[filesystem]\nread = [{:?}, \"/proc\"]\nexec = [\"/usr/bin/ls\"]\n",
        s.path.display().to_string()
    ));
    let o = clawjail_run(&pol, &[script.to_str().unwrap()], &[]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    // `exec ls` replaces the shell, so ls lists what the script's process holds at exec.
    let fds: Vec<&str> = out.lines().filter(|l| l.contains(" -> ")).collect();
    assert!(
        !fds.is_empty(),
        "script printed nothing: {out}{}",
        stderr(&o)
    );
    for line in &fds {
        let (left, target) = line.split_once(" -> ").unwrap();
        let n: u32 = left.rsplit(' ').next().unwrap().parse().unwrap();
        // 0-2 are the test's pipes; 3 is the directory ls itself opened to list.
        assert!(
            n <= 2 || target.starts_with("/proc/"),
            "clawjail fd leaked into the script: {line}"
        );
        assert!(!target.contains("policy.toml"), "{line}");
    }
}

#[test]
fn root_target_is_refused_unless_allow_root() {
    require_root!();
    let s = Scratch::new("root-target");
    let marker = s.join("ran");
    let pol = s.policy(&format!(
        "version = 1\n[identity]\nuser = 0\n[filesystem]\nexec = [{:?}]\nwrite = [{:?}]\n",
        probe_dir().display().to_string(),
        s.path.display().to_string()
    ));
    let o = run_probe(&pol, "touch", &[marker.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("allow_root"), "{}", stderr(&o));
    assert!(!marker.exists(), "the target ran");
}

#[test]
fn check_prints_the_resolved_plan() {
    require_root!();
    let s = Scratch::new("check");
    let pol = s.policy(&base_policy(&[], &[]));
    let o = Command::new(clawjail_bin())
        .args(["check", "--policy"])
        .arg(&pol)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for needle in [
        "[identity]",
        "uid: 65534",
        "[steps]",
        "drop-bounding-set",
        "[landlock]",
        "[seccomp]",
        "[cannot_enforce]",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let o = Command::new(clawjail_bin())
        .args(["check", "--json", "--policy"])
        .arg(&pol)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["identity"]["uid"], 65534);
    assert_eq!(v["policy"]["sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn json_log_lines_parse_and_name_every_control() {
    require_root!();
    let s = Scratch::new("jsonlog");
    let pol = s.policy(&base_policy(&[], &[]));
    let mut c = Command::new(clawjail_bin());
    c.args(["run", "--log-format", "json", "--policy"])
        .arg(&pol)
        .arg("--")
        .arg(probe())
        .arg("sid");
    let o = c.output().unwrap();
    let err = stderr(&o);
    let mut launch = None;
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        if v["message"] == "clawjail launch" {
            launch = Some(v);
        }
    }
    let v = launch.expect("no launch event");
    for k in [
        "policy_sha256",
        "uid",
        "gid",
        "groups",
        "caps_kept",
        "no_new_privs",
        "rlimits",
        "env_names",
        "fds_cloexec_from",
        "session",
        "landlock",
        "seccomp",
        "degraded",
    ] {
        assert!(v.get(k).is_some(), "launch event lacks {k}: {v}");
    }
}

#[test]
fn dry_run_stops_before_the_first_irreversible_step() {
    require_root!();
    let s = Scratch::new("dry");
    let marker = s.join("ran");
    let pol = s.policy(&base_policy(&[], &[s.path.to_str().unwrap()]));
    let mut c = Command::new(clawjail_bin());
    c.args(["run", "--dry-run", "--policy"])
        .arg(&pol)
        .arg("--")
        .arg(probe())
        .args(["touch", marker.to_str().unwrap()]);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("dry run"), "{}", stdout(&o));
    assert!(!marker.exists());
}

/// `clawjail run --init --policy P -- probe ARGS...`, stdout piped.
fn init_cmd(pol: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(clawjail_bin());
    c.args(["run", "--init", "--policy"])
        .arg(pol)
        .arg("--")
        .arg(probe())
        .args(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn proc_field(pid: i32, key: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(&format!("{key}:"))
            .map(|v| v.trim().to_string())
    })
}

#[test]
fn init_adopts_and_reaps_orphaned_grandchildren() {
    require_root!();
    use std::io::BufRead;
    let s = Scratch::new("init-orphan");
    let pol = s.policy(&shared_pid_ns(&base_policy(&[], &[])));
    // The grandchild sleeps 2 s; the target itself stays 5 s so the supervisor is alive.
    let mut child = init_cmd(&pol, &["orphan", "2", "5"]).spawn().unwrap();
    let sup = child.id() as i32;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let gpid: i32 = first.trim_start_matches("ok ").parse().unwrap();
    // Re-parented to clawjail (the subreaper), not to the machine's PID 1.
    assert_eq!(
        proc_field(gpid, "PPid").as_deref(),
        Some(sup.to_string().as_str())
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    // Reaped: not even a zombie is left.
    let state = proc_field(gpid, "State");
    assert!(
        state.is_none(),
        "grandchild {gpid} still present: {state:?}"
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn init_relays_sigterm_and_propagates_exit_codes() {
    require_root!();
    let s = Scratch::new("init-signals");
    let pol = s.policy(&base_policy(&[], &[]));
    let mut child = init_cmd(&pol, &["sleep", "30"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(
        child.wait().unwrap().code(),
        Some(128 + 15),
        "SIGTERM did not reach the target"
    );
    let o = init_cmd(&pol, &["exit", "3"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = init_cmd(&pol, &["kill-self", "9"]).output().unwrap();
    assert_eq!(o.status.code(), Some(128 + 9), "{}", stderr(&o));
}

#[test]
fn init_supervisor_runs_as_the_target_user_without_privileges() {
    require_root!();
    let s = Scratch::new("init-sup");
    let pol = s.policy(&base_policy(&[], &[]));
    let mut child = init_cmd(&pol, &["sleep", "3"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sup = child.id() as i32;
    assert_eq!(
        proc_field(sup, "Uid").as_deref(),
        Some("65534\t65534\t65534\t65534")
    );
    assert_eq!(
        proc_field(sup, "CapEff").as_deref(),
        Some("0000000000000000")
    );
    assert_eq!(
        proc_field(sup, "CapBnd").as_deref(),
        Some("0000000000000000")
    );
    assert_eq!(proc_field(sup, "NoNewPrivs").as_deref(), Some("1"));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn init_child_reads_its_own_proc_self_not_the_supervisors() {
    require_root!();
    // /proc/self in a policy is opened while preparing, in the process that becomes the
    // supervisor; the forked child must get a rule for its own /proc entry.
    let s = Scratch::new("init-proc-self");
    let pol = s.policy(&base_policy(&["/proc/self"], &[]));
    let o = init_cmd(&pol, &["status"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("NoNewPrivs:\t1"),
        "status not readable under --init: {out}{}",
        stderr(&o)
    );
    // Another process's /proc entry (world-readable without Landlock) stays out of reach.
    let o = init_cmd(&pol, &["read", "/proc/1/status"])
        .output()
        .unwrap();
    assert_answer(&o, "errno EACCES");
}

#[test]
fn socket_activation_fds_pass_only_when_the_policy_allows_it() {
    require_root!();
    let s = Scratch::new("listen-fds");
    let sock = s.file("activation", "activated\n", 0o600);
    let run = |pol: &std::path::Path, args: &[&str]| {
        let mut c = Command::new(clawjail_bin());
        c.args(["run", "--policy"])
            .arg(pol)
            .arg("--")
            .arg(probe())
            .args(args);
        inherit_fd(&mut c, &sock, 3, true);
        c.output().unwrap()
    };
    let allowed = s.policy(&format!(
        "{}\n[env]\nsocket_activation = true\n",
        base_policy(&[], &[])
    ));
    assert_answer(&run(&allowed, &["read-fd", "3"]), "ok activated");
    assert_answer(&run(&allowed, &["env-get", "LISTEN_FDS"]), "ok 1");
    // Without the policy key, fd 3 is closed at exec and LISTEN_* never reach the target.
    let s2 = Scratch::new("listen-fds-off");
    let denied = s2.policy(&base_policy(&[], &[]));
    assert_answer(&run(&denied, &["read-fd", "3"]), "errno EBADF");
    assert_answer(&run(&denied, &["env-names"]), "ok");
    assert!(!stdout(&run(&denied, &["env-names"])).contains("LISTEN"));
}

/// These tests look at the target's pid, session and parent from the test's own PID
/// namespace: keep the target in it (a root start gives it a namespace of its own by
/// default; tests/it/isolation.rs covers that mode).
fn shared_pid_ns(policy: &str) -> String {
    format!("{policy}\n[process]\npid_namespace = false\n")
}

/// Start clawjail (as root, CAP_SYS_ADMIN kept) under a seccomp filter that refuses
/// unshare(2) with EPERM, as a container profile or an LSM could while the capability is
/// held: the launch decides the namespaces from CAP_SYS_ADMIN without probing, so it meets
/// the refusal in its `new-namespaces` step.
fn with_unshare_refused(c: &mut Command) {
    // SAFETY: pre_exec runs in the forked child before exec; prctl takes a pointer to a
    // filter program that lives on this stack frame for the duration of the call.
    unsafe {
        c.pre_exec(|| {
            let mut prog = [
                libc::sock_filter {
                    code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                    jt: 0,
                    jf: 0,
                    k: 0, // seccomp_data.nr
                },
                libc::sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 1,
                    k: libc::SYS_unshare as u32,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ALLOW,
                },
            ];
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_mut_ptr(),
            };
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const libc::sock_fprog,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn namespaces_refused_despite_cap_sys_admin_stop_the_launch_before_exec() {
    require_root!();
    let s = Scratch::new("ns-refused");
    let pol = s.policy(&base_policy(&[], &[]));
    let run = |refuse: bool| {
        let mut c = Command::new(clawjail_bin());
        c.args(["run", "--policy"])
            .arg(&pol)
            .arg("--")
            .arg(probe())
            .arg("cwd");
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null());
        if refuse {
            with_unshare_refused(&mut c);
        }
        c.output().unwrap()
    };
    // Control: the same launch without the filter runs the target.
    let ok = run(false);
    assert!(ok.status.success(), "control failed: {}", stderr(&ok));
    assert!(stdout(&ok).starts_with("ok "), "{}", stdout(&ok));
    // Refused: exit 125, the call and the way out named, and the target never ran.
    let refused = run(true);
    assert_eq!(refused.status.code(), Some(125), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(
        err.contains("new-namespaces: unshare(CLONE_NEWPID | CLONE_NEWIPC)"),
        "{err}"
    );
    assert!(err.contains("process.pid_namespace = false"), "{err}");
    assert_eq!(stdout(&refused), "", "the target ran");
    // `check` probes (throwaway children) and says that `run` would stop.
    let mut c = Command::new(clawjail_bin());
    c.args(["check", "--policy"]).arg(&pol);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    with_unshare_refused(&mut c);
    let check = c.output().unwrap();
    let text = format!("{}{}", stdout(&check), stderr(&check));
    assert!(
        text.contains("`run` would stop with exit 125 before exec"),
        "{text}"
    );
}
