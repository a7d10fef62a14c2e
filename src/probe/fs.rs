//! Probe actions on files: read, write, list, create, rename, unlink, exec, links. (Landlock.)

use std::io::Write;
use std::process::{Command, Stdio};

use super::Outcome;

pub fn run(action: &str, args: &[String]) -> Option<Outcome> {
    let a = |n: usize| args.get(n).map(String::as_str).unwrap_or("");
    let path = a(0);
    Some(match action {
        "read" => Outcome::from_io(std::fs::read(path), |b| format!("{} bytes", b.len())),
        // Read through a symlink, reporting where it points (the read follows it).
        "symlink-read" => match std::fs::read_link(path) {
            Ok(to) => Outcome::from_io(std::fs::read(path), |b| {
                format!("{} bytes via {}", b.len(), to.display())
            }),
            Err(e) => Outcome::from_io::<()>(Err(e), |_| String::new()),
        },
        "write" => Outcome::from_io(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .and_then(|mut f| f.write_all(b"x\n")),
            |_| String::new(),
        ),
        // Create a new file (fails if it exists).
        "create" => Outcome::from_io(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .and_then(|mut f| f.write_all(b"new\n")),
            |_| String::new(),
        ),
        "mkdir" => Outcome::from_io(std::fs::create_dir(path), |_| String::new()),
        "list" => Outcome::from_io(std::fs::read_dir(path).map(|d| d.count()), |n| {
            format!("{n} entries")
        }),
        "rename" => Outcome::from_io(std::fs::rename(path, a(1)), |_| String::new()),
        "unlink" => Outcome::from_io(std::fs::remove_file(path), |_| String::new()),
        "rmdir" => Outcome::from_io(std::fs::remove_dir(path), |_| String::new()),
        "hardlink" => Outcome::from_io(std::fs::hard_link(path, a(1)), |_| String::new()),
        "symlink" => Outcome::from_io(std::os::unix::fs::symlink(path, a(1)), |_| String::new()),
        // fork + execve PATH [ARGS...]: the execve errno, or "exit N" (the child's output
        // is discarded so the probe's one line stays last).
        "exec" => Outcome::from_io(
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
