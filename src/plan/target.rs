//! The target: resolved through the target's PATH and opened before any irreversible step,
//! so no path can be swapped in between (the exec uses the fd, not the name).
//!
//! An ELF runs with fexecve on its O_PATH fd. A `#!` script runs through its resolved
//! interpreter with the absolute script path as an argument, as the kernel would do it
//! (binfmt_script): fexecve of an O_PATH fd fails for scripts (the kernel needs a path the
//! interpreter can reopen, /dev/fd/N, which an O_PATH fd does not give), and an fd left open
//! without O_CLOEXEC for that purpose would leak into the target.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::identity::Ids;
use crate::paths::{self, PathError, Trust};

/// The kernel follows at most this many interpreter levels (binfmt_script + exec's
/// recursion limit is 5 including the final ELF).
const MAX_INTERPRETER_DEPTH: usize = 4;

/// Default PATH when the target's environment has none (the search still happens).
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

// Defined beside the Landlock rules that consume them (no import cycle landlock <-> plan).
pub use crate::landlock::{ChainEntry, ChainRole};

/// The resolved target.
#[derive(Debug)]
pub struct TargetPlan {
    /// The command as given.
    pub command: String,
    /// The absolute path of the file that is executed (the ELF or first interpreter).
    pub exec_path: PathBuf,
    /// O_PATH|O_CLOEXEC fd of `exec_path`.
    pub exec_fd: OwnedFd,
    /// argv for execve.
    pub argv: Vec<CString>,
    /// Everything the kernel and the interpreters will open to run it.
    pub chain: Vec<ChainEntry>,
}

/// A target that cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {cmd:?} not found in the target's PATH ({path})")]
    NotFound { cmd: String, path: String },
    #[error("target {path}: {why}")]
    Unusable { path: String, why: String },
    #[error("target {path}: cannot open: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("no command given: clawjail run -- CMD [ARGS...]")]
    Empty,
}

fn cstring(s: &OsStr) -> Result<CString, TargetError> {
    CString::new(s.as_bytes()).map_err(|_| TargetError::Unusable {
        path: s.to_string_lossy().into_owned(),
        why: "argument contains a NUL byte".into(),
    })
}

/// Whether `meta` grants execute to `ids` (DAC as the target will see it).
fn executable_by(meta: &std::fs::Metadata, ids: &Ids) -> bool {
    let mode = meta.mode();
    if ids.uid == 0 {
        return mode & 0o111 != 0;
    }
    if meta.uid() == ids.uid {
        mode & 0o100 != 0
    } else if meta.gid() == ids.gid || ids.groups.contains(&meta.gid()) {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// Open the target (or an interpreter) O_PATH by the safe walk: a symlink on the way is
/// followed only when `trust` accepts it (a user's own `~/.npm-global/bin/openclaw` on an
/// unprivileged start; only root's links in root-only directories on a root start).
fn open_path(path: &Path, trust: &Trust) -> Result<(File, std::fs::Metadata), TargetError> {
    let r = paths::resolve(path, trust).map_err(|e| match e {
        PathError::Missing { .. } => TargetError::Open {
            path: path.display().to_string(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        },
        PathError::Io { source, .. } => TargetError::Open {
            path: path.display().to_string(),
            source,
        },
        other => TargetError::Unusable {
            path: path.display().to_string(),
            why: other.to_string(),
        },
    })?;
    let f = File::from(r.fd);
    let meta = f.metadata().map_err(|source| TargetError::Open {
        path: path.display().to_string(),
        source,
    })?;
    Ok((f, meta))
}

/// Search `cmd` in `path_var` the way execvp does, returning an absolute path that exists,
/// is a regular file and is executable by the target.
pub fn search_path(
    cmd: &OsStr,
    path_var: &str,
    cwd: &Path,
    ids: &Ids,
) -> Result<PathBuf, TargetError> {
    let bytes = cmd.as_bytes();
    if bytes.contains(&b'/') {
        let p = Path::new(cmd);
        return Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        });
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() {
            cwd.to_path_buf()
        } else {
            PathBuf::from(dir)
        };
        let dir = if dir.is_absolute() {
            dir
        } else {
            cwd.join(dir)
        };
        let cand = dir.join(cmd);
        if let Ok(meta) = std::fs::metadata(&cand) {
            if meta.is_file() && executable_by(&meta, ids) {
                return Ok(cand);
            }
        }
    }
    Err(TargetError::NotFound {
        cmd: cmd.to_string_lossy().into_owned(),
        path: path_var.to_string(),
    })
}

/// The `#!` line of the file behind `fd`, if it has one: (interpreter, optional argument).
/// Read through /proc/self/fd so the same inode is read that will be executed.
fn read_shebang(fd: &File) -> Option<(OsString, Option<OsString>)> {
    let mut f = File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let mut buf = [0u8; 256];
    let n = f.read(&mut buf).ok()?;
    let head = &buf[..n];
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|b| *b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let trimmed: &[u8] = {
        let start = line.iter().position(|b| *b != b' ' && *b != b'\t')?;
        let end = line.iter().rposition(|b| *b != b' ' && *b != b'\t')? + 1;
        &line[start..end]
    };
    // binfmt_script: the interpreter ends at the first blank; the rest is ONE argument.
    let split = trimmed.iter().position(|b| *b == b' ' || *b == b'\t');
    match split {
        None => Some((OsStr::from_bytes(trimmed).to_os_string(), None)),
        Some(i) => {
            let arg = &trimmed[i..];
            let astart = arg
                .iter()
                .position(|b| *b != b' ' && *b != b'\t')
                .unwrap_or(arg.len());
            let arg = &arg[astart..];
            Some((
                OsStr::from_bytes(&trimmed[..i]).to_os_string(),
                (!arg.is_empty()).then(|| OsStr::from_bytes(arg).to_os_string()),
            ))
        }
    }
}

/// For `#!/usr/bin/env [-S] NAME ...`: the program env will look up.
fn env_program(arg: &OsStr) -> Option<OsString> {
    arg.as_bytes()
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|w| !w.is_empty())
        .find(|w| !w.starts_with(b"-") && !w.contains(&b'='))
        .map(|w| OsStr::from_bytes(w).to_os_string())
}

/// Resolve `cmd` (argv) against the target's PATH and open it.
pub fn resolve(cmd: &[OsString], path_var: &str, trust: &Trust) -> Result<TargetPlan, TargetError> {
    let ids = &trust.ids;
    let first = cmd.first().ok_or(TargetError::Empty)?;
    let cwd = std::env::current_dir().map_err(|source| TargetError::Open {
        path: ".".into(),
        source,
    })?;
    let mut path = search_path(first, path_var, &cwd, ids)?;
    let mut chain = Vec::new();
    // Arguments inserted in front of the script path, innermost interpreter first.
    let mut prefix: Vec<OsString> = Vec::new();
    let mut args_tail: Vec<OsString> = cmd[1..].to_vec();
    let mut argv0: OsString = first.clone();
    for depth in 0..=MAX_INTERPRETER_DEPTH {
        let (file, meta) = open_path(&path, trust)?;
        if !meta.is_file() {
            return Err(TargetError::Unusable {
                path: path.display().to_string(),
                why: "not a regular file".into(),
            });
        }
        if !executable_by(&meta, ids) {
            return Err(TargetError::Unusable {
                path: path.display().to_string(),
                why: format!(
                    "not executable by uid {} (mode {:04o})",
                    ids.uid,
                    meta.mode() & 0o7777
                ),
            });
        }
        match read_shebang(&file) {
            None => {
                chain.push(ChainEntry {
                    path: path.clone(),
                    role: ChainRole::Executable,
                    why: if depth == 0 {
                        "the target".into()
                    } else {
                        "#! interpreter".into()
                    },
                });
                let mut argv = vec![cstring(&argv0)?];
                for a in prefix.iter().chain(args_tail.iter()) {
                    argv.push(cstring(a)?);
                }
                return Ok(TargetPlan {
                    command: first.to_string_lossy().into_owned(),
                    exec_path: path,
                    exec_fd: OwnedFd::from(file),
                    argv,
                    chain,
                });
            }
            Some((interp, arg)) => {
                if depth == MAX_INTERPRETER_DEPTH {
                    return Err(TargetError::Unusable {
                        path: path.display().to_string(),
                        why: format!("more than {MAX_INTERPRETER_DEPTH} levels of #! interpreters"),
                    });
                }
                if !Path::new(&interp).is_absolute() {
                    return Err(TargetError::Unusable {
                        path: path.display().to_string(),
                        why: format!("#! interpreter {:?} is not an absolute path", interp),
                    });
                }
                chain.push(ChainEntry {
                    path: path.clone(),
                    role: ChainRole::Script,
                    why: if depth == 0 {
                        "the target (a #! script)".into()
                    } else {
                        "#! script interpreter".into()
                    },
                });
                if let Some(a) = &arg {
                    let base = Path::new(&interp)
                        .file_name()
                        .map(|b| b.as_bytes().to_vec());
                    if base.as_deref() == Some(b"env") {
                        if let Some(prog) = env_program(a) {
                            if let Ok(found) = search_path(&prog, path_var, &cwd, ids) {
                                chain.push(ChainEntry {
                                    path: found,
                                    role: ChainRole::EnvLookup,
                                    why: format!(
                                        "found by `{} {}` in the target's PATH",
                                        Path::new(&interp).display(),
                                        prog.to_string_lossy()
                                    ),
                                });
                            }
                        }
                    }
                }
                // The kernel passes: interp [arg] script-path original-args...
                let mut new_prefix: Vec<OsString> = Vec::new();
                if let Some(a) = arg {
                    new_prefix.push(a);
                }
                new_prefix.push(path.clone().into_os_string());
                // Arguments of outer levels (already in `prefix`) follow, except that the
                // kernel replaces the outer argv[0] with the script path.
                let mut tail = prefix.clone();
                tail.append(&mut args_tail);
                args_tail = tail;
                prefix = new_prefix;
                argv0 = interp.clone();
                path = PathBuf::from(interp);
            }
        }
    }
    Err(TargetError::Unusable {
        path: path.display().to_string(),
        why: "interpreter loop".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_program_skips_flags() {
        assert_eq!(
            env_program(OsStr::new("node")),
            Some(OsString::from("node"))
        );
        assert_eq!(
            env_program(OsStr::new("-S node --flag")),
            Some(OsString::from("node"))
        );
        assert_eq!(
            env_program(OsStr::new("A=1 python3")),
            Some(OsString::from("python3"))
        );
    }

    #[test]
    fn resolves_shell_script_like_the_kernel() {
        let dir = std::env::temp_dir().join(format!("cj-target-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("s.sh");
        std::fs::write(&script, "#!/bin/sh -e\necho hi\n").ok();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).ok();
        let ids = Trust::for_caller();
        let t = resolve(
            &[script.clone().into_os_string(), "x".into()],
            DEFAULT_PATH,
            &ids,
        );
        let t = match t {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let argv: Vec<String> = t
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            argv,
            vec![
                "/bin/sh".to_string(),
                "-e".into(),
                script.display().to_string(),
                "x".into()
            ]
        );
        assert_eq!(t.chain[0].role, ChainRole::Script);
        assert_eq!(t.chain.last().map(|c| c.role), Some(ChainRole::Executable));
        std::fs::remove_dir_all(&dir).ok();
    }
}
