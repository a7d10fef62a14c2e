//! Probe actions on files: read, write, list, exec, links. (Landlock.)

use super::Outcome;

pub fn run(action: &str, args: &[String]) -> Option<Outcome> {
    let path = args.first().map(String::as_str).unwrap_or("");
    Some(match action {
        "read" => Outcome::from_io(std::fs::read(path), |b| format!("{} bytes", b.len())),
        "write" => Outcome::from_io(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .and_then(|mut f| {
                    use std::io::Write;
                    f.write_all(b"x\n")
                }),
            |_| String::new(),
        ),
        "list" => Outcome::from_io(std::fs::read_dir(path).map(|d| d.count()), |n| {
            format!("{n} entries")
        }),
        _ => return None,
    })
}
