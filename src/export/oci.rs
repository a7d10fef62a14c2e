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

/// `a \ b` for one argument, as disjoint cubes: for each bit `b` fixes and `a` leaves
/// free, one cube where the bits before it agree with `b` and this bit differs. A bit both
/// fix to different values makes them disjoint (then `a` is returned whole).
fn cube_minus(a: Cube, b: Cube) -> Vec<Cube> {
    if a.intersect(b).is_none() {
        return vec![a];
    }
    let mut out = Vec::new();
    let mut agreed = a;
    for bit in (0..64)
        .map(|i| 1u64 << i)
        .filter(|m| b.mask & m & !a.mask != 0)
    {
        out.push(Cube {
            mask: agreed.mask | bit,
            value: agreed.value | (!b.value & bit),
        });
        agreed = Cube {
            mask: agreed.mask | bit,
            value: agreed.value | (b.value & bit),
        };
    }
    out
}

/// `a \ b` for a whole rule (six arguments), as disjoint products: the part where argument
/// i is outside `b[i]` while the arguments before it are inside.
fn product_minus(a: &[Cube; 6], b: &[Cube; 6]) -> Vec<[Cube; 6]> {
    if !overlaps(a, b) {
        return vec![*a];
    }
    let mut out = Vec::new();
    let mut inside = *a;
    for i in 0..6 {
        for c in cube_minus(a[i], b[i]) {
            let mut p = inside;
            p[i] = c;
            out.push(p);
        }
        match a[i].intersect(b[i]) {
            Some(c) => inside[i] = c,
            None => break,
        }
    }
    out
}

/// Everything in `set` that no product of `minus` covers, as disjoint products; None
/// beyond `limit` products.
fn subtract(set: Vec<[Cube; 6]>, minus: &[[Cube; 6]], limit: usize) -> Option<Vec<[Cube; 6]>> {
    let mut cur = set;
    for m in minus {
        cur = cur.iter().flat_map(|p| product_minus(p, m)).collect();
        if cur.len() > limit {
            return None;
        }
    }
    Some(cur)
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
    // Two refinements: a need clawjail makes with arguments outside the target's guard
    // (`unguarded`) drops the guard's rules for an unconditional ALLOW; a denied syscall
    // clawjail makes only with certain flags (`flags_only`: unshare, mount) is allowed
    // only with those, so the outer layer still refuses e.g. unshare(CLONE_NEWUSER).
    let unguarded: Vec<&str> = r
        .needs
        .iter()
        .flat_map(|n| n.unguarded.iter().copied())
        .collect();
    let mut flags_only: std::collections::BTreeMap<&str, (u8, u64)> = Default::default();
    for n in &r.needs {
        for (name, arg, bits) in n.flags_only {
            let e = flags_only.entry(name).or_insert((*arg, 0));
            e.1 |= bits;
        }
    }
    for n in super::needs::syscalls(&r.needs) {
        let entry = r.seccomp.entries().iter().find(|e| e.name == n);
        let denied = entry.is_none_or(|e| e.verdict == Verdict::Deny);
        if syscalls::number(n).is_none() {
            continue;
        }
        if unguarded.contains(&n) && entry.is_some_and(|e| matches!(e.verdict, Verdict::AllowIf(_)))
        {
            out.retain(|s| s.names != [n]);
            stricter.retain(|s| !s.starts_with(&format!("{n}:")));
            plain.push(n.to_string());
        } else if let (true, Some((arg, bits))) = (denied, flags_only.get(n)) {
            out.push(OciSyscall {
                names: vec![n.to_string()],
                action: "SCMP_ACT_ALLOW",
                errno_ret: None,
                args: vec![OciArg {
                    index: *arg,
                    value: !bits,
                    value_two: 0,
                    op: "SCMP_CMP_MASKED_EQ",
                }],
            });
        } else if denied {
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
        // First match wins in clawjail, and libseccomp must never see overlapping ALLOW and
        // ERRNO rules: each rule keeps only the part no earlier rule answered. So "allow
        // pid 0, else EPERM" becomes ALLOW(pid == 0) plus ERRNO over the 32 cubes of
        // "pid != 0", which are disjoint from it.
        let earlier: Vec<[Cube; 6]> = allow
            .iter()
            .copied()
            .chain(refuse.iter().map(|(q, _)| *q))
            .collect();
        let prods = subtract(prods, &earlier, MAX_RULES_PER_SYSCALL)?;
        match rule.refuse {
            None => allow.extend(prods),
            Some(errno) => refuse.extend(prods.into_iter().map(|p| (p, errno))),
        }
        if allow.len() + refuse.len() > MAX_RULES_PER_SYSCALL {
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

    /// libseccomp's answer in the form of [`OciProfile::answer`] for clawjail's BPF return.
    fn answer_of(ret: u32) -> Option<i32> {
        if ret == bpf::RET_ALLOW {
            None
        } else if ret & 0xffff_0000 == bpf::RET_ERRNO {
            Some((ret & 0xffff) as i32)
        } else {
            Some(-1)
        }
    }

    /// Every combination of the sample values of the arguments `e`'s rules compare (the
    /// others 0 or all ones), against clawjail's own answer.
    fn agree(r: &Resolved, p: &OciProfile, e: &crate::seccomp::Entry) {
        let Verdict::AllowIf(rules) = &e.verdict else {
            return;
        };
        let hi = 1u64 << 32;
        let mut base: Vec<u64> = vec![0, 1, 2, 3, 5, 6, 8, 10, 16, 17, 30, 262, 0x300, 0x20000];
        base.extend([TIOCSTI, TIOCLINUX, 0x541b, 0x5401, MSG_FASTOPEN]);
        base.extend([CLONE_NAMESPACE_FLAGS, 0x1000_0000, 0x4000_0000, 0x0001_1000]);
        base.extend([0x0040_0000, 0xffff_ffff, 0x7fff_ffff]);
        // Modes: owner only, group/other read, group/other write, setuid/setgid/sticky.
        base.extend([
            0o600, 0o700, 0o644, 0o755, 0o664, 0o666, 0o4755, 0o2700, 0o1700,
        ]);
        let with_hi: Vec<u64> = base
            .iter()
            .flat_map(|v| [*v, v | hi, v | (1 << 63)])
            .collect();
        // The first two compared arguments get every sample, later ones (socket's protocol,
        // sendto's flags) a short list, the others 0: enough to cross every guard's
        // boundaries in a few seconds.
        let short = [0, 1, 6, 17, 132, 262, 0x300, 0o644, 0o660, MSG_FASTOPEN];
        let short: Vec<u64> = short.iter().flat_map(|v| [*v, v | hi]).collect();
        let mut used: Vec<usize> = rules
            .iter()
            .flat_map(|r| r.conds.iter().map(|c| usize::from(c.arg)))
            .collect();
        used.sort_unstable();
        used.dedup();
        let samples: Vec<Vec<u64>> = (0..6)
            .map(|i| match used.iter().position(|u| *u == i) {
                Some(0 | 1) => with_hi.clone(),
                Some(_) => short.clone(),
                None => vec![0],
            })
            .collect();
        let mut args = [0u64; 6];
        let mut idx = [0usize; 6];
        loop {
            for i in 0..6 {
                args[i] = samples[i][idx[i]];
            }
            let want = answer_of(r.seccomp.expected(e.nr, &args));
            assert_eq!(p.answer(e.name, &args), want, "{} {:x?}", e.name, args);
            // Next combination (odometer).
            let mut i = 0;
            loop {
                if i == 6 {
                    return;
                }
                idx[i] += 1;
                if idx[i] < samples[i].len() {
                    break;
                }
                idx[i] = 0;
                i += 1;
            }
        }
    }

    /// The emitted rules never allow what clawjail refuses, and allow exactly what it
    /// allows, for every guarded syscall (socket, ioctl, clone, the mode guards on
    /// chmod/fchmod/fchmodat/fchmodat2, the pid-0 guards on prlimit64/sched_set*/
    /// get_robust_list, PRIO_PROCESS && who == 0 on set/getpriority and ioprio_*), with
    /// ordinary and high-bit arguments, under both actions (kill needs the fixed-EPERM
    /// regions as ERRNO rules disjoint from the ALLOW ones).
    #[test]
    fn profile_agrees_with_clawjail_on_guarded_calls_including_high_bits() {
        for extra in [
            "[network]\nunix = false\n",
            "[network]\nunix = true\n",
            "[seccomp]\naction = \"kill\"\n",
        ] {
            let r = resolved(&base(extra));
            let p = profile(&r);
            assert!(p.stricter.is_empty(), "{:?}", p.stricter);
            for name in [
                "chmod",
                "fchmod",
                "fchmodat2",
                "prlimit64",
                "setpriority",
                "ioprio_set",
            ] {
                assert!(
                    r.seccomp
                        .entries()
                        .iter()
                        .any(|e| e.name == name && matches!(e.verdict, Verdict::AllowIf(_))),
                    "{name} is not guarded: the test would not cover it"
                );
            }
            for e in r.seccomp.entries() {
                agree(&r, &p, e);
            }
        }
    }

    /// The pid-0, mode and PRIO_PROCESS guards as rules: exact, 32-bit, and AND-ed within
    /// one rule.
    #[test]
    fn issue9_guards_have_exact_masked_eq_rules() {
        let r = resolved(&base("[seccomp]\naction = \"kill\"\n"));
        let p = profile(&r);
        let hi = 1u64 << 32;
        assert_eq!(p.answer("prlimit64", &[0, 4, 0, 0, 0, 0]), None);
        assert_eq!(
            p.answer("prlimit64", &[hi, 4, 0, 0, 0, 0]),
            None,
            "pid_t is 32-bit"
        );
        assert_eq!(
            p.answer("prlimit64", &[1, 4, 0, 0, 0, 0]),
            Some(libc::EPERM)
        );
        assert_eq!(p.answer("chmod", &[0, 0o600, 0, 0, 0, 0]), None);
        assert_eq!(
            p.answer("chmod", &[0, 0o644, 0, 0, 0, 0]),
            Some(libc::EPERM)
        );
        assert_eq!(p.answer("chmod", &[0, 0o600 | hi, 0, 0, 0, 0]), None);
        assert_eq!(p.answer("fchmod", &[3, 0o644, 0, 0, 0, 0]), None);
        assert_eq!(
            p.answer("fchmod", &[3, 0o4755, 0, 0, 0, 0]),
            Some(libc::EPERM)
        );
        assert_eq!(
            p.answer("fchmodat", &[3, 0, 0o660, 0, 0, 0]),
            Some(libc::EPERM)
        );
        assert_eq!(p.answer("setpriority", &[0, 0, 5, 0, 0, 0]), None);
        assert_eq!(
            p.answer("setpriority", &[2, 0, 5, 0, 0, 0]),
            Some(libc::EPERM),
            "PRIO_USER"
        );
        assert_eq!(
            p.answer("setpriority", &[0, 7, 5, 0, 0, 0]),
            Some(libc::EPERM)
        );
        assert_eq!(p.answer("ioprio_set", &[1, 0, 0, 0, 0, 0]), None);
        assert_eq!(p.answer("ioprio_set", &[1 | hi, hi, 0, 0, 0, 0]), None);
        assert_eq!(
            p.answer("ioprio_set", &[2, 0, 0, 0, 0, 0]),
            Some(libc::EPERM)
        );
        // One ALLOW rule carries both conditions (an AND): PRIO_PROCESS and who == 0.
        let both = p
            .syscalls
            .iter()
            .filter(|s| s.names == ["setpriority"] && s.action == "SCMP_ACT_ALLOW")
            .collect::<Vec<_>>();
        assert_eq!(both.len(), 1, "{both:?}");
        assert_eq!(both[0].args.len(), 2);
        assert!(both[0].args.iter().all(|a| a.value == 0xffff_ffff));
        // Under the errno action the EPERM regions are the default: no ERRNO rules at all.
        let e = profile(&resolved(&base("")));
        assert!(!e
            .syscalls
            .iter()
            .any(|s| s.names == ["prlimit64"] && s.action != "SCMP_ACT_ALLOW"));
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

    /// A root start's namespaces: the outer layer lets clawjail unshare and mount with its
    /// own flags only; a user start allows neither. A group-writable create_mode makes
    /// fchmod unconditional (clawjail sets that mode itself); the default keeps the guard.
    #[test]
    fn needs_override_guards_only_as_far_as_clawjail_goes() {
        let root = |extra: &str| {
            let loaded =
                policy::load(Source::new(Origin::Flag("p.toml".into()), base(extra))).unwrap();
            profile(&resolve(&loaded, &crate::export::tests::opts(Start::Root)).unwrap())
        };
        let p = root("[filesystem]\nprivate_tmp = true\n");
        let newpid_ipc = (libc::CLONE_NEWPID | libc::CLONE_NEWIPC) as u64;
        assert_eq!(p.answer("unshare", &[newpid_ipc, 0, 0, 0, 0, 0]), None);
        assert_eq!(
            p.answer("unshare", &[libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]),
            None
        );
        for bad in [
            libc::CLONE_NEWUSER as u64,
            libc::CLONE_NEWNET as u64,
            1 << 40,
        ] {
            assert_eq!(
                p.answer("unshare", &[bad, 0, 0, 0, 0, 0]),
                Some(libc::EPERM)
            );
        }
        let rec_private = libc::MS_REC | libc::MS_PRIVATE;
        assert_eq!(p.answer("mount", &[0, 0, 0, rec_private, 0, 0]), None);
        assert_eq!(
            p.answer("mount", &[0, 0, 0, libc::MS_BIND, 0, 0]),
            Some(libc::EPERM)
        );
        assert_eq!(
            p.answer("mount", &[0, 0, 0, libc::MS_REMOUNT, 0, 0]),
            Some(libc::EPERM)
        );
        // The default create_mode (0700) is within fchmod's guard: the guard stays.
        assert_eq!(
            p.answer("fchmod", &[3, 0o4755, 0, 0, 0, 0]),
            Some(libc::EPERM)
        );
        assert_eq!(
            p.answer("fchmod", &[3, 0o644, 0, 0, 0, 0]),
            None,
            "the run record"
        );
        let shared = root("[filesystem]\ncreate_mode = \"2770\"\n");
        assert_eq!(shared.answer("fchmod", &[3, 0o2770, 0, 0, 0, 0]), None);
        assert!(shared.syscalls[0].names.contains(&"fchmod".to_string()));
        assert!(!shared.syscalls[1..]
            .iter()
            .any(|s| s.names.contains(&"fchmod".to_string())));
        // A user start creates no namespace: unshare and mount stay refused.
        let user = profile(&resolved(&base("[filesystem]\nprivate_tmp = true\n")));
        assert_eq!(
            user.answer("unshare", &[newpid_ipc, 0, 0, 0, 0, 0]),
            Some(libc::EPERM)
        );
        assert_eq!(
            user.answer("mount", &[0, 0, 0, rec_private, 0, 0]),
            Some(libc::EPERM)
        );
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
