//! Probe actions about terminals: what fds 0-2 are, a daemon that tries to steal the
//! caller's next typed line or change its modes after the target returned, job-control
//! and window-size observers (tests/it/terminal.rs).

use super::action::Action;
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::{arg, Outcome};

pub fn run(action: Action, args: &[String]) -> Option<Outcome> {
    Some(match action {
        // "ok 0=MAJ:MIN 1=... 2=... tty=MAJ:MIN|errno": which terminal each of fds 0-2 is
        // ("-" when not a terminal), and what /dev/tty (the controlling tty) opens.
        Action::TtyInfo => tty_info(),
        // Fork a daemon (setsid, so no job control stops it) that appends to OUT: its
        // pid, then after DELAY_MS "noecho ok|errno" (with "noecho": clears ECHO on fd 0),
        // then everything it reads from fd 0 within READ_MS. The parent returns at once.
        Action::TtySteal => match (
            arg::<String>(args, 0),
            arg::<u64>(args, 1),
            arg::<u64>(args, 2),
        ) {
            (Ok(out), Ok(delay), Ok(secs)) => tty_steal(
                &out,
                delay,
                secs,
                args.get(3).is_some_and(|a| a == "noecho"),
            ),
            _ => Outcome::Broken("OUT DELAY_MS READ_MS [noecho]".into()),
        },
        // Print "ready", then sleep N seconds (Ctrl-C / Ctrl-\ targets).
        Action::AnnounceSleep => match arg::<u64>(args, 0) {
            Ok(n) => {
                say("ready");
                std::thread::sleep(Duration::from_secs(n));
                Outcome::Ok(String::new())
            }
            Err(o) => o,
        },
        // Print "tick I" N times, MS apart (job-control target).
        Action::Ticks => match (arg::<u32>(args, 0), arg::<u64>(args, 1)) {
            (Ok(n), Ok(ms)) => {
                for i in 1..=n {
                    say(&format!("tick {i}"));
                    std::thread::sleep(Duration::from_millis(ms));
                }
                Outcome::Ok(String::new())
            }
            _ => Outcome::Broken("N MS".into()),
        },
        // Print "ready ROWSxCOLS", wait up to SECS for SIGWINCH, print the size then.
        Action::WinsizeWait => match arg::<u64>(args, 0) {
            Ok(secs) => winsize_wait(secs),
            Err(o) => o,
        },
        Action::TtyReach => match args.first() {
            Some(dev) => tty_reach(dev),
            None => Outcome::Broken("MAJ:MIN".into()),
        },
        // Open /proc/<ancestor LEVEL up>/fd/FD (1 = parent): "ok -> TARGET" or the errno.
        // Under clawjail the grandparent is the supervisor, which holds the caller's tty.
        Action::AncestorFd => match (arg::<u32>(args, 0), arg::<i32>(args, 1)) {
            (Ok(level), Ok(fd)) => ancestor_fd(level, fd),
            _ => Outcome::Broken("LEVEL FD".into()),
        },
        // Open /proc/PID/fd/FD: "ok -> TARGET" or the errno.
        Action::ProcFd => match (arg::<i32>(args, 0), arg::<i32>(args, 1)) {
            (Ok(pid), Ok(fd)) => open_proc_fd(pid, fd),
            _ => Outcome::Broken("PID FD".into()),
        },
        // Print "ready", read one line from stdin: "ok got:LINE".
        Action::ReadLine => {
            say("ready");
            let mut line = String::new();
            Outcome::from_io(std::io::stdin().read_line(&mut line), |_| {
                format!("got:{}", line.trim_end())
            })
        }
        _ => return None,
    })
}

fn say(s: &str) {
    let mut out = std::io::stdout();
    if writeln!(out, "{s}").and_then(|()| out.flush()).is_err() {
        std::process::exit(2);
    }
}

/// The terminal behind an fd as MAJOR:MINOR: TIOCGDEV names the real tty even for an fd
/// opened through /dev/tty (whose own inode is 5:0).
fn rdev_of(fd: std::os::fd::BorrowedFd<'_>) -> String {
    if !nix::unistd::isatty(fd).unwrap_or(false) {
        return "-".into();
    }
    match crate::sys::tty_device(fd) {
        Ok((major, minor)) => format!("{major}:{minor}"),
        Err(e) => format!("errno-{e}"),
    }
}

fn tty_info() -> Outcome {
    let fds: Vec<String> = (0..3)
        .map(|i| format!("{i}={}", rdev_of(crate::sys::std_fd(i))))
        .collect();
    let ctty = match std::fs::OpenOptions::new().read(true).open("/dev/tty") {
        Ok(f) => rdev_of(f.as_fd()),
        Err(e) => format!("errno-{}", super::errno_name(e.raw_os_error().unwrap_or(0))),
    };
    Outcome::Ok(format!("{} tty={ctty}", fds.join(" ")))
}

fn append(out: &str, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
    {
        // Best effort: the test reads what arrived.
        if writeln!(f, "{line}").is_err() {
            std::process::exit(2);
        }
    }
}

fn tty_steal(out: &str, delay_ms: u64, read_ms: u64, noecho: bool) -> Outcome {
    let pid = match crate::sys::fork() {
        Ok(p) => p,
        Err(e) => return Outcome::Broken(format!("fork: {e}")),
    };
    if pid != 0 {
        return Outcome::Ok(format!("daemon {pid}"));
    }
    // A session of its own: the caller's job control no longer applies to it (reads of a
    // terminal that is not the reader's controlling tty are never stopped by SIGTTIN).
    if nix::unistd::setsid().is_err() {
        std::process::exit(1);
    }
    append(out, &format!("pid {}", std::process::id()));
    std::thread::sleep(Duration::from_millis(delay_ms));
    let stdin = crate::sys::std_fd(0);
    if noecho {
        let r = nix::sys::termios::tcgetattr(stdin).and_then(|mut t| {
            t.local_flags.remove(nix::sys::termios::LocalFlags::ECHO);
            nix::sys::termios::tcsetattr(stdin, nix::sys::termios::SetArg::TCSANOW, &t)
        });
        append(
            out,
            &match r {
                Ok(()) => "noecho ok".to_string(),
                Err(e) => format!("noecho errno {e:?}"),
            },
        );
    }
    let end = Instant::now() + Duration::from_millis(read_ms);
    let mut got = Vec::new();
    while Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(stdin, PollFlags::POLLIN)];
        match nix::poll::poll(
            &mut fds,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO),
        ) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => break,
        }
        let mut buf = [0u8; 256];
        match nix::unistd::read(stdin, &mut buf) {
            Ok(0) => {
                // A hung-up terminal reads as EOF; keep holding the fd for the window.
                append(out, "read eof");
                std::thread::sleep(end.saturating_duration_since(Instant::now()));
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                // Keep holding the fd for the rest of the window (tests look at it).
                append(out, &format!("read errno {e:?}"));
                std::thread::sleep(end.saturating_duration_since(Instant::now()));
                break;
            }
        }
    }
    append(
        out,
        &format!("read: {}", String::from_utf8_lossy(&got).escape_debug()),
    );
    std::process::exit(0);
}

fn winsize_wait(secs: u64) -> Outcome {
    let size = |ws: nix::pty::Winsize| format!("{}x{}", ws.ws_row, ws.ws_col);
    let stdin = crate::sys::std_fd(0);
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGWINCH);
    if let Err(e) = set.thread_block() {
        return Outcome::Broken(format!("sigprocmask: {e}"));
    }
    let sfd = match nix::sys::signalfd::SignalFd::new(&set) {
        Ok(s) => s,
        Err(e) => return Outcome::Broken(format!("signalfd: {e}")),
    };
    match crate::sys::get_winsize(stdin) {
        Ok(ws) => say(&format!("ready {}", size(ws))),
        Err(e) => return Outcome::Broken(format!("TIOCGWINSZ: {e}")),
    }
    let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
    let t = PollTimeout::try_from(Duration::from_secs(secs)).unwrap_or(PollTimeout::NONE);
    match nix::poll::poll(&mut fds, t) {
        Ok(n) if n > 0 => Outcome::from_io(crate::sys::get_winsize(stdin), |ws| {
            format!("winch {}", size(ws))
        }),
        _ => Outcome::Broken("no SIGWINCH".into()),
    }
}

/// `tty-reach MAJ:MIN`: is the terminal MAJ:MIN reachable? Scans fds 0..1024 (TIOCGDEV, an
/// ioctl on the terminal itself, so a match proves it answers) and opens /dev/tty. "ok fd N"
/// or "ok /dev/tty" when reached; otherwise the errno /dev/tty gave, or ENXIO ("no such
/// device": nothing here reaches it).
pub fn tty_reach(dev: &str) -> Outcome {
    for fd in 0..1024 {
        if let Ok((ma, mi)) = crate::sys::tty_device_raw(fd) {
            if format!("{ma}:{mi}") == dev {
                return Outcome::Ok(format!("fd {fd} is the terminal {dev}"));
            }
        }
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(f) => match crate::sys::tty_device(f.as_fd()) {
            Ok((ma, mi)) if format!("{ma}:{mi}") == dev => {
                Outcome::Ok(format!("/dev/tty is the terminal {dev}"))
            }
            _ => Outcome::Errno(libc::ENXIO),
        },
        Err(e) => Outcome::Errno(e.raw_os_error().unwrap_or(libc::ENXIO)),
    }
}

fn ppid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field may hold spaces; the fields after its closing paren are fixed.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn ancestor_fd(level: u32, fd: i32) -> Outcome {
    let mut pid = std::process::id() as i32;
    for _ in 0..level {
        match ppid_of(pid) {
            Some(p) => pid = p,
            None => return Outcome::Broken(format!("no parent of {pid}")),
        }
    }
    open_proc_fd(pid, fd)
}

fn open_proc_fd(pid: i32, fd: i32) -> Outcome {
    let path = format!("/proc/{pid}/fd/{fd}");
    Outcome::from_io(std::fs::OpenOptions::new().read(true).open(&path), |_| {
        match std::fs::read_link(&path) {
            Ok(t) => format!("{path} -> {}", t.display()),
            Err(_) => path.clone(),
        }
    })
}
