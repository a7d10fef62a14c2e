//! Integration tests: verify. Rows, controls, weakenings that flip rows to FAIL, and a
//! policy that cannot be prepared stopping verify like `run`.
#[allow(unused_imports)]
use crate::util::*;

use std::process::Command;

/// `clawjail verify --json --policy P`: (exit code, JSON report).
fn verify(policy: &std::path::Path, env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let mut c = Command::new(clawjail_bin());
    c.args(["verify", "--json", "--policy", policy.to_str().unwrap()]);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&o), stderr(&o)));
    (o.status.code().unwrap(), v)
}

fn row<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no row {id}: {v:#}"))
}

/// verify built and applied the confinement: no row's confined child failed to confine.
fn confined(v: &serde_json::Value) -> bool {
    for r in v["rows"].as_array().unwrap() {
        let got = r["got"].as_str().unwrap_or("");
        assert!(
            !got.starts_with("not confined"),
            "verify could not confine: {r:#}"
        );
    }
    true
}

fn policy_65534(extra: &str) -> String {
    format!("{}{extra}", base_policy(&["/usr/lib", "/lib"], &[]))
}

#[test]
fn controls_run_as_the_target_uid_without_confinement() {
    require_root!();
    let s = Scratch::new("verify-controls");
    let (code, v) = verify(&s.policy(&policy_65534("")), &[]);
    // The control can do what the confined target must not: the row is meaningful.
    assert!(row(&v, "read-outside")["control"]
        .as_str()
        .unwrap()
        .starts_with("ok"));
    assert!(row(&v, "leaked-fd")["control"]
        .as_str()
        .unwrap()
        .contains("clawjail-verify-leaked-secret"));
    assert!(row(&v, "env-secret")["control"]
        .as_str()
        .unwrap()
        .contains("CLAWJAIL_VERIFY_API_TOKEN"));
    // /etc/shadow is unreadable to uid 65534 anyway: the control says so.
    assert_eq!(row(&v, "etc-shadow")["control"], "errno EACCES");
    // Limits are rows of their own, never failures.
    for id in ["ld-so", "udp"] {
        assert_eq!(row(&v, id)["status"], "NOT ENFORCEABLE");
        assert_eq!(row(&v, id)["kind"], "limit");
    }
    if confined(&v) {
        assert_eq!(row(&v, "read-outside")["status"], "PASS");
        assert_eq!(row(&v, "leaked-fd")["status"], "PASS");
        assert_eq!(row(&v, "env-secret")["status"], "PASS");
        assert_eq!(row(&v, "etc-shadow")["status"], "INCONCLUSIVE");
        assert_eq!(row(&v, "status-nonewprivs")["status"], "PASS");
    } else {
        assert_eq!(code, 1);
        assert_eq!(v["passed"], false);
        assert_eq!(row(&v, "read-outside")["status"], "FAIL");
    }
}

#[test]
fn missing_probe_actions_are_never_a_pass() {
    require_root!();
    let s = Scratch::new("verify-missing");
    let (_, v) = verify(&s.policy(&policy_65534("")), &[]);
    for r in v["rows"].as_array().unwrap() {
        let got = r["got"].as_str().unwrap();
        if got.starts_with("probe action missing") {
            assert_ne!(r["status"], "PASS", "{r:#}");
        }
    }
}

#[test]
fn io_uring_allowed_is_refused_by_verify_as_by_run() {
    require_root!();
    let s = Scratch::new("verify-uring");
    let base = verify(&s.policy(&policy_65534("")), &[]).1;
    assert!(!row(&base, "io-uring")["note"]
        .as_str()
        .unwrap()
        .contains("allows it"));

    // Without [risk] accept, `run` refuses the policy; verify stops with the same located
    // error and exit 125 rather than printing a table for a plan that can never run.
    let weak = policy_65534("[seccomp]\nallow = [\"io_uring_setup\"]\n");
    let o = Command::new(clawjail_bin())
        .args(["verify", "--policy", s.policy(&weak).to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("policy.toml:"), "{}", stderr(&o));
    assert!(stderr(&o).contains("io_uring_setup"), "{}", stderr(&o));

    // `[risk] accept` does not make it runnable either: `run` refuses it, so verify does too
    // (it used to print an ACCEPTED row for a policy that `run` would never apply).
    let accepted = s.policy(&format!("{weak}[risk]\naccept = [\"io-uring\"]\n"));
    let o = Command::new(clawjail_bin())
        .args(["verify", "--policy", accepted.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let r = clawjail_run(&accepted, &["/bin/true"], &[]);
    assert_eq!(r.status.code(), Some(125), "{}", stderr(&r));
}

#[test]
fn unix_sockets_allowed_fail_the_pathname_socket_row() {
    require_root!();
    let s = Scratch::new("verify-unix");
    let (code, v) = verify(&s.policy(&policy_65534("[network]\nunix = true\n")), &[]);
    let r = row(&v, "unix-pathname");
    assert_eq!(r["status"], "FAIL");
    assert!(
        r["note"].as_str().unwrap().contains("network.unix = true"),
        "{r:#}"
    );
    assert_ne!(code, 0);
}

#[test]
fn unknown_risk_names_fail() {
    require_root!();
    let s = Scratch::new("verify-risk");
    let (code, v) = verify(
        &s.policy(&policy_65534("[risk]\naccept = [\"io_uring\"]\n")),
        &[],
    );
    assert_eq!(row(&v, "risk-io_uring")["status"], "FAIL");
    assert_ne!(code, 0);
}

/// A system user whose home is a scratch dir with ~/.ssh/id_ed25519; removed on drop.
struct TempUser {
    name: String,
}

impl TempUser {
    fn new(home: &std::path::Path) -> TempUser {
        let name = format!("cjv{}", std::process::id() % 100_000);
        let ok = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--home-dir",
            ])
            .arg(home)
            .arg(&name)
            .status()
            .unwrap()
            .success();
        assert!(ok, "useradd {name}");
        TempUser { name }
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        Command::new("userdel").arg(&self.name).status().ok();
    }
}

#[test]
fn ssh_keys_under_a_readable_home_fail_unless_denied() {
    require_root!();
    let s = Scratch::new("verify-ssh");
    let home = s.dir("home", 0o700, None);
    let user = TempUser::new(&home);
    let uid = nix::unistd::User::from_name(&user.name)
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    s.dir("home/.ssh", 0o700, None);
    s.file("home/.ssh/id_ed25519", "not a real key\n", 0o600);
    Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(&home)
        .status()
        .unwrap();
    let policy = |deny: &str| {
        format!(
            "version = 1\n[identity]\nuser = {:?}\n[filesystem]\nexec = [{:?}]\nread = [\"~\", \"/usr/lib\", \"/lib\"]\ndeny = [{deny}]\n",
            user.name,
            probe_dir().display().to_string()
        )
    };
    let (code, v) = verify(&s.policy(&policy("")), &[]);
    let r = row(&v, "home-ssh");
    assert_eq!(r["status"], "FAIL", "{r:#}");
    assert!(
        r["note"]
            .as_str()
            .unwrap()
            .contains("filesystem.read \"~\""),
        "{r:#}"
    );
    assert!(
        r["control"].as_str().unwrap().starts_with("ok"),
        "the user can read its own key: {r:#}"
    );
    assert_ne!(code, 0);

    let (_, v) = verify(&s.policy(&policy("\"~/.ssh\"")), &[]);
    let r = row(&v, "home-ssh");
    assert!(!r["note"].as_str().unwrap().contains("allows it"), "{r:#}");
    if confined(&v) {
        assert_eq!(r["status"], "PASS", "{r:#}");
    }
}

#[test]
fn best_effort_on_an_older_abi_shows_unenforced_rows_as_fail() {
    require_root!();
    let s = Scratch::new("verify-abi");
    let p = policy_65534("[network]\nconnect = [443]\n[kernel]\nlandlock = \"best-effort\"\n");
    // ABI 3 has no TCP rules: the kernel cannot enforce network.connect.
    // CLAWJAIL_TEST_LANDLOCK_ABI is the test-only override of the Landlock module.
    let (code, v) = verify(&s.policy(&p), &[("CLAWJAIL_TEST_LANDLOCK_ABI", "3")]);
    assert_ne!(code, 0);
    if confined(&v) {
        assert_eq!(row(&v, "tcp-connect-unlisted")["status"], "FAIL");
    }
}

#[test]
fn shipped_policies_pass() {
    require_root!();
    // The OpenClaw tiers need the npm prefix scripts/test.sh installs (and the user).
    let prefix = std::env::var("CLAWJAIL_OPENCLAW_PREFIX").ok();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut c = Command::new(clawjail_bin());
        c.args(["verify", "--json", "--policy"]).arg(&path);
        if name.starts_with("openclaw-") {
            match &prefix {
                Some(p) => {
                    c.arg("--var").arg(format!("OPENCLAW_PREFIX={p}"));
                }
                None => {
                    eprintln!("skipped: {name}: CLAWJAIL_OPENCLAW_PREFIX not set (scripts/test.sh installs openclaw)");
                    continue;
                }
            }
        }
        let o = c.output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{name}: no JSON ({e}): {}", stderr(&o)));
        assert!(confined(&v));
        assert_eq!(v["passed"], true, "{name}: {v:#}");
        assert_eq!(o.status.code(), Some(0), "{name}");
        // No FAIL row, and every deny row that stayed INCONCLUSIVE is covered by a PASS
        // in its layer (settled); no row is "probe action missing" or broken.
        for r in v["rows"].as_array().unwrap() {
            assert_ne!(r["status"], "FAIL", "{name}: {r}");
            let note = r["note"].as_str().unwrap_or("");
            assert!(
                !note.contains("probe action missing") && !note.contains("could not be set up"),
                "{name}: {r}"
            );
        }
    }
}

#[test]
fn terminal_row_passes_and_its_control_reaches_the_terminal() {
    require_root!();
    let s = Scratch::new("verify-tty");
    // Without /dev/tty in the policy, Landlock refuses it; the fds are the new pty.
    let (_, v) = verify(&s.policy(&policy_65534("")), &[]);
    let r = row(&v, "terminal");
    assert!(
        r["control"]
            .as_str()
            .unwrap()
            .starts_with("ok fd 0 is the terminal"),
        "{r:#}"
    );
    if confined(&v) {
        assert_eq!(r["status"], "PASS", "{r:#}");
        assert_eq!(r["got"], "errno EACCES", "{r:#}");
    }
    // With /dev/tty granted, it opens: it is the target's own new pty, not verify's.
    let with_tty = base_policy(&["/usr/lib", "/lib"], &["/dev/tty"]);
    let (_, v) = verify(&s.policy(&with_tty), &[]);
    let r = row(&v, "terminal");
    if confined(&v) {
        assert_eq!(r["status"], "PASS", "{r:#}");
        assert_eq!(r["got"], "errno ENXIO", "{r:#}");
    }
}

/// A plan `run` cannot prepare stops `verify` with run's exit code (125) and the one located
/// error, instead of a table of "not confined" rows.
#[test]
fn verify_stops_at_a_plan_error_like_run() {
    require_root!();
    let s = Scratch::new("verify-plan-error");
    let text =
        policy_65534("").replacen(&format!("user = {NOBODY}"), "user = \"no-such-user-cj\"", 1);
    assert!(
        text.contains("no-such-user-cj"),
        "fixture policy changed: {text}"
    );
    let p = s.policy(&text);
    let o = Command::new(clawjail_bin())
        .args(["verify", "--policy", p.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(125),
        "stderr: {err}\nstdout: {}",
        stdout(&o)
    );
    assert!(err.contains("no-such-user-cj"), "{err}");
    assert!(err.contains(":"), "located: {err}");
    assert!(!stdout(&o).contains("STATUS"), "no table: {}", stdout(&o));
    // Same exit and message as `run` of the same policy.
    let r = clawjail_run(&p, &["/bin/true"], &[]);
    assert_eq!(r.status.code(), Some(125));
}

/// The `[egress]` rows of verify (src/verify/egress.rs), with a policy whose allowlist is
/// one name on 443. verify itself never sends outside (each confined attempt runs inside
/// `run`'s namespace, each control in a fresh one); the test still runs it inside a
/// network namespace it makes, holding only `lo`, as every network test here does.
const EGRESS_ROWS: &[&str] = &[
    "egress-metadata-443",
    "egress-metadata-80",
    "egress-rfc1918-10",
    "egress-rfc1918-192",
    "egress-ula",
    "egress-loopback",
    "egress-public-literal",
    "egress-dns-exfil",
    "egress-unlisted-name",
    "egress-sni-mismatch",
    "egress-quic",
];

fn egress_policy() -> String {
    policy_65534(
        "[network]\nconnect = [443]\n[egress]\ndomains = [\"api.example.com\"]\nports = [443]\n",
    )
}

/// `verify --json` in a test-made network namespace; `unprivileged`: as uid 65534.
fn verify_in_netns(
    policy: &std::path::Path,
    unprivileged: bool,
    env: &[(&str, &str)],
) -> (i32, serde_json::Value) {
    let mut c = Command::new("unshare");
    c.args(["-n", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh"]);
    if unprivileged {
        c.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
    }
    c.args([clawjail_bin(), "verify", "--json", "--policy"])
        .arg(policy)
        .current_dir("/");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&o), stderr(&o)));
    (o.status.code().unwrap(), v)
}

fn egress_rows_pass(unprivileged: bool) {
    let s = Scratch::new(if unprivileged {
        "verify-egress-u"
    } else {
        "verify-egress"
    });
    let t = std::time::Instant::now();
    let (code, v) = verify_in_netns(&s.policy(&egress_policy()), unprivileged, &[]);
    eprintln!("verify with [egress]: {:?}", t.elapsed());
    for id in EGRESS_ROWS {
        let r = row(&v, id);
        assert_eq!(r["status"], "PASS", "{r:#}");
        // The control reached the probe's own listener: the refusal is the broker's.
        assert!(r["control"].as_str().unwrap().starts_with("ok"), "{r:#}");
    }
    assert_eq!(v["passed"], true, "{v:#}");
    assert_eq!(code, 0);
}

#[test]
fn verify_egress_rows_pass_with_controls_root_start() {
    require_root!();
    egress_rows_pass(false);
}

#[test]
fn verify_egress_rows_pass_with_controls_unprivileged_start() {
    require_root!();
    egress_rows_pass(true);
}

/// With the broker out of the way (the test-only hook, honoured only in a test-made
/// network namespace), the same attempts are refused by nothing the broker logged: the
/// rows FAIL. Without the hook outside a test namespace, the hook is refused.
#[test]
fn verify_egress_rows_fail_without_the_broker() {
    require_root!();
    let s = Scratch::new("verify-egress-nobroker");
    let p = s.policy(&egress_policy());
    let (code, v) = verify_in_netns(&p, false, &[("CLAWJAIL_VERIFY_TEST_NO_BROKER", "1")]);
    assert_ne!(code, 0);
    for id in [
        "egress-metadata-443",
        "egress-rfc1918-10",
        "egress-unlisted-name",
        "egress-dns-exfil",
        "egress-sni-mismatch",
    ] {
        assert_eq!(row(&v, id)["status"], "FAIL", "{:#}", row(&v, id));
    }
    // A policy without [egress] has no egress rows (and says destinations are not controlled).
    let (_, v) = verify_in_netns(&s.policy(&policy_65534("")), false, &[]);
    assert!(!v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"].as_str().unwrap().starts_with("egress-")));
}

/// The scratch directory goes where no rule of the plan reaches, decided by inode: a read
/// entry that reaches /var/tmp through a symlink (a name the policy spells differently)
/// moves it elsewhere, so the read-outside row attempts a file that really is outside.
/// Deciding by the entry's name (a path prefix) put it in /var/tmp, under the rule, and
/// the row failed.
#[test]
fn scratch_avoids_what_a_symlinked_entry_reaches() {
    require_root!();
    let s = Scratch::new("verify-scratch-link");
    let link = s.join("vartmp");
    std::os::unix::fs::symlink("/var/tmp", &link).unwrap();
    let p = base_policy(&["/usr/lib", "/lib", link.to_str().unwrap()], &[]);
    let (_, v) = verify(&s.policy(&p), &[]);
    let r = row(&v, "read-outside");
    assert!(r["control"].as_str().unwrap().starts_with("ok"), "{r:#}");
    if confined(&v) {
        assert_eq!(r["status"], "PASS", "{r:#}");
    }
}
