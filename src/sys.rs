//! The only module allowed `unsafe`: thin wrappers over raw calls that nix and caps lack.
//!
//! Every wrapper returns `io::Result` with the raw errno; callers attach the step.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The symbolic name of an errno: `EACCES` for 13, `E4242` when unknown. Used wherever a
/// kernel answer is shown (plan errors, seccomp rules, verify rows, the probe).
pub fn errno_name(n: i32) -> String {
    let e = nix::errno::Errno::from_raw(n);
    if e == nix::errno::Errno::UnknownErrno {
        format!("E{n}")
    } else {
        format!("{e:?}")
    }
}

/// `prctl(PR_CAPBSET_DROP, cap)` — prctl(2). Needs CAP_SETPCAP in the effective set.
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    // SAFETY: PR_CAPBSET_DROP takes an integer argument and touches no memory of ours.
    check(
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) }
            as libc::c_long,
    )
    .map(drop)
}

/// `prctl(PR_CAPBSET_READ, cap)` — prctl(2): whether `cap` is in the bounding set. Needs
/// no capability and commits no credentials (PR_CAPBSET_DROP always does, even for a cap
/// already gone).
pub fn capbset_read(cap: u32) -> io::Result<bool> {
    // SAFETY: PR_CAPBSET_READ takes an integer argument and touches no memory of ours.
    check(
        unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) }
            as libc::c_long,
    )
    .map(|r| r == 1)
}

/// `prctl(PR_SET_SECUREBITS, bits)` — capabilities(7) "The securebits flags".
pub fn set_securebits(bits: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(
        unsafe { libc::prctl(libc::PR_SET_SECUREBITS, libc::c_ulong::from(bits), 0, 0, 0) }
            as libc::c_long,
    )
    .map(drop)
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)` — works unprivileged.
pub fn ambient_clear_all() -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    } as libc::c_long)
    .map(drop)
}

/// `prctl(PR_SET_KEEPCAPS, on)`.
pub fn set_keepcaps(on: bool) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(on), 0, 0, 0) }
            as libc::c_long,
    )
    .map(drop)
}

/// `prctl(PR_SET_PDEATHSIG, sig)`.
pub fn set_pdeathsig(sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) }
            as libc::c_long,
    )
    .map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, &prog)` — seccomp(2). Installs a filter on the
/// calling thread; needs no_new_privs (or CAP_SYS_ADMIN). No flags: clawjail is
/// single-threaded here (no TSYNC needed) and execve keeps the filter for the target.
pub fn seccomp_set_mode_filter(prog: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer (it copies the program in).
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points to `len` valid sock_filter entries that outlive the call; the
    // kernel copies them and keeps no reference to our memory.
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_long,
            0 as libc::c_long,
            &fprog as *const libc::sock_fprog,
        )
    })
    .map(drop)
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)` — close_range(2), Linux 5.11. The raw
/// syscall: musl has no close_range() wrapper (the static x86_64-unknown-linux-musl build).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: integer arguments; the kernel only sets FD_CLOEXEC, no fd is closed under us.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })
    .map(drop)
}

/// Raw `rt_sigaction(sig, SIG_DFL)`. glibc's sigaction refuses 32 and 33 (its own
/// reserved signals) with EINVAL, yet they can arrive ignored; the raw call resets them.
pub fn signal_default(sig: i32) -> io::Result<()> {
    // The kernel's struct sigaction on x86_64/aarch64: handler, flags, restorer, mask (8 bytes).
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::c_ulong,
        flags: libc::c_ulong,
        restorer: libc::c_ulong,
        mask: u64,
    }
    let act = KernelSigaction {
        handler: libc::SIG_DFL as libc::c_ulong,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: `act` is a valid kernel sigaction for the duration of the call; oldact is NULL;
    // sigsetsize 8 matches the kernel's sigset_t on 64-bit Linux.
    check(unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig as libc::c_long,
            &act as *const KernelSigaction,
            std::ptr::null::<KernelSigaction>(),
            8 as libc::c_long,
        )
    })
    .map(drop)
}

/// Raw `rt_sigprocmask(SIG_SETMASK, {})`: unblock every signal, 32 and 33 included.
pub fn unblock_all_signals() -> io::Result<()> {
    let empty: u64 = 0;
    // SAFETY: `empty` outlives the call; oldset NULL; sigsetsize 8 (64-bit kernel sigset).
    check(unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK as libc::c_long,
            &empty as *const u64,
            std::ptr::null::<u64>(),
            8 as libc::c_long,
        )
    })
    .map(drop)
}

/// `listen(2)` with the backlog as given. nix's `Backlog::new` refuses values above the
/// C library's SOMAXCONN constant, which is 128 on musl (4096 on glibc): the static musl
/// build failed every [egress] launch with EINVAL before the syscall (measured). The
/// kernel clamps the backlog to net.core.somaxconn itself (listen(2)).
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: fd is a live descriptor borrowed for the call; listen takes no pointers.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `SIGRTMAX` as this libc reports it.
pub fn sigrtmax() -> i32 {
    libc::SIGRTMAX()
}

/// `fork(2)`. Returns 0 in the child, the child's pid in the parent.
///
/// Only called while clawjail is single-threaded (before any thread is spawned; tracing's
/// stderr writer spawns none), so the child may keep running Rust code.
pub fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: clawjail is single-threaded at this point (see above), so the child inherits
    // no lock held by another thread.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

/// Run `f` in a child that shares this process's memory until it execs or exits, the way
/// posix_spawn(3) starts a program: clone(CLONE_VM | CLONE_VFORK | SIGCHLD) on a stack of
/// its own. The parent is suspended until the child calls execve(2) or exits (clone(2),
/// CLONE_VFORK), so the two never run at the same time and the child may run ordinary
/// Rust code on the parent's heap. Unlike fork(2), no page table is copied, no page is
/// copied on write, and the child's execve has no address space of its own to tear down
/// (docs/performance.md). `f`'s return value becomes the child's exit status through
/// _exit(2): no atexit handler and no stdio flush (the buffers are the parent's).
///
/// The child shares the parent's thread pointer: code that signals "this thread"
/// (abort(3), raise(3)) would reach the suspended parent instead, which then dies; the
/// launch it belongs to ends either way and the target never runs.
///
/// Only called while clawjail is single-threaded, like [`fork`].
pub fn spawn_vfork<F: FnOnce() -> i32>(f: F) -> io::Result<libc::pid_t> {
    // What the launch's remaining steps need, with room for a debug build; untouched pages
    // cost nothing (MAP_NORESERVE).
    const STACK: usize = 8 << 20;
    extern "C" fn child<F: FnOnce() -> i32>(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the `slot` below, on the parent's stack; the parent is suspended
        // in clone() until this child execs or exits (CLONE_VFORK), so it is alive and
        // nothing else touches it.
        let slot = unsafe { &mut *arg.cast::<Option<F>>() };
        let code = slot.take().map_or(125, |f| f());
        // SAFETY: _exit(2) ends this child only; nothing of the parent's is flushed or run.
        unsafe { libc::_exit(code) }
    }
    // SAFETY: a fresh anonymous private mapping, checked for MAP_FAILED below.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let unmap = || {
        // SAFETY: `base` is the mapping made above, which no child runs on any more (it
        // exec'd into a new address space or exited, or was never started).
        unsafe { libc::munmap(base, STACK) };
    };
    // SAFETY: the lowest page of our own mapping becomes a guard page: an overflow of the
    // child's stack faults instead of writing below it.
    if unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) } != 0 {
        let e = io::Error::last_os_error();
        unmap();
        return Err(e);
    }
    let mut slot = Some(f);
    // SAFETY: `child::<F>` matches clone's callback type; the stack top is the end of our
    // mapping (16-byte aligned: mmap returns page-aligned memory); `slot` outlives the
    // call because CLONE_VFORK returns only after the child exec'd or exited.
    let pid = unsafe {
        libc::clone(
            child::<F>,
            base.cast::<u8>().add(STACK).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::addr_of_mut!(slot).cast(),
        )
    };
    let result = if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    };
    unmap();
    result
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)` — what glibc's fexecve does; works on an
/// O_PATH fd for ELF files. Returns only on failure.
pub fn fexecve(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let empty = c"";
    // SAFETY: argv_p/envp_p are NULL-terminated arrays of pointers into CStrings that
    // outlive the call; `empty` is a valid C string; fd is a live descriptor.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd() as libc::c_long,
            empty.as_ptr(),
            argv_p.as_ptr(),
            envp_p.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_long,
        )
    };
    io::Error::last_os_error()
}

/// `waitpid(pid, &status, flags)` with the raw status.
pub fn waitpid(pid: libc::pid_t, flags: i32) -> io::Result<(libc::pid_t, i32)> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for the call.
    let r = unsafe { libc::waitpid(pid, &mut status, flags) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((r, status))
    }
}

/// `sigwaitinfo(set)` for a set of blocked signals; returns the signal number.
pub fn sigwait(set: &nix::sys::signal::SigSet) -> io::Result<i32> {
    let raw: &libc::sigset_t = set.as_ref();
    // SAFETY: `raw` points to a valid sigset; info may be NULL.
    let r = unsafe { libc::sigwaitinfo(raw, std::ptr::null_mut()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)` —
/// landlock_create_ruleset(2): the highest Landlock ABI the running kernel supports.
/// ENOSYS: not built in; EOPNOTSUPP: built but disabled at boot (lsm=).
pub fn landlock_abi_version() -> io::Result<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_long = 1 << 0;
    // SAFETY: with the VERSION flag the kernel requires attr == NULL and size == 0 and
    // touches no user memory; it only returns the ABI number.
    check(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0 as libc::size_t,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    })
    .map(|v| v as i32)
}

/// `ioctl(fd, TIOCSCTTY, 0)` — make the tty open on `fd` the caller's controlling terminal
/// (ioctl_tty(2)); the caller must be a session leader without one. Used by `verify` only.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal) and touches no memory.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } as libc::c_long).map(drop)
}

/// fds 0-2 as borrowed fds. clawjail never closes them (the terminal step replaces them
/// with dup2, which keeps the number valid), so they live for the whole process.
pub fn std_fd(fd: std::os::fd::RawFd) -> BorrowedFd<'static> {
    let fd = fd.clamp(0, 2);
    // SAFETY: 0, 1 and 2 are open for the process's lifetime or, if the caller started
    // us with one closed, every call on it fails with EBADF (no other object can own the
    // number: std never closes it and clawjail opens nothing before prepare).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// `ioctl(fd, TIOCGWINSZ)` — ioctl_tty(2): the terminal's window size.
pub fn get_winsize(fd: BorrowedFd<'_>) -> io::Result<nix::pty::Winsize> {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one struct winsize through the pointer, which is valid
    // and exclusively borrowed for the call.
    check(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut ws as *mut nix::pty::Winsize,
        )
    } as libc::c_long)?;
    Ok(ws)
}

/// `ioctl(fd, TIOCSWINSZ)` — sets the size; the kernel sends SIGWINCH to the terminal's
/// foreground process group when it changes (ioctl_tty(2)).
pub fn set_winsize(fd: BorrowedFd<'_>, ws: &nix::pty::Winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ only reads one struct winsize through the pointer.
    check(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            ws as *const nix::pty::Winsize,
        )
    } as libc::c_long)
    .map(drop)
}

/// isatty(3) on a raw fd number (an inherited fd clawjail holds no object for); a closed
/// fd is not a terminal.
pub fn is_terminal_raw(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: isatty only queries the fd number (TCGETS); no memory of ours is touched.
    unsafe { libc::isatty(fd) == 1 }
}

/// `ioctl(fd, TIOCGDEV)`: the (major, minor) of the terminal behind `fd`, also for an fd
/// opened through /dev/tty (ioctl_tty(2)); decoded from the kernel's new_encode_dev.
pub fn tty_device(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    const TIOCGDEV: libc::c_ulong = 0x8004_5432; // _IOR('T', 0x32, unsigned int)
    let mut dev: libc::c_uint = 0;
    // `TIOCGDEV as _`: the request is c_ulong in glibc's libc bindings, c_int in musl's.
    // SAFETY: TIOCGDEV writes one unsigned int through the pointer, valid for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), TIOCGDEV as _, &mut dev as *mut libc::c_uint) };
    check(r as libc::c_long)?;
    Ok(((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00)))
}

/// `tty_device` on a raw fd number (verify's pty, a probe scanning its fds); EBADF or
/// ENOTTY for anything that is not an open terminal.
pub fn tty_device_raw(fd: std::os::fd::RawFd) -> io::Result<(u32, u32)> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the borrow lives only for this call; an fd number that is not open makes
    // the ioctl fail with EBADF, it cannot alias memory.
    tty_device(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// `dup2(from, to)` on raw numbers (verify: its pty onto fds 0 and 2 of an attempt).
pub fn dup_raw_onto(from: std::os::fd::RawFd, to: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: dup2 takes two integers and touches no memory of ours.
    check(unsafe { libc::dup2(from, to) } as libc::c_long).map(drop)
}

/// getrandom(2): fill `buf` from the kernel's CSPRNG (blocks only before the pool is
/// initialised at boot). For names another user must not be able to predict.
pub fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe the writable tail of `buf`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

/// A 128-bit random token in hex, for file names nobody can pre-plant.
pub fn random_token() -> io::Result<String> {
    let mut b = [0u8; 16];
    getrandom(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Whether `unshare(flags)` succeeds here, tried in a throwaway child so this process is
/// unchanged (used by `check` through `namespaces::prepare`; never on the launch path). A
/// container without CAP_SYS_ADMIN, or Docker's seccomp profile, answers EPERM.
pub fn unshare_works(flags: libc::c_int) -> bool {
    let Ok(pid) = fork() else {
        return false;
    };
    if pid == 0 {
        // SAFETY: the child makes one syscall and leaves with _exit, running no Rust code
        // that could need a lock (see `fork`).
        unsafe {
            let r = libc::unshare(flags);
            libc::_exit(if r == 0 { 0 } else { 1 });
        }
    }
    matches!(waitpid(pid, 0), Ok((_, status)) if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
}

/// A 4096-byte SysV shared-memory segment (IPC_PRIVATE), handed to `uid`/`gid` with mode
/// 0600 and `mark` written at its start: verify's stand-in for another same-uid process's
/// shared memory. Returns the shmid; remove it with [`shm_remove`].
pub fn shm_create_owned(uid: u32, gid: u32, mark: &[u8]) -> io::Result<i32> {
    // SAFETY: plain integer arguments.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, 0o600) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: attaching the segment just created at an address the kernel picks; `mark`
    // is at most 4096 bytes (checked) and the mapping is detached before returning.
    let r = unsafe {
        let addr = libc::shmat(id, std::ptr::null(), 0);
        if addr as isize == -1 {
            Err(io::Error::last_os_error())
        } else {
            let n = mark.len().min(4096);
            std::ptr::copy_nonoverlapping(mark.as_ptr(), addr.cast::<u8>(), n);
            libc::shmdt(addr);
            Ok(())
        }
    };
    // SAFETY: a zeroed shmid_ds filled by IPC_STAT, then written back with new owner ids.
    let r = r.and_then(|()| unsafe {
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        if libc::shmctl(id, libc::IPC_STAT, &mut ds) != 0 {
            return Err(io::Error::last_os_error());
        }
        ds.shm_perm.uid = uid;
        ds.shm_perm.gid = gid;
        if libc::shmctl(id, libc::IPC_SET, &mut ds) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    });
    if let Err(e) = r {
        shm_remove(id);
        return Err(e);
    }
    Ok(id)
}

/// shmctl(id, IPC_RMID): the segment goes once nobody has it attached.
pub fn shm_remove(id: i32) {
    // SAFETY: IPC_RMID takes no buffer.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
}

/// Whether a PID namespace with a /proc of its own can be set up here, tried in throwaway
/// processes: a child unshares CLONE_NEWPID | CLONE_NEWNS, its child (pid 1 inside) makes
/// the mounts private and mounts a procfs on /proc. A container whose /proc has locked
/// overmounts (proc(5): mounting a new procfs is refused then) or no CAP_SYS_ADMIN says no.
pub fn pid_namespace_with_proc_works() -> bool {
    let Ok(pid) = fork() else {
        return false;
    };
    if pid == 0 {
        // SAFETY: the children make raw syscalls on static C strings and leave with _exit,
        // running no Rust code that could need a lock (see `fork`).
        unsafe {
            if libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS) != 0 {
                libc::_exit(1);
            }
            let inner = libc::fork();
            if inner == 0 {
                let ok = mount_private_proc_raw();
                libc::_exit(if ok { 0 } else { 1 });
            }
            let mut status = 0;
            if inner < 0 || libc::waitpid(inner, &mut status, 0) != inner {
                libc::_exit(1);
            }
            libc::_exit(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                1
            });
        }
    }
    matches!(waitpid(pid, 0), Ok((_, status)) if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
}

/// `mount --make-rprivate /` then `mount -t proc proc /proc` (nosuid, nodev, noexec).
///
/// # Safety
/// Only raw syscalls on static C strings; safe to call in a forked child.
unsafe fn mount_private_proc_raw() -> bool {
    libc::mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        libc::MS_REC | libc::MS_PRIVATE,
        std::ptr::null(),
    ) == 0
        && libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ) == 0
}

/// Take ownership of an fd the kernel just installed in this process for us (an
/// SCM_RIGHTS fd from recvmsg(2)): nothing else refers to it, so it is closed exactly once.
pub fn own_received_fd(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: recvmsg(2) with SCM_RIGHTS installs a fresh descriptor owned by no other
    // object in this process; the caller passes each received number exactly once.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// `_exit(2)`: end a forked child at once, running no exit handlers (the parent's buffered
/// output must not be flushed twice).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns.
    unsafe { libc::_exit(code) }
}

/// seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER): install the filter
/// and return its user-notification listener (seccomp_unotify(2), Linux 5.0). `clawjail
/// learn` hands it to the supervisor before exec.
pub fn seccomp_set_mode_filter_listener(
    prog: &[libc::sock_filter],
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: as in `seccomp_set_mode_filter`; with NEW_LISTENER the kernel returns a new fd.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_long,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as libc::c_long,
            &fprog as *const libc::sock_fprog,
        )
    })?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// One seccomp user notification (`struct seccomp_notif`), copied out of the kernel's type.
#[derive(Debug, Clone, Copy)]
pub struct Notif {
    pub id: u64,
    /// The thread's id, in the listener's PID namespace.
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// SECCOMP_IOCTL_NOTIF_RECV: the next pending notification (blocks when none is; poll the
/// listener for POLLIN first). ENOENT: the caller died before we received it.
pub fn seccomp_notif_recv(listener: BorrowedFd<'_>) -> io::Result<Notif> {
    // SAFETY: seccomp_notif is plain old data; the kernel requires it zeroed (EINVAL
    // otherwise, seccomp_unotify(2)).
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `n` is a valid, writable seccomp_notif for the duration of the call.
    check(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut n as *mut libc::seccomp_notif,
        ) as libc::c_long
    })?;
    Ok(Notif {
        id: n.id,
        pid: n.pid,
        nr: n.data.nr,
        arch: n.data.arch,
        args: n.data.args,
    })
}

/// SECCOMP_IOCTL_NOTIF_ID_VALID: whether notification `id` is still pending (its thread
/// has not died or been interrupted): memory read for it belongs to that call.
pub fn seccomp_notif_id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the kernel reads one u64 through the pointer.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id as *const u64,
        ) == 0
    }
}

/// SECCOMP_IOCTL_NOTIF_SEND with SECCOMP_USER_NOTIF_FLAG_CONTINUE: let the call run as if
/// the filter had allowed it (the supervisor only records; it decides nothing).
pub fn seccomp_notif_continue(listener: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
    };
    // SAFETY: `resp` is a valid seccomp_notif_resp for the duration of the call.
    check(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        ) as libc::c_long
    })
    .map(drop)
}

/// pidfd_open(tid, PIDFD_THREAD) then pidfd_getfd(pidfd, fd): a duplicate of another
/// thread's fd (Linux 5.6; PIDFD_THREAD 6.9), to ask a socket its type. Needs ptrace
/// access over the thread (PTRACE_MODE_ATTACH_REALCREDS).
pub fn fd_of_thread(tid: u32, fd: i32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    const PIDFD_THREAD: libc::c_long = libc::O_EXCL as libc::c_long;
    // SAFETY: integer arguments; returns a new fd or -1.
    let pidfd =
        check(unsafe { libc::syscall(libc::SYS_pidfd_open, tid as libc::c_long, PIDFD_THREAD) })?;
    let pidfd = i32::try_from(pidfd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just installed this descriptor for us.
    let pidfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd) };
    // SAFETY: integer arguments; returns a new fd or -1.
    let got = check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_getfd,
            pidfd.as_raw_fd() as libc::c_long,
            fd as libc::c_long,
            0 as libc::c_long,
        )
    })?;
    let got = i32::try_from(got).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just installed this descriptor for us.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(got) })
}
