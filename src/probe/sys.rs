//! Probe actions that need raw syscalls (seccomp guards). Test support: the only probe
//! file allowed `unsafe`, each block with its SAFETY comment.
//!
//! Each action makes the guarded call once, the way an attacker would, and reports the
//! kernel's answer; run bare (the control) it must succeed, so a denial under clawjail is
//! the filter's doing. Actions that need a capability say so; the tests keep it.
#![allow(unsafe_code)]

use super::action::Action;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{arg, Outcome};

pub fn run(action: Action, args: &[String]) -> Option<Outcome> {
    Some(match action {
        // unshare(CLONE_NEWUSER)
        Action::UnshareUserns => raw(unsafe_syscall(
            libc::SYS_unshare,
            [libc::CLONE_NEWUSER as i64, 0, 0, 0],
        )),
        // clone(CLONE_NEWUSER | SIGCHLD): the child exits at once.
        Action::CloneUserns => clone_and_reap(libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64),
        // clone(CLONE_NEWUSER | SIGCHLD | 1 << 32): the kernel reads the low 32 bits of
        // clone's flags, so this is clone-userns; a 64-bit compare would miss it.
        Action::CloneUsernsHigh => {
            clone_and_reap(libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64 | (1 << 32))
        }
        // clone3 with no flags (a plain fork): ENOSYS under the filter.
        Action::Clone3 => clone3_fork(),
        // fork, 4 threads (glibc tries clone3 first, then clone), join: "ok".
        Action::ForkAndThreads => fork_and_threads(),
        // TIOCSTI on a pty this process made its controlling tty; "high" sets bit 32 of cmd.
        // With an fd number: TIOCSTI on that fd (verify hands each child a pty as its
        // controlling terminal); otherwise acquire a pty here ("high": set bit 32 too).
        Action::Tiocsti => match args.first().and_then(|a| a.parse::<i64>().ok()) {
            Some(fd) => tiocsti_on(fd, false),
            None => tiocsti(args.first().is_some_and(|a| a == "high")),
        },
        // io_uring_setup(1, {})
        Action::IoUringSetup => io_uring_setup(),
        // PTRACE_SEIZE of the parent (needs CAP_SYS_PTRACE: the parent is the root test
        // harness); SEIZE does not stop it, and exiting detaches.
        Action::PtraceParent => ptrace_seize(nix::unistd::getppid().as_raw()),
        // PTRACE_SEIZE of any pid (verify: its own pid, a same-uid process outside).
        Action::PtraceAttach => match super::arg::<i32>(args, 0) {
            Ok(pid) => ptrace_seize(pid),
            Err(o) => o,
        },
        // bpf(BPF_MAP_CREATE, array map) (needs CAP_BPF: unprivileged_bpf_disabled=2).
        Action::BpfMapCreate => bpf_map_create(),
        // perf_event_open(task clock, this process, user space only).
        Action::PerfEventOpen => perf_event_open(),
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, create)
        Action::Keyctl => raw(unsafe_syscall(libc::SYS_keyctl, [0, -2, 1, 0])),
        // add_key("user", "clawjail-probe", "x", KEY_SPEC_PROCESS_KEYRING)
        Action::AddKey => add_key(),
        // userfaultfd(O_CLOEXEC | UFFD_USER_MODE_ONLY): allowed unprivileged for user faults.
        Action::Userfaultfd => raw(unsafe_syscall(
            libc::SYS_userfaultfd,
            [libc::O_CLOEXEC as i64 | 1, 0, 0, 0],
        )),
        // mount a tmpfs on DIR and unmount it again (needs CAP_SYS_ADMIN).
        Action::MountTmpfs | Action::Mount => match args.first() {
            Some(dir) => mount_tmpfs(dir),
            None => Outcome::Broken("dir".into()),
        },
        // name_to_handle_at(PATH)
        Action::NameToHandleAt => match args.first() {
            Some(p) => {
                name_to_handle(p).map_or_else(Outcome::Errno, |_| Outcome::Ok(String::new()))
            }
            None => Outcome::Broken("path".into()),
        },
        // open_by_handle_at on PATH's handle (needs CAP_DAC_READ_SEARCH).
        Action::OpenByHandleAt => match args.first() {
            Some(p) => open_by_handle(p),
            None => Outcome::Broken("path".into()),
        },
        // personality(READ_IMPLIES_EXEC)
        Action::PersonalityRie => raw(unsafe_syscall(
            libc::SYS_personality,
            [0x0040_0000, 0, 0, 0],
        )),
        // socket(FAMILY, TYPE, PROTO), numbers.
        Action::Socket => match (
            arg::<i64>(args, 0),
            arg::<i64>(args, 1),
            arg::<i64>(args, 2),
        ) {
            (Ok(f), Ok(t), Ok(p)) => fd_outcome(unsafe_syscall(libc::SYS_socket, [f, t, p, 0])),
            _ => Outcome::Broken("socket FAMILY TYPE PROTO".into()),
        },
        // socketpair(AF_UNIX, TYPE)
        Action::Socketpair => match arg::<i64>(args, 0) {
            Ok(t) => socketpair(t),
            Err(o) => o,
        },
        // sendto(MSG_FASTOPEN) to a listener of our own on 127.0.0.1.
        Action::SendtoFastopen => sendto_fastopen(),
        // getpid through the i386 entry (int 0x80); under the filter the process dies.
        Action::Int80Getpid => int80_getpid(),
        // getpid with the x32 bit set: ENOSYS bare (no x32 in this kernel), the guard's
        // answer under the filter.
        Action::X32Getpid => raw(unsafe_syscall(0x4000_0000 + libc::SYS_getpid, [0, 0, 0, 0])),
        _ => return isolation(action, args),
    })
}

/// Borrow an fd number given on the command line (it may be invalid: read gives EBADF).
pub fn borrow_raw_fd(fd: i32) -> BorrowedFd<'static> {
    // SAFETY: the probe only passes this to read(2); an invalid fd yields EBADF, and the
    // probe process exits right after, so no lifetime outlives the descriptor in practice.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Fork a child that forks a grandchild sleeping `secs`, then exits: the grandchild is
/// orphaned and re-parented to the nearest subreaper. Returns the grandchild's pid.
pub fn fork_orphan(secs: u64) -> std::io::Result<i32> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid 2-element array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the probe is single-threaded; the children only call async-signal-safe
    // functions (fork, write, sleep, _exit).
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: as above.
        let grand = unsafe { libc::fork() };
        if grand == 0 {
            // SAFETY: async-signal-safe calls only.
            unsafe {
                libc::sleep(secs as u32);
                libc::_exit(0);
            }
        }
        let bytes = grand.to_ne_bytes();
        // SAFETY: writing 4 bytes from a live buffer to our pipe, then _exit.
        unsafe {
            libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0);
        }
    }
    let mut buf = [0u8; 4];
    // SAFETY: reading into a live 4-byte buffer; waitpid on our own child.
    unsafe {
        libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len());
        libc::waitpid(child, std::ptr::null_mut(), 0);
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    Ok(i32::from_ne_bytes(buf))
}

/// A raw syscall with integer arguments: the return value or the errno.
fn unsafe_syscall(nr: i64, a: [i64; 4]) -> Result<i64, i32> {
    // SAFETY: every caller passes integers or pointers to live locals of the right type.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3]) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

fn raw(r: Result<i64, i32>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok(String::new()),
        Err(e) => Outcome::Errno(e),
    }
}

/// Success means a new fd: close it and say "ok".
fn fd_outcome(r: Result<i64, i32>) -> Outcome {
    match r {
        Ok(fd) => {
            // SAFETY: the kernel just returned this fd to us and nothing else owns it.
            drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            Outcome::Ok(String::new())
        }
        Err(e) => Outcome::Errno(e),
    }
}

/// Reap a child created by a raw clone/clone3 that returned `pid` in the parent.
fn reap(pid: i64) -> Outcome {
    let mut status = 0;
    // SAFETY: waiting for our own child with a live status pointer.
    unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    Outcome::Ok(String::new())
}

fn clone_and_reap(flags: u64) -> Outcome {
    // SAFETY: without CLONE_VM the child gets a copy of our memory (like fork) and runs on
    // its copy of this stack; it calls only _exit.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match r {
        // SAFETY: child: leave at once without running any Rust code.
        0 => unsafe { libc::_exit(0) },
        r if r < 0 => Outcome::Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
        pid => reap(pid),
    }
}

fn clone3_fork() -> Outcome {
    // struct clone_args (include/uapi/linux/sched.h), CLONE_ARGS_SIZE_VER0 = 64 bytes.
    let mut cl_args = [0u64; 8];
    cl_args[4] = libc::SIGCHLD as u64; // exit_signal
                                       // SAFETY: cl_args is a live, zeroed clone_args of the size passed; no CLONE_VM, so the
                                       // child runs on its own copy of this stack and calls only _exit.
    let r = unsafe { libc::syscall(libc::SYS_clone3, cl_args.as_mut_ptr(), 64usize) };
    match r {
        // SAFETY: child: leave at once.
        0 => unsafe { libc::_exit(0) },
        r if r < 0 => Outcome::Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
        pid => reap(pid),
    }
}

fn fork_and_threads() -> Outcome {
    let handles: Vec<_> = (0..4).map(|i| std::thread::spawn(move || i * 2)).collect();
    let mut sum = 0;
    for h in handles {
        match h.join() {
            Ok(v) => sum += v,
            Err(_) => return Outcome::Broken("a thread panicked".into()),
        }
    }
    // SAFETY: the threads above are joined; the child only calls _exit.
    let pid = unsafe { libc::fork() };
    match pid {
        // SAFETY: child: leave at once.
        0 => unsafe { libc::_exit(7) },
        p if p < 0 => Outcome::Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
        p => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(p, &mut status, 0) };
            let code = libc::WEXITSTATUS(status);
            Outcome::Ok(format!("threads {sum} child {code}"))
        }
    }
}

fn tiocsti(high_bits: bool) -> Outcome {
    let pty = match nix::pty::openpty(None, None) {
        Ok(p) => p,
        Err(e) => return Outcome::Broken(format!("openpty: {e}")),
    };
    // Make the pty our controlling tty: a new session (EPERM if we already lead one, as
    // under clawjail; that is fine), then TIOCSCTTY. Non-root TIOCSTI needs this.
    // SAFETY: setsid takes no arguments.
    unsafe { libc::setsid() };
    if let Err(e) = unsafe_syscall(
        libc::SYS_ioctl,
        [pty.slave.as_raw_fd() as i64, libc::TIOCSCTTY as i64, 0, 0],
    ) {
        return Outcome::Broken(format!("TIOCSCTTY: errno {e}"));
    }
    let r = tiocsti_on(pty.slave.as_raw_fd() as i64, high_bits);
    // Closing the master of our controlling tty would hang us up (SIGHUP) before the
    // answer is printed; keep both ends open until the process exits.
    std::mem::forget(pty);
    r
}

/// ioctl(fd, TIOCSTI, "#"), optionally with bit 32 set in the request (CVE-2019-10063).
fn tiocsti_on(fd: i64, high_bits: bool) -> Outcome {
    let c: u8 = b'#';
    let cmd = libc::TIOCSTI as i64 | if high_bits { 1 << 32 } else { 0 };
    raw(unsafe_syscall(
        libc::SYS_ioctl,
        [fd, cmd, &c as *const u8 as i64, 0],
    ))
}

fn io_uring_setup() -> Outcome {
    // struct io_uring_params is 120 bytes; zeroed means "defaults".
    let mut params = [0u8; 120];
    fd_outcome(unsafe_syscall(
        libc::SYS_io_uring_setup,
        [1, params.as_mut_ptr() as i64, 0, 0],
    ))
}

fn ptrace_seize(pid: i32) -> Outcome {
    // PTRACE_SEIZE = 0x4206 (include/uapi/linux/ptrace.h)
    raw(unsafe_syscall(libc::SYS_ptrace, [0x4206, pid as i64, 0, 0]))
}

fn bpf_map_create() -> Outcome {
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries.
    let mut attr = [0u32; 32];
    attr[0] = 2; // BPF_MAP_TYPE_ARRAY
    attr[1] = 4;
    attr[2] = 4;
    attr[3] = 1;
    fd_outcome(unsafe_syscall(
        libc::SYS_bpf,
        [
            0,
            attr.as_mut_ptr() as i64,
            std::mem::size_of_val(&attr) as i64,
            0,
        ],
    ))
}

fn perf_event_open() -> Outcome {
    // struct perf_event_attr (PERF_ATTR_SIZE_VER0 = 64 bytes is accepted): type u32,
    // size u32, config u64, ..., flags u64 at offset 40.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&1u64.to_ne_bytes()); // PERF_COUNT_SW_TASK_CLOCK
                                                      // disabled (bit 0), exclude_kernel (bit 5), exclude_hv (bit 6)
    attr[40..48].copy_from_slice(&(1u64 | 1 << 5 | 1 << 6).to_ne_bytes());
    // SAFETY: attr is a live, correctly sized perf_event_attr; pid 0, cpu -1, no group.
    let r = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            0i32,
            -1i32,
            -1i32,
            0u64,
        )
    };
    fd_outcome(if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    })
}

fn add_key() -> Outcome {
    let payload = b"x";
    // SAFETY: C string literals and a live payload buffer of the length passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            c"clawjail-probe".as_ptr(),
            payload.as_ptr(),
            payload.len(),
            -2i32, // KEY_SPEC_PROCESS_KEYRING
        )
    };
    raw(if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    })
}

fn mount_tmpfs(dir: &str) -> Outcome {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    match mount(
        Some("clawjail-probe"),
        dir,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    ) {
        Ok(()) => Outcome::from_nix(umount2(dir, MntFlags::empty()), |_| String::new()),
        Err(e) => Outcome::Errno(e as i32),
    }
}

/// struct file_handle with room for the handle bytes (MAX_HANDLE_SZ = 128).
#[repr(C)]
struct FileHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; 128],
}

fn name_to_handle(path: &str) -> Result<FileHandle, i32> {
    let cpath = std::ffi::CString::new(path).map_err(|_| libc::EINVAL)?;
    let mut h = FileHandle {
        handle_bytes: 128,
        handle_type: 0,
        f_handle: [0; 128],
    };
    let mut mount_id: i32 = 0;
    // SAFETY: cpath is a valid C string; h and mount_id are live out-buffers of the sizes
    // the kernel expects (handle_bytes says how much room f_handle has).
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            cpath.as_ptr(),
            &mut h as *mut FileHandle,
            &mut mount_id as *mut i32,
            0i32,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(h)
    }
}

fn open_by_handle(path: &str) -> Outcome {
    // Under the filter name_to_handle_at is denied too; then try a made-up handle, so the
    // answer is still about open_by_handle_at (the kernel would say ESTALE or EINVAL).
    let h = name_to_handle(path).unwrap_or(FileHandle {
        handle_bytes: 8,
        handle_type: 1, // FILEID_INO32_GEN
        f_handle: [1; 128],
    });
    // mount_fd may be any file on the same filesystem: the probed path itself, so the
    // probe needs no access beyond what the test policy grants.
    let dir = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Outcome::Broken(format!("open {path}: {e}")),
    };
    fd_outcome(unsafe_syscall(
        libc::SYS_open_by_handle_at,
        [
            dir.as_raw_fd() as i64,
            &h as *const FileHandle as i64,
            libc::O_RDONLY as i64,
            0,
        ],
    ))
}

fn socketpair(ty: i64) -> Outcome {
    let mut sv = [0i32; 2];
    match unsafe_syscall(
        libc::SYS_socketpair,
        [libc::AF_UNIX as i64, ty, 0, sv.as_mut_ptr() as i64],
    ) {
        Ok(_) => {
            // SAFETY: the kernel just created both fds for us.
            drop(unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) });
            Outcome::Ok(String::new())
        }
        Err(e) => Outcome::Errno(e),
    }
}

fn sendto_fastopen() -> Outcome {
    // A listener of our own: listen() without bind() picks an ephemeral port on 0.0.0.0,
    // which Landlock allows without a BindTcp rule (binding port 0 would need one).
    use nix::sys::socket::{listen, socket, AddressFamily, Backlog, SockFlag, SockType};
    let listener = match socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .and_then(|l| Backlog::new(4).and_then(|b| listen(&l, b)).map(|()| l))
    {
        Ok(l) => std::net::TcpListener::from(l),
        Err(e) => return Outcome::Broken(format!("listen: {e}")),
    };
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => return Outcome::Broken(format!("local_addr: {e}")),
    };
    let fd = match unsafe_syscall(
        libc::SYS_socket,
        [libc::AF_INET as i64, libc::SOCK_STREAM as i64, 0, 0],
    ) {
        // SAFETY: the kernel just returned this fd.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
        Err(e) => return Outcome::Broken(format!("socket: errno {e}")),
    };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    let msg = b"x";
    // SAFETY: msg and addr are live for the call; addrlen matches sockaddr_in.
    let r = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            libc::MSG_FASTOPEN,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if r < 0 {
        Outcome::Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Outcome::Ok(format!("sent {r}"))
    }
}

#[cfg(target_arch = "x86_64")]
fn int80_getpid() -> Outcome {
    let mut ret: u32 = 20; // __NR_getpid on i386
                           // SAFETY: getpid through the 32-bit entry takes no arguments and touches no memory;
                           // the compat entry clobbers r8-r11, which we declare.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("eax") ret,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
            options(nostack)
        );
    }
    let r = ret as i32;
    if r < 0 {
        Outcome::Errno(-r)
    } else {
        Outcome::Ok(format!("pid {r}"))
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn int80_getpid() -> Outcome {
    Outcome::Broken("int 0x80 exists on x86_64 only".into())
}

// ---------------------------------------------------------------------------------------
// Isolation (issue 9): file metadata outside the grants, other processes of the same uid,
// SysV/POSIX IPC, inotify. Each attempt changes nothing it could not change back: limits,
// priorities, affinities and scheduling parameters are set to the values just read.

fn isolation(action: Action, args: &[String]) -> Option<Outcome> {
    let path = || args.first().map(String::as_str).unwrap_or("");
    let mode = || {
        args.get(1)
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or(0o644)
    };
    let pid = || arg::<i32>(args, 0);
    Some(match action {
        // chmod(PATH, MODE): MODE in octal.
        Action::Chmod => with_path(path(), |p| {
            // SAFETY: p is a live C string.
            raw(ret(unsafe { libc::chmod(p.as_ptr(), mode()) } as i64))
        }),
        // open(PATH, O_PATH), then fchmodat2(fd, "", MODE, AT_EMPTY_PATH).
        Action::Fchmodat2Opath => with_opath(path(), |fd| {
            raw(unsafe_syscall(
                libc::SYS_fchmodat2,
                [
                    fd,
                    c"".as_ptr() as i64,
                    i64::from(mode()),
                    libc::AT_EMPTY_PATH as i64,
                ],
            ))
        }),
        // open(PATH, O_PATH), then chmod("/proc/self/fd/N", MODE).
        Action::ChmodProcfd => with_opath(path(), |fd| {
            with_path(&format!("/proc/self/fd/{fd}"), |p| {
                // SAFETY: p is a live C string.
                raw(ret(unsafe { libc::chmod(p.as_ptr(), mode()) } as i64))
            })
        }),
        // open(PATH, O_RDONLY), then fchmod(fd, MODE): the open is Landlock's to refuse.
        Action::Fchmod => match std::fs::File::open(path()) {
            Ok(f) => raw(unsafe_syscall(
                libc::SYS_fchmod,
                [f.as_raw_fd() as i64, i64::from(mode()), 0, 0],
            )),
            Err(e) => Outcome::from_io::<()>(Err(e), |_| String::new()),
        },
        // chown(PATH, -1, getgid()): no change of ownership, allowed to the owner.
        Action::Chown => with_path(path(), |p| {
            // SAFETY: p is a live C string; uid -1 keeps the owner.
            raw(ret(
                unsafe { libc::chown(p.as_ptr(), u32::MAX, libc::getgid()) } as i64,
            ))
        }),
        // setxattr(PATH, "user.clawjail-probe", "x")
        Action::Setxattr => with_path(path(), |p| {
            let v = b"x";
            // SAFETY: live C strings and a live value buffer of the length passed.
            raw(ret(unsafe {
                libc::setxattr(
                    p.as_ptr(),
                    c"user.clawjail-probe".as_ptr(),
                    v.as_ptr().cast(),
                    v.len(),
                    0,
                )
            } as i64))
        }),
        // utimensat(AT_FDCWD, PATH, NULL, 0): set both times to now.
        Action::Utimes => with_path(path(), |p| {
            raw(unsafe_syscall(
                libc::SYS_utimensat,
                [libc::AT_FDCWD as i64, p.as_ptr() as i64, 0, 0],
            ))
        }),
        // inotify_add_watch(PATH) (a directory: names and timing of what happens in it).
        Action::Inotify => inotify(path()),
        // prlimit64(PID, RLIMIT_CORE): read it, then set it to the same value.
        Action::Prlimit => pid().map_or_else(|o| o, prlimit_same),
        Action::PrlimitParent => prlimit_same(nix::unistd::getppid().as_raw()),
        // getpriority(PRIO_PROCESS, PID), then setpriority to the same value.
        Action::Renice => pid().map_or_else(|o| o, renice_same),
        Action::ReniceParent => renice_same(nix::unistd::getppid().as_raw()),
        // kill(getppid(), 0): may this process signal its parent at all (the supervisor,
        // which serves the egress broker)? Signal 0 checks permission and sends nothing.
        Action::KillParent => {
            Outcome::from_nix(nix::sys::signal::kill(nix::unistd::getppid(), None), |_| {
                String::new()
            })
        }
        // getpriority(PRIO_USER, 0): every process of the caller's uid.
        Action::PrioUser => prio(i64::from(libc::PRIO_USER), 0)
            .map_or_else(Outcome::Errno, |n| Outcome::Ok(format!("nice {n}"))),
        // setpriority(PRIO_USER, 0, N): renice every process of the uid.
        Action::ReniceUser => match arg::<i32>(args, 0) {
            Ok(n) => raw(unsafe_syscall(
                libc::SYS_setpriority,
                [i64::from(libc::PRIO_USER), 0, i64::from(n), 0],
            )),
            Err(o) => o,
        },
        // sched_getaffinity(PID), then sched_setaffinity(PID) to the same mask.
        Action::SchedSetaffinity => pid().map_or_else(|o| o, affinity_same),
        // sched_getparam(PID), then sched_setparam(PID) to the same.
        Action::SchedSetparam => pid().map_or_else(|o| o, setparam_same),
        // sched_getscheduler + sched_getparam, then sched_setscheduler to the same.
        Action::SchedSetscheduler => pid().map_or_else(|o| o, setscheduler_same),
        // sched_getattr(PID), then sched_setattr(PID) to the same.
        Action::SchedSetattr => pid().map_or_else(|o| o, setattr_same),
        // ioprio_get(IOPRIO_WHO_PROCESS, PID), then ioprio_set to the same.
        Action::Ioprio => pid().map_or_else(|o| o, ioprio_same),
        // get_robust_list(PID)
        Action::GetRobustList => pid().map_or_else(|o| o, robust_list),
        // shmget(IPC_PRIVATE), write MARK, print "ok <shmid>", stay N seconds, remove it.
        Action::ShmHold => shm_hold(args),
        // shmat(ID): "ok <first bytes>".
        Action::ShmAttach => pid().map_or_else(|o| o, shm_attach),
        // shmget(IPC_PRIVATE) + shmat + shmdt + IPC_RMID: SysV shm of one's own.
        Action::ShmSelf => shm_self(),
        // mq_open(NAME, O_RDONLY)
        Action::MqOpen => with_path(path().trim_start_matches('/'), |p| {
            fd_outcome(unsafe_syscall(
                libc::SYS_mq_open,
                [p.as_ptr() as i64, libc::O_RDONLY as i64, 0, 0],
            ))
        }),
        // mq_unlink(NAME): tests remove a queue whose holder they had to kill.
        Action::MqUnlink => with_path(path().trim_start_matches('/'), |p| {
            match unsafe_syscall(libc::SYS_mq_unlink, [p.as_ptr() as i64, 0, 0, 0]) {
                Ok(_) => Outcome::Ok(String::new()),
                Err(e) => Outcome::Errno(e),
            }
        }),
        // mq_open(NAME, O_CREAT|O_RDWR, 0600), print "ok", stay N seconds, mq_unlink.
        Action::MqHold => mq_hold(path(), arg::<u64>(args, 1).unwrap_or(10)),
        _ => return None,
    })
}

fn ret(r: i64) -> Result<i64, i32> {
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

fn with_path(p: &str, f: impl FnOnce(&std::ffi::CStr) -> Outcome) -> Outcome {
    match std::ffi::CString::new(p) {
        Ok(c) if !p.is_empty() => f(&c),
        _ => Outcome::Broken("path".into()),
    }
}

/// open(PATH, O_PATH|O_CLOEXEC): needs no Landlock right at all.
fn with_opath(p: &str, f: impl FnOnce(i64) -> Outcome) -> Outcome {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(p)
    {
        Ok(file) => f(file.as_raw_fd() as i64),
        Err(e) => Outcome::Broken(format!("open(O_PATH) {p}: {e}")),
    }
}

fn inotify(p: &str) -> Outcome {
    let fd = match unsafe_syscall(libc::SYS_inotify_init1, [libc::IN_CLOEXEC as i64, 0, 0, 0]) {
        // SAFETY: the kernel just returned this fd.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
        Err(e) => return Outcome::Errno(e),
    };
    with_path(p, |c| {
        raw(unsafe_syscall(
            libc::SYS_inotify_add_watch,
            [
                fd.as_raw_fd() as i64,
                c.as_ptr() as i64,
                libc::IN_ALL_EVENTS as i64,
                0,
            ],
        ))
    })
}

fn prlimit_same(pid: i32) -> Outcome {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let null = std::ptr::null::<libc::rlimit>() as i64;
    if let Err(e) = unsafe_syscall(
        libc::SYS_prlimit64,
        [
            pid as i64,
            libc::RLIMIT_CORE as i64,
            null,
            &mut old as *mut _ as i64,
        ],
    ) {
        return Outcome::Errno(e);
    }
    raw(unsafe_syscall(
        libc::SYS_prlimit64,
        [
            pid as i64,
            libc::RLIMIT_CORE as i64,
            &old as *const _ as i64,
            null,
        ],
    ))
}

/// getpriority's raw syscall returns 20 - nice (never negative), so errors are clear.
/// `which` as i64: PRIO_* are u32 in glibc's libc bindings and c_int in musl's.
fn prio(which: i64, who: i32) -> Result<i64, i32> {
    unsafe_syscall(libc::SYS_getpriority, [which, who as i64, 0, 0]).map(|r| 20 - r)
}

fn renice_same(pid: i32) -> Outcome {
    match prio(i64::from(libc::PRIO_PROCESS), pid) {
        Ok(n) => raw(unsafe_syscall(
            libc::SYS_setpriority,
            [i64::from(libc::PRIO_PROCESS), pid as i64, n, 0],
        )),
        Err(e) => Outcome::Errno(e),
    }
}

fn affinity_same(pid: i32) -> Outcome {
    let mut mask = [0u64; 16];
    let size = std::mem::size_of_val(&mask) as i64;
    let n = match unsafe_syscall(
        libc::SYS_sched_getaffinity,
        [pid as i64, size, mask.as_mut_ptr() as i64, 0],
    ) {
        Ok(n) => n,
        Err(e) => return Outcome::Errno(e),
    };
    raw(unsafe_syscall(
        libc::SYS_sched_setaffinity,
        [pid as i64, n, mask.as_ptr() as i64, 0],
    ))
}

fn setparam_same(pid: i32) -> Outcome {
    // The kernel's struct sched_param is one int (musl's libc struct has more fields).
    let mut p: libc::c_int = 0;
    if let Err(e) = unsafe_syscall(
        libc::SYS_sched_getparam,
        [pid as i64, &mut p as *mut _ as i64, 0, 0],
    ) {
        return Outcome::Errno(e);
    }
    raw(unsafe_syscall(
        libc::SYS_sched_setparam,
        [pid as i64, &p as *const _ as i64, 0, 0],
    ))
}

fn setscheduler_same(pid: i32) -> Outcome {
    let policy = match unsafe_syscall(libc::SYS_sched_getscheduler, [pid as i64, 0, 0, 0]) {
        Ok(p) => p,
        Err(e) => return Outcome::Errno(e),
    };
    // The kernel's struct sched_param is one int (musl's libc struct has more fields).
    let mut p: libc::c_int = 0;
    if let Err(e) = unsafe_syscall(
        libc::SYS_sched_getparam,
        [pid as i64, &mut p as *mut _ as i64, 0, 0],
    ) {
        return Outcome::Errno(e);
    }
    raw(unsafe_syscall(
        libc::SYS_sched_setscheduler,
        [pid as i64, policy, &p as *const _ as i64, 0],
    ))
}

fn setattr_same(pid: i32) -> Outcome {
    // struct sched_attr (include/uapi/linux/sched/types.h): SCHED_ATTR_SIZE_VER1 = 56 bytes.
    let mut attr = [0u32; 14];
    if let Err(e) = unsafe_syscall(
        libc::SYS_sched_getattr,
        [pid as i64, attr.as_mut_ptr() as i64, 56, 0],
    ) {
        return Outcome::Errno(e);
    }
    attr[0] = 56;
    raw(unsafe_syscall(
        libc::SYS_sched_setattr,
        [pid as i64, attr.as_ptr() as i64, 0, 0],
    ))
}

fn ioprio_same(pid: i32) -> Outcome {
    const IOPRIO_WHO_PROCESS: i64 = 1;
    match unsafe_syscall(libc::SYS_ioprio_get, [IOPRIO_WHO_PROCESS, pid as i64, 0, 0]) {
        Ok(v) => raw(unsafe_syscall(
            libc::SYS_ioprio_set,
            [IOPRIO_WHO_PROCESS, pid as i64, v, 0],
        )),
        Err(e) => Outcome::Errno(e),
    }
}

fn robust_list(pid: i32) -> Outcome {
    let mut head: usize = 0;
    let mut len: usize = 0;
    raw(unsafe_syscall(
        libc::SYS_get_robust_list,
        [
            pid as i64,
            &mut head as *mut _ as i64,
            &mut len as *mut _ as i64,
            0,
        ],
    ))
}

/// What `shm-hold` writes, and `shm-attach` reads back.
pub const SHM_MARK: &[u8] = b"clawjail-shm-secret";

fn shm_hold(args: &[String]) -> Outcome {
    let secs = arg::<u64>(args, 0).unwrap_or(10);
    // SAFETY: plain integer arguments.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, 0o600) };
    if id < 0 {
        return Outcome::Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: attaching the segment just created, at an address the kernel picks.
    let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if addr as isize == -1 {
        return Outcome::Broken("shmat of its own segment failed".into());
    }
    // SAFETY: the segment is 4096 bytes and mapped read-write at addr.
    unsafe { std::ptr::copy_nonoverlapping(SHM_MARK.as_ptr(), addr.cast::<u8>(), SHM_MARK.len()) };
    println!("ok {id}");
    use std::io::Write;
    if std::io::stdout().flush().is_err() {
        return Outcome::Broken("stdout".into());
    }
    std::thread::sleep(std::time::Duration::from_secs(secs));
    // SAFETY: removing our own segment.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    Outcome::Ok("released".into())
}

fn shm_attach(id: i32) -> Outcome {
    // SAFETY: attaching read-only at an address the kernel picks.
    let addr = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
    if addr as isize == -1 {
        return Outcome::Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    let mut buf = vec![0u8; SHM_MARK.len()];
    // SAFETY: the segment is at least 4096 bytes and mapped at addr; then detached.
    unsafe {
        std::ptr::copy_nonoverlapping(addr.cast::<u8>(), buf.as_mut_ptr(), buf.len());
        libc::shmdt(addr);
    }
    Outcome::Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn shm_self() -> Outcome {
    // SAFETY: plain integer arguments.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, 0o600) };
    if id < 0 {
        return Outcome::Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    let r = shm_attach(id);
    // SAFETY: removing our own segment.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    match r {
        Outcome::Ok(_) => Outcome::Ok(format!("shmid {id}")),
        other => other,
    }
}

fn mq_hold(name: &str, secs: u64) -> Outcome {
    with_path(name.trim_start_matches('/'), |c| {
        match unsafe_syscall(
            libc::SYS_mq_open,
            [
                c.as_ptr() as i64,
                (libc::O_CREAT | libc::O_RDWR) as i64,
                0o600,
                0,
            ],
        ) {
            Ok(fd) => {
                println!("ok");
                use std::io::Write;
                if std::io::stdout().flush().is_err() {
                    return Outcome::Broken("stdout".into());
                }
                std::thread::sleep(std::time::Duration::from_secs(secs));
                // SAFETY: our own queue descriptor and name.
                unsafe {
                    libc::close(fd as i32);
                    libc::syscall(libc::SYS_mq_unlink, c.as_ptr());
                }
                Outcome::Ok("released".into())
            }
            Err(e) => Outcome::Errno(e),
        }
    })
}
