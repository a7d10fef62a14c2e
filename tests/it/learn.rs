//! `clawjail learn`: a scripted workload learned, then run under the learned policy (works,
//! and one more file is EACCES); the base `deny` stays enforced while learning; an
//! unprivileged start; the real gateway (tests in `learn_gateway`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::util::*;

/// The workload: reads a config, writes a cache, runs git, connects to a test server on
/// loopback; with `extra`, also reads one more file (conf/other.txt).
const WORKLOAD: &str = r#"
import os, socket, subprocess, sys
base = os.path.dirname(os.path.abspath(__file__))
port = int(sys.argv[1])
with open(os.path.join(base, "conf", "app.toml")) as f:
    conf = f.read()
os.makedirs(os.path.join(base, "cache"), exist_ok=True)
with open(os.path.join(base, "cache", "out.txt"), "w") as f:
    f.write(conf)
subprocess.run(["git", "init", "-q", os.path.join(base, "cache", "repo")], check=True)
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"ping")
reply = s.recv(4)
s.close()
if len(sys.argv) > 2:
    try:
        open(os.path.join(base, "conf", "other.txt")).read()
    except PermissionError:
        print("EACCES")
        sys.exit(3)
print("ok", reply.decode())
"#;

/// A loopback server answering "pong" to every connection, for as long as the test runs.
fn pong_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut b = [0u8; 4];
            if c.read(&mut b).is_ok() && c.write_all(b"pong").is_ok() {}
        }
    });
    port
}

fn clawjail(args: &[&str]) -> Output {
    Command::new(clawjail_bin())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The scratch tree: conf/app.toml, conf/other.txt, a cache dir the target owns, the
/// script, a secret the base denies and a public file beside it (the control).
fn workload_tree(name: &str, owner: u32) -> (Scratch, std::path::PathBuf) {
    let s = Scratch::new(name);
    s.file("conf/app.toml", "name = \"demo\"\n", 0o644);
    s.file("conf/other.txt", "one more file\n", 0o644);
    s.file("work.py", WORKLOAD, 0o644);
    s.file("secret", "s3cr3t\n", 0o644);
    s.file("public", "p\n", 0o644);
    s.dir("cache", 0o755, Some((owner, owner)));
    s.dir("home", 0o755, Some((owner, owner)));
    let base = s.file(
        "base.toml",
        &format!(
            "version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n[filesystem]\ndeny = [{:?}]\n[env]\nset = {{ PATH = \"/usr/bin:/bin\", HOME = {:?} }}\n[process]\nworkdir = {:?}\n",
            s.join("secret").display().to_string(),
            s.join("home").display().to_string(),
            s.path.display().to_string(),
        ),
        0o644,
    );
    (s, base)
}

fn learn_workload(s: &Scratch, base: &Path, port: u16) -> (Output, String) {
    let out = s.join("learned.toml");
    let o = clawjail(&[
        "learn",
        "--policy",
        base.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--",
        "/usr/bin/python3",
        s.join("work.py").to_str().unwrap(),
        &port.to_string(),
    ]);
    let learned = std::fs::read_to_string(&out).unwrap_or_default();
    (o, learned)
}

fn reset_cache(s: &Scratch) {
    std::fs::remove_dir_all(s.join("cache/repo")).ok();
    std::fs::remove_file(s.join("cache/out.txt")).ok();
}

fn run_workload(policy: &Path, s: &Scratch, port: u16, extra: bool) -> Output {
    let port = port.to_string();
    let script = s.join("work.py");
    let mut args = vec![
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--",
        "/usr/bin/python3",
        script.to_str().unwrap(),
        &port,
    ];
    if extra {
        args.push("extra");
    }
    clawjail(&args)
}

#[test]
fn learned_policy_runs_the_workload_and_is_tight() {
    require_root!();
    let port = pong_server();
    let (s, base) = workload_tree("learn-py", NOBODY);
    let (o, learned) = learn_workload(&s, &base, port);
    assert!(o.status.success(), "learn failed: {}", stderr(&o));
    assert!(
        !stdout(&o).contains("version = 1"),
        "--out given: no policy on stdout"
    );
    // What the run needed, and nothing as broad as /etc or /usr.
    assert!(learned.contains(&format!("{port},  #")), "{learned}");
    assert!(learned.contains("\"/usr/bin/git\""), "{learned}");
    assert!(
        learned.contains(&format!(
            "{:?}",
            s.join("conf/app.toml").display().to_string()
        )),
        "{learned}"
    );
    assert!(
        learned.contains(&format!("{:?}", s.join("cache").display().to_string())),
        "{learned}"
    );
    for broad in ["\"/etc\"", "\"/usr\"", "\"/\"", "\"/tmp\""] {
        assert!(
            !learned.contains(&format!("  {broad},")),
            "{broad} granted:\n{learned}"
        );
    }
    assert!(learned.contains("# [review]"), "{learned}");
    let policy = s.file("learned-run.toml", &learned, 0o644);

    // Under the learned policy: works.
    reset_cache(&s);
    let o = run_workload(&policy, &s, port, false);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok pong"), "{}", stdout(&o));

    // One more file: EACCES under the learned policy ...
    reset_cache(&s);
    let o = run_workload(&policy, &s, port, true);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("EACCES"), "{}", stdout(&o));
    // ... control: the same variant as the same uid without clawjail reads it.
    reset_cache(&s);
    let o = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "/usr/bin/python3",
        ])
        .arg(s.join("work.py"))
        .args([&port.to_string(), "extra"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", s.join("home"))
        .current_dir(&s.path)
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("ok pong"),
        "control: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn base_deny_stays_unreadable_while_learning() {
    require_root!();
    let (s, base) = workload_tree("learn-deny", NOBODY);
    let learn_cat = |file: &str| {
        let out = s.join(&format!("learned-{file}.toml"));
        clawjail(&[
            "learn",
            "--policy",
            base.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--",
            "/bin/cat",
            s.join(file).to_str().unwrap(),
        ])
    };
    // The denied file: EACCES during learning, not granted, flagged for review.
    let o = learn_cat("secret");
    assert!(!stdout(&o).contains("s3cr3t"));
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    let learned = std::fs::read_to_string(s.join("learned-secret.toml")).unwrap();
    assert!(
        learned.contains("denied by the base policy, kept denied"),
        "{learned}"
    );
    let secret = format!("{:?}", s.join("secret").display().to_string());
    assert!(!learned.contains(&format!("  {secret},")), "{learned}");
    // Control: the file beside it, same owner and mode, is read while learning.
    let o = learn_cat("public");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "p\n");
}

#[test]
fn learn_works_for_an_unprivileged_start() {
    require_root!();
    let port = pong_server();
    let (s, base) = workload_tree("learn-unpriv", NOBODY);
    let out = s.join("learned.toml");
    std::fs::remove_file(&out).ok();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(clawjail_bin())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .current_dir(&s.path)
            .output()
            .unwrap()
    };
    // nobody must be able to write the output: the scratch dir's cache is its own.
    let out = s.join("cache/learned.toml");
    let script = s.join("work.py");
    let o = as_nobody(&[
        "learn",
        "--policy",
        base.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--",
        "/usr/bin/python3",
        script.to_str().unwrap(),
        &port.to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not started as root") || stderr(&o).contains("identity=\"kept\""),
        "{}",
        stderr(&o)
    );
    let learned = std::fs::read_to_string(&out).unwrap();
    assert!(learned.contains("\"/usr/bin/git\""), "{learned}");
    let policy = s.file("learned-unpriv.toml", &learned, 0o644);
    reset_cache(&s);
    std::fs::remove_file(&out).ok();
    let o = as_nobody(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--",
        "/usr/bin/python3",
        script.to_str().unwrap(),
        &port.to_string(),
    ]);
    assert!(
        stdout(&o).contains("ok pong"),
        "{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let o = as_nobody(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--",
        "/usr/bin/python3",
        script.to_str().unwrap(),
        &port.to_string(),
        "extra",
    ]);
    assert!(
        stdout(&o).contains("EACCES"),
        "{}\n{}",
        stdout(&o),
        stderr(&o)
    );
}
