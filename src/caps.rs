//! Capabilities: the bounding set, securebits, and the P/E/I/ambient sets.
//!
//! Enforces: nothing survives into the target but `capabilities.keep`, raised through the
//! ambient set (capabilities(7), "Ambient capability set"). The bounding set is dropped up
//! to `/proc/sys/kernel/cap_last_cap`, not to a compiled list, so a capability newer than
//! this build is dropped too. Cannot: an unprivileged start cannot drop its bounding set
//! (no CAP_SETPCAP); no_new_privs makes it inert for setuid binaries and file caps.

use std::io;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};

use crate::kernel::Kernel;

/// Parse `CAP_NET_BIND_SERVICE` (or `net_bind_service`).
pub fn parse_cap_name(name: &str) -> Result<Capability, String> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&full).map_err(|_| {
        let known: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        format!(
            "unknown capability {name:?}; expected one of: {}",
            known.join(", ")
        )
    })
}

/// The highest capability number this kernel knows, from /proc.
pub fn read_cap_last_cap() -> io::Result<u32> {
    let s = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")?;
    s.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("cap_last_cap: {s:?}")))
}

/// Make the bounding set hold nothing in 0..=cap_last_cap but the kept capabilities:
/// `prctl(PR_CAPBSET_DROP, n)` for each other n that is still in it. Returns how many
/// capabilities the bounding set now lacks (every n not kept).
///
/// The bounding set is inherited across fork(2) (credentials are copied; capabilities(7)),
/// so the launch drops it once, before the session fork, and the supervisor, the namespace
/// init and the target each call this again: PR_CAPBSET_READ finds nothing left and no
/// credentials are committed (every PR_CAPBSET_DROP commits a new `struct cred`, even for a
/// cap already gone). What a new user namespace gave back (a full bounding set,
/// user_namespaces(7)) is found and dropped the same way.
pub fn drop_bounding_set(
    k: &mut impl Kernel,
    last_cap: u32,
    keep: &[Capability],
) -> Result<u32, (String, io::Error)> {
    let mut dropped = 0;
    for n in 0..=last_cap {
        if keep.iter().any(|c| c.index() as u32 == n) {
            continue;
        }
        let held = k
            .capbset_read(n)
            .map_err(|e| (format!("prctl(PR_CAPBSET_READ, {n})"), e))?;
        if held {
            k.capbset_drop(n)
                .map_err(|e| (format!("prctl(PR_CAPBSET_DROP, {n})"), e))?;
        }
        dropped += 1;
    }
    Ok(dropped)
}

/// The securebits clawjail locks before the uid switch (capabilities(7)):
/// NOROOT on (root gets no caps from execve), NO_SETUID_FIXUP *off* so the switch away
/// from uid 0 clears P/E/ambient, both locked; KEEP_CAPS only when a cap must survive the
/// switch; NO_CAP_AMBIENT_RAISE (locked) when nothing is kept.
pub fn securebits_for(keep_any: bool) -> u32 {
    let mut bits =
        libc::SECBIT_NOROOT | libc::SECBIT_NOROOT_LOCKED | libc::SECBIT_NO_SETUID_FIXUP_LOCKED;
    if keep_any {
        bits |= libc::SECBIT_KEEP_CAPS;
    } else {
        bits |= libc::SECBIT_NO_CAP_AMBIENT_RAISE | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    }
    bits as u32
}

/// `prctl(PR_SET_SECUREBITS, bits)`.
pub fn lock_securebits(k: &mut impl Kernel, bits: u32) -> Result<(), (String, io::Error)> {
    k.set_securebits(bits)
        .map_err(|e| (format!("prctl(PR_SET_SECUREBITS, {bits:#x})"), e))
}

/// Set P/E/I to exactly `keep`, then the ambient set to exactly `keep`.
/// capset(2) then prctl(PR_CAP_AMBIENT_RAISE) — a cap can only be made ambient when it is
/// in both P and I.
pub fn set_process_sets(
    k: &mut impl Kernel,
    keep: &[Capability],
) -> Result<(), (String, io::Error)> {
    let set: CapsHashSet = keep.iter().copied().collect();
    let err = |what: &str, e: io::Error| (what.to_string(), e);
    k.ambient_clear_all()
        .map_err(|e| ("prctl(PR_CAP_AMBIENT_CLEAR_ALL)".to_string(), e))?;
    k.capset(CapSet::Inheritable, &set)
        .map_err(|e| err("capset(inheritable)", e))?;
    k.capset(CapSet::Effective, &set)
        .map_err(|e| err("capset(effective)", e))?;
    k.capset(CapSet::Permitted, &set)
        .map_err(|e| err("capset(permitted)", e))?;
    for cap in keep {
        k.ambient_raise(*cap)
            .map_err(|e| err(&format!("prctl(PR_CAP_AMBIENT_RAISE, {cap})"), e))?;
    }
    if !keep.is_empty() {
        // KEEP_CAPS (set with the securebits when a cap is kept) has done its job across
        // the uid switch; clear it so the target cannot carry P across its own setuid
        // (prctl(2) PR_SET_KEEPCAPS).
        k.set_keepcaps(false)
            .map_err(|e| ("prctl(PR_SET_KEEPCAPS, 0)".to_string(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(
            parse_cap_name("CAP_NET_BIND_SERVICE"),
            Ok(Capability::CAP_NET_BIND_SERVICE)
        );
        assert_eq!(
            parse_cap_name("net_bind_service"),
            Ok(Capability::CAP_NET_BIND_SERVICE)
        );
        assert!(parse_cap_name("CAP_NOPE")
            .unwrap_err()
            .contains("CAP_CHOWN"));
    }

    #[test]
    fn securebits_never_set_no_setuid_fixup() {
        for keep in [false, true] {
            let b = securebits_for(keep);
            assert_eq!(b & libc::SECBIT_NO_SETUID_FIXUP as u32, 0);
            assert_ne!(b & libc::SECBIT_NO_SETUID_FIXUP_LOCKED as u32, 0);
            assert_ne!(b & libc::SECBIT_NOROOT_LOCKED as u32, 0);
            assert_eq!(b & libc::SECBIT_KEEP_CAPS as u32 != 0, keep);
        }
    }
}
