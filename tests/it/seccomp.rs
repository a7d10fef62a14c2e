//! Integration tests: seccomp.
//!
//! Every denial is shown three ways, so it measures the filter and nothing else:
//! 1. control: the same probe, same uid, same capabilities, same fixture, without clawjail
//!    (setpriv) must succeed. Calls that need a capability keep it on both sides.
//! 2. under the default profile (`action = "errno"`): `errno EPERM`.
//! 3. under `action = "kill"`: killed by SIGSYS, which only seccomp does (Landlock, once
//!    on, answers EPERM/EACCES for mount, ptrace and ioctl too).
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};

#[allow(unused_imports)]
use crate::util::*;

/// The probe as uid 65534 with `caps` (e.g. "sys_admin") inherited and ambient: the
/// control run for a clawjail run that keeps the same capabilities.
fn bare(caps: &[&str], action: &str, args: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups");
    if !caps.is_empty() {
        let list: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
        c.arg(format!("--inh-caps={}", list.join(",")))
            .arg(format!("--ambient-caps={}", list.join(",")));
    }
    c.arg(probe()).arg(action).args(args);
    c.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin");
    c.stdin(Stdio::null());
    c.output().unwrap()
}

/// A policy for uid 65534 that keeps `caps` and sets `[seccomp]`/`[network]` extras.
fn policy(s: &Scratch, caps: &[&str], extra: &str) -> std::path::PathBuf {
    policy_reading(s, caps, extra, &[])
}

/// `policy` plus Landlock read on `paths` (fixtures the probe opens), so only the filter
/// stands between the probe and the guarded call.
fn policy_reading(s: &Scratch, caps: &[&str], extra: &str, paths: &[&str]) -> std::path::PathBuf {
    let keep: Vec<String> = caps
        .iter()
        .map(|c| format!("\"CAP_{}\"", c.to_uppercase()))
        .collect();
    let text = format!(
        "{}\n[capabilities]\nkeep = [{}]\n\n{extra}\n",
        base_policy(
            &[&["/proc/self"][..], paths].concat(),
            &["/dev/ptmx", "/dev/pts", "/dev/null"]
        ),
        keep.join(", ")
    );
    s.policy(&text)
}

fn killed_by_sigsys(o: &Output) -> bool {
    // Exec in place: the probe itself dies by the signal. Behind a supervisor (fork mode)
    // the status is relayed as 128 + SIGSYS.
    o.status.signal() == Some(libc::SIGSYS) || o.status.code() == Some(128 + libc::SIGSYS)
}

#[track_caller]
fn assert_killed(o: &Output) {
    assert!(
        killed_by_sigsys(o),
        "expected death by SIGSYS, got {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Control ok; default filter EPERM; `action = "kill"` SIGSYS.
#[track_caller]
fn assert_filter_denies(name: &str, caps: &[&str], action: &str, args: &[&str]) {
    let control = bare(caps, action, args);
    assert_answer(&control, "ok");
    let s = Scratch::new(name);
    let fixtures: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| a.starts_with('/'))
        .collect();
    assert_answer(
        &run_probe(&policy_reading(&s, caps, "", &fixtures), action, args),
        "errno EPERM",
    );
    let kill = policy_reading(&s, caps, "[seccomp]\naction = \"kill\"\n", &fixtures);
    assert_killed(&run_probe(&kill, action, args));
}

#[test]
fn status_shows_seccomp_filter_mode() {
    require_root!();
    let s = Scratch::new("sc-status");
    let o = run_probe(&policy(&s, &[], ""), "status", &[]);
    assert!(stdout(&o).contains("Seccomp:\t2"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("Seccomp_filters:\t1"),
        "one combined filter: {}",
        stdout(&o)
    );
}

#[test]
fn user_namespaces_are_closed() {
    require_root!();
    assert_filter_denies("sc-unshare", &[], "unshare-userns", &[]);
    assert_filter_denies("sc-clone-ns", &[], "clone-userns", &[]);
}

/// clone3 answers ENOSYS (glibc falls back to clone), even under kill; fork and threads work.
#[test]
fn clone3_is_enosys_and_threads_still_work() {
    require_root!();
    assert_answer(&bare(&[], "clone3", &[]), "ok");
    let s = Scratch::new("sc-clone3");
    for extra in ["", "[seccomp]\naction = \"kill\"\n"] {
        let p = policy(&s, &[], extra);
        assert_answer(&run_probe(&p, "clone3", &[]), "errno ENOSYS");
        let o = run_probe(&p, "fork-and-threads", &[]);
        assert_eq!(answer(&o), "ok threads 12 child 7", "{}", stderr(&o));
    }
}

/// CVE-2017-5226 (TIOCSTI) and CVE-2019-10063 (the same with high bits set in cmd).
#[test]
fn cve_2017_5226_tiocsti_and_cve_2019_10063_high_bits() {
    require_root!();
    assert_filter_denies("sc-tiocsti", &[], "tiocsti", &[]);
    assert_filter_denies("sc-tiocsti-hi", &[], "tiocsti", &["high"]);
}

/// EPERM, never KILL: libuv probes io_uring at start and must fall back.
#[test]
fn io_uring_is_eperm_not_kill() {
    require_root!();
    assert_answer(&bare(&[], "io-uring-setup", &[]), "ok");
    let s = Scratch::new("sc-uring");
    for extra in ["", "[seccomp]\naction = \"kill\"\n"] {
        assert_answer(
            &run_probe(&policy(&s, &[], extra), "io-uring-setup", &[]),
            "errno EPERM",
        );
    }
}

#[test]
fn cross_process_and_kernel_surface_calls_are_denied() {
    require_root!();
    assert_filter_denies("sc-ptrace", &["sys_ptrace"], "ptrace-parent", &[]);
    assert_filter_denies("sc-bpf", &["bpf"], "bpf-map-create", &[]);
    assert_filter_denies("sc-perf", &[], "perf-event-open", &[]);
    assert_filter_denies("sc-keyctl", &[], "keyctl", &[]);
    assert_filter_denies("sc-addkey", &[], "add-key", &[]);
    assert_filter_denies("sc-uffd", &[], "userfaultfd", &[]);
    assert_filter_denies("sc-pers", &[], "personality-rie", &[]);
}

#[test]
fn mount_and_file_handles_are_denied() {
    require_root!();
    let s = Scratch::new("sc-mount-fixture");
    let dir = s.dir("mnt", 0o755, None);
    let file = s.file("f", "x", 0o644);
    let (dir, file) = (dir.to_str().unwrap(), file.to_str().unwrap());
    assert_filter_denies("sc-mount", &["sys_admin"], "mount-tmpfs", &[dir]);
    assert_filter_denies("sc-n2h", &[], "name-to-handle-at", &[file]);
    assert_filter_denies("sc-obh", &["dac_read_search"], "open-by-handle-at", &[file]);
}

#[test]
fn socket_families_outside_tcp_udp_route_netlink_are_denied() {
    require_root!();
    // socket(FAMILY, TYPE, PROTO) as numbers.
    let af_packet = ["17", "3", "768"]; // AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)
    let raw_icmp = ["2", "3", "1"]; // AF_INET, SOCK_RAW, IPPROTO_ICMP
    let audit = ["16", "3", "9"]; // AF_NETLINK, SOCK_RAW, NETLINK_AUDIT
    let mptcp = ["2", "1", "262"]; // AF_INET, SOCK_STREAM, IPPROTO_MPTCP
    assert_filter_denies("sc-packet", &["net_raw"], "socket", &af_packet);
    assert_filter_denies("sc-raw", &["net_raw"], "socket", &raw_icmp);
    assert_filter_denies("sc-audit", &[], "socket", &audit);
    assert_filter_denies("sc-mptcp", &[], "socket", &mptcp);
    let s = Scratch::new("sc-sock-ok");
    let p = policy(&s, &[], "");
    assert_answer(&run_probe(&p, "socket", &["10", "526337", "6"]), "ok"); // AF_INET6 STREAM|NONBLOCK|CLOEXEC TCP
    assert_answer(&run_probe(&p, "socket", &["2", "2", "17"]), "ok"); // AF_INET DGRAM UDP
    assert_answer(&run_probe(&p, "socket", &["16", "3", "0"]), "ok"); // NETLINK_ROUTE
}

/// docker.sock, ssh-agent, journald: pathname sockets Landlock ABI 7 cannot stop.
#[test]
fn af_unix_needs_network_unix() {
    require_root!();
    let unix_stream = ["1", "1", "0"];
    // Control: the same uid without the filter creates the socket.
    assert_answer(&bare(&[], "socket", &unix_stream), "ok");
    // EPERM, and EPERM even under action = "kill": glibc tries nscd's socket on every
    // user lookup (os.userInfo() in the gateway) and falls back; a kill there would take
    // down any program that resolves a user name.
    let s = Scratch::new("sc-unix");
    assert_answer(
        &run_probe(&policy(&s, &[], ""), "socket", &unix_stream),
        "errno EPERM",
    );
    let kill = policy(&s, &[], "[seccomp]\naction = \"kill\"\n");
    assert_answer(&run_probe(&kill, "socket", &unix_stream), "errno EPERM");
    let s = Scratch::new("sc-unix-on");
    let p = policy(&s, &[], "[network]\nunix = true\n");
    assert_answer(&run_probe(&p, "socket", &unix_stream), "ok");
}

/// A SOCK_DGRAM pair can sendto() any pathname socket; stream pairs (Node IPC) work.
#[test]
fn socketpair_dgram_is_refused_stream_works() {
    require_root!();
    assert_filter_denies("sc-sp-dgram", &[], "socketpair", &["2"]);
    let s = Scratch::new("sc-sp-stream");
    let p = policy(&s, &[], "");
    assert_answer(&run_probe(&p, "socketpair", &["1"]), "ok");
    assert_answer(&run_probe(&p, "socketpair", &["5"]), "ok");
}

/// landlock-lsm/linux#41: MSG_FASTOPEN connects without connect().
#[test]
fn sendto_msg_fastopen_is_denied() {
    require_root!();
    assert_filter_denies("sc-tfo", &[], "sendto-fastopen", &[]);
}

/// i386 through int 0x80: the arch check kills it. The bare run shows the kernel has
/// IA32 emulation, so the death is the filter's.
#[test]
fn int80_i386_abi_is_killed() {
    require_root!();
    let control = bare(&[], "int80-getpid", &[]);
    assert!(
        answer(&control).starts_with("ok pid"),
        "{}",
        stdout(&control)
    );
    let s = Scratch::new("sc-int80");
    assert_killed(&run_probe(&policy(&s, &[], ""), "int80-getpid", &[]));
}

/// x32 (bit 30): this kernel has no x32 ABI, so bare gives ENOSYS; the guard answers EPERM
/// (errno) or kills (kill) before the kernel could.
#[test]
fn x32_numbers_get_the_guards_answer() {
    require_root!();
    assert_answer(&bare(&[], "x32-getpid", &[]), "errno ENOSYS");
    let s = Scratch::new("sc-x32");
    assert_answer(
        &run_probe(&policy(&s, &[], ""), "x32-getpid", &[]),
        "errno EPERM",
    );
    let log = policy(&s, &[], "[seccomp]\naction = \"log\"\n");
    assert_answer(&run_probe(&log, "x32-getpid", &[]), "errno EPERM");
    let kill = policy(&s, &[], "[seccomp]\naction = \"kill\"\n");
    assert_killed(&run_probe(&kill, "x32-getpid", &[]));
}

/// Learning mode: what `errno` denies succeeds (and is logged by the kernel).
#[test]
fn log_mode_lets_denied_calls_through() {
    require_root!();
    let s = Scratch::new("sc-log");
    let p = policy(&s, &[], "[seccomp]\naction = \"log\"\n");
    assert_answer(&run_probe(&p, "unshare-userns", &[]), "ok");
    assert_answer(&run_probe(&p, "tiocsti", &[]), "ok");
    // The fixed answers stay: programs rely on them to fall back.
    assert_answer(&run_probe(&p, "clone3", &[]), "errno ENOSYS");
    assert_answer(&run_probe(&p, "io-uring-setup", &[]), "errno EPERM");
}

#[test]
fn policy_allow_and_deny_reach_the_filter() {
    require_root!();
    let s = Scratch::new("sc-allowdeny");
    // Denying an argument-guarded call outright.
    let p = policy(&s, &[], "[seccomp]\ndeny = [\"socketpair\"]\n");
    assert_answer(&run_probe(&p, "socketpair", &["1"]), "errno EPERM");
    // strict does not have perf_event_open either way; custom allows only what it lists.
    let p = policy(&s, &[], "[seccomp]\nprofile = \"strict\"\n");
    assert_answer(
        &run_probe(&p, "fork-and-threads", &[]),
        "ok threads 12 child 7",
    );
}

#[test]
fn unknown_syscall_name_is_a_located_error_with_a_suggestion() {
    let s = Scratch::new("sc-unknown");
    let p = s.policy(&format!(
        "version = 1\n[identity]\nuser = {NOBODY}\n[seccomp]\nallow = [\"opne\"]\n"
    ));
    let o = Command::new(clawjail_bin())
        .args(["check", "--policy"])
        .arg(&p)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("policy.toml:5:10"), "{err}");
    assert!(err.contains("error[unknown-syscall]"), "{err}");
    assert!(err.contains("did you mean \"open\"?"), "{err}");
}

#[test]
fn check_prints_the_table_and_bpf() {
    let s = Scratch::new("sc-check");
    let p = s.policy(&format!("version = 1\n[identity]\nuser = {NOBODY}\n"));
    let o = Command::new(clawjail_bin())
        .args(["check", "--bpf", "--policy"])
        .arg(&p)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("bpf_instructions:"), "{out}");
    assert!(
        out.contains("ioctl (16): allow if (arg1.u32 != TIOCSTI (0x5412)"),
        "{out}"
    );
    assert!(out.contains("clone3 (435): ERRNO(ENOSYS) always"), "{out}");
    assert!(out.contains("ret  KILL_PROCESS"), "{out}");
}

// ---------------------------------------------------------------------------------------
// Node under the default profile.

const NODE_WORKLOAD: &str = r#"
const http = require('http'), fs = require('fs'), cp = require('child_process');
const { Worker } = require('worker_threads'), zlib = require('zlib'), path = require('path');
const crypto = require('crypto');
const [dir, port] = [process.argv[2], Number(process.argv[3])];
const fail = (what) => { throw new Error(what); };
(async () => {
  const f = path.join(dir, 'x.txt');
  fs.writeFileSync(f, 'hello'); fs.appendFileSync(f, ' world');
  if (fs.readFileSync(f, 'utf8') !== 'hello world') fail('fs read');
  fs.mkdirSync(path.join(dir, 'd/e'), { recursive: true });
  fs.renameSync(f, path.join(dir, 'd/e/y.txt'));
  await fs.promises.writeFile(path.join(dir, 'z'), 'async');
  fs.statSync(path.join(dir, 'z')); fs.rmSync(path.join(dir, 'd'), { recursive: true });
  const big = Buffer.alloc(200000, 'a');
  if (zlib.gunzipSync(zlib.gzipSync(big)).length !== big.length) fail('zlib sync');
  await new Promise((res, rej) => zlib.deflate(big, (e, b) => e ? rej(e) : res(b)));
  await new Promise((res, rej) => crypto.scrypt('pw', 'salt', 16, (e, k) => e ? rej(e) : res(k)));
  const out = cp.execFileSync(process.execPath, ['-e', 'process.stdout.write("child")']).toString();
  if (out !== 'child') fail('child_process');
  await new Promise((res, rej) => {
    const w = new Worker('require("worker_threads").parentPort.postMessage(6 * 7)', { eval: true });
    w.on('message', (m) => m === 42 ? res() : rej(new Error('worker message')));
    w.on('error', rej);
  });
  const srv = http.createServer((q, r) => r.end('pong'));
  await new Promise((res) => srv.listen(port, '127.0.0.1', res));
  const body = await new Promise((res, rej) => http.get({ host: '127.0.0.1', port, path: '/' }, (r) => {
    let b = ''; r.on('data', (c) => b += c); r.on('end', () => res(b));
  }).on('error', rej));
  if (body !== 'pong') fail('http');
  await new Promise((res) => srv.close(res));
  console.log('ok node ' + process.version);
})().catch((e) => { console.error(e); process.exit(1); });
"#;

fn node_policy(s: &Scratch, work: &std::path::Path, port: u16, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n\n[filesystem]\n\
         read = [\"/usr\", \"/etc\", \"/proc\", \"/sys\", \"/dev/urandom\", {s:?}]\n\
         write = [{work:?}, \"/dev/null\"]\n\n[network]\nbind = [{port}]\nconnect = [{port}]\n\n{extra}\n",
        s = s.path.display().to_string(),
        work = work.display().to_string(),
    );
    s.policy(&text)
}

fn run_node(node: &str, name: &str, port: u16, runs: usize, extra: &str) {
    let s = Scratch::new(name);
    let script = s.file("workload.js", NODE_WORKLOAD, 0o644);
    let work = s.dir("work", 0o700, Some((NOBODY, NOBODY)));
    let p = node_policy(&s, &work, port, extra);
    let port_s = port.to_string();
    let args = [
        node,
        script.to_str().unwrap(),
        work.to_str().unwrap(),
        port_s.as_str(),
    ];
    for i in 0..runs {
        let o = clawjail_run(&p, &args, &[]);
        assert!(
            o.status.success() && stdout(&o).starts_with("ok node"),
            "{node} run {i}: {:?}\nstdout: {}\nstderr: {}",
            o.status,
            stdout(&o),
            stderr(&o)
        );
    }
}

/// HTTP server and client, fs, child_process, worker_threads, zlib: 20 runs in a row.
#[test]
fn node_workload_under_default_profile() {
    require_root!();
    let node = "/usr/bin/node";
    if !std::path::Path::new(node).exists() {
        eprintln!("skipped: {node} not installed");
        return;
    }
    run_node(node, "sc-node20", free_port(), 20, "");
    if let Some(n24) = std::env::var_os("CLAWJAIL_NODE24") {
        run_node(n24.to_str().unwrap(), "sc-node24", free_port(), 20, "");
    }
}

/// Under kill Node still starts: io_uring answers EPERM (UV_USE_IO_URING=1 makes libuv
/// try it), clone3 ENOSYS, and worker threads run.
#[test]
fn node_starts_under_kill() {
    require_root!();
    let node = "/usr/bin/node";
    if !std::path::Path::new(node).exists() {
        eprintln!("skipped: {node} not installed");
        return;
    }
    let extra = "[seccomp]\naction = \"kill\"\n\n[env]\nset = { UV_USE_IO_URING = \"1\" }\nallow_code_loading_vars = true\n";
    run_node(node, "sc-node-kill", free_port(), 3, extra);
    if let Some(n24) = std::env::var_os("CLAWJAIL_NODE24") {
        run_node(
            n24.to_str().unwrap(),
            "sc-node24-kill",
            free_port(),
            3,
            extra,
        );
    }
}
