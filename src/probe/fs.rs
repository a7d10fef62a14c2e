//! Probe actions on files: read, write, list, create, rename, unlink, exec, links. (Landlock.)

use super::action::Action;
use std::io::Write;
use std::process::{Command, Stdio};

use super::Outcome;

pub fn run(action: Action, args: &[String]) -> Option<Outcome> {
    let a = |n: usize| args.get(n).map(String::as_str).unwrap_or("");
    let path = a(0);
    Some(match action {
        // At most 1 MiB: a device such as /dev/urandom never ends.
        Action::Read => Outcome::from_io(read_bounded(path), |b| format!("{} bytes", b.len())),
        // With TARGET LINK: plant LINK -> TARGET (in a writable dir), then read through it.
        // A leftover LINK (an earlier control run) is removed first, so the attempt is real.
        Action::SymlinkRead if args.len() >= 2 => {
            match remove_leftover(a(1)).and_then(|()| std::os::unix::fs::symlink(path, a(1))) {
                Ok(()) => Outcome::from_io(std::fs::read(a(1)), |b| {
                    format!("{} bytes via {path}", b.len())
                }),
                Err(e) => Outcome::Broken(format!("cannot plant the symlink: {e}")),
            }
        }
        // Read through an existing symlink, reporting where it points (the read follows it).
        Action::SymlinkRead => match std::fs::read_link(path) {
            Ok(to) => Outcome::from_io(std::fs::read(path), |b| {
                format!("{} bytes via {}", b.len(), to.display())
            }),
            Err(e) => Outcome::from_io::<()>(Err(e), |_| String::new()),
        },
        Action::Write => Outcome::from_io(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .and_then(|mut f| f.write_all(b"x\n")),
            |_| String::new(),
        ),
        // Create a new file (fails if it exists; never follows a link at PATH).
        Action::Create => Outcome::from_io(create_new(path), |_| String::new()),
        // verify's create rows: remove a leftover entry of an earlier (control) attempt
        // without following it, then O_CREAT|O_EXCL|O_NOFOLLOW. A link planted in between
        // makes the open fail with EEXIST; it is never followed (no O_TRUNC of a victim).
        // A refused removal (EACCES under Landlock) is the answer: the directory is not
        // writable.
        Action::CreateFresh => Outcome::from_io(
            remove_leftover(path).and_then(|()| create_new(path)),
            |_| String::new(),
        ),
        Action::Mkdir => Outcome::from_io(std::fs::create_dir(path), |_| String::new()),
        Action::List => Outcome::from_io(std::fs::read_dir(path).map(|d| d.count()), |n| {
            format!("{n} entries")
        }),
        Action::Rename => Outcome::from_io(std::fs::rename(path, a(1)), |_| String::new()),
        Action::Unlink => Outcome::from_io(std::fs::remove_file(path), |_| String::new()),
        Action::Rmdir => Outcome::from_io(std::fs::remove_dir(path), |_| String::new()),
        // A leftover DST (an earlier control run) is removed first: EEXIST is no denial.
        Action::Hardlink => match remove_leftover(a(1)) {
            Ok(()) => Outcome::from_io(std::fs::hard_link(path, a(1)), |_| String::new()),
            Err(e) => Outcome::Broken(format!("cannot remove the leftover {}: {e}", a(1))),
        },
        Action::Symlink => {
            Outcome::from_io(std::os::unix::fs::symlink(path, a(1)), |_| String::new())
        }
        // Fileless exec: copy PATH (an ELF the probe can read) into a memfd and fork +
        // execveat(memfd, "", AT_EMPTY_PATH) it with ARGS: "exit N" or the errno of the
        // first step that failed (memfd_create, write, exec).
        Action::MemfdExec => memfd_exec(path, &args[1.min(args.len())..]),
        // fork + execve PATH [ARGS...]: the execve errno, or "exit N" (the child's output
        // is discarded so the probe's one line stays last).
        Action::Exec => Outcome::from_io(
            Command::new(path)
                .args(&args[1.min(args.len())..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status(),
            |s| match s.code() {
                Some(c) => format!("exit {c}"),
                None => format!("{s}"),
            },
        ),
        _ => return None,
    })
}

/// Remove `path` if it exists (not a directory); absent is fine.
fn create_new(path: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut f| f.write_all(b"new\n"))
}

fn remove_leftover(path: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Read up to 1 MiB of `path`.
fn read_bounded(path: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(1 << 20)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

fn memfd_exec(path: &str, args: &[String]) -> Outcome {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Outcome::Broken(format!("read {path}: {e}")),
    };
    let fd = match nix::sys::memfd::memfd_create(
        c"clawjail-probe",
        nix::sys::memfd::MFdFlags::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return Outcome::Errno(e as i32),
    };
    let mut f = std::fs::File::from(fd);
    if let Err(e) = f.write_all(&bytes) {
        return Outcome::from_io::<()>(Err(e), |_| String::new());
    }
    // execveat(memfd, "", AT_EMPTY_PATH) in a child (fexecve), no path involved.
    let mut argv = vec![std::ffi::CString::new("memfd").unwrap_or_default()];
    argv.extend(
        args.iter()
            .filter_map(|a| std::ffi::CString::new(a.as_str()).ok()),
    );
    let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return Outcome::Errno(e as i32),
    };
    match crate::sys::fork() {
        Err(e) => Outcome::from_io::<()>(Err(e), |_| String::new()),
        Ok(0) => {
            drop(r);
            let e = crate::sys::fexecve(std::os::fd::AsFd::as_fd(&f), &argv, &[]);
            let code = e.raw_os_error().unwrap_or(0);
            // Report the exec errno to the parent, then exit.
            let mut w = std::fs::File::from(w);
            let _written = w.write_all(&code.to_ne_bytes()).is_ok();
            std::process::exit(127);
        }
        Ok(pid) => {
            drop(w);
            let mut buf = Vec::new();
            let _read = std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut buf).is_ok();
            let status = crate::sys::waitpid(pid, 0).map(|(_, s)| s).unwrap_or(-1);
            if buf.len() == 4 {
                let n = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
                return Outcome::Errno(n);
            }
            Outcome::Ok(format!("exit {}", crate::supervisor::exit_code(status)))
        }
    }
}
