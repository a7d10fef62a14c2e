//! The seam between the launch and the kernel: every call of a launch that changes this
//! process for good (ids, capabilities, namespaces, no_new_privs, Landlock, seccomp, exec)
//! goes through [`Kernel`]. `run` uses [`Real`], which calls exactly what the mechanism
//! modules called before the seam existed (`sys`, nix, caps, landlock). The unit tests use a
//! recording fake (src/launch_tests.rs) that appends each call to a list, so the exact order
//! of a launch's calls is pinned by a test that needs no root and changes nothing
//! (youki's `Syscall` trait and its `TestHelperSyscall`, STYLE.md).
//!
//! Static dispatch only: the mechanism functions take `k: &mut impl Kernel`, and `Real` is a
//! unit struct, so the real path compiles to the same direct calls, with no allocation and
//! no vtable. Errors are `io::Error` with the raw errno, as `sys` returns them; callers
//! attach the call (and `launch` the step).
//!
//! Not behind the seam, on purpose: reads that change nothing (`sigrtmax`, /proc), pipes and
//! the ready byte's pipe ends (created and dropped, nothing persists), `[egress]`'s network
//! namespace and the terminal step (their own modules and tests: tests/it/egress_run.rs,
//! tests/it/terminal.rs), and Landlock's ruleset creation and rules (an fd that enforces
//! nothing until `landlock_restrict_self`, which is the call behind the seam).

use std::ffi::CString;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use caps::{CapSet, Capability, CapsHashSet};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::signal::SigSet;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, ResGid, ResUid, Uid};

use crate::sys;

/// The kernel calls of a launch, one method per call as the mechanism modules make it.
/// A crate's call (caps, landlock) is wrapped at the granularity the mechanism uses.
pub trait Kernel {
    /// Marks the start of a launch step (`launch::Step::name`). The real kernel ignores it;
    /// the fake tags the calls that follow with it.
    fn begin_step(&mut self, _step: &'static str) {}

    // Namespaces and the session (namespaces.rs, session.rs).
    /// unshare(2).
    fn unshare(&mut self, flags: CloneFlags) -> io::Result<()>;
    /// mount(2) without data.
    fn mount(
        &mut self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
    ) -> io::Result<()>;
    /// getpid(2).
    fn getpid(&mut self) -> libc::pid_t;
    /// getppid(2).
    fn getppid(&mut self) -> libc::pid_t;
    /// getsid(0).
    fn getsid(&mut self) -> io::Result<libc::pid_t>;
    /// setsid(2).
    fn setsid(&mut self) -> io::Result<()>;
    /// prctl(PR_SET_CHILD_SUBREAPER, 1).
    fn set_child_subreaper(&mut self) -> io::Result<()>;
    /// sigprocmask(SIG_BLOCK, set).
    fn block_signals(&mut self, set: &SigSet) -> io::Result<()>;
    /// fork(2): 0 in the child, the child's pid in the parent.
    fn fork(&mut self) -> io::Result<libc::pid_t>;
    /// read(2) (the supervisor's ready byte).
    fn read(&mut self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize>;
    /// prctl(PR_SET_PDEATHSIG, sig).
    fn set_pdeathsig(&mut self, sig: i32) -> io::Result<()>;

    // Capabilities (caps.rs).
    /// prctl(PR_CAPBSET_READ, cap): whether `cap` is still in the bounding set. Changes
    /// nothing; behind the seam because the drops that follow depend on its answer.
    fn capbset_read(&mut self, cap: u32) -> io::Result<bool>;
    /// prctl(PR_CAPBSET_DROP, cap).
    fn capbset_drop(&mut self, cap: u32) -> io::Result<()>;
    /// prctl(PR_SET_SECUREBITS, bits).
    fn set_securebits(&mut self, bits: u32) -> io::Result<()>;
    /// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL).
    fn ambient_clear_all(&mut self) -> io::Result<()>;
    /// capset(2) of one set (the caps crate reads the other two and writes all three).
    fn capset(&mut self, set: CapSet, caps: &CapsHashSet) -> io::Result<()>;
    /// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap).
    fn ambient_raise(&mut self, cap: Capability) -> io::Result<()>;
    /// prctl(PR_SET_KEEPCAPS, on).
    fn set_keepcaps(&mut self, on: bool) -> io::Result<()>;

    // Identity (identity.rs).
    /// setgroups(2).
    fn setgroups(&mut self, groups: &[Gid]) -> io::Result<()>;
    /// setresgid(gid, gid, gid).
    fn setresgid(&mut self, gid: Gid) -> io::Result<()>;
    /// setresuid(uid, uid, uid).
    fn setresuid(&mut self, uid: Uid) -> io::Result<()>;
    /// getresuid(2).
    fn getresuid(&mut self) -> io::Result<ResUid>;
    /// getresgid(2).
    fn getresgid(&mut self) -> io::Result<ResGid>;

    // Limits, umask, workdir (limits.rs).
    /// setrlimit(2).
    fn setrlimit(&mut self, resource: Resource, soft: u64, hard: u64) -> io::Result<()>;
    /// umask(2) (cannot fail).
    fn umask(&mut self, mask: Mode);
    /// chdir(2).
    fn chdir(&mut self, dir: &Path) -> io::Result<()>;

    // no_new_privs (nnp.rs).
    /// prctl(PR_SET_NO_NEW_PRIVS, 1).
    fn set_no_new_privs(&mut self) -> io::Result<()>;
    /// prctl(PR_GET_NO_NEW_PRIVS).
    fn get_no_new_privs(&mut self) -> io::Result<bool>;

    // fds and signals (fds.rs, signals.rs).
    /// close_range(first, ~0, CLOSE_RANGE_CLOEXEC).
    fn cloexec_from(&mut self, first: u32) -> io::Result<()>;
    /// Raw rt_sigaction(sig, SIG_DFL).
    fn signal_default(&mut self, sig: i32) -> io::Result<()>;
    /// Raw rt_sigprocmask(SIG_SETMASK, {}).
    fn unblock_all_signals(&mut self) -> io::Result<()>;

    // Landlock, seccomp, exec.
    /// landlock_restrict_self(2) through the landlock crate (which sets no_new_privs first);
    /// only the ruleset status is returned (the crate's `RestrictionStatus` cannot be built
    /// outside it).
    fn landlock_restrict_self(
        &mut self,
        ruleset: landlock::RulesetCreated,
    ) -> Result<landlock::RulesetStatus, landlock::RulesetError>;
    /// seccomp(SECCOMP_SET_MODE_FILTER, 0, prog).
    fn seccomp_set_mode_filter(&mut self, prog: &[libc::sock_filter]) -> io::Result<()>;
    /// seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, prog).
    fn seccomp_set_mode_filter_listener(
        &mut self,
        prog: &[libc::sock_filter],
    ) -> io::Result<OwnedFd>;
    /// execveat(fd, "", argv, envp, AT_EMPTY_PATH). Returns only on failure.
    fn execveat(&mut self, fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error;
}

/// The running kernel: each method is the call the mechanism modules made directly before
/// the seam (nix, caps, landlock, `sys`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Real;

impl Kernel for Real {
    fn unshare(&mut self, flags: CloneFlags) -> io::Result<()> {
        Ok(nix::sched::unshare(flags)?)
    }

    fn mount(
        &mut self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
    ) -> io::Result<()> {
        Ok(nix::mount::mount(
            source,
            target,
            fstype,
            flags,
            None::<&str>,
        )?)
    }

    fn getpid(&mut self) -> libc::pid_t {
        nix::unistd::getpid().as_raw()
    }

    fn getppid(&mut self) -> libc::pid_t {
        nix::unistd::getppid().as_raw()
    }

    fn getsid(&mut self) -> io::Result<libc::pid_t> {
        Ok(nix::unistd::getsid(None)?.as_raw())
    }

    fn setsid(&mut self) -> io::Result<()> {
        nix::unistd::setsid()?;
        Ok(())
    }

    fn set_child_subreaper(&mut self) -> io::Result<()> {
        Ok(nix::sys::prctl::set_child_subreaper(true)?)
    }

    fn block_signals(&mut self, set: &SigSet) -> io::Result<()> {
        Ok(nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_BLOCK,
            Some(set),
            None,
        )?)
    }

    fn fork(&mut self) -> io::Result<libc::pid_t> {
        sys::fork()
    }

    fn read(&mut self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
        Ok(nix::unistd::read(fd, buf)?)
    }

    fn set_pdeathsig(&mut self, sig: i32) -> io::Result<()> {
        sys::set_pdeathsig(sig)
    }

    fn capbset_read(&mut self, cap: u32) -> io::Result<bool> {
        sys::capbset_read(cap)
    }

    fn capbset_drop(&mut self, cap: u32) -> io::Result<()> {
        sys::capbset_drop(cap)
    }

    fn set_securebits(&mut self, bits: u32) -> io::Result<()> {
        sys::set_securebits(bits)
    }

    fn ambient_clear_all(&mut self) -> io::Result<()> {
        sys::ambient_clear_all()
    }

    fn capset(&mut self, set: CapSet, caps: &CapsHashSet) -> io::Result<()> {
        caps::set(None, set, caps).map_err(|e| io::Error::other(e.to_string()))
    }

    fn ambient_raise(&mut self, cap: Capability) -> io::Result<()> {
        caps::raise(None, CapSet::Ambient, cap).map_err(|e| io::Error::other(e.to_string()))
    }

    fn set_keepcaps(&mut self, on: bool) -> io::Result<()> {
        sys::set_keepcaps(on)
    }

    fn setgroups(&mut self, groups: &[Gid]) -> io::Result<()> {
        Ok(nix::unistd::setgroups(groups)?)
    }

    fn setresgid(&mut self, gid: Gid) -> io::Result<()> {
        Ok(nix::unistd::setresgid(gid, gid, gid)?)
    }

    fn setresuid(&mut self, uid: Uid) -> io::Result<()> {
        Ok(nix::unistd::setresuid(uid, uid, uid)?)
    }

    fn getresuid(&mut self) -> io::Result<ResUid> {
        Ok(nix::unistd::getresuid()?)
    }

    fn getresgid(&mut self) -> io::Result<ResGid> {
        Ok(nix::unistd::getresgid()?)
    }

    fn setrlimit(&mut self, resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
        Ok(nix::sys::resource::setrlimit(resource, soft, hard)?)
    }

    fn umask(&mut self, mask: Mode) {
        nix::sys::stat::umask(mask);
    }

    fn chdir(&mut self, dir: &Path) -> io::Result<()> {
        Ok(nix::unistd::chdir(dir)?)
    }

    fn set_no_new_privs(&mut self) -> io::Result<()> {
        Ok(nix::sys::prctl::set_no_new_privs()?)
    }

    fn get_no_new_privs(&mut self) -> io::Result<bool> {
        Ok(nix::sys::prctl::get_no_new_privs()?)
    }

    fn cloexec_from(&mut self, first: u32) -> io::Result<()> {
        sys::cloexec_from(first)
    }

    fn signal_default(&mut self, sig: i32) -> io::Result<()> {
        sys::signal_default(sig)
    }

    fn unblock_all_signals(&mut self) -> io::Result<()> {
        sys::unblock_all_signals()
    }

    fn landlock_restrict_self(
        &mut self,
        ruleset: landlock::RulesetCreated,
    ) -> Result<landlock::RulesetStatus, landlock::RulesetError> {
        ruleset.restrict_self().map(|st| st.ruleset)
    }

    fn seccomp_set_mode_filter(&mut self, prog: &[libc::sock_filter]) -> io::Result<()> {
        sys::seccomp_set_mode_filter(prog)
    }

    fn seccomp_set_mode_filter_listener(
        &mut self,
        prog: &[libc::sock_filter],
    ) -> io::Result<OwnedFd> {
        sys::seccomp_set_mode_filter_listener(prog)
    }

    fn execveat(&mut self, fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
        sys::fexecve(fd, argv, envp)
    }
}
