//! Probe actions about the process itself: ids, status fields, fds, env, signals, session.

use super::action::Action;
use std::io::Write;

use super::{arg, Outcome};

pub fn run(action: Action, args: &[String]) -> Option<Outcome> {
    Some(match action {
        // Print selected /proc/self/status lines.
        Action::Status => status(),
        // List open fds as "ok 0,1,2".
        Action::Fds => fds(),
        // Print the environment names (not values) as "ok A,B,C".
        Action::EnvNames => env_names(),
        // Print the value of one variable.
        Action::EnvGet => match args.first().and_then(std::env::var_os) {
            Some(v) => Outcome::Ok(v.to_string_lossy().into_owned()),
            None => Outcome::Broken("unset".into()),
        },
        Action::Setuid0 => {
            Outcome::from_nix(nix::unistd::setresuid(0.into(), 0.into(), 0.into()), |_| {
                String::new()
            })
        }
        Action::Setgid0 => {
            Outcome::from_nix(nix::unistd::setresgid(0.into(), 0.into(), 0.into()), |_| {
                String::new()
            })
        }
        // "ok <sid> <pgid> <pid> <ppid>"
        Action::Sid => Outcome::Ok(format!(
            "{} {} {} {}",
            nix::unistd::getsid(None).map(|p| p.as_raw()).unwrap_or(-1),
            nix::unistd::getpgrp().as_raw(),
            nix::unistd::getpid().as_raw(),
            nix::unistd::getppid().as_raw()
        )),
        // Read an inherited fd number.
        Action::ReadFd => match arg::<i32>(args, 0) {
            Ok(fd) => read_fd(fd),
            Err(o) => o,
        },
        // Sleep N seconds, then exit 0 (signal tests).
        Action::Sleep => match arg::<u64>(args, 0) {
            Ok(s) => {
                std::thread::sleep(std::time::Duration::from_secs(s));
                Outcome::Ok(String::new())
            }
            Err(o) => o,
        },
        // Exit with a code, without printing.
        Action::Exit => std::process::exit(arg::<i32>(args, 0).unwrap_or(0)),
        // Kill ourselves with a signal number.
        Action::KillSelf => {
            let sig = arg::<i32>(args, 0).unwrap_or(libc::SIGKILL);
            let r = nix::sys::signal::Signal::try_from(sig).and_then(nix::sys::signal::raise);
            Outcome::from_nix(r, |_| String::new())
        }
        // Create a file (marker for "the target ran").
        Action::Touch => match args.first() {
            Some(p) => Outcome::from_io(std::fs::write(p, b"ran\n"), |_| String::new()),
            None => Outcome::Broken("path".into()),
        },
        // Leave an orphaned grandchild that sleeps N seconds; print its pid; then sleep M
        // seconds (so an --init supervisor is still there to adopt it).
        Action::Orphan => {
            let o = orphan(arg::<u64>(args, 0).unwrap_or(5));
            if let Ok(then) = arg::<u64>(args, 1) {
                println!("{}", o.line());
                std::thread::sleep(std::time::Duration::from_secs(then));
            }
            o
        }
        // Print getrlimit(name) as "ok soft hard".
        Action::Rlimit => rlimit(args.first().map(String::as_str).unwrap_or("")),
        Action::Umask => {
            let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
            Outcome::Ok(format!("{:04o}", old.bits()))
        }
        Action::Cwd => Outcome::from_io(std::env::current_dir(), |p| p.display().to_string()),
        _ => return None,
    })
}

fn status() -> Outcome {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => {
            let keep = [
                "Uid:",
                "Gid:",
                "Groups:",
                "CapInh:",
                "CapPrm:",
                "CapEff:",
                "CapBnd:",
                "CapAmb:",
                "NoNewPrivs:",
                "Seccomp:",
                "Seccomp_filters:",
                "SigIgn:",
                "SigBlk:",
            ];
            let mut out = std::io::stdout().lock();
            for line in s.lines().filter(|l| keep.iter().any(|k| l.starts_with(k))) {
                if writeln!(out, "{line}").is_err() {
                    break;
                }
            }
            Outcome::Ok(String::new())
        }
        Err(e) => Outcome::from_io::<()>(Err(e), |_| String::new()),
    }
}

fn fds() -> Outcome {
    match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => {
            let mut v: Vec<i32> = d
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect();
            v.sort();
            // The read_dir fd itself is the highest one just opened; drop it.
            if let Some(last) = v.last().copied() {
                if std::fs::read_link(format!("/proc/self/fd/{last}")).is_err() {
                    v.pop();
                }
            }
            Outcome::Ok(
                v.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
        }
        Err(e) => Outcome::from_io::<()>(Err(e), |_| String::new()),
    }
}

fn env_names() -> Outcome {
    let mut names: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    names.sort();
    Outcome::Ok(names.join(","))
}

fn read_fd(fd: i32) -> Outcome {
    let mut buf = [0u8; 64];
    Outcome::from_nix(nix::unistd::read(unsafe_borrow(fd), &mut buf), |n| {
        String::from_utf8_lossy(&buf[..n]).trim().to_string()
    })
}

fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    super::sys::borrow_raw_fd(fd)
}

fn orphan(secs: u64) -> Outcome {
    match super::sys::fork_orphan(secs) {
        Ok(pid) => Outcome::Ok(pid.to_string()),
        Err(e) => Outcome::from_io::<()>(Err(e), |_| String::new()),
    }
}

fn rlimit(name: &str) -> Outcome {
    use nix::sys::resource::{getrlimit, Resource};
    let r = match name {
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "core" => Resource::RLIMIT_CORE,
        "as" => Resource::RLIMIT_AS,
        "cpu" => Resource::RLIMIT_CPU,
        "fsize" => Resource::RLIMIT_FSIZE,
        _ => return Outcome::Broken(format!("unknown rlimit {name}")),
    };
    Outcome::from_nix(getrlimit(r), |(s, h)| {
        let f = |v: u64| {
            if v == libc::RLIM_INFINITY {
                "unlimited".to_string()
            } else {
                v.to_string()
            }
        };
        format!("{} {}", f(s), f(h))
    })
}
