//! Integration tests: root-time file handling never acts through what others planted
//! (issue 11). Each test plants the attack as the target uid (65534) and/or as a third
//! user (uid 61002, a uid no process here runs as: links are given to it with lchown in
//! sticky /tmp), then runs the same thing without the plant (or without the guard) as the
//! control.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::audit::{audit, codes_for, score, wait_ready, Killed, LISTENER};
use crate::util::*;

/// A uid nobody on this machine runs as: the "third user" who plants things.
const THIRD: u32 = 61002;

fn lchown(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
}

/// A unique name directly in sticky /tmp (removed on drop), for links a third user owns.
struct TmpName(PathBuf);
impl TmpName {
    fn new(tag: &str) -> TmpName {
        let p = PathBuf::from(format!("/tmp/cj-planted-{tag}-{}", std::process::id()));
        std::fs::remove_file(&p).ok();
        std::fs::remove_dir_all(&p).ok();
        TmpName(p)
    }
}
impl Drop for TmpName {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// Run `c` with a deadline; kill it when the deadline passes (then `None`).
fn output_within(mut c: Command, limit: Duration) -> Option<Output> {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_cmd(policy: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(clawjail_bin());
    c.args(["run", "--policy"]).arg(policy).arg("--").args(args);
    c.env_clear().env("PATH", "/usr/bin:/bin");
    c
}

#[track_caller]
fn assert_refused(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
}

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

// ---------------------------------------------------------------- policy files

#[test]
fn policy_files_others_can_write_or_own_are_refused() {
    require_root!();
    let s = Scratch::new("pl-pol-owner");
    let text = base_policy(&[], &[]);
    let ok = s.file("ok.toml", &text, 0o644);
    // Control: root-owned 0644 is accepted and the target runs.
    assert_answer(&run_probe(&ok, "umask", &[]), "ok");
    let world = s.file("world.toml", &text, 0o666);
    assert_refused(
        &run_probe(&world, "umask", &[]),
        &["untrusted-policy", "mode 0666", "chmod go-w"],
    );
    let group = s.file("group.toml", &text, 0o664);
    assert_refused(&run_probe(&group, "umask", &[]), &["mode 0664"]);
    // Owned by the target uid (not the caller): it could rewrite its own confinement.
    let target = s.file("target.toml", &text, 0o644);
    chown(&target, NOBODY, NOBODY);
    assert_refused(
        &run_probe(&target, "umask", &[]),
        &["owned by uid 65534", "chown root:root"],
    );
    // Owned by a third user.
    let third = s.file("third.toml", &text, 0o644);
    chown(&third, THIRD, THIRD);
    assert_refused(&run_probe(&third, "umask", &[]), &["uid 61002"]);
}

#[test]
fn policy_through_another_users_link_is_refused() {
    require_root!();
    let s = Scratch::new("pl-pol-link");
    let real = s.file("real.toml", &base_policy(&[], &[]), 0o644);
    // Control: a root-owned link in a root-only directory is followed.
    let root_link = s.join("root-link.toml");
    std::os::unix::fs::symlink(&real, &root_link).unwrap();
    assert_answer(&run_probe(&root_link, "umask", &[]), "ok");
    // A third user's link in sticky /tmp.
    let l = TmpName::new("pol");
    std::os::unix::fs::symlink(&real, &l.0).unwrap();
    lchown(&l.0, THIRD);
    assert_refused(
        &run_probe(&l.0, "umask", &[]),
        &["will not follow", "uid 61002"],
    );
    // The target's own link in a directory it owns.
    let home = s.dir("home", 0o755, Some((NOBODY, NOBODY)));
    let tl = home.join("policy.toml");
    std::os::unix::fs::symlink(&real, &tl).unwrap();
    lchown(&tl, NOBODY);
    assert_refused(&run_probe(&tl, "umask", &[]), &["will not follow"]);
}

#[test]
fn fifo_and_device_policies_are_refused_at_once() {
    require_root!();
    let s = Scratch::new("pl-pol-fifo");
    let fifo = s.join("policy.toml");
    mkfifo(&fifo);
    // Control: a plain open of the FIFO blocks (no writer ever comes).
    let mut cat = Command::new("timeout");
    cat.arg("1").arg("cat").arg(&fifo);
    let o = output_within(cat, Duration::from_secs(10)).unwrap();
    assert_eq!(o.status.code(), Some(124), "cat did not block on the FIFO");
    for p in [fifo.as_path(), Path::new("/dev/zero")] {
        let started = Instant::now();
        let o = output_within(
            run_cmd(p, &[probe().to_str().unwrap(), "umask"]),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("clawjail hung on --policy {}", p.display()));
        assert_refused(&o, &["not a regular file"]);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn huge_env_file_is_refused_without_reading_it() {
    require_root!();
    let s = Scratch::new("pl-env-huge");
    let small = s.file("small.env", "CJ_SMALL=x\n", 0o600);
    // Planted by the target (its own 0600 file is an allowed env file).
    let huge = s.file("huge.env", "", 0o600);
    chown(&huge, NOBODY, NOBODY);
    // 3 GiB sparse: costs no disk, would cost 3 GiB of memory to read.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let pol = |f: &Path| {
        s.file(
            "p.toml",
            &format!(
                "{}\n[env]\nfiles = [{:?}]\n",
                base_policy(&[], &[]),
                f.display().to_string()
            ),
            0o644,
        )
    };
    // Control: the small file is read.
    assert_answer(&run_probe(&pol(&small), "env-get", &["CJ_SMALL"]), "ok x");
    let started = Instant::now();
    let o = output_within(
        run_cmd(&pol(&huge), &[probe().to_str().unwrap(), "env-get", "X"]),
        Duration::from_secs(20),
    )
    .expect("clawjail hung on a 3 GiB env file");
    assert_refused(&o, &["larger than the 65536-byte limit"]);
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ---------------------------------------------------------------- symlink trust

#[test]
fn env_file_link_of_a_third_user_in_sticky_tmp_is_refused() {
    require_root!();
    let s = Scratch::new("pl-env-link");
    let secret = s.file("root-only/other.env", "ROOT_SECRET=x\n", 0o600);
    let pol = |f: &Path| {
        s.file(
            "p.toml",
            &format!(
                "{}\n[env]\nfiles = [{:?}]\n",
                base_policy(&[], &[]),
                f.display().to_string()
            ),
            0o644,
        )
    };
    // Control: root's own link in a root-only directory is followed.
    let root_link = s.join("root-link.env");
    std::os::unix::fs::symlink(&secret, &root_link).unwrap();
    assert_answer(
        &run_probe(&pol(&root_link), "env-get", &["ROOT_SECRET"]),
        "ok x",
    );
    // The attack: uid 61002's link in /tmp (sticky: only 61002 may re-point it).
    let l = TmpName::new("env");
    std::os::unix::fs::symlink(&secret, &l.0).unwrap();
    lchown(&l.0, THIRD);
    let o = run_probe(&pol(&l.0), "env-get", &["ROOT_SECRET"]);
    assert_refused(&o, &["will not follow", "owned by uid 61002"]);
    assert!(!stdout(&o).contains("ok x"));
}

#[test]
fn landlock_path_through_a_third_users_link_is_refused() {
    require_root!();
    let s = Scratch::new("pl-ll-link");
    let f = s.file("data/file.txt", "data\n", 0o644);
    let data = s.join("data");
    let root_link = s.join("root-link");
    std::os::unix::fs::symlink(&data, &root_link).unwrap();
    let pol = |p: &Path| s.policy(&base_policy(&[p.to_str().unwrap()], &[]));
    // Control: through root's link the rule is granted and the read succeeds.
    assert_answer(
        &run_probe(
            &pol(&root_link),
            "read",
            &[root_link.join("file.txt").to_str().unwrap()],
        ),
        "ok",
    );
    let _ = f;
    let l = TmpName::new("ll");
    std::os::unix::fs::symlink(&data, &l.0).unwrap();
    lchown(&l.0, THIRD);
    assert_refused(
        &run_probe(&pol(&l.0), "read", &["/dev/null"]),
        &["will not follow", "uid 61002"],
    );
}

/// `clawjail run` as uid 65534 (an unprivileged start) with `args`.
fn run_as_nobody(policy: &Path, args: &[&str]) -> Output {
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
    .args(args);
    c.env_clear().env("PATH", "/usr/bin:/bin");
    c.stdin(Stdio::null());
    c.output().unwrap()
}

#[test]
fn unprivileged_start_follows_the_users_own_link_outside_the_write_set() {
    require_root!();
    let s = Scratch::new("pl-unpriv-link");
    // ~/.npm-global/bin/openclaw -> the real program, all owned by the user.
    let home = s.dir("home", 0o755, Some((NOBODY, NOBODY)));
    let bin = s.dir("home/.npm-global/bin", 0o755, Some((NOBODY, NOBODY)));
    chown(&s.join("home/.npm-global"), NOBODY, NOBODY);
    let link = bin.join("openclaw");
    std::os::unix::fs::symlink(probe(), &link).unwrap();
    lchown(&link, NOBODY);
    let state = s.dir("home/state", 0o700, Some((NOBODY, NOBODY)));
    let pol = s.policy(&base_policy(&[], &[state.to_str().unwrap()]));
    let l = link.to_str().unwrap();
    // Unprivileged: the user's own link outside the write set is followed.
    assert_answer(&run_as_nobody(&pol, &[l, "umask"]), "ok");
    // Control: a root start does not follow the same user-owned link.
    assert_refused(
        &clawjail_run(&pol, &[l, "umask"], &[]),
        &["will not follow"],
    );
    let _ = home;
}

#[test]
fn unprivileged_start_refuses_links_in_the_write_set_and_third_users_links() {
    require_root!();
    let s = Scratch::new("pl-unpriv-refuse");
    let state = s.dir("home/state", 0o700, Some((NOBODY, NOBODY)));
    chown(&s.join("home"), NOBODY, NOBODY);
    let pol = s.policy(&base_policy(&[], &[state.to_str().unwrap()]));
    // The confined target planted state/evil -> probe for the next launch.
    let evil = state.join("evil");
    std::os::unix::fs::symlink(probe(), &evil).unwrap();
    lchown(&evil, NOBODY);
    let o = run_as_nobody(&pol, &[evil.to_str().unwrap(), "umask"]);
    assert_refused(&o, &["write/create set"]);
    // A third user's link in /tmp.
    let l = TmpName::new("unpriv");
    std::os::unix::fs::symlink(probe(), &l.0).unwrap();
    lchown(&l.0, THIRD);
    let o = run_as_nobody(&pol, &[l.0.to_str().unwrap(), "umask"]);
    assert_refused(&o, &["owned by uid 61002"]);
    // Control: the same program named directly runs.
    assert_answer(
        &run_as_nobody(&pol, &[probe().to_str().unwrap(), "umask"]),
        "ok",
    );
}

#[test]
fn root_start_refuses_a_user_owned_target_link() {
    require_root!();
    let s = Scratch::new("pl-root-link");
    let bin = s.dir("bin", 0o755, Some((NOBODY, NOBODY)));
    let link = bin.join("openclaw");
    std::os::unix::fs::symlink(probe(), &link).unwrap();
    lchown(&link, NOBODY);
    let pol = s.policy(&base_policy(&[], &[]));
    let o = clawjail_run(&pol, &[link.to_str().unwrap(), "umask"], &[]);
    assert_refused(&o, &["will not follow"]);
    // Control: root's link in a root-only directory.
    let rl = s.join("root-openclaw");
    std::os::unix::fs::symlink(probe(), &rl).unwrap();
    assert_answer(
        &clawjail_run(&pol, &[rl.to_str().unwrap(), "umask"], &[]),
        "ok",
    );
}

// ---------------------------------------------------------------- verify

#[test]
fn verify_never_opens_planted_names() {
    require_root!();
    let s = Scratch::new("pl-verify");
    let w = s.dir("w", 0o755, Some((NOBODY, NOBODY)));
    let victim = s.file("victim-home/.npmrc", "precious\n", 0o644);
    chown(&victim, NOBODY, NOBODY);
    let victim2 = s.file("victim2", "precious\n", 0o666);
    // As the target: links for the next pids at the names verify used to create.
    let next = std::process::id();
    for pid in next..next + 300 {
        let l = w.join(format!(".clawjail-verify-{pid}-write"));
        std::os::unix::fs::symlink(&victim, &l).unwrap();
        lchown(&l, NOBODY);
    }
    // As a third user: the same in /tmp for verify's /tmp row.
    let mut tmp_links = Vec::new();
    for pid in next..next + 300 {
        let l = TmpName(PathBuf::from(format!("/tmp/clawjail-verify-{pid}-created")));
        if std::fs::symlink_metadata(&l.0).is_ok() {
            std::mem::forget(l); // not ours
            continue;
        }
        std::os::unix::fs::symlink(&victim2, &l.0).unwrap();
        lchown(&l.0, THIRD);
        tmp_links.push(l);
    }
    let pol = s.policy(&base_policy(&[], &[w.to_str().unwrap()]));
    let o = Command::new(clawjail_bin())
        .args(["verify", "--json", "--policy"])
        .arg(&pol)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&o), stderr(&o)));
    // The rows that create files ran, with their controls, and did what they should.
    let row = |id: &str| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no {id} row: {v:#}"))
            .clone()
    };
    for id in [
        "write-allowed",
        "tmp-create",
        "symlink-escape",
        "hardlink-escape",
    ] {
        assert_eq!(row(id)["status"], "PASS", "{:#}", row(id));
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(std::fs::read_to_string(&victim2).unwrap(), "precious\n");
    // Everything verify made in the write dir is gone; the plants are untouched links.
    for e in std::fs::read_dir(&w).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            e.file_type().unwrap().is_symlink() && name.ends_with("-write"),
            "left behind: {name}"
        );
    }
    // Control: what the old fixed name did (open O_TRUNC as the target) truncates.
    let ctl = s.file("ctl", "precious\n", 0o644);
    chown(&ctl, NOBODY, NOBODY);
    let l = w.join("ctl-link");
    std::os::unix::fs::symlink(&ctl, &l).unwrap();
    let o = bare_probe_as(NOBODY, "write", &[l.to_str().unwrap()]);
    assert_answer(&o, "ok");
    assert_eq!(std::fs::read_to_string(&ctl).unwrap(), "x\n");
}

// ---------------------------------------------------------------- audit

fn state_dir(s: &Scratch) -> PathBuf {
    s.dir("state", 0o700, Some((NOBODY, NOBODY)))
}

#[test]
fn audit_does_not_hang_or_read_through_planted_config() {
    require_root!();
    let s = Scratch::new("pl-audit-cfg");
    let state = state_dir(&s);
    let marker = format!("cj-no-such-process-{}", std::process::id());
    let st = state.to_str().unwrap().to_string();
    let run_audit = || {
        let mut c = Command::new(clawjail_bin());
        c.args(["audit", "--json", "--state-dir", &st, "--process", &marker]);
        let o = output_within(c, Duration::from_secs(20)).expect("audit hung");
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let cfg = state.join("openclaw.json");
    // Control: a regular config is read.
    std::fs::write(&cfg, "{\"gateway\": {\"bind\": \"lan\"}}").unwrap();
    chown(&cfg, NOBODY, NOBODY);
    assert!(codes_for(&run_audit(), &st).contains(&"config-bind-public".to_string()));
    // Planted by the target: a FIFO, then a link to /dev/zero.
    std::fs::remove_file(&cfg).unwrap();
    mkfifo(&cfg);
    chown(&cfg, NOBODY, NOBODY);
    assert!(codes_for(&run_audit(), &st).contains(&"config-unsafe".to_string()));
    std::fs::remove_file(&cfg).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &cfg).unwrap();
    lchown(&cfg, NOBODY);
    let started = Instant::now();
    assert!(codes_for(&run_audit(), &st).contains(&"config-unsafe".to_string()));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn audit_never_lists_or_fixes_through_a_link() {
    require_root!();
    let s = Scratch::new("pl-audit-link");
    let state = state_dir(&s);
    // A root-only directory with a world-readable key (what a listing of /root would show).
    let rootdir = s.dir("rootonly", 0o700, None);
    s.file("rootonly/id.key", "k\n", 0o644);
    let ws = state.join("ws");
    std::os::unix::fs::symlink(&rootdir, &ws).unwrap();
    lchown(&ws, NOBODY);
    let marker = format!("cj-no-such-process-{}", std::process::id());
    let st = state.to_str().unwrap();
    let (_, v) = audit(&["--state-dir", st, "--process", &marker]);
    let through: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["subject"].as_str().unwrap().contains("/ws/"))
        .collect();
    assert!(through.is_empty(), "listed through the link: {through:?}");
    // Control: the same tree as a real directory is listed, with a link-safe fix.
    std::fs::remove_file(&ws).unwrap();
    let real = s.dir("state/ws", 0o700, Some((NOBODY, NOBODY)));
    let key = s.file("state/ws/id.key", "k\n", 0o644);
    chown(&key, NOBODY, NOBODY);
    let (_, v) = audit(&["--state-dir", st, "--process", &marker]);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == key.to_str().unwrap())
        .unwrap_or_else(|| panic!("{v:#}"))
        .clone();
    let fix = f["fix"].as_str().unwrap().to_string();
    assert!(
        fix.starts_with("find -P ") && fix.contains("-execdir"),
        "{fix}"
    );
    // The printed fix, run after the directory was swapped for a link, does not act
    // through it: the root-only key keeps its mode.
    std::fs::remove_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(&rootdir, &ws).unwrap();
    assert!(Command::new("sh")
        .args(["-c", &fix])
        .status()
        .unwrap()
        .success());
    let m = std::fs::metadata(rootdir.join("id.key")).unwrap();
    assert_eq!(m.mode() & 0o777, 0o644, "the fix acted through the link");
    // A state dir reached through a third user's link in /tmp is not walked.
    let l = TmpName::new("state");
    std::os::unix::fs::symlink(&state, &l.0).unwrap();
    lchown(&l.0, THIRD);
    let (_, v) = audit(&["--state-dir", l.0.to_str().unwrap(), "--process", &marker]);
    assert_eq!(
        codes_for(&v, l.0.to_str().unwrap()),
        ["state-dir-behind-link"]
    );
}

fn listener(cmd: &mut Command) -> Killed {
    let mut k = Killed(cmd.stdout(Stdio::piped()).spawn().unwrap());
    assert!(wait_ready(&mut k.0).starts_with("ready"));
    k
}

#[test]
fn audit_knows_supervisors_by_exe_not_by_name() {
    require_root!();
    let s = Scratch::new("pl-audit-comm");
    // An unconfined gateway that calls itself "clawjail" (comm comes from the file name).
    let fake = s.join("clawjail");
    std::fs::copy("/usr/bin/python3", &fake).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = format!("cj-planted-comm-{}", std::process::id());
    // Run by a third user, as a gateway started outside clawjail would be.
    let _fake = listener(
        Command::new("setpriv")
            .args([
                &format!("--reuid={THIRD}"),
                &format!("--regid={THIRD}"),
                "--clear-groups",
            ])
            .arg(&fake)
            .args(["-c", LISTENER, "127.0.0.1", &marker]),
    );
    let (_, v) = audit(&["--process", &marker]);
    assert_eq!(v["processes"].as_array().unwrap().len(), 1, "{v:#}");
    let codes = codes_for(&v, "(clawjail)");
    for want in ["seccomp-off", "not-under-clawjail"] {
        assert!(codes.iter().any(|c| c == want), "{want}: {codes:?}");
    }
    assert!(score(&v) > 0.0);
    // Control: a real clawjail supervisor (--init forks) is skipped; its child is audited
    // and recognised through the supervisor's record.
    let marker2 = format!("cj-planted-init-{}", std::process::id());
    let pol = s.policy(&format!(
        "version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n[filesystem]\nread = [\"/usr/lib\", \"/lib\", \"/etc/ld.so.cache\"]\n[network]\nbind = [0]\n"
    ));
    let mut c = Command::new(clawjail_bin());
    c.args(["run", "--init", "--policy"]).arg(&pol).args([
        "--",
        "/usr/bin/python3",
        "-c",
        LISTENER,
        "127.0.0.1",
        &marker2,
    ]);
    let _real = listener(&mut c);
    let (_, v) = audit(&["--process", &marker2]);
    let procs = v["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "{v:#}");
    assert!(!procs[0]["cmdline"].as_str().unwrap().contains("clawjail"));
    assert!(codes_for(&v, "pid").contains(&"under-clawjail".to_string()));
}

#[test]
fn audit_scores_a_weak_policy_as_exposed() {
    require_root!();
    let s = Scratch::new("pl-audit-weak");
    let strong = s.file(
        "strong.toml",
        &format!("version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n[filesystem]\nread = [\"/usr/lib\", \"/lib\", \"/etc/ld.so.cache\"]\n[network]\nbind = [0]\n"),
        0o644,
    );
    let weak = s.file(
        "weak.toml",
        &format!("version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n[filesystem]\nread = [\"/usr/lib\", \"/lib\", \"/etc/ld.so.cache\"]\nwrite = [\"/\"]\n[network]\nbind = [0]\n[seccomp]\naction = \"log\"\n"),
        0o644,
    );
    let run = |pol: &Path, marker: &str| {
        let mut c = Command::new(clawjail_bin());
        c.args(["run", "--policy"]).arg(pol).args([
            "--",
            "/usr/bin/python3",
            "-c",
            LISTENER,
            "127.0.0.1",
            marker,
        ]);
        listener(&mut c)
    };
    let pid = std::process::id();
    let (m_strong, m_weak) = (format!("cj-strong-{pid}"), format!("cj-weak-{pid}"));
    let _a = run(&strong, &m_strong);
    let _b = run(&weak, &m_weak);
    let (_, vs) = audit(&["--process", &m_strong]);
    let (_, vw) = audit(&["--process", &m_weak]);
    let (cs, cw) = (codes_for(&vs, "pid"), codes_for(&vw, "pid"));
    // Both look confined to /proc (Seccomp 2, NoNewPrivs 1, a run record)...
    for c in [&cs, &cw] {
        assert!(c.contains(&"under-clawjail".to_string()), "{c:?}");
        assert!(!c.contains(&"seccomp-off".to_string()), "{c:?}");
    }
    // ...but only the weak one has the policy findings, and it scores higher.
    assert!(!cs.iter().any(|c| c.starts_with("weak-")), "{cs:?}");
    for want in ["weak-seccomp-log", "weak-write-broad"] {
        assert!(cw.iter().any(|c| c == want), "{want}: {cw:?}");
    }
    assert!(
        score(&vw) >= score(&vs) + 4.0,
        "{} vs {}",
        score(&vw),
        score(&vs)
    );
}

// ---------------------------------------------------------------- /tmp squatting

/// The probe copied outside /tmp (a private /tmp hides the host's, and with it the usual
/// probe copy under /tmp).
fn probe_outside_tmp() -> PathBuf {
    let dir = PathBuf::from(format!("/var/tmp/cj-it-probe-pt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dst = dir.join("clawjail-probe");
    if !dst.exists() {
        std::fs::copy(probe(), &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dst
}

#[test]
fn squatted_tmp_names_are_refused_or_made_private() {
    require_root!();
    let s = Scratch::new_in("/var/tmp", "pl-squat");
    let probe = probe_outside_tmp();
    let pdir = probe.parent().unwrap().to_str().unwrap().to_string();
    let pid = std::process::id();
    let squat = TmpName(PathBuf::from(format!("/tmp/cj-squat-{pid}")));
    let linked = TmpName(PathBuf::from(format!("/tmp/cj-squat-link-{pid}")));
    let policy = |private: bool| {
        s.file(
            "p.toml",
            &format!(
                "version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n[filesystem]\nprivate_tmp = {private}\nexec = [{pdir:?}]\ncreate = [{0:?}, {1:?}]\nwrite = [{0:?}, {1:?}]\n",
                squat.0.display().to_string(),
                linked.0.display().to_string()
            ),
            0o644,
        )
    };
    let run = |pol: &Path, args: &[&str]| {
        let mut all = vec![probe.to_str().unwrap()];
        all.extend_from_slice(args);
        clawjail_run(pol, &all, &[])
    };
    // Control: nobody squats, both start kinds of /tmp work.
    assert_answer(&run(&policy(false), &["umask"]), "ok");
    std::fs::remove_dir_all(&squat.0).ok();
    std::fs::remove_dir_all(&linked.0).ok();
    // A third user creates the name first (and plants a file in it).
    std::fs::create_dir(&squat.0).unwrap();
    std::fs::set_permissions(&squat.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(squat.0.join("planted"), "x").unwrap();
    chown(&squat.0, THIRD, THIRD);
    // The target uid plants a link at the other name.
    std::os::unix::fs::symlink("/etc", &linked.0).unwrap();
    lchown(&linked.0, NOBODY);
    // Shared /tmp: refused, naming the owner and the fix.
    let o = run(&policy(false), &["umask"]);
    assert_refused(&o, &["uid 61002", "private_tmp = true"]);
    // Private /tmp: starts, and sees a fresh, empty directory of its own there.
    let o = run(&policy(true), &["list", squat.0.to_str().unwrap()]);
    assert_answer(&o, "ok 0 entries");
    let made = squat.0.join("made-inside");
    let o = run(&policy(true), &["create", made.to_str().unwrap()]);
    assert_answer(&o, "ok");
    assert!(!made.exists(), "the private /tmp leaked to the host");
    assert!(squat.0.join("planted").exists());
    assert!(std::fs::symlink_metadata(&linked.0)
        .unwrap()
        .file_type()
        .is_symlink());
    std::fs::remove_dir_all(probe.parent().unwrap()).ok();
}

// ---------------------------------------------------------------- run records

#[test]
fn stale_run_records_are_pruned_at_launch() {
    require_root!();
    let dir = Path::new("/run/clawjail");
    std::fs::create_dir_all(dir).unwrap();
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Pids above pid_max never run: their records are stale by construction.
    let base = pid_max + 1 + u64::from(std::process::id()) * 1000;
    let stale: Vec<PathBuf> = (0..500)
        .map(|i| dir.join(format!("{}.json", base + i)))
        .collect();
    let body = |pid: u64, start: u64| {
        format!("{{\"pid\":{pid},\"start_time\":{start},\"policy\":\"p\",\"policy_sha256\":\"x\",\"target\":\"t\",\"uid\":65534,\"clawjail_version\":\"0\"}}")
    };
    for (i, p) in stale.iter().enumerate() {
        std::fs::write(p, body(base + i as u64, 1)).unwrap();
    }
    // A live process with its correct start time: must stay.
    let mut sleeper = Killed(Command::new("sleep").arg("60").spawn().unwrap());
    let spid = sleeper.0.id();
    let stat = std::fs::read_to_string(format!("/proc/{spid}/stat")).unwrap();
    let start: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let live = dir.join(format!("{spid}.json"));
    std::fs::write(&live, body(u64::from(spid), start)).unwrap();
    // Nobody but root can plant there: a third user cannot create a record.
    let o = Command::new("setpriv")
        .args([
            &format!("--reuid={THIRD}"),
            &format!("--regid={THIRD}"),
            "--clear-groups",
        ])
        .args(["touch", "/run/clawjail/planted.json"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "a third user wrote into /run/clawjail");
    // Control: they were there before the launch. Other tests' launches in this same run
    // prune too, so some may already be gone; what must hold is that none survive a launch
    // (and that the live one does). Re-plant any already pruned, right before ours.
    for (i, p) in stale.iter().enumerate() {
        if !p.exists() {
            std::fs::write(p, body(base + i as u64, 1)).unwrap();
        }
    }
    let s = Scratch::new("pl-records");
    let pol = s.policy(&base_policy(&[], &[]));
    let started = Instant::now();
    assert_answer(&run_probe(&pol, "umask", &[]), "ok");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(stale.iter().filter(|p| p.exists()).count(), 0);
    assert!(live.exists(), "a live process's record was pruned");
    std::fs::remove_file(&live).ok();
    sleeper.0.kill().ok();
}
