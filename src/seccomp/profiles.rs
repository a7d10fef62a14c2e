//! The built-in allowlists, kept as reviewed data files beside this one:
//! `default.list` (Docker's default profile minus capability-gated calls) and `strict.list`
//! (derived from traces of Node and the OpenClaw gateway; the file says how to re-derive
//! it). One syscall name a line, `#` comments. `custom` starts empty.

use crate::policy::SeccompProfile;

const DEFAULT: &str = include_str!("default.list");
const STRICT: &str = include_str!("strict.list");

/// The names a profile allows before the policy's `allow`/`deny` and the guards apply.
pub fn names(profile: SeccompProfile) -> Vec<&'static str> {
    match profile {
        SeccompProfile::Default => parse(DEFAULT),
        SeccompProfile::Strict => parse(STRICT),
        SeccompProfile::Custom => Vec::new(),
    }
}

fn parse(list: &'static str) -> Vec<&'static str> {
    list.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::guards::{self, Treatment};
    use crate::seccomp::syscalls;

    /// Every name is known, listed once, and not one the guards always refuse (listing it
    /// would suggest it works).
    #[test]
    fn lists_are_clean() {
        let refused: Vec<&str> = guards::every_setting()
            .into_iter()
            // A guard a policy key lifts (chown, xattrs, IPC) leaves the name listed: the
            // key gives back exactly what the profile lists.
            .filter(|g| !matches!(g.treatment, Treatment::AllowIf(_)) && g.unlock.is_none())
            .map(|g| g.name)
            .collect();
        for (label, list) in [("default", DEFAULT), ("strict", STRICT)] {
            let names = parse(list);
            for n in &names {
                assert!(syscalls::number(n).is_some(), "{label}: unknown {n}");
                assert!(
                    !refused.contains(n),
                    "{label}: {n} is always refused by a guard"
                );
            }
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{label}: duplicate names");
        }
    }

    #[test]
    fn strict_is_a_subset_of_default() {
        let d = parse(DEFAULT);
        for n in parse(STRICT) {
            assert!(d.contains(&n), "strict allows {n}, default does not");
        }
    }

    /// What the notes promise: Node, glibc and clawjail's own exec.
    #[test]
    fn default_covers_what_node_and_glibc_need() {
        let d = parse(DEFAULT);
        for n in [
            "execveat",
            "rseq",
            "sched_yield",
            "membarrier",
            "epoll_pwait2",
            "statx",
            "openat2",
            "faccessat2",
            "close_range",
            "pidfd_open",
            "getrandom",
            "futex",
            "clone",
        ] {
            assert!(d.contains(&n), "{n}");
        }
    }
}
