//! Integration tests: what Landlock and its scopes do not cover (issue 9) — file metadata
//! outside the grants, other processes of the target's uid (an unrelated one and the
//! supervisor), SysV/POSIX IPC, the PID namespace, inotify.
//!
//! Each attempt has a control: the same probe as uid 65534 without clawjail succeeds, so
//! the refusal under clawjail is clawjail's doing. Where two layers answer (seccomp and
//! the PID or IPC namespace), a policy that switches one off shows the other alone.
use std::io::BufRead;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

#[allow(unused_imports)]
use crate::util::*;

/// A 0600 key owned by uid 65534 in a 0700 directory of its own, outside every grant: the
/// `~/.ssh/id_rsa` of the issue.
fn planted_key(s: &Scratch) -> PathBuf {
    let dir = s.dir("home/.ssh", 0o700, Some((NOBODY, NOBODY)));
    let key = dir.join("id_rsa");
    std::fs::write(&key, "-----BEGIN TEST KEY-----\n").unwrap();
    chown(&key, NOBODY, NOBODY);
    reset_mode(&key);
    key
}

fn reset_mode(p: &Path) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

/// A policy file next to the scratch's `policy.toml`.
fn policy_named(s: &Scratch, name: &str, extra: &str) -> PathBuf {
    s.file(
        &format!("{name}.toml"),
        &format!("{}\n{extra}\n", base_policy(&[], &[])),
        0o644,
    )
}

/// `setpriv` to uid 65534 and `clawjail run` from there: an unprivileged start.
fn run_unprivileged(policy: &Path, action: &str, args: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        clawjail_bin(),
        "run",
        "--policy",
    ])
    .arg(policy)
    .arg("--")
    .arg(probe())
    .arg(action)
    .args(args);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    c.output().unwrap()
}

#[test]
fn mode_owner_xattr_changes_of_a_file_outside_the_grants_are_refused() {
    require_root!();
    let s = Scratch::new("iso-meta");
    let key = planted_key(&s);
    let k = key.to_str().unwrap();
    let errno = policy_named(&s, "errno", "");
    let kill = policy_named(&s, "kill", "[seccomp]\naction = \"kill\"\n");
    let attacks: [(&str, &[&str]); 7] = [
        ("chmod", &[k, "644"]),
        ("chmod", &[k, "604"]),
        ("chmod", &[k, "4600"]),
        ("fchmodat2-opath", &[k, "644"]),
        ("chmod-procfd", &[k, "644"]),
        ("chown", &[k]),
        ("setxattr", &[k]),
    ];
    for (action, args) in attacks {
        reset_mode(&key);
        assert_answer(&bare_probe_as(NOBODY, action, args), "ok");
        for p in [&errno, &kill] {
            reset_mode(&key);
            // EPERM under kill too: a fixed answer, programs meet it in ordinary use.
            assert_answer(&run_probe(p, action, args), "errno EPERM");
            assert_eq!(mode_of(&key), 0o600, "{action} {args:?} changed the mode");
        }
    }
    // The guard is on the mode, not on chmod: owner bits still change (Landlock does not
    // mediate chmod, so this is what any chmod would reach without the guard).
    assert_answer(&run_probe(&errno, "chmod", &[k, "400"]), "ok");
    assert_eq!(mode_of(&key), 0o400);
    reset_mode(&key);
    // fchmod may add group/other read, but only on an fd Landlock let the target open.
    assert_answer(&bare_probe_as(NOBODY, "fchmod", &[k, "644"]), "ok");
    reset_mode(&key);
    assert_answer(&run_probe(&errno, "fchmod", &[k, "644"]), "errno EACCES");
    assert_eq!(mode_of(&key), 0o600);
    // The policy keys reach the filter.
    let open = policy_named(
        &s,
        "open",
        "allow_chown = true\nallow_xattr = true\n", // still inside [filesystem]
    );
    assert_answer(&run_probe(&open, "chown", &[k]), "ok");
    assert_answer(&run_probe(&open, "setxattr", &[k]), "ok");
}

/// A sleeping process of uid 65534 that clawjail did not start.
fn unrelated_process() -> Child {
    Command::new("sleep")
        .arg("60")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

const PROCESS_ATTACKS: [&str; 8] = [
    "prlimit",
    "renice",
    "sched-setaffinity",
    "sched-setparam",
    "sched-setscheduler",
    "sched-setattr",
    "ioprio",
    "get-robust-list",
];

#[test]
fn another_process_of_the_same_uid_is_out_of_reach() {
    require_root!();
    let s = Scratch::new("iso-proc");
    let mut other = unrelated_process();
    let pid = other.id().to_string();
    let in_ns = policy_named(&s, "ns", "");
    let no_ns = policy_named(&s, "nons", "[process]\npid_namespace = false\n");
    let kill = policy_named(
        &s,
        "kill",
        "[process]\npid_namespace = false\n[seccomp]\naction = \"kill\"\n",
    );
    for action in PROCESS_ATTACKS {
        assert_answer(&bare_probe_as(NOBODY, action, &[&pid]), "ok");
        // seccomp alone (no namespace): EPERM, under kill too.
        for p in [&no_ns, &kill] {
            assert_answer(&run_probe(p, action, &[&pid]), "errno EPERM");
        }
        // Both layers: seccomp answers before the kernel looks the pid up, except for the
        // sched_get* read each sched probe makes first (left open, see guards.rs), where
        // the PID namespace answers: the pid does not exist for the target.
        let both = if action.starts_with("sched-") {
            "errno ESRCH"
        } else {
            "errno EPERM"
        };
        assert_answer(&run_probe(&in_ns, action, &[&pid]), both);
    }
    // The caller itself (pid 0) is still fine.
    assert_answer(&run_probe(&in_ns, "prlimit", &["0"]), "ok");
    assert_answer(&run_probe(&in_ns, "renice", &["0"]), "ok");
    // PRIO_USER with who 0 is every process of the uid.
    assert_answer(&bare_probe_as(NOBODY, "prio-user", &[]), "ok");
    assert_answer(&run_probe(&in_ns, "prio-user", &[]), "errno EPERM");
    assert_answer(&run_probe(&in_ns, "renice-user", &["0"]), "errno EPERM");
    // The PID namespace on its own: with signals to outside processes allowed by the
    // policy, the pid does not exist for the target (ESRCH); without the namespace the
    // same signal arrives.
    let sig_ns = policy_named(&s, "signs", "[scope]\nsignal_outside = true\n");
    let sig_no_ns = policy_named(
        &s,
        "signons",
        "[process]\npid_namespace = false\n[scope]\nsignal_outside = true\n",
    );
    assert_answer(&run_probe(&sig_ns, "kill", &[&pid, "18"]), "errno ESRCH");
    assert_answer(&run_probe(&sig_no_ns, "kill", &[&pid, "18"]), "ok");
    other.kill().ok();
    other.wait().ok();
}

/// The supervisor (and, in a PID namespace, the namespace init) runs as the target uid:
/// the target must not reach it either.
#[test]
fn the_supervisor_is_out_of_reach() {
    require_root!();
    let s = Scratch::new("iso-sup");
    // Control: a parent of the same uid that is not clawjail (sh stays, as `; true` follows).
    for action in ["prlimit-parent", "renice-parent"] {
        let o = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(format!("{} {action}; true", probe().display()))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert_answer(&o, "ok");
    }
    let in_ns = policy_named(&s, "ns", "");
    let no_ns = policy_named(&s, "nons", "[process]\npid_namespace = false\n");
    for action in ["prlimit-parent", "renice-parent"] {
        // Default root start: the parent is the namespace init (a clawjail process).
        assert_answer(&run_probe(&in_ns, action, &[]), "errno EPERM");
        // --init without a namespace: the parent is the supervisor itself.
        let mut c = Command::new(clawjail_bin());
        c.args(["run", "--init", "--policy"])
            .arg(&no_ns)
            .arg("--")
            .arg(probe())
            .arg(action)
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        assert_answer(&c.output().unwrap(), "errno EPERM");
    }
}

#[test]
fn the_target_runs_as_pid_2_under_a_namespace_init_that_relays_signals() {
    require_root!();
    let s = Scratch::new("iso-pidns");
    let pol = policy_named(&s, "ns", "");
    let o = run_probe(&pol, "sid", &[]);
    // "ok <sid> <pgid> <pid> <ppid>": the namespace init (pid 1) leads the session.
    assert_eq!(answer(&o), "ok 1 1 2 1", "{}", stderr(&o));
    // SIGTERM to clawjail reaches the target through the supervisor and the init.
    let mut c = Command::new(clawjail_bin());
    c.args(["run", "--policy"])
        .arg(&pol)
        .arg("--")
        .arg(probe())
        .args(["sleep", "30"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(128 + 15));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // SIGKILL of the supervisor ends the namespace: the init dies with it (parent-death
    // signal) and the kernel kills the target.
    let mut child = c.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let children = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .collect::<Vec<_>>()
    };
    let init = children(child.id())[0];
    let target = children(init)[0];
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = |pid: u32| {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !(gone(init) && gone(target)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        gone(init) && gone(target),
        "init {init} / target {target} outlived the supervisor"
    );
    // `check` says which applies.
    let o = Command::new(clawjail_bin())
        .args(["check", "--policy"])
        .arg(&pol)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(out.contains("pid: own PID namespace"), "{out}");
    assert!(out.contains("ipc: own IPC namespace"), "{out}");
    assert!(out.contains("new-namespaces"), "{out}");
}

/// A probe that holds an IPC object as uid 65534 and prints its handle first.
fn holder(action: &str, args: &[&str]) -> (Child, String) {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(probe())
        .arg(action)
        .args(args)
        .env_clear()
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    (child, first.trim_start_matches("ok").trim().to_string())
}

#[test]
fn sysv_and_posix_ipc_of_another_process_is_private_or_refused() {
    require_root!();
    let s = Scratch::new("iso-ipc");
    let (mut shm, id) = holder("shm-hold", &["30"]);
    let mq_name = format!("cj-it-mq-{}", std::process::id());
    let (mut mq, _) = holder("mq-hold", &[&mq_name, "30"]);
    // The holder is killed below, before it can mq_unlink: remove the queue whatever
    // happens, or leaked queues exhaust uid 65534's RLIMIT_MSGQUEUE for later runs.
    let _unlink = Unlinker(mq_name.clone());
    let root = policy_named(&s, "root", "");
    let unpriv = policy_named(&s, "unpriv", "");
    let shared = policy_named(&s, "shared", "[process]\nallow_shared_ipc = true\n");
    // Control: the same uid reads the other process's shared memory and opens its queue.
    assert_answer(
        &bare_probe_as(NOBODY, "shm-attach", &[&id]),
        "ok clawjail-shm-secret",
    );
    assert_answer(&bare_probe_as(NOBODY, "mq-open", &[&mq_name]), "ok");
    // Root start: an IPC namespace of its own; the objects do not exist there, and the
    // target's own SysV IPC works.
    assert_answer(&run_probe(&root, "shm-attach", &[&id]), "errno EINVAL");
    assert_answer(&run_probe(&root, "mq-open", &[&mq_name]), "errno ENOENT");
    assert_answer(&run_probe(&root, "shm-self", &[]), "ok");
    // Unprivileged start: no namespace, so seccomp refuses IPC ...
    assert_answer(
        &run_unprivileged(&unpriv, "shm-attach", &[&id]),
        "errno EPERM",
    );
    assert_answer(
        &run_unprivileged(&unpriv, "mq-open", &[&mq_name]),
        "errno EPERM",
    );
    assert_answer(&run_unprivileged(&unpriv, "shm-self", &[]), "errno EPERM");
    // `check` on that start says which applies, and why.
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            clawjail_bin(),
            "check",
            "--policy",
        ])
        .arg(&unpriv)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        out.contains("pid: shared with the host"),
        "{out}{}",
        stderr(&o)
    );
    assert!(out.contains("ipc: shared with the host"), "{out}");
    assert!(out.contains("not started as root"), "{out}");
    // ... unless the policy allows shared IPC (the key reaches the filter).
    assert_answer(
        &run_unprivileged(&shared, "shm-attach", &[&id]),
        "ok clawjail-shm-secret",
    );
    for c in [&mut shm, &mut mq] {
        c.kill().ok();
        c.wait().ok();
    }
}

/// Documented limits (docs/isolation.md): Landlock ABI 7 does not mediate inotify, and
/// utimensat on a file outside the grants still sets its times. Shown, not hidden.
#[test]
fn inotify_and_utimes_outside_the_grants_are_documented_limits() {
    require_root!();
    let s = Scratch::new("iso-limits");
    let key = planted_key(&s);
    let dir = key.parent().unwrap().to_str().unwrap().to_string();
    let k = key.to_str().unwrap();
    let pol = policy_named(&s, "p", "");
    // Landlock denies reading the directory ...
    assert_answer(&run_probe(&pol, "list", &[&dir]), "errno EACCES");
    // ... but a watch on it is set up (names and timing of what happens inside).
    assert_answer(&bare_probe_as(NOBODY, "inotify", &[&dir]), "ok");
    assert_answer(&run_probe(&pol, "inotify", &[&dir]), "ok");
    assert_answer(&bare_probe_as(NOBODY, "utimes", &[k]), "ok");
    assert_answer(&run_probe(&pol, "utimes", &[k]), "ok");
}

fn verify_rows(policy: &Path) -> std::collections::HashMap<String, serde_json::Value> {
    let o = Command::new(clawjail_bin())
        .args(["verify", "--json", "--policy"])
        .arg(policy)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", stderr(&o)));
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// `verify` shows the new rows, each with a control that succeeded, and follows the keys.
#[test]
fn verify_shows_the_isolation_rows() {
    require_root!();
    let s = Scratch::new("iso-verify");
    let closed = policy_named(&s, "closed", "");
    let rows = verify_rows(&closed);
    for id in [
        "chmod-outside",
        "chmod-opath",
        "chmod-procfd",
        "chown-outside",
        "setxattr-outside",
        "prlimit-outside",
        "renice-outside",
        "affinity-outside",
        "ioprio-outside",
        "prio-user",
        "sysv-shm-outside",
    ] {
        let r = &rows[id];
        assert_eq!(r["status"], "PASS", "{r}");
        assert!(r["control"].as_str().unwrap().starts_with("ok"), "{r}");
        assert!(r["got"].as_str().unwrap().starts_with("errno"), "{r}");
    }
    assert_eq!(
        rows["sysv-shm-outside"]["got"], "errno EINVAL",
        "IPC namespace"
    );
    for id in ["inotify-outside", "utimes-outside"] {
        assert_eq!(rows[id]["status"], "NOT ENFORCEABLE", "{}", rows[id]);
    }
    let open = policy_named(&s, "open", "allow_chown = true\nallow_xattr = true\n");
    let rows = verify_rows(&open);
    for id in ["chown-outside", "setxattr-outside"] {
        assert_eq!(rows[id]["status"], "PASS", "{}", rows[id]);
        assert!(
            rows[id]["got"].as_str().unwrap().starts_with("ok"),
            "{}",
            rows[id]
        );
    }
}

/// Removes a POSIX message queue of uid 65534 when dropped (also when the test panics).
struct Unlinker(String);

impl Drop for Unlinker {
    fn drop(&mut self) {
        let _ = bare_probe_as(NOBODY, "mq-unlink", &[&self.0]);
    }
}
