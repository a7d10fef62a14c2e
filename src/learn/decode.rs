//! Decode one notified call into what the learned policy needs: paths read from the
//! target's memory (`/proc/<tid>/mem`, reopened per call: an fd opened before the target's
//! execve reads nothing afterwards) and resolved against its cwd and dir fds
//! (`/proc/<tid>/cwd`, `/proc/<tid>/fd/N`); socket addresses; exec'd files and their
//! interpreters.
//!
//! Reading needs ptrace access over the thread (same uid and a dumpable target, or
//! CAP_SYS_PTRACE; proc(5) "/proc/pid/mem"). When that is refused the run aborts
//! ([`Abort`]): a silently shrunk policy is worse than none. A thread that died, or a bad
//! pointer (the call itself fails with EFAULT), is skipped: there is nothing to grant.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::{Class, Recording};
use crate::seccomp::syscalls;
use crate::sys::Notif;

/// Why the run must stop.
#[derive(Debug, Clone)]
pub struct Abort(pub String);

const AT_FDCWD: i32 = -100;
const PATH_MAX: usize = 4096;

/// The calls the supervisor decodes (and `seccomp::learn::OBSERVED` notifies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Open {
        dirfd: usize,
        path: usize,
        flags: Flags,
    },
    Exec {
        dirfd: Option<usize>,
        path: usize,
    },
    Create {
        dirfd: Option<usize>,
        path: usize,
        dir: bool,
    },
    Remove {
        dirfd: Option<usize>,
        path: usize,
    },
    Rename {
        from: (Option<usize>, usize),
        to: (Option<usize>, usize),
    },
    Link {
        to: (Option<usize>, usize),
    },
    Truncate {
        path: usize,
    },
    Sock {
        bind: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flags {
    Arg(usize),
    /// openat2: `struct open_how` (flags first) behind arg 2.
    How,
    Creat,
}

fn call_for(name: &str) -> Option<Call> {
    use Call::*;
    Some(match name {
        "open" => Open {
            dirfd: usize::MAX,
            path: 0,
            flags: Flags::Arg(1),
        },
        "openat" => Open {
            dirfd: 0,
            path: 1,
            flags: Flags::Arg(2),
        },
        "openat2" => Open {
            dirfd: 0,
            path: 1,
            flags: Flags::How,
        },
        "creat" => Open {
            dirfd: usize::MAX,
            path: 0,
            flags: Flags::Creat,
        },
        "execve" => Exec {
            dirfd: None,
            path: 0,
        },
        "execveat" => Exec {
            dirfd: Some(0),
            path: 1,
        },
        "mkdir" => Create {
            dirfd: None,
            path: 0,
            dir: true,
        },
        "mkdirat" => Create {
            dirfd: Some(0),
            path: 1,
            dir: true,
        },
        "mknod" => Create {
            dirfd: None,
            path: 0,
            dir: false,
        },
        "mknodat" => Create {
            dirfd: Some(0),
            path: 1,
            dir: false,
        },
        "symlink" => Link { to: (None, 1) },
        "symlinkat" => Link { to: (Some(1), 2) },
        "link" => Link { to: (None, 1) },
        "linkat" => Link { to: (Some(2), 3) },
        "unlink" | "rmdir" => Remove {
            dirfd: None,
            path: 0,
        },
        "unlinkat" => Remove {
            dirfd: Some(0),
            path: 1,
        },
        "rename" => Rename {
            from: (None, 0),
            to: (None, 1),
        },
        "renameat" | "renameat2" => Rename {
            from: (Some(0), 1),
            to: (Some(2), 3),
        },
        "truncate" => Truncate { path: 0 },
        "bind" => Sock { bind: true },
        "connect" => Sock { bind: false },
        _ => return None,
    })
}

/// The target thread being decoded: its /proc entry, opened lazily.
pub struct Thread {
    tid: u32,
    mem: Option<File>,
}

fn classify(e: io::Error, what: &str, tid: u32) -> Result<(), Abort> {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => Err(Abort(format!(
            "cannot read {what} of thread {tid}: {e}; the supervisor needs the target's uid (and a dumpable target) or CAP_SYS_PTRACE over it, and kernel.yama.ptrace_scope <= 1 (proc(5), ptrace(2) \"Ptrace access mode checking\")"
        ))),
        _ => Ok(()),
    }
}

impl Thread {
    pub fn new(tid: u32) -> Thread {
        Thread { tid, mem: None }
    }

    /// Bytes at `addr` up to a NUL (at most PATH_MAX). `Ok(None)`: nothing to record.
    fn cstr(&mut self, addr: u64) -> Result<Option<Vec<u8>>, Abort> {
        if addr == 0 {
            return Ok(None);
        }
        if self.mem.is_none() {
            match File::open(format!("/proc/{}/mem", self.tid)) {
                Ok(f) => self.mem = Some(f),
                Err(e) => return classify(e, "the memory", self.tid).map(|_| None),
            }
        }
        let Some(mem) = &self.mem else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < PATH_MAX {
            // Up to the page end: a read across into an unmapped page fails whole.
            let room = (4096 - (at % 4096)) as usize;
            let mut buf = vec![0u8; room.min(PATH_MAX - out.len())];
            let n = match mem.read_at(&mut buf, at) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(e) => return classify(e, "the memory", self.tid).map(|_| None),
            };
            if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..end]);
                return Ok(Some(out));
            }
            out.extend_from_slice(&buf[..n]);
            at += n as u64;
        }
        Ok(None)
    }

    /// Fixed-size bytes at `addr`.
    fn bytes(&mut self, addr: u64, len: usize) -> Result<Option<Vec<u8>>, Abort> {
        if addr == 0 || len == 0 {
            return Ok(None);
        }
        if self.mem.is_none() {
            match File::open(format!("/proc/{}/mem", self.tid)) {
                Ok(f) => self.mem = Some(f),
                Err(e) => return classify(e, "the memory", self.tid).map(|_| None),
            }
        }
        let Some(mem) = &self.mem else {
            return Ok(None);
        };
        let mut buf = vec![0u8; len];
        match mem.read_exact_at(&mut buf, addr) {
            Ok(()) => Ok(Some(buf)),
            Err(e) => classify(e, "the memory", self.tid).map(|_| None),
        }
    }

    fn link(&self, what: &str) -> Result<Option<PathBuf>, Abort> {
        match std::fs::read_link(format!("/proc/{}/{what}", self.tid)) {
            Ok(p) => Ok(Some(p)),
            Err(e) => classify(e, what, self.tid).map(|_| None),
        }
    }

    /// The program making the call (`/proc/<tid>/exe`).
    pub fn exe(&self) -> Result<String, Abort> {
        Ok(self
            .link("exe")?
            .map_or_else(|| "?".to_string(), |p| p.display().to_string()))
    }

    /// An absolute path for (dirfd, path): relative paths against the cwd or the dir fd.
    fn path_at(
        &mut self,
        n: &Notif,
        dirfd: Option<usize>,
        path: usize,
    ) -> Result<Option<PathBuf>, Abort> {
        let Some(raw) = self.cstr(n.args[path])? else {
            return Ok(None);
        };
        let raw =
            PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(raw));
        if raw.is_absolute() {
            return Ok(Some(raw));
        }
        let fd = dirfd.map_or(AT_FDCWD, |i| n.args[i] as i32);
        let base = if fd == AT_FDCWD {
            self.link("cwd")?
        } else {
            self.link(&format!("fd/{fd}"))?
        };
        let Some(base) = base.filter(|b| b.is_absolute()) else {
            return Ok(None);
        };
        if base.to_string_lossy().ends_with(" (deleted)") {
            return Ok(None);
        }
        Ok(Some(if raw.as_os_str().is_empty() {
            base
        } else {
            base.join(raw)
        }))
    }
}

/// The canonical path (symlinks resolved: Landlock checks the object reached) and whether
/// it exists. /proc paths are kept as written (the supervisor's /proc is not the target's
/// in a PID namespace); a missing final component is resolved through its parent.
pub fn canonical(p: &Path) -> (PathBuf, bool) {
    if p.starts_with("/proc") {
        return (p.to_path_buf(), std::fs::symlink_metadata(p).is_ok());
    }
    if let Ok(c) = std::fs::canonicalize(p) {
        return (c, true);
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => match std::fs::canonicalize(parent) {
            Ok(c) => (c.join(name), false),
            Err(_) => (p.to_path_buf(), false),
        },
        _ => (p.to_path_buf(), false),
    }
}

fn parent_of(p: &Path) -> PathBuf {
    p.parent().unwrap_or(Path::new("/")).to_path_buf()
}

/// Record one notification. `unlisted`: the base profile does not list this call.
pub fn record(
    n: &Notif,
    unlisted: bool,
    th: &mut Thread,
    exe: &str,
    rec: &mut Recording,
) -> Result<(), Abort> {
    let Ok(nr) = u32::try_from(n.nr) else {
        return Ok(());
    };
    let name = syscalls::name(nr).unwrap_or("?");
    if unlisted {
        rec.syscall(name, exe);
    }
    let Some(call) = call_for(name) else {
        return Ok(());
    };
    match call {
        Call::Open { dirfd, path, flags } => {
            let dirfd = (dirfd != usize::MAX).then_some(dirfd);
            let flags = match flags {
                Flags::Arg(i) => n.args[i] as i32,
                Flags::Creat => libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
                Flags::How => match th.bytes(n.args[2], 8)? {
                    Some(b) => {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(&b);
                        u64::from_ne_bytes(a) as i32
                    }
                    None => return Ok(()),
                },
            };
            if flags & libc::O_PATH != 0 {
                return Ok(());
            }
            let Some(p) = th.path_at(n, dirfd, path)? else {
                return Ok(());
            };
            let (c, exists) = canonical(&p);
            if !exists {
                if flags & libc::O_CREAT != 0 {
                    rec.path(Class::Write, &parent_of(&c), true, true, exe);
                    rec.created(&c);
                }
                return Ok(());
            }
            let is_dir = c.is_dir();
            let write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
            let class = if write && !is_dir {
                Class::Write
            } else {
                Class::Read
            };
            rec.path(class, &c, is_dir, true, exe);
        }
        Call::Exec { dirfd, path } => {
            let Some(p) = th.path_at(n, dirfd, path)? else {
                return Ok(());
            };
            let (c, exists) = canonical(&p);
            if exists {
                rec.path(Class::Exec, &c, false, true, exe);
                for i in interpreters(&c) {
                    rec.path(Class::Exec, &i, false, true, exe);
                }
            }
        }
        Call::Create { dirfd, path, dir } => {
            let Some(p) = th.path_at(n, dirfd, path)? else {
                return Ok(());
            };
            let (c, exists) = canonical(&p);
            // `mkdir -p` on an existing directory (EEXIST) creates nothing.
            if !exists {
                rec.path(Class::Write, &parent_of(&c), true, true, exe);
                if dir {
                    rec.created(&c);
                }
            }
        }
        Call::Remove { dirfd, path } => {
            let Some(p) = th.path_at(n, dirfd, path)? else {
                return Ok(());
            };
            let (c, exists) = no_follow(&p);
            if exists {
                rec.path(Class::Write, &parent_of(&c), true, true, exe);
            }
        }
        Call::Rename { from, to } => {
            let (Some(f), Some(t)) = (th.path_at(n, from.0, from.1)?, th.path_at(n, to.0, to.1)?)
            else {
                return Ok(());
            };
            let (f, exists) = no_follow(&f);
            if exists {
                let (t, t_exists) = no_follow(&t);
                rec.path(Class::Write, &parent_of(&f), true, true, exe);
                rec.path(Class::Write, &parent_of(&t), true, true, exe);
                if !t_exists {
                    rec.created(&t);
                }
            }
        }
        Call::Link { to } => {
            let Some(t) = th.path_at(n, to.0, to.1)? else {
                return Ok(());
            };
            let (t, exists) = no_follow(&t);
            if !exists {
                rec.path(Class::Write, &parent_of(&t), true, true, exe);
                rec.created(&t);
            }
        }
        Call::Truncate { path } => {
            let Some(p) = th.path_at(n, None, path)? else {
                return Ok(());
            };
            let (c, exists) = canonical(&p);
            if exists {
                rec.path(Class::Write, &c, false, true, exe);
            }
        }
        Call::Sock { bind } => sockaddr(n, bind, th, exe, rec)?,
    }
    Ok(())
}

/// The parent resolved, the last component kept (unlink, rename and link act on the
/// name itself, not on what a symlink points to).
fn no_follow(p: &Path) -> (PathBuf, bool) {
    let exists = std::fs::symlink_metadata(p).is_ok();
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => (canonical(parent).0.join(name), exists),
        _ => (p.to_path_buf(), exists),
    }
}

/// `#!` interpreter and ELF PT_INTERP of an exec'd file: the kernel opens them for
/// execution too, so Landlock needs Execute on them (binfmt_script, binfmt_elf).
fn interpreters(file: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(f) = File::open(file) else {
        return out;
    };
    let mut head = [0u8; 256];
    let n = f.read_at(&mut head, 0).unwrap_or(0);
    if head[..n].starts_with(b"#!") {
        let line = head[2..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
        let text = String::from_utf8_lossy(line);
        if let Some(first) = text.split_whitespace().next() {
            let (c, exists) = canonical(Path::new(first));
            if exists {
                out.extend(interpreters(&c));
                out.push(c);
            }
        }
    } else if let Ok(Some(info)) = crate::elf::parse(&f) {
        if let Some(i) = info.interp {
            let (c, exists) = canonical(&i);
            if exists {
                out.push(c);
            }
        }
    }
    out
}

/// bind/connect: the address behind arg 1 (length arg 2); TCP ports only (Landlock
/// controls no other), the socket's type asked through a duplicate of its fd.
fn sockaddr(
    n: &Notif,
    bind: bool,
    th: &mut Thread,
    exe: &str,
    rec: &mut Recording,
) -> Result<(), Abort> {
    let len = (n.args[2] as usize).min(128);
    let Some(b) = th.bytes(n.args[1], len.max(2))? else {
        return Ok(());
    };
    let family = u16::from_ne_bytes([b[0], b[1]]) as i32;
    match family {
        libc::AF_INET | libc::AF_INET6 if b.len() >= 8 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let addr = if family == libc::AF_INET {
                std::net::Ipv4Addr::new(b[4], b[5], b[6], b[7]).to_string()
            } else if b.len() >= 24 {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[8..24]);
                std::net::Ipv6Addr::from(a).to_string()
            } else {
                return Ok(());
            };
            if is_tcp(n.pid, n.args[0] as i32)? {
                rec.port(bind, port, addr, exe);
            }
        }
        libc::AF_UNIX if b.len() > 2 && b[2] != 0 => {
            let end = b[2..]
                .iter()
                .position(|&c| c == 0)
                .map_or(b.len(), |e| e + 2);
            let path = String::from_utf8_lossy(&b[2..end]).to_string();
            rec.unix_socket(path.clone(), exe);
            if bind {
                // A pathname socket is a new file in its directory (make_sock).
                let p = PathBuf::from(&path);
                if p.is_absolute() {
                    let (c, _) = canonical(&p);
                    rec.path(Class::Write, &parent_of(&c), true, true, exe);
                    rec.created(&c);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether the target's fd is a TCP socket (SOCK_STREAM over IP; MPTCP and SCTP are
/// refused by the guards).
fn is_tcp(tid: u32, fd: i32) -> Result<bool, Abort> {
    match crate::sys::fd_of_thread(tid, fd) {
        Ok(dup) => Ok(matches!(
            nix::sys::socket::getsockopt(&dup, nix::sys::socket::sockopt::SockType),
            Ok(nix::sys::socket::SockType::Stream)
        )),
        Err(e) => classify(e, &format!("fd {fd} (pidfd_getfd)"), tid).map(|_| false),
    }
}
