//! The x86_64 syscall table: name <-> number, for policy names and `check` output.
//!
//! From the `syscalls` crate (its `x86_64::Sysno`, generated from the kernel's
//! arch/x86/entry/syscalls/syscall_64.tbl; 0.8.1 = Linux 6.18), not maintained by hand:
//! a kernel release adds names, and a hand copy falls behind (it lacked 6.18's `uprobe`).
//! The crate is read only at compile time: [`X86_64`] and the by-name index below are
//! `const` arrays built from its `const fn`s, so a launch pays no initialisation (the
//! former `HashMap` index was built on first use) and a lookup is a binary search.
//! Only native x86_64 numbers: the x32 numbers (bit 30 set) are refused as a whole by the
//! filter. To refresh: bump the crate; `numbers_match_libc` and `max_number` pin the result.

use syscalls::x86_64::Sysno;

/// How many syscalls the table has (gaps in the numbering are not counted).
const COUNT: usize = Sysno::count();

/// (name, number), ascending by number.
pub const X86_64: &[(&str, u32)] = &BY_NUMBER;

const BY_NUMBER: [(&str, u32); COUNT] = {
    let mut t = [("", 0u32); COUNT];
    let mut i = 0;
    let mut id = Sysno::first().id();
    while id <= Sysno::last().id() {
        if let Some(s) = Sysno::new(id as usize) {
            t[i] = (s.name(), s.id() as u32);
            i += 1;
        }
        id += 1;
    }
    assert!(i == COUNT, "Sysno::count() disagrees with Sysno::new");
    t
};

/// (name, number), ascending by name (byte order, as `str::cmp`), for [`number`].
const BY_NAME: [(&str, u32); COUNT] = {
    let mut t = BY_NUMBER;
    // Insertion sort at compile time (const fn cannot call slice::sort).
    let mut i = 1;
    while i < COUNT {
        let mut j = i;
        while j > 0 && name_before(t[j].0, t[j - 1].0) {
            let x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
            j -= 1;
        }
        i += 1;
    }
    t
};

/// `a < b` in byte order, the order `str::cmp` uses.
const fn name_before(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// The seccomp_data.arch value this build's filter accepts (AUDIT_ARCH_X86_64,
/// include/uapi/linux/audit.h: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE).
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

/// x32 syscalls are native x86_64 entries with this bit set in the number
/// (arch/x86/include/uapi/asm/unistd.h `__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Whether this build can filter the architecture it runs on. Only x86_64 has a table;
/// elsewhere `prepare` refuses rather than install a filter keyed to the wrong numbers.
pub const NATIVE_SUPPORTED: bool = cfg!(target_arch = "x86_64");

/// The number of a syscall name, e.g. `number("ioctl") == Some(16)`.
pub fn number(name: &str) -> Option<u32> {
    BY_NAME
        .binary_search_by(|&(n, _)| n.cmp(name))
        .ok()
        .map(|i| BY_NAME[i].1)
}

/// The name of a syscall number, if the table has it.
pub fn name(nr: u32) -> Option<&'static str> {
    Sysno::new(usize::try_from(nr).ok()?).map(|s| s.name())
}

/// The highest number in the table; numbers above it are unknown to this build.
pub fn max_number() -> u32 {
    Sysno::last().id() as u32
}

/// The known name closest to `wanted` (edit distance), for "did you mean" hints.
pub fn nearest(wanted: &str) -> Option<&'static str> {
    X86_64
        .iter()
        .map(|&(n, _)| (edit_distance(wanted, n), n))
        .min()
        .filter(|&(d, _)| d <= wanted.len().max(3) / 2 + 1)
        .map(|(_, n)| n)
}

/// Levenshtein distance over bytes (syscall names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in X86_64.windows(2) {
            assert!(w[0].1 < w[1].1, "{:?} then {:?}", w[0], w[1]);
        }
        let mut names: Vec<&str> = X86_64.iter().map(|&(n, _)| n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), X86_64.len());
    }

    #[test]
    fn numbers_match_libc() {
        for (name, nr) in [
            ("read", libc::SYS_read),
            ("ioctl", libc::SYS_ioctl),
            ("sendto", libc::SYS_sendto),
            ("clone", libc::SYS_clone),
            ("clone3", libc::SYS_clone3),
            ("io_uring_setup", libc::SYS_io_uring_setup),
            ("execveat", libc::SYS_execveat),
            ("mseal", libc::SYS_mseal),
        ] {
            assert_eq!(number(name), Some(nr as u32), "{name}");
            assert_eq!(super::name(nr as u32), Some(name));
        }
        assert_eq!(max_number(), 469);
    }

    /// A second, independent source: the installed kernel headers (linux-libc-dev). Every
    /// number they define must be the crate's; the crate may know newer ones.
    #[test]
    fn numbers_match_the_kernel_headers() {
        let h = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
        let Ok(text) = std::fs::read_to_string(h) else {
            eprintln!("skipped: {h} is not installed (linux-libc-dev)");
            return;
        };
        let mut seen = 0;
        for l in text.lines() {
            let mut w = l.split_whitespace();
            let (Some("#define"), Some(n), Some(nr)) = (w.next(), w.next(), w.next()) else {
                continue;
            };
            let (Some(n), Ok(nr)) = (n.strip_prefix("__NR_"), nr.parse::<u32>()) else {
                continue;
            };
            assert_eq!(number(n), Some(nr), "{n} in {h}");
            seen += 1;
        }
        assert!(seen > 300, "only {seen} numbers in {h}");
    }

    /// The by-name index is the same table, and every entry round-trips.
    #[test]
    fn both_indexes_agree() {
        assert_eq!(BY_NAME.len(), X86_64.len());
        for w in BY_NAME.windows(2) {
            assert!(w[0].0 < w[1].0, "{:?} then {:?}", w[0], w[1]);
        }
        for &(n, nr) in X86_64 {
            assert_eq!(number(n), Some(nr), "{n}");
            assert_eq!(name(nr), Some(n), "{nr}");
        }
        assert_eq!(number(""), None);
        assert_eq!(number("read "), None);
        assert_eq!(name(X32_SYSCALL_BIT), None);
        assert_eq!(name(max_number() + 1), None);
    }

    /// Every name clawjail itself relies on resolves: each built-in profile, every seccomp
    /// guard (all settings), the `allow`/`deny` lists of each shipped policy, and the names
    /// `learn` looks up. Read from the files as TOML, so a policy type change cannot hide one.
    #[test]
    fn every_name_the_profiles_guards_and_shipped_policies_use_resolves() {
        use crate::policy::SeccompProfile;
        let mut names: Vec<(String, String)> = Vec::new();
        for p in [
            SeccompProfile::Default,
            SeccompProfile::Strict,
            SeccompProfile::Custom,
        ] {
            for n in crate::seccomp::profiles::names(p) {
                names.push((format!("profile {p:?}"), n.to_string()));
            }
        }
        for g in crate::seccomp::guards::every_setting() {
            names.push(("guard".into(), g.name.to_string()));
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let mut policies = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            policies += 1;
            let v: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for key in ["allow", "deny"] {
                let list = v.get("seccomp").and_then(|s| s.get(key));
                for n in list.and_then(|l| l.as_array()).into_iter().flatten() {
                    names.push((
                        format!("{} seccomp.{key}", path.display()),
                        n.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
        assert!(policies >= 4, "found {policies} shipped policies");
        for n in ["sendmsg", "execveat", "clone3", "io_uring_setup"] {
            names.push(("clawjail".into(), n.to_string()));
        }
        assert!(names.len() > 300, "{}", names.len());
        for (from, n) in &names {
            assert!(number(n).is_some(), "{from}: {n} is not a known syscall");
        }
    }

    #[test]
    fn nearest_suggests_a_typo_fix() {
        assert_eq!(nearest("opne"), Some("open"));
        assert_eq!(nearest("io_uring_setpu"), Some("io_uring_setup"));
        assert_eq!(nearest("sendmsgs"), Some("sendmsg"));
        assert_eq!(nearest("zzzzzzzzzzzzzzzzzzzz"), None);
    }
}
