//! What each policy list means in Landlock access rights (landlock(7), "Filesystem flags").
//!
//! Deliberately not `AccessFs::from_read`, which includes Execute: `read` must not make a
//! file executable. MakeChar/MakeBlock are never granted (device nodes need CAP_MKNOD
//! anyway). IoctlDev comes only with `write`: a device the policy lets the target write
//! (a pty under /dev/pts, /dev/null) may also take its ioctls, which openpty(3) and
//! termios need; devices that are only readable get none (landlock(7) "IOCTL").
//! TIOCSTI/TIOCLINUX stay refused by seccomp whatever Landlock grants.

use landlock::{make_bitflags, Access, AccessFs, BitFlags, ABI};

/// `read`: open files for reading, list directories. No Execute.
pub const READ: BitFlags<AccessFs> = make_bitflags!(AccessFs::{ReadFile | ReadDir});

/// `write`: read plus create, remove, rename (Refer: only between trees that both have it,
/// i.e. within the write set), truncate, write, and ioctl on devices in the tree.
pub const WRITE: BitFlags<AccessFs> = make_bitflags!(AccessFs::{
    ReadFile | ReadDir | WriteFile | RemoveDir | RemoveFile | MakeDir | MakeReg | MakeSock
    | MakeFifo | MakeSym | Refer | Truncate | IoctlDev
});

/// `exec` and the automatic exec chain (the target, `#!` interpreters, the ELF loader):
/// execve(2) needs Execute on the file and ReadFile to map it; the loader needs both too.
pub const EXEC: BitFlags<AccessFs> = make_bitflags!(AccessFs::{Execute | ReadFile});

/// Libraries, `#!` scripts (read by their interpreter) and /etc/ld.so.cache.
pub const READ_FILE: BitFlags<AccessFs> = make_bitflags!(AccessFs::{ReadFile});

/// Highest ABI this build handles. ABI 8 (TSYNC) is moot for a single-threaded launcher and
/// ABI 9 (ResolveUnix) would change pathname unix sockets: both need a reviewed change here,
/// never an automatic upgrade on a newer kernel.
pub const MAX_ABI: i32 = 7;

/// Every filesystem right Landlock handles at `abi` (all denied unless a rule grants them).
pub fn handled_fs(abi: i32) -> BitFlags<AccessFs> {
    if abi <= 0 {
        return BitFlags::empty();
    }
    AccessFs::from_all(ABI::from(abi.min(MAX_ABI)))
}

/// Rights that a rule on a non-directory may carry (landlock_add_rule(2): EINVAL otherwise).
pub fn file_rights() -> BitFlags<AccessFs> {
    AccessFs::from_file(ABI::from(MAX_ABI))
}

/// The rights one rule really gets: within what is handled, and file-only on a file.
pub fn effective(rights: BitFlags<AccessFs>, is_dir: bool, abi: i32) -> BitFlags<AccessFs> {
    let r = rights & handled_fs(abi);
    if is_dir {
        r
    } else {
        r & file_rights()
    }
}

/// Stable snake_case names, for `check` and the log.
pub fn names(rights: BitFlags<AccessFs>) -> String {
    let v: Vec<&str> = rights.iter().map(name).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

fn name(a: AccessFs) -> &'static str {
    match a {
        AccessFs::Execute => "execute",
        AccessFs::WriteFile => "write_file",
        AccessFs::ReadFile => "read_file",
        AccessFs::ReadDir => "read_dir",
        AccessFs::RemoveDir => "remove_dir",
        AccessFs::RemoveFile => "remove_file",
        AccessFs::MakeChar => "make_char",
        AccessFs::MakeDir => "make_dir",
        AccessFs::MakeReg => "make_reg",
        AccessFs::MakeSock => "make_sock",
        AccessFs::MakeFifo => "make_fifo",
        AccessFs::MakeBlock => "make_block",
        AccessFs::MakeSym => "make_sym",
        AccessFs::Refer => "refer",
        AccessFs::Truncate => "truncate",
        AccessFs::IoctlDev => "ioctl_dev",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_never_executes() {
        assert!(!READ.contains(AccessFs::Execute));
        assert!(!WRITE.contains(AccessFs::Execute));
        assert!(!READ_FILE.contains(AccessFs::Execute));
        assert!(AccessFs::from_read(ABI::V7).contains(AccessFs::Execute));
    }

    #[test]
    fn effective_masks_by_abi_and_kind() {
        // ABI 1 has no Refer and no Truncate.
        let w1 = effective(WRITE, true, 1);
        assert!(!w1.contains(AccessFs::Refer) && !w1.contains(AccessFs::Truncate));
        let w3 = effective(WRITE, true, 3);
        assert!(w3.contains(AccessFs::Refer) && w3.contains(AccessFs::Truncate));
        // A file (e.g. /dev/null in `write`) keeps only file rights.
        let f = effective(WRITE, false, 7);
        assert_eq!(
            f,
            make_bitflags!(AccessFs::{ReadFile | WriteFile | Truncate | IoctlDev})
        );
        assert!(effective(WRITE, true, 0).is_empty());
    }

    #[test]
    fn devices_are_never_created_and_ioctl_only_with_write() {
        for r in [READ, WRITE, EXEC, READ_FILE] {
            assert!(!r.contains(AccessFs::MakeChar));
            assert!(!r.contains(AccessFs::MakeBlock));
            assert_eq!(r.contains(AccessFs::IoctlDev), r == WRITE);
        }
    }
}
