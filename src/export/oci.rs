//! `clawjail export oci-seccomp`: the policy's seccomp table as an OCI `linux.seccomp`
//! profile (runc/crun `config.json`, `podman|docker run --security-opt seccomp=FILE`, the
//! Security Profiles Operator's SeccompProfile spec).
//!
//! The profile must never allow what clawjail refuses. libseccomp (2.5.4 with runc 1.1.5,
//! measured here) compares arguments as 64-bit values, so two obvious translations are
//! wrong: `ALLOW ioctl if arg1 != TIOCSTI` blocks TIOCSTI but lets `TIOCSTI | 1 << 32`
//! through (the kernel truncates the `unsigned int` command, so that *is* TIOCSTI,
//! CVE-2019-10063), and a conditional ERRNO rule beside an unconditional ALLOW of the same
//! syscall is silently dropped. So every argument rule is emitted as ALLOW rules that use
//! only `SCMP_CMP_MASKED_EQ` with masks inside the compared width (a 32-bit compare masks
//! with 0xffffffff, so high bits are ignored exactly as the kernel ignores them), and a
//! `!=` is rewritten as the union of "differs from the value first at bit b" cubes, which
//! needs no `!=` at all. Nothing is ever both allowed unconditionally and refused
//! conditionally. A guard that cannot be rewritten exactly (too many cubes, or an allowed
//! region that overlaps a fixed-errno region) makes the whole syscall refused (stricter),
//! and is listed in `stricter`. The unit tests evaluate the emitted rules with libseccomp's
//! 64-bit semantics against clawjail's own filter (`SeccompPlan::expected`), including
//! high-bit arguments.

use serde::Serialize;
use serde_json::{json, Value};

use super::Resolved;
use crate::policy::SeccompAction;
use crate::seccomp::rules::{Cond, Op, Rule, Width};
use crate::seccomp::{syscalls, Verdict};

/// A set of argument values: `(arg & mask) == value`. `mask == 0` is every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cube {
    pub mask: u64,
    pub value: u64,
}

impl Cube {
    const ALL: Cube = Cube { mask: 0, value: 0 };

    fn intersect(self, o: Cube) -> Option<Cube> {
        let common = self.mask & o.mask;
        if self.value & common != o.value & common {
            return None;
        }
        Some(Cube {
            mask: self.mask | o.mask,
            value: self.value | o.value,
        })
    }

    pub fn contains(self, arg: u64) -> bool {
        arg & self.mask == self.value
    }
}

fn width_mask(w: Width) -> u64 {
    match w {
        Width::Dword => 0xffff_ffff,
        Width::Qword => u64::MAX,
    }
}

/// The values of one argument a condition accepts, as disjoint cubes.
fn cubes(c: &Cond) -> Vec<Cube> {
    let w = width_mask(c.width);
    match c.op {
        Op::Eq => vec![Cube {
            mask: w,
            value: c.value & w,
        }],
        Op::MaskedEq(m) => vec![Cube {
            mask: m & w,
            value: c.value & m & w,
        }],
        // x != p  <=>  x differs from p first at some bit b: bits below b equal p's, bit b
        // is the opposite. One cube per bit of the compared width, pairwise disjoint.
        Op::Ne => {
            let p = c.value & w;
            (0..64)
                .filter(|b| w & (1u64 << b) != 0)
                .map(|b| {
                    let below = (1u64 << b) - 1;
                    let bit = 1u64 << b;
                    Cube {
                        mask: (below & w) | bit,
                        value: (p & below & w) | (!p & bit),
                    }
                })
                .collect()
        }
    }
}

/// One rule (AND of conditions) as the cartesian product of per-argument cube sets.
/// `None` if it has more than `limit` alternatives.
fn rule_products(rule: &Rule, limit: usize) -> Option<Vec<[Cube; 6]>> {
    let mut per_arg: Vec<Vec<Cube>> = vec![vec![Cube::ALL]; 6];
    for c in &rule.conds {
        let i = usize::from(c.arg).min(5);
        let next: Vec<Cube> = per_arg[i]
            .iter()
            .flat_map(|a| cubes(c).into_iter().filter_map(move |b| a.intersect(b)))
            .collect();
        per_arg[i] = next;
    }
    let mut out: Vec<[Cube; 6]> = vec![[Cube::ALL; 6]];
    for (i, set) in per_arg.iter().enumerate() {
        let mut next = Vec::new();
        for combo in &out {
            for c in set {
                let mut n = *combo;
                n[i] = *c;
                next.push(n);
                if next.len() > limit {
                    return None;
                }
            }
        }
        out = next;
    }
    Some(out)
}

fn overlaps(a: &[Cube; 6], b: &[Cube; 6]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.intersect(*y).is_some())
}

/// At most this many ALLOW alternatives per syscall before it is refused instead.
const MAX_RULES_PER_SYSCALL: usize = 256;

/// One OCI syscall entry.
#[derive(Debug, Clone, Serialize)]
pub struct OciSyscall {
    pub names: Vec<String>,
    pub action: &'static str,
    #[serde(rename = "errnoRet", skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<OciArg>,
}

/// One OCI argument condition; always MASKED_EQ (value = mask, valueTwo = datum).
#[derive(Debug, Clone, Serialize)]
pub struct OciArg {
    pub index: u8,
    pub value: u64,
    #[serde(rename = "valueTwo")]
    pub value_two: u64,
    pub op: &'static str,
}

/// The profile plus what it had to make stricter.
#[derive(Debug, Clone)]
pub struct OciProfile {
    pub default_action: &'static str,
    pub default_errno: Option<u32>,
    pub syscalls: Vec<OciSyscall>,
    /// Syscalls refused outright because their guard had no exact rewrite.
    pub stricter: Vec<String>,
}

impl OciProfile {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "defaultAction": self.default_action,
            // x86_64 only: i386 and x32 calls hit libseccomp's bad-arch action (the kernel
            // kills i386 under clawjail too; x32 is refused by both).
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": self.syscalls,
        });
        if let (Some(e), Value::Object(m)) = (self.default_errno, &mut v) {
            m.insert("defaultErrnoRet".into(), json!(e));
        }
        v
    }

    /// libseccomp's answer for a call: Some(errno) for ERRNO, None for ALLOW; KILL is
    /// reported as Some(-1). Reference semantics for the tests: 64-bit MASKED_EQ.
    pub fn answer(&self, name: &str, args: &[u64; 6]) -> Option<i32> {
        let mut allowed = false;
        let mut errno = None;
        for s in self
            .syscalls
            .iter()
            .filter(|s| s.names.iter().any(|n| n == name))
        {
            let m = s
                .args
                .iter()
                .all(|a| args[usize::from(a.index)] & a.value == a.value_two);
            if m {
                match s.action {
                    "SCMP_ACT_ALLOW" => allowed = true,
                    _ => errno = s.errno_ret.map(|e| e as i32),
                }
            }
        }
        if let Some(e) = errno {
            return Some(e);
        }
        if allowed {
            return None;
        }
        Some(self.default_errno.map_or(-1, |e| e as i32))
    }
}

fn masked_args(c: &[Cube; 6]) -> Vec<OciArg> {
    c.iter()
        .enumerate()
        .filter(|(_, c)| c.mask != 0)
        .map(|(i, c)| OciArg {
            index: i as u8,
            value: c.mask,
            value_two: c.value,
            op: "SCMP_CMP_MASKED_EQ",
        })
        .collect()
}

/// Build the profile from the resolved table.
pub fn profile(r: &Resolved) -> OciProfile {
    let (default_action, default_errno) = match r.seccomp_action {
        SeccompAction::Kill => ("SCMP_ACT_KILL_PROCESS", None),
        // Log is refused by export::resolve; errno otherwise.
        SeccompAction::Errno | SeccompAction::Log => ("SCMP_ACT_ERRNO", Some(libc::EPERM as u32)),
    };
    let mut plain: Vec<String> = Vec::new();
    let mut out: Vec<OciSyscall> = Vec::new();
    let mut stricter = Vec::new();
    let mut fixed: std::collections::BTreeMap<i32, Vec<String>> = Default::default();
    for e in r.seccomp.entries() {
        match &e.verdict {
            Verdict::Allow => plain.push(e.name.to_string()),
            Verdict::Deny => {}
            Verdict::Errno(errno) => fixed.entry(*errno).or_default().push(e.name.to_string()),
            Verdict::AllowIf(rules) => match conditional(e.name, rules, default_errno) {
                Some(mut v) => out.append(&mut v),
                None => stricter.push(format!(
                    "{}: its argument guard has no exact MASKED_EQ form; refused outright (clawjail allows it with arguments: {})",
                    e.name, e.from
                )),
            },
        }
    }
    // clawjail's own needs that the table lacks (e.g. under `profile = "custom"`): the
    // container's entrypoint is clawjail, so it must be able to confine and exec.
    // A need overrides a denial (the policy's or a guard's): the outer layer lets
    // clawjail make the call, clawjail's own filter still refuses it to the target. A
    // guarded or fixed-answer syscall keeps its outer rule; clawjail's own calls satisfy it.
    for n in super::needs::syscalls(&r.needs) {
        let entry = r.seccomp.entries().iter().find(|e| e.name == n);
        let denied = entry.is_none_or(|e| e.verdict == Verdict::Deny);
        if denied && syscalls::number(n).is_some() {
            plain.push(n.to_string());
        }
    }
    plain.sort_unstable();
    plain.dedup();
    let mut all = vec![OciSyscall {
        names: plain,
        action: "SCMP_ACT_ALLOW",
        errno_ret: None,
        args: Vec::new(),
    }];
    for (errno, names) in fixed {
        all.push(OciSyscall {
            names,
            action: "SCMP_ACT_ERRNO",
            errno_ret: Some(errno as u32),
            args: Vec::new(),
        });
    }
    all.extend(out);
    OciProfile {
        default_action,
        default_errno,
        syscalls: all,
        stricter,
    }
}

/// ALLOW rules (and ERRNO rules for fixed answers that differ from the default) for one
/// guarded syscall, or None if no exact form exists.
fn conditional(name: &str, rules: &[Rule], default_errno: Option<u32>) -> Option<Vec<OciSyscall>> {
    let mut allow: Vec<[Cube; 6]> = Vec::new();
    let mut refuse: Vec<([Cube; 6], i32)> = Vec::new();
    for rule in rules {
        let prods = rule_products(rule, MAX_RULES_PER_SYSCALL)?;
        match rule.refuse {
            None => {
                // First match wins in clawjail: an allow region that overlaps an earlier
                // refusal would be allowed here. No exact form: refuse the syscall.
                if prods
                    .iter()
                    .any(|p| refuse.iter().any(|(q, _)| overlaps(p, q)))
                {
                    return None;
                }
                allow.extend(prods);
            }
            Some(errno) => {
                if prods.iter().any(|p| allow.iter().any(|q| overlaps(p, q))) {
                    return None;
                }
                refuse.extend(prods.into_iter().map(|p| (p, errno)));
            }
        }
        if allow.len() > MAX_RULES_PER_SYSCALL {
            return None;
        }
    }
    let mut v: Vec<OciSyscall> = allow
        .iter()
        .map(|c| OciSyscall {
            names: vec![name.to_string()],
            action: "SCMP_ACT_ALLOW",
            errno_ret: None,
            args: masked_args(c),
        })
        .collect();
    for (c, errno) in refuse {
        // The same errno as the default needs no rule (and none can conflict).
        if default_errno == Some(errno as u32) {
            continue;
        }
        v.push(OciSyscall {
            names: vec![name.to_string()],
            action: "SCMP_ACT_ERRNO",
            errno_ret: Some(errno as u32),
            args: masked_args(&c),
        });
    }
    Some(v)
}

/// What the profile cannot carry: left to clawjail's own layers.
pub fn left_to_clawjail() -> Vec<&'static str> {
    vec![
        "Landlock filesystem rules (read/write/exec/deny): no OCI field (runtime-spec#1241 is unmerged)",
        "Landlock TCP bind/connect ports and scopes (abstract unix sockets, signals)",
        "paths behind pointers: connect/bind addresses, open paths, clone3's flags (clone3 answers ENOSYS so glibc falls back to the guarded clone)",
        "identity switch, capability sets, no_new_privs, rlimits, umask, environment allowlist, fd hygiene, signal reset, new session",
    ]
}

/// `--json` and text output.
pub fn render(r: &Resolved) -> super::Rendered {
    let p = profile(r);
    let prof = p.to_json();
    let text = match serde_json::to_string_pretty(&prof) {
        Ok(s) => s + "\n",
        Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
    };
    super::Rendered {
        text,
        json: json!({
            "engine": "oci-seccomp",
            "policy": r.file,
            "policy_sha256": r.sha256,
            "start": r.start.name(),
            "profile": prof,
            "stricter_than_clawjail": p.stricter,
            "left_to_clawjail": left_to_clawjail(),
            "clawjail_needs": r.needs,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{resolve, Start};
    use crate::policy::{self, Origin, Source};
    use crate::seccomp::bpf;
    use crate::seccomp::guards::*;

    pub(crate) fn resolved(text: &str) -> Resolved {
        let loaded =
            policy::load(Source::new(Origin::Flag("p.toml".into()), text.to_string())).unwrap();
        resolve(&loaded, &crate::export::tests::opts(Start::User)).unwrap()
    }

    fn base(extra: &str) -> String {
        format!("version = 1\n[identity]\nuser = 65534\ngroup = 65534\n{extra}")
    }

    /// The emitted rules never allow what clawjail refuses, and (for exact rewrites) allow
    /// exactly what it allows, for every guarded syscall, with ordinary and high-bit args.
    #[test]
    fn profile_agrees_with_clawjail_on_guarded_calls_including_high_bits() {
        for unix in [false, true] {
            let r = resolved(&base(&format!("[network]\nunix = {unix}\n")));
            let p = profile(&r);
            assert!(p.stricter.is_empty(), "{:?}", p.stricter);
            let hi = 1u64 << 32;
            let mut samples: Vec<u64> = vec![0, 1, 2, 3, 5, 6, 8, 10, 16, 17, 30, 0x20000];
            for v in [
                TIOCSTI,
                TIOCLINUX,
                0x541b,
                0x5401,
                MSG_FASTOPEN,
                CLONE_NAMESPACE_FLAGS,
            ] {
                samples.push(v);
            }
            samples.extend([
                0x1000_0000,
                0x4000_0000,
                0x0001_1000,
                0x0040_0000,
                0xffff_ffff,
            ]);
            let with_hi: Vec<u64> = samples
                .iter()
                .flat_map(|v| [*v, v | hi, v | (1 << 63)])
                .collect();
            for e in r.seccomp.entries() {
                let Verdict::AllowIf(_) = e.verdict else {
                    continue;
                };
                for a0 in &with_hi {
                    for a1 in &with_hi {
                        for a2 in [0u64, 6, 17, 30, 262, 0x300, 1 | hi] {
                            for a3 in [0u64, MSG_FASTOPEN, MSG_FASTOPEN | hi] {
                                let args = [*a0, *a1, a2, a3, a3, 0];
                                let want = r.seccomp.expected(e.nr, &args);
                                let got = p.answer(e.name, &args);
                                let want_ans = if want == bpf::RET_ALLOW {
                                    None
                                } else if want & 0xffff_0000 == bpf::RET_ERRNO {
                                    Some((want & 0xffff) as i32)
                                } else {
                                    Some(-1)
                                };
                                assert_eq!(got, want_ans, "{} {:x?}", e.name, args);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn no_syscall_is_both_unconditionally_allowed_and_conditional() {
        let r = resolved(&base(""));
        let p = profile(&r);
        let plain: Vec<&String> = p.syscalls[0].names.iter().collect();
        for s in &p.syscalls[1..] {
            for n in &s.names {
                assert!(
                    !plain.contains(&n),
                    "{n} allowed unconditionally and also has rules"
                );
            }
            assert!(s.args.iter().all(|a| a.op == "SCMP_CMP_MASKED_EQ"));
        }
        // Fixed answers survive: clone3 ENOSYS, io_uring EPERM.
        assert_eq!(p.answer("clone3", &[0; 6]), Some(libc::ENOSYS));
        assert_eq!(p.answer("io_uring_setup", &[0; 6]), Some(libc::EPERM));
        assert_eq!(p.answer("ptrace", &[0; 6]), Some(libc::EPERM));
    }

    #[test]
    fn policy_allow_and_deny_change_the_profile() {
        let with = |extra: &str, name: &str| {
            let p = profile(&resolved(&base(extra)));
            p.answer(name, &[0; 6]).is_none()
        };
        assert!(with("", "uname"));
        assert!(!with("[seccomp]\ndeny = [\"uname\"]\n", "uname"));
        // A need wins over a policy deny: clawjail calls getpid itself before exec; its
        // own filter still denies it to the target (docs/export.md).
        assert!(with("[seccomp]\ndeny = [\"getpid\"]\n", "getpid"));
        assert!(!with("", "sethostname"));
        let kill = profile(&resolved(&base("[seccomp]\naction = \"kill\"\n")));
        assert_eq!(kill.default_action, "SCMP_ACT_KILL_PROCESS");
        // socket(AF_UNIX) keeps its fixed EPERM under kill.
        assert_eq!(
            kill.answer("socket", &[1, 1, 0, 0, 0, 0]),
            Some(libc::EPERM)
        );
    }
}
