//! Integration tests: audit. Fixtures are built here (a state dir, listening processes
//! matched by a per-test marker) and the JSON findings are asserted by code.
#[allow(unused_imports)]
use crate::util::*;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

/// `clawjail audit --json ARGS`: (exit code, parsed JSON).
pub(crate) fn audit(args: &[&str]) -> (i32, serde_json::Value) {
    let o = Command::new(clawjail_bin())
        .arg("audit")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&o), stderr(&o)));
    (o.status.code().unwrap(), v)
}

pub(crate) fn codes_for(v: &serde_json::Value, subject_contains: &str) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["subject"].as_str().unwrap().contains(subject_contains))
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn score(v: &serde_json::Value) -> f64 {
    v["score"].as_f64().unwrap()
}

/// A process that listens on ADDR:0, prints "ready PORT", then sleeps; MARKER is in argv.
pub(crate) const LISTENER: &str = "import socket,sys,time\ns=socket.socket()\ns.bind((sys.argv[1],0))\ns.listen()\nprint('ready',s.getsockname()[1],flush=True)\ntime.sleep(60)";

pub(crate) struct Killed(pub(crate) Child);
impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

pub(crate) fn wait_ready(c: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(c.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

#[test]
fn state_dir_modes_are_findings_with_fixes() {
    let s = Scratch::new("audit-state");
    let state = s.dir("state", 0o755, None);
    let env = s.file("state/.env", "OPENAI_API_KEY=x\n", 0o644);
    s.file(
        "state/openclaw.json",
        "{\"gateway\": {\"bind\": \"lan\", \"auth\": {\"mode\": \"none\"}}}",
        0o600,
    );
    let marker = format!("cj-no-such-process-{}", std::process::id());
    let state_s = state.to_str().unwrap();
    let (code, v) = audit(&["--state-dir", state_s, "--process", &marker]);
    assert_eq!(code, 0, "no --threshold: exit 0");
    let dir_codes = codes_for(&v, state_s);
    for want in [
        "state-dir-mode",
        "secret-file-mode",
        "config-bind-public",
        "config-auth-off",
    ] {
        assert!(dir_codes.iter().any(|c| c == want), "{want} missing: {v:#}");
    }
    let fix = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "secret-file-mode")
        .unwrap()["fix"]
        .as_str()
        .unwrap()
        .to_string();
    // The fix never acts through a link: find -P ... -execdir (see planted.rs for the swap).
    assert_eq!(
        fix,
        format!(
            "find -P '{}' -path '{}' ! -type l -execdir chmod 600 {{}} +",
            state.display(),
            env.display()
        )
    );
    let before = score(&v);

    // Apply the fixes (the printed one for .env, run as printed): the findings go and the
    // score drops.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let ran = std::process::Command::new("sh")
        .args(["-c", &fix])
        .status()
        .unwrap();
    assert!(ran.success());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&env).unwrap().mode() & 0o777, 0o600);
    s.file(
        "state/openclaw.json",
        "{\"gateway\": {\"bind\": \"loopback\", \"auth\": {\"mode\": \"token\"}}}",
        0o600,
    );
    let (_, v) = audit(&["--state-dir", state_s, "--process", &marker]);
    assert!(codes_for(&v, state_s).is_empty(), "{v:#}");
    assert!(score(&v) < before, "{} !< {before}", score(&v));
}

#[test]
fn root_on_all_interfaces_scores_worse_than_confined_on_loopback() {
    require_root!();
    let pid = std::process::id();
    let root_marker = format!("cj-audit-root-{pid}");
    let mut root = Killed(
        Command::new("/usr/bin/python3")
            .args(["-c", LISTENER, "0.0.0.0", &root_marker])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(wait_ready(&mut root.0).starts_with("ready"));

    let (_, v_root) = audit(&["--process", &root_marker]);
    assert_eq!(
        v_root["processes"].as_array().unwrap().len(),
        1,
        "{v_root:#}"
    );
    let codes = codes_for(&v_root, "pid");
    for want in [
        "root-uid",
        "listen-all-interfaces",
        "seccomp-off",
        "no-new-privs-off",
        "caps-effective",
        "not-under-clawjail",
    ] {
        assert!(codes.iter().any(|c| c == want), "{want} missing: {codes:?}");
    }

    let conf_marker = format!("cj-audit-nobody-{pid}");
    let (mut nobody, under_clawjail) = start_confined_listener(&conf_marker);
    assert!(wait_ready(&mut nobody.0).starts_with("ready"));
    let (_, v_conf) = audit(&["--process", &conf_marker]);
    let codes = codes_for(&v_conf, "pid");
    assert!(codes.iter().any(|c| c == "listen-loopback"), "{codes:?}");
    for bad in [
        "root-uid",
        "listen-all-interfaces",
        "caps-effective",
        "no-new-privs-off",
    ] {
        assert!(!codes.iter().any(|c| c == bad), "{bad} present: {codes:?}");
    }
    if under_clawjail {
        assert!(codes.iter().any(|c| c == "under-clawjail"), "{codes:?}");
    }
    let (s_root, s_conf) = (score(&v_root), score(&v_conf));
    assert!(
        s_conf < s_root,
        "confined {s_conf} should score below root {s_root}"
    );

    // --threshold flips the exit code between the two scores.
    let t = format!("{s_conf}");
    assert_eq!(audit(&["--process", &conf_marker, "--threshold", &t]).0, 0);
    assert_eq!(audit(&["--process", &root_marker, "--threshold", &t]).0, 1);
}

/// uid 65534 on 127.0.0.1 under `clawjail run`.
fn start_confined_listener(marker: &str) -> (Killed, bool) {
    let s = Scratch::new("audit-run");
    let policy = s.policy(&format!(
        "version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n[filesystem]\nread = [\"/usr/lib\", \"/lib\", \"/etc\"]\n[network]\nbind = [0]\n"
    ));
    let try_run = Command::new(clawjail_bin())
        .args([
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            "/usr/bin/python3",
            "-c",
            LISTENER,
            "127.0.0.1",
            marker,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut c = Killed(try_run);
    // A refusal exits at once with 125; a running target keeps going.
    std::thread::sleep(std::time::Duration::from_millis(500));
    if let Some(status) = c.0.try_wait().unwrap() {
        let mut err = String::new();
        std::io::Read::read_to_string(c.0.stderr.as_mut().unwrap(), &mut err).ok();
        panic!("clawjail run did not start the listener ({status}): {err}");
    }
    (c, true)
}
