//! Filter cost: ns per call bare, under clawjail's default filter (balanced tree) and under
//! the same allowlist as a plain seccompiler linear chain, plus each filter's install time.
//! Run with `scripts/bench-seccomp.sh` (or `cargo bench --bench seccomp`); Linux x86_64.
//!
//! Each variant runs in a fresh child process (a filter cannot be removed): the bench
//! re-executes itself with `--child VARIANT`. Calls measured:
//! - getppid: no argument rules, so the kernel's per-syscall cache (Linux 5.11) skips the
//!   filter entirely: the cost should be ~0 under both filters;
//! - sendto on an unconnected UDP socket (EDESTADDRREQ, so no packet is sent): argument
//!   rules (MSG_FASTOPEN), the filter runs on every call;
//! - an x32 getpid (bit 30): denied, the linear chain's worst case (every comparison).

use std::process::Command;
use std::time::Instant;

use clawjail::policy::{self, Origin, Source};
use clawjail::seccomp::{self, SeccompInputs, SeccompPlan};

const CALLS: u32 = 300_000;
const ROUNDS: usize = 15;
const INSTALLS: usize = 15;

fn default_plan() -> SeccompPlan {
    let src = Source::new(Origin::Flag("bench".into()), "version = 1\n".into());
    let loaded = match policy::load(src) {
        Ok(l) => l,
        Err(e) => fail(&e.to_string()),
    };
    match seccomp::prepare(&SeccompInputs {
        src: &loaded.source,
        cfg: &loaded.policy.seccomp,
        guards: Default::default(),
    }) {
        Ok(p) => p,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("bench-seccomp: {msg}");
    std::process::exit(1)
}

fn linear_program(plan: &SeccompPlan) -> Vec<libc::sock_filter> {
    match seccomp::linear::seccompiler_equivalent(plan) {
        Ok(p) => seccomp::bpf::to_kernel(&p),
        Err(e) => fail(&format!("seccompiler: {e}")),
    }
}

/// Best-of-ROUNDS ns per call of `f`.
fn ns_per_call(mut f: impl FnMut()) -> f64 {
    for _ in 0..CALLS / 10 {
        f();
    }
    (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..CALLS {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .fold(f64::INFINITY, f64::min)
}

/// In the child: install the variant's filter, then print "install_ns getppid sendto x32".
fn child(variant: &str) {
    let plan = default_plan();
    let linear = linear_program(&plan);
    if let Err((call, e)) = clawjail::nnp::set_no_new_privs(&mut clawjail::kernel::Real) {
        fail(&format!("{call}: {e}"));
    }
    let t = Instant::now();
    let installed = match variant {
        "bare" => Ok(()),
        // One `ret ALLOW`: every syscall is cached as allowed, so this is the fixed price
        // of being a seccomp'd task at all (the syscall-entry work path), the floor.
        "floor" => clawjail::sys::seccomp_set_mode_filter(&[libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        }]),
        "tree" => plan
            .install(&mut clawjail::kernel::Real)
            .map_err(|(_, e)| e),
        "linear" => clawjail::sys::seccomp_set_mode_filter(&linear),
        other => fail(&format!("unknown variant {other}")),
    };
    let install_ns = t.elapsed().as_nanos();
    if let Err(e) = installed {
        fail(&format!("install {variant}: {e}"));
    }
    if std::env::args().any(|a| a == "--install-only") {
        println!("{install_ns}");
        return;
    }
    use nix::sys::socket::{send, socket, AddressFamily, MsgFlags, SockFlag, SockType};
    let udp = match socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::empty(),
        None,
    ) {
        Ok(s) => s,
        Err(e) => fail(&format!("socket: {e}")),
    };
    let getppid = ns_per_call(|| {
        std::hint::black_box(nix::unistd::getppid());
    });
    let sendto = ns_per_call(|| {
        // send(2) is sendto(fd, buf, len, flags, NULL, 0): EDESTADDRREQ, nothing sent.
        std::hint::black_box(send(
            std::os::fd::AsRawFd::as_raw_fd(&udp),
            b"x",
            MsgFlags::MSG_DONTWAIT,
        ))
        .ok();
    });
    let x32 = ns_per_call(|| {
        std::hint::black_box(clawjail::probe::run(
            clawjail::probe::Action::X32Getpid,
            &[],
        ));
    });
    println!("{install_ns} {getppid:.1} {sendto:.1} {x32:.1}");
}

fn spawn(variant: &str, install_only: bool) -> Vec<f64> {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => fail(&format!("current_exe: {e}")),
    };
    let mut c = Command::new(exe);
    c.args(["--child", variant]);
    if install_only {
        c.arg("--install-only");
    }
    let out = match c.output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => fail(&format!(
            "{variant}: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => fail(&format!("spawn: {e}")),
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn median_install_us(variant: &str) -> f64 {
    let mut v: Vec<f64> = (0..INSTALLS)
        .filter_map(|_| spawn(variant, true).first().copied())
        .collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN) / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(args.get(i + 1).map_or("", String::as_str));
        return;
    }
    let plan = default_plan();
    let tree_len = plan.program().len();
    let linear_len = linear_program(&plan).len();
    let bare = spawn("bare", false);
    let floor = spawn("floor", false);
    let tree = spawn("tree", false);
    let linear = spawn("linear", false);
    let (tree_us, linear_us) = (median_install_us("tree"), median_install_us("linear"));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "seccomp filter cost, kernel {}, {CALLS} calls, best of {ROUNDS} rounds",
        kernel.trim()
    );
    println!("default profile: clawjail tree {tree_len} instructions (depth {}), seccompiler linear {linear_len} instructions\n", plan.view().bpf_tree_depth);
    println!(
        "{:<38} {:>9} {:>18} {:>18} {:>20}",
        "ns per call (+ over bare)",
        "bare",
        "ret-ALLOW floor",
        "clawjail tree",
        "seccompiler linear"
    );
    let rows = [
        (1, "getppid (no rules: kernel-cached)"),
        (2, "sendto UDP (argument rules, nr 44)"),
        (3, "x32 getpid (denied, end of chain)"),
    ];
    for (i, label) in rows {
        let (b, f, t, l) = (bare[i], floor[i], tree[i], linear[i]);
        println!(
            "{label:<38} {b:>9.1} {:>18} {:>18} {:>20}",
            format!("{f:.1} ({:+.1})", f - b),
            format!("{t:.1} ({:+.1})", t - b),
            format!("{l:.1} ({:+.1})", l - b)
        );
    }
    println!(
        "{:<38} {:>9} {:>18} {:>18} {:>20}",
        "install, median of 15 (us)",
        "-",
        "-",
        format!("{tree_us:.1}"),
        format!("{linear_us:.1}")
    );
    println!(
        "\nThe floor is what any filter costs a syscall on this kernel, even one the kernel's"
    );
    println!(
        "cache allows without running BPF; the filter's own work is the column minus the floor."
    );
}
