//! Integration tests: Landlock (filesystem, exec chain, deny splits, safe paths, TCP,
//! scopes, ABI compatibility, check output, created directories).
//!
//! Every denial is checked twice: under clawjail (the exact errno) and as a control with
//! the same probe, uid 65534 and fixture but without Landlock (`bare_probe_as`), which must
//! succeed; otherwise the denial could come from DAC and the test would prove nothing.
#[allow(unused_imports)]
use crate::util::*;

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const ME: Option<(u32, u32)> = Some((NOBODY, NOBODY));

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Probe under clawjail with extra environment (for the test-only ABI override).
fn run_probe_env(policy: &Path, action: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let probe = s(probe());
    let mut all = vec![probe.as_str(), action];
    all.extend_from_slice(args);
    clawjail_run(policy, &all, env)
}

/// A denial under clawjail with a succeeding control run.
#[track_caller]
fn denied_with_control(policy: &Path, action: &str, args: &[&str], errno: &str) {
    assert_answer(&run_probe(policy, action, args), errno);
    assert_answer(&bare_probe_as(NOBODY, action, args), "ok");
}

fn check_json(policy: &Path, cmd: &[&str]) -> serde_json::Value {
    let out = Command::new(clawjail_bin())
        .args(["check", "--json", "--policy"])
        .arg(policy)
        .arg("--")
        .args(cmd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "check failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn outside_every_list_and_read_only_paths_are_eacces() {
    require_root!();
    let t = Scratch::new("ll-basic");
    let secret = t.file("outside/secret.txt", "secret\n", 0o644);
    let outside = t.join("outside");
    let ro = t.dir("ro", 0o755, ME);
    let ro_file = t.file("ro/file.txt", "ro\n", 0o644);
    chown(&ro_file, NOBODY, NOBODY);
    let pol = t.policy(&base_policy(&[&s(&ro)], &[]));

    denied_with_control(&pol, "read", &[&s(&secret)], "errno EACCES");
    denied_with_control(&pol, "list", &[&s(&outside)], "errno EACCES");
    assert_answer(&run_probe(&pol, "read", &[&s(&ro_file)]), "ok");
    assert_answer(&run_probe(&pol, "list", &[&s(&ro)]), "ok");
    denied_with_control(&pol, "write", &[&s(&ro_file)], "errno EACCES");
    denied_with_control(&pol, "create", &[&s(&ro.join("new"))], "errno EACCES");
}

#[test]
fn write_tree_allows_create_rename_delete() {
    require_root!();
    let t = Scratch::new("ll-write");
    let rw = t.dir("rw", 0o755, ME);
    let pol = t.policy(&base_policy(&[], &[&s(&rw)]));
    let f = s(&rw.join("f"));
    let g = s(&rw.join("g"));
    let d = s(&rw.join("d"));
    assert_answer(&run_probe(&pol, "create", &[&f]), "ok");
    assert_answer(&run_probe(&pol, "write", &[&f]), "ok");
    assert_answer(&run_probe(&pol, "rename", &[&f, &g]), "ok");
    assert_answer(&run_probe(&pol, "mkdir", &[&d]), "ok");
    assert_answer(&run_probe(&pol, "rename", &[&g, &format!("{d}/g")]), "ok");
    assert_answer(&run_probe(&pol, "unlink", &[&format!("{d}/g")]), "ok");
    assert_answer(&run_probe(&pol, "rmdir", &[&d]), "ok");
    assert!(!rw.join("d").exists());
}

#[test]
fn exec_of_unlisted_sh_is_eacces() {
    require_root!();
    let t = Scratch::new("ll-exec");
    let pol = t.policy(&base_policy(&[], &[]));
    denied_with_control(&pol, "exec", &["/bin/sh", "-c", "true"], "errno EACCES");
}

/// The probe (a dynamically linked Rust binary) runs although no list names it, its
/// directory, its loader or its libraries: the exec chain adds them.
#[test]
fn dynamic_target_runs_without_listing_its_loader() {
    require_root!();
    let t = Scratch::new("ll-chain");
    let pol = t.policy(&format!(
        "version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n"
    ));
    assert_answer(&run_probe(&pol, "cwd", &[]), "ok");
    let v = check_json(&pol, &[&s(probe())]);
    let auto = v["landlock"]["automatic"].to_string();
    assert!(auto.contains("PT_INTERP"), "{auto}");
    assert!(auto.contains("library directory"), "{auto}");
}

#[test]
fn sh_script_target_runs_via_its_interpreter() {
    require_root!();
    let t = Scratch::new("ll-sh");
    let script = t.file("run.sh", "#!/bin/sh\necho sh-ok\n", 0o755);
    let pol = t.policy(&format!(
        "version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n"
    ));
    let out = clawjail_run(&pol, &[&s(&script)], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "sh-ok");
}

#[test]
fn env_python_script_target_runs_without_listing_env_or_python() {
    require_root!();
    let Some(stdlib) = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("python3.") && p.join("os.py").exists()
        })
    else {
        eprintln!("skipped: no python3 stdlib under /usr/lib");
        return;
    };
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: no /usr/bin/python3");
        return;
    }
    let t = Scratch::new("ll-py");
    let script = t.file("run.py", "#!/usr/bin/env python3\nprint('py-ok')\n", 0o755);
    // The stdlib is the interpreter's data, not its loader: the policy lists it.
    let pol = t.policy(&format!(
        "version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n[filesystem]\nread = [{:?}]\n[env]\npass = [\"PATH\"]\n",
        s(&stdlib)
    ));
    let out = clawjail_run(&pol, &[&s(&script)], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "py-ok");
}

#[test]
fn deny_under_allowed_parent_is_split_out() {
    require_root!();
    let t = Scratch::new("ll-deny");
    let home = t.dir("home", 0o755, ME);
    t.dir("home/.ssh", 0o700, ME);
    let key = t.file("home/.ssh/id_rsa", "KEY\n", 0o600);
    chown(&key, NOBODY, NOBODY);
    let notes = t.file("home/notes.txt", "notes\n", 0o644);
    let pol = t.policy(&format!(
        "{}deny = [{:?}, {:?}]\n",
        base_policy(&[&s(&home)], &[]),
        s(&home.join(".ssh")),
        s(&home.join(".aws"))
    ));
    denied_with_control(&pol, "read", &[&s(&key)], "errno EACCES");
    assert_answer(&run_probe(&pol, "read", &[&s(&notes)]), "ok");
    let v = check_json(&pol, &[&s(probe())]);
    let splits = v["landlock"]["splits"].to_string();
    assert!(splits.contains(".ssh"), "{splits}");
}

#[test]
fn deny_containing_an_allowed_path_is_refused() {
    require_root!();
    let t = Scratch::new("ll-deny-covers");
    let home = t.dir("home", 0o755, ME);
    let pol = t.policy(&format!(
        "{}deny = [{:?}]\n",
        base_policy(&[&s(&home)], &[]),
        s(&t.path)
    ));
    let out = run_probe(&pol, "exit", &["0"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("covers"), "{}", stderr(&out));
}

#[test]
fn read_path_under_write_parent_is_not_writable() {
    require_root!();
    let t = Scratch::new("ll-narrow");
    let state = t.dir("state", 0o755, ME);
    let cfg = t.file("state/config.json", "{}\n", 0o644);
    chown(&cfg, NOBODY, NOBODY);
    t.dir("state/work", 0o755, ME);
    let pol = t.policy(&base_policy(&[&s(&cfg)], &[&s(&state)]));
    assert_answer(&run_probe(&pol, "read", &[&s(&cfg)]), "ok");
    denied_with_control(&pol, "write", &[&s(&cfg)], "errno EACCES");
    assert_answer(
        &run_probe(&pol, "create", &[&s(&state.join("work/new"))]),
        "ok",
    );
}

#[test]
fn symlink_out_hardlink_in_and_rename_out_are_denied() {
    require_root!();
    let t = Scratch::new("ll-links");
    let rw = t.dir("rw", 0o755, ME);
    let secret = t.file("outside/secret.txt", "secret\n", 0o644);
    let out_dir = t.dir("outdir", 0o755, ME);
    let mine = t.file("outdir/mine.txt", "mine\n", 0o644);
    chown(&mine, NOBODY, NOBODY);
    let link = rw.join("link");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let pol = t.policy(&base_policy(&[], &[&s(&rw)]));

    denied_with_control(&pol, "symlink-read", &[&s(&link)], "errno EACCES");
    // A target-owned source, so protected_hardlinks allows the control.
    assert_answer(
        &run_probe(&pol, "hardlink", &[&s(&mine), &s(&rw.join("in1"))]),
        "errno EXDEV",
    );
    assert_answer(
        &bare_probe_as(NOBODY, "hardlink", &[&s(&mine), &s(&rw.join("in2"))]),
        "ok",
    );
    // Rename of an allowed file into a directory outside every list.
    let a = t.file("rw/a.txt", "a\n", 0o644);
    chown(&a, NOBODY, NOBODY);
    let b = t.file("rw/b.txt", "b\n", 0o644);
    chown(&b, NOBODY, NOBODY);
    // EACCES: the destination grants no make_reg (Refer alone would give EXDEV).
    assert_answer(
        &run_probe(&pol, "rename", &[&s(&a), &s(&out_dir.join("a.txt"))]),
        "errno EACCES",
    );
    assert!(a.exists());
    assert_answer(
        &bare_probe_as(NOBODY, "rename", &[&s(&b), &s(&out_dir.join("b.txt"))]),
        "ok",
    );
}

/// The confined user replaces its granted `workspace` with a symlink to `~/.ssh`; the next
/// launch must refuse instead of granting write access to ~/.ssh.
#[test]
fn planted_symlink_in_place_of_granted_dir_is_refused() {
    require_root!();
    let t = Scratch::new("ll-planted");
    let home = t.dir("home", 0o755, ME);
    t.dir("home/.ssh", 0o700, ME);
    let ws = home.join("workspace");
    std::os::unix::fs::symlink(home.join(".ssh"), &ws).unwrap();
    std::os::unix::fs::lchown(&ws, Some(NOBODY), Some(NOBODY)).unwrap();
    let out_dir = t.dir("out", 0o755, ME);
    let marker = out_dir.join("ran");
    let pol = t.policy(&base_policy(&[], &[&s(&ws), &s(&out_dir)]));
    let out = run_probe(&pol, "touch", &[&s(&marker)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("workspace") && err.contains("symlink"),
        "{err}"
    );
    assert!(err.contains("unsafe-symlink"), "{err}");
    assert!(!marker.exists(), "the target ran");
}

#[test]
fn tcp_connect_and_bind_follow_the_port_lists() {
    require_root!();
    let t = Scratch::new("ll-tcp");
    let unlisted = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let listed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let pu = unlisted.local_addr().unwrap().port();
    let pl = listed.local_addr().unwrap().port();
    let free = |_: ()| {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let bind_unlisted = free(());
    let bind_listed = free(());
    let pol = t.policy(&format!(
        "{}[network]\nconnect = [{pl}]\nbind = [{bind_listed}]\n",
        base_policy(&[], &[])
    ));
    denied_with_control(&pol, "tcp-connect", &[&pu.to_string()], "errno EACCES");
    assert_answer(&run_probe(&pol, "tcp-connect", &[&pl.to_string()]), "ok");
    denied_with_control(
        &pol,
        "tcp-bind",
        &[&bind_unlisted.to_string()],
        "errno EACCES",
    );
    assert_answer(
        &run_probe(&pol, "tcp-bind", &[&bind_listed.to_string()]),
        "ok",
    );
    drop((unlisted, listed));
}

#[test]
fn no_network_section_means_no_tcp() {
    require_root!();
    let t = Scratch::new("ll-notcp");
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let p = l.local_addr().unwrap().port();
    let pol = t.policy(&base_policy(&[], &[]));
    denied_with_control(&pol, "tcp-connect", &[&p.to_string()], "errno EACCES");
}

#[test]
fn abstract_socket_and_signal_outside_are_scoped() {
    require_root!();
    use std::os::linux::net::SocketAddrExt;
    let t = Scratch::new("ll-scope");
    let name = format!("cj-it-abstract-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    // An outside process of the same uid as the target.
    let mut outside = Command::new("sleep")
        .arg("30")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = outside.id().to_string();
    // network.unix = true: the seccomp side allows AF_UNIX, so the scope is what blocks.
    // pid_namespace = false: the outside pid must be nameable, so the scope is what blocks
    // the signal (in a PID namespace of its own the target cannot name it: ESRCH).
    let pol = t.policy(&format!(
        "{}[network]\nunix = true\n[process]\npid_namespace = false\n",
        base_policy(&[], &[])
    ));
    denied_with_control(&pol, "abstract-connect", &[&name], "errno EPERM");
    denied_with_control(&pol, "kill", &[&pid, "18"], "errno EPERM");
    // Opting out restores both.
    let open = t.policy(&format!(
        "{}[network]\nunix = true\n[process]\npid_namespace = false\n[scope]\nabstract_unix_outside = true\nsignal_outside = true\n",
        base_policy(&[], &[])
    ));
    assert_answer(&run_probe(&open, "abstract-connect", &[&name]), "ok");
    assert_answer(&run_probe(&open, "kill", &[&pid, "18"]), "ok");
    outside.kill().ok();
    outside.wait().ok();
}

#[test]
fn min_landlock_abi_above_the_kernel_refuses_before_the_target_runs() {
    require_root!();
    let t = Scratch::new("ll-minabi");
    let out_dir = t.dir("out", 0o755, ME);
    let marker = out_dir.join("ran");
    let pol = t.policy(&format!(
        "{}[kernel]\nmin_landlock_abi = 9\n",
        base_policy(&[], &[&s(&out_dir)])
    ));
    let out = run_probe(&pol, "touch", &[&s(&marker)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("min_landlock_abi"), "{err}");
    assert!(err.contains("resolve_unix (ABI 9)"), "{err}");
    assert!(!marker.exists(), "the target ran");
}

#[test]
fn test_abi_override_3_required_refuses_best_effort_reports_drops() {
    require_root!();
    let t = Scratch::new("ll-abi3");
    let out_dir = t.dir("out", 0o755, ME);
    let marker = out_dir.join("ran");
    let env = [("CLAWJAIL_TEST_LANDLOCK_ABI", "3")];
    let body = format!(
        "{}[network]\nconnect = [443]\n",
        base_policy(&[], &[&s(&out_dir)])
    );
    let required = t.policy(&body);
    let out = run_probe_env(&required, "touch", &[&s(&marker)], &env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("tcp (ABI 4") && err.contains("scopes (ABI 6"),
        "{err}"
    );
    assert!(!marker.exists(), "the target ran under required");

    let best = t.policy(&format!("{body}[kernel]\nlandlock = \"best-effort\"\n"));
    let out = run_probe_env(&best, "touch", &[&s(&marker)], &env);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(marker.exists());
    assert!(err.contains("TEST-ONLY"), "{err}");
    for f in ["tcp", "scopes", "audit"] {
        assert!(
            err.contains(&format!("landlock: {f} dropped")),
            "{f} not reported dropped: {err}"
        );
    }
    assert!(err.contains("PartiallyEnforced"), "{err}");
}

#[test]
fn check_json_has_abi_status_and_rules() {
    require_root!();
    let t = Scratch::new("ll-check");
    let pol = t.policy(&format!(
        "{}[network]\nconnect = [443]\n",
        base_policy(&["/dev/null"], &[])
    ));
    let v = check_json(&pol, &[&s(probe())]);
    let l = &v["landlock"];
    assert!(l["kernel_abi"].as_i64().unwrap() >= 1, "{l}");
    assert!(l["effective_abi"].as_i64().is_some(), "{l}");
    assert!(l["status"].is_string(), "{l}");
    let rules = l["rules"].as_array().unwrap();
    let probe_dir = s(probe_dir());
    assert!(
        rules
            .iter()
            .any(|r| r["path"] == probe_dir.as_str() && r["rights"] == "execute,read_file"),
        "{rules:?}"
    );
    assert!(l["cannot_enforce"].to_string().contains("dynamic loader"));
    assert_eq!(l["net_rules"][0]["port"], 443);
}

#[test]
fn missing_path_names_the_list_and_optional_entries_are_skipped() {
    require_root!();
    let t = Scratch::new("ll-missing");
    let gone = s(&t.join("gone"));
    let pol = t.policy(&base_policy(&[&gone], &[]));
    let out = run_probe(&pol, "exit", &["0"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("filesystem.read") && err.contains(&gone),
        "{err}"
    );
    assert!(err.contains("missing-path"), "{err}");
    let pol = t.policy(&base_policy(&[&format!("?{gone}")], &[]));
    assert_answer(&run_probe(&pol, "cwd", &[]), "ok");
}

#[test]
fn create_makes_target_owned_dirs_and_refuses_foreign_ones() {
    require_root!();
    use std::os::unix::fs::MetadataExt;
    let t = Scratch::new("ll-create");
    let ws = t.join("state/ws");
    let pol = t.policy(&format!(
        "{}create = [{:?}]\n",
        base_policy(&[], &[&s(&ws)]),
        s(&ws)
    ));
    // check creates nothing.
    let v = check_json(&pol, &[&s(probe())]);
    assert!(v["landlock"]["created_dirs"]
        .to_string()
        .contains("would create"));
    assert!(!t.join("state").exists());
    assert_answer(&run_probe(&pol, "create", &[&s(&ws.join("f"))]), "ok");
    for p in [t.join("state"), ws.clone()] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (NOBODY, NOBODY, 0o700)
        );
    }
    // A directory owned by someone else is not reused.
    let foreign = t.dir("foreign", 0o700, Some((1234, 1234)));
    let pol = t.policy(&format!(
        "{}create = [{:?}]\n",
        base_policy(&[], &[]),
        s(&foreign)
    ));
    let out = run_probe(&pol, "exit", &["0"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("owned by uid 1234"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tmp_variable_creates_the_private_tmp() {
    require_root!();
    use std::os::unix::fs::MetadataExt;
    let t = Scratch::new("ll-tmp");
    let pol = t.policy(&base_policy(&[], &["${TMP}"]));
    let f = format!("/tmp/clawjail-{NOBODY}/cj-it-{}", std::process::id());
    assert_answer(&run_probe(&pol, "create", &[&f]), "ok");
    let m = std::fs::metadata(format!("/tmp/clawjail-{NOBODY}")).unwrap();
    assert_eq!(m.uid(), NOBODY);
    assert_eq!(m.mode() & 0o022, 0);
    std::fs::remove_file(&f).ok();
}

/// An unprivileged start (the caller is the target) enforces the same rules.
#[test]
fn unprivileged_start_enforces_landlock() {
    require_root!();
    let t = Scratch::new("ll-unpriv");
    let secret = t.file("outside/secret.txt", "secret\n", 0o644);
    let ok = t.file("ro/ok.txt", "ok\n", 0o644);
    let bin_dir = t.dir("bin", 0o755, None);
    let bin = bin_dir.join("clawjail");
    std::fs::copy(clawjail_bin(), &bin).unwrap();
    let pol = t.policy(&format!(
        "version = 1\n[filesystem]\nexec = [{:?}]\nread = [{:?}]\n",
        s(probe_dir()),
        s(&t.join("ro"))
    ));
    let run = |path: &Path| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["run", "--policy"])
            .arg(&pol)
            .arg("--")
            .arg(probe())
            .arg("read")
            .arg(path)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .output()
            .unwrap()
    };
    assert_answer(&run(&secret), "errno EACCES");
    assert_answer(&run(&ok), "ok");
    assert_answer(&bare_probe_as(NOBODY, "read", &[&s(&secret)]), "ok");
}
