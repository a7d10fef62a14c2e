//! Run records: `run` leaves `/run/clawjail/<pid>.json` (root-owned, 0644) before the first
//! irreversible step, so `clawjail audit` can tell that a live gateway was started under
//! clawjail. /proc shows no Landlock field, so the record is the only witness.
//!
//! A record names the pid and its start time (field 22 of /proc/<pid>/stat, in clock ticks
//! since boot). `run` execs in place, so the target keeps both; when `run` forks (a shell
//! job, `--init`, a terminal) the record names the supervisor, which is the target's parent
//! (grandparent with a terminal: the pty session's monitor sits between). A reader
//! trusts a record only when the file is root-owned and not group/world-writable and both
//! the pid and the start time match the live process, so a recycled pid or a record
//! written by anyone else never vouches for a process.
//!
//! Each launch also prunes the records of processes that are gone (no /proc/<pid>, or a
//! different start time: the pid was recycled), by fd (unlinkat on the opened directory),
//! looking at no more than [`PRUNE_SCAN_MAX`] entries, so the directory holds about one
//! record per live launch instead of one per launch ever made.
//!
//! Writing is best effort: /run may be read-only in a container, and a missing record only
//! makes `audit` report "not started under clawjail". Only a root start writes one (an
//! unprivileged caller cannot create a root-owned record).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::Plan;

/// Where `run` writes records and `audit` reads them.
pub const DIR: &str = "/run/clawjail";

/// One launch, as `audit` cross-checks it against the live process.
///
/// The plan's fields are a subset of the plan's view (`plan::view::PlanView`, what
/// `check --json` prints): `policy` and `policy_sha256` are its `policy.file` and
/// `policy.sha256`, `target` is `target.exec` (the launch event's `target`), `uid` is
/// `identity.uid`. The rest is this process's (pid, start time, binary) and the policy's
/// assessment. Kept flat and small (audit reads records of older versions too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub pid: i32,
    /// /proc/<pid>/stat field 22 (starttime, clock ticks after boot).
    pub start_time: u64,
    pub policy: String,
    pub policy_sha256: String,
    pub target: String,
    pub uid: u32,
    pub clawjail_version: String,
    /// The clawjail binary that wrote the record (stat of /proc/self/exe): `audit` knows a
    /// supervisor by its /proc/<pid>/exe being this inode, never by its comm (which any
    /// process can set with prctl(PR_SET_NAME)).
    #[serde(default)]
    pub exe: Option<ExeId>,
    /// Whether `weak` was filled in (records of older versions lack the assessment).
    #[serde(default)]
    pub assessed: bool,
    /// What the launched policy leaves open (`audit::strength`).
    #[serde(default)]
    pub weak: Vec<crate::audit::strength::Weakness>,
}

/// An executable by inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExeId {
    pub dev: u64,
    pub ino: u64,
}

/// The inode behind /proc/<pid>/exe (stat(2) follows the magic link to the executable).
pub fn exe_of(pid: &str) -> Option<ExeId> {
    let m = fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some(ExeId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// Why a record could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RunRecordError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path}: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error("{path}: not a run record: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RunRecordError {
    let path = path.to_path_buf();
    move |source| RunRecordError::Io { what, path, source }
}

/// Field 22 (starttime) of a /proc/<pid>/stat line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after the last `)` (proc_pid_stat(5)).
pub fn parse_stat_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After ")" come field 3 (state) onwards; starttime is field 22, the 20th of those.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The start time of a live process, from /proc/<pid>/stat.
pub fn start_time_of(pid: i32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_start_time(&stat)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: no starttime field")))
}

/// The record `run` is about to leave for this process.
pub fn for_this_process(plan: &Plan, policy: &crate::policy::Policy) -> io::Result<RunRecord> {
    let pid = std::process::id() as i32;
    Ok(RunRecord {
        pid,
        start_time: start_time_of(pid)?,
        policy: plan.source.file.clone(),
        policy_sha256: plan.source.sha256.clone(),
        target: crate::plan::view::target_exec(plan),
        uid: crate::plan::view::identity(plan).ids().uid,
        clawjail_version: env!("CARGO_PKG_VERSION").to_string(),
        exe: exe_of("self"),
        assessed: true,
        weak: crate::audit::strength::assess(policy, &plan.vars, &plan.degraded),
    })
}

/// Write `<dir>/<pid>.json` (0644) through a temporary file and rename, in a 0755 dir
/// created if missing. The temporary is created O_EXCL|O_NOFOLLOW, so a planted symlink
/// is never followed.
pub fn write_in(dir: &Path, rec: &RunRecord) -> Result<PathBuf, RunRecordError> {
    match fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("creating", dir)(e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(io_err("inspecting", dir))?;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(RunRecordError::Untrusted {
            path: dir.to_path_buf(),
            reason: "not a directory owned by us and writable only by us".into(),
        });
    }
    let body = serde_json::to_vec_pretty(rec).map_err(|source| RunRecordError::Parse {
        path: dir.to_path_buf(),
        source,
    })?;
    let tmp = dir.join(format!(".{}.json.tmp", rec.pid));
    let final_path = dir.join(format!("{}.json", rec.pid));
    // A leftover temporary from an earlier run with the same pid is ours to replace.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("removing", &tmp)(e)),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io_err("creating", &tmp))?;
    f.write_all(&body).map_err(io_err("writing", &tmp))?;
    // The umask may have cleared bits of 0644.
    f.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err("chmod", &tmp))?;
    drop(f);
    fs::rename(&tmp, &final_path).map_err(io_err("renaming", &tmp))?;
    Ok(final_path)
}

/// Most directory entries one launch examines when pruning (bounded work per launch; each
/// launch adds one record and removes every stale one it sees).
pub const PRUNE_SCAN_MAX: usize = 4096;

/// Most bytes read from one record while pruning or matching (a record is ~300 bytes).
const RECORD_MAX: u64 = 64 * 1024;

/// Whether a record named `name` (`<pid>.json` or `.<pid>.json.tmp`) is for a process that
/// is gone. `start_time` reads a record's recorded start time when the pid is live.
fn is_stale(name: &str, start_time: impl FnOnce() -> Option<u64>) -> bool {
    let pid = name.strip_suffix(".json").or_else(|| {
        name.strip_prefix('.')
            .and_then(|n| n.strip_suffix(".json.tmp"))
    });
    let Some(pid) = pid.and_then(|p| p.parse::<i32>().ok()) else {
        return false; // not ours: leave it alone
    };
    if name.ends_with(".tmp") {
        // A temporary outlives its writer only if the writer died mid-write.
        return !Path::new(&format!("/proc/{pid}")).exists();
    }
    match start_time_of(pid) {
        Err(_) => true,
        Ok(live) => start_time() != Some(live),
    }
}

/// Remove the records of processes that are gone from `dir` (see the module header).
/// Returns how many were removed.
pub fn prune_in(dir: &Path) -> Result<usize, RunRecordError> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    use nix::unistd::UnlinkatFlags;
    use std::os::fd::{AsFd, AsRawFd};
    let dfd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("opening", dir)(e.into()))?;
    let st = nix::sys::stat::fstat(dfd.as_fd()).map_err(|e| io_err("inspecting", dir)(e.into()))?;
    if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_mode & 0o022 != 0 {
        return Err(RunRecordError::Untrusted {
            path: dir.to_path_buf(),
            reason: "not a directory owned by us and writable only by us".into(),
        });
    }
    let listing = fs::read_dir(format!("/proc/self/fd/{}", dfd.as_raw_fd()))
        .map_err(io_err("listing", dir))?;
    let mut removed = 0;
    // Our own record was just written and this process is alive: skip it rather than
    // read it back and /proc/self/stat again (the launch path: docs/performance.md).
    let own = format!("{}.json", std::process::id());
    for ent in listing.take(PRUNE_SCAN_MAX).flatten() {
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == own {
            continue;
        }
        let recorded = || {
            let fd = openat(
                dfd.as_fd(),
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ok()?;
            let f = fs::File::from(fd);
            if !f.metadata().ok()?.is_file() {
                return None;
            }
            let mut text = String::new();
            io::Read::read_to_string(&mut io::Read::take(f, RECORD_MAX), &mut text).ok()?;
            serde_json::from_str::<RunRecord>(&text)
                .ok()
                .map(|r| r.start_time)
        };
        if is_stale(name, recorded)
            && nix::unistd::unlinkat(dfd.as_fd(), name, UnlinkatFlags::NoRemoveDir).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Leave the record for `run`, or say why not (a warning: a missing record never stops a
/// launch). Called while still root, right before `launch::apply`.
pub fn leave_for_run(plan: &Plan, policy: &crate::policy::Policy) {
    if !nix::unistd::geteuid().is_root() {
        tracing::debug!("run record: skipped (not started as root, it could not be root-owned)");
        return;
    }
    let result = for_this_process(plan, policy)
        .map_err(io_err("reading", Path::new("/proc/self/stat")))
        .and_then(|rec| write_in(Path::new(DIR), &rec));
    match prune_in(Path::new(DIR)) {
        Ok(n) if n > 0 => tracing::debug!(removed = n, "run records of exited processes pruned"),
        Ok(_) => {}
        Err(e) => tracing::debug!("run records not pruned: {e}"),
    }
    match result {
        Ok(path) => tracing::debug!(path = %path.display(), "run record written"),
        Err(e) => tracing::warn!(
            "run record not written ({e}); `clawjail audit` will not recognise this process as started under clawjail"
        ),
    }
}

/// Read `<dir>/<pid>.json` and return it only if it is trustworthy and matches the live
/// process with that pid (same start time). `Ok(None)`: no record for that pid.
pub fn matching_record(dir: &Path, pid: i32) -> Result<Option<RunRecord>, RunRecordError> {
    let path = dir.join(format!("{pid}.json"));
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("inspecting", &path)(e)),
    };
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(RunRecordError::Untrusted {
            path,
            reason: format!(
                "not a root-owned regular file writable only by root (uid {}, mode {:04o})",
                meta.uid(),
                meta.mode() & 0o7777
            ),
        });
    }
    let mut text = String::new();
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(io_err("opening", &path))?;
    if !f.metadata().map_err(io_err("inspecting", &path))?.is_file() {
        return Err(RunRecordError::Untrusted {
            path,
            reason: "not a regular file".into(),
        });
    }
    io::Read::read_to_string(&mut io::Read::take(f, RECORD_MAX), &mut text)
        .map_err(io_err("reading", &path))?;
    let rec: RunRecord = serde_json::from_str(&text).map_err(|source| RunRecordError::Parse {
        path: path.clone(),
        source,
    })?;
    let live = start_time_of(pid).map_err(io_err("reading", &path))?;
    if rec.pid != pid || rec.start_time != live {
        return Ok(None);
    }
    Ok(Some(rec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_parens_in_comm() {
        let stat = "1234 (we ird) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_stat_start_time(stat), Some(987654));
    }

    #[test]
    fn start_time_of_self_is_readable() {
        assert!(start_time_of(std::process::id() as i32).is_ok());
    }

    #[test]
    fn stale_means_gone_or_recycled() {
        let me = std::process::id() as i32;
        let live = start_time_of(me).unwrap();
        assert!(!is_stale(&format!("{me}.json"), || Some(live)));
        assert!(is_stale(&format!("{me}.json"), || Some(live + 1)));
        assert!(is_stale(&format!("{me}.json"), || None));
        assert!(is_stale("999999999.json", || Some(1)));
        assert!(is_stale(".999999999.json.tmp", || None));
        assert!(!is_stale("README", || None));
    }

    #[test]
    fn short_stat_has_no_start_time() {
        assert_eq!(parse_stat_start_time("1 (x) S 0 1"), None);
    }

    #[test]
    fn record_round_trips_and_matches_only_the_live_process() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("cj-runrecord-{}", std::process::id()));
        let pid = std::process::id() as i32;
        let rec = RunRecord {
            pid,
            start_time: start_time_of(pid).unwrap(),
            policy: "/etc/clawjail/policy.toml".into(),
            policy_sha256: "ab".repeat(32),
            target: "/usr/bin/node".into(),
            uid: 65534,
            clawjail_version: "0".into(),
            exe: exe_of("self"),
            assessed: true,
            weak: vec![],
        };
        let path = write_in(&dir, &rec).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(matching_record(&dir, pid).unwrap(), Some(rec.clone()));
        // A record whose start time differs (a recycled pid) does not match.
        let stale = RunRecord {
            start_time: rec.start_time + 1,
            ..rec
        };
        write_in(&dir, &stale).unwrap();
        assert_eq!(matching_record(&dir, pid).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
