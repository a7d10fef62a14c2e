//! Safe path resolution and directory creation while clawjail is still privileged.
//!
//! Enforces: paths are walked one component at a time with
//! `openat(dirfd, name, O_PATH|O_NOFOLLOW|O_CLOEXEC)` (openat(2), open(2) "O_NOFOLLOW"),
//! so every component is pinned by an fd and no name is resolved twice. A symlink is
//! followed only when [`Trust`] says nobody but a trusted party could have planted or
//! re-pointed it: on a root start, root-owned links in directories only root can write
//! (/lib -> usr/lib); on an unprivileged start, links outside the policy's write/create set
//! that are not another user's (a user's own `~/.npm-global/bin/openclaw` link works).
//! A `workspace -> ~/.ssh` link planted by the confined user, or a third user's link in
//! sticky /tmp, is refused with a message that names it. Directories are created with
//! mkdirat + fchown + fchmod on opened fds (never by path), owned by the target.
//!
//! Cannot: see POSIX ACLs (only mode bits and ownership are read), and it cannot pin what
//! happens after it returns: callers keep the returned fd and never reopen by name.
//!
//! Needs: /proc (directory listings read through /proc/self/fd/N, which names the opened
//! inode itself, not a path).

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode};
use nix::unistd::{fchown, Gid, Uid};

use crate::identity::Ids;

/// The kernel's own limit on symlinks followed in one lookup (path_resolution(7)).
const MAX_SYMLINKS: usize = 40;

/// An inode: what `deny` and the rule merge compare, never the path string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// The few stat fields the trust decisions need (pure, so the decisions are unit-tested).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub id: FileId,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Meta {
    fn of(st: &libc::stat) -> Meta {
        Meta {
            id: FileId {
                dev: st.st_dev,
                ino: st.st_ino,
            },
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
        }
    }

    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }

    pub fn is_regular(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// A resolved path: an O_PATH fd on the final inode and how it was reached.
#[derive(Debug)]
pub struct Resolved {
    /// O_PATH|O_CLOEXEC; for Landlock rules or reopening through /proc/self/fd.
    pub fd: OwnedFd,
    /// Canonical path (trusted symlinks resolved), for messages and `check`.
    pub path: PathBuf,
    pub meta: Meta,
    /// Every directory from `/` down to the parent, outermost first (for "is under").
    pub ancestors: Vec<FileId>,
    /// Symlinks followed: (where the link is, what it points to).
    pub followed: Vec<(PathBuf, PathBuf)>,
}

/// Why a path could not be resolved or created safely.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("{path}: does not exist ({missing} is missing)")]
    Missing { path: PathBuf, missing: PathBuf },
    #[error("{path}: {link} is a symlink (-> {target}) that clawjail will not follow: {why} (replace the link with the real path, or see docs/symlink-trust.md)")]
    UnsafeSymlink {
        path: PathBuf,
        link: PathBuf,
        target: PathBuf,
        why: String,
    },
    #[error("{path}: {at} is not a directory")]
    NotDirectory { path: PathBuf, at: PathBuf },
    #[error("{path}: more than {MAX_SYMLINKS} symlinks")]
    TooManySymlinks { path: PathBuf },
    #[error("{path}: {why}")]
    Refused { path: PathBuf, why: String },
    #[error("{path}: {call}: {source}")]
    Io {
        path: PathBuf,
        call: String,
        source: io::Error,
    },
}

impl PathError {
    fn io(path: &Path, call: impl Into<String>, e: nix::Error) -> PathError {
        PathError::Io {
            path: path.to_path_buf(),
            call: call.into(),
            source: e.into(),
        }
    }
}

/// Whether `ids` may write into a directory with `dir`'s mode bits (DAC, no ACLs).
pub fn dir_writable_by(dir: &Meta, ids: &Ids) -> bool {
    let m = dir.mode;
    if ids.uid == 0 {
        // A root target (allow_root) passes DAC anyway; only shared-writable dirs count, so
        // root-owned system links stay usable.
        return m & 0o022 != 0;
    }
    if dir.uid == ids.uid {
        m & 0o200 != 0
    } else if dir.gid == ids.gid || ids.groups.contains(&dir.gid) {
        m & 0o020 != 0
    } else {
        m & 0o002 != 0
    }
}

/// Whose symlinks a walk may follow, decided once per launch (docs/symlink-trust.md).
///
/// A link is a name someone can re-point between two launches, so following one hands the
/// target (or root's reads) whatever its owner chose. Who could have chosen it depends on
/// how clawjail was started:
/// - root start: only root. A link is followed only when root owns it and it sits in a
///   directory that only root can write (owned by root, no group/other write bit). A link
///   in sticky /tmp, under a user's home or owned by any other uid is refused, whoever the
///   target is: a third user's link would otherwise hand the target a root-only file.
/// - unprivileged start: the caller could write anything the link reaches anyway; what it
///   must not do is use the CONFINED target's write access to plant links for the next
///   launch. Links are followed unless they lie inside the policy's write/create set, are
///   owned by another non-root user, or sit in a directory others can write (non-sticky).
#[derive(Debug, Clone)]
pub struct Trust {
    /// The ids the target runs as (owner of created directories).
    pub ids: Ids,
    /// Started as root (euid 0): the strict rule.
    pub root_start: bool,
    /// Directories the confined target may write (policy `write` and `create`), by inode.
    pub writable: Vec<FileId>,
    /// The caller's real uid and gid (the unprivileged rule trusts the caller's own links).
    pub caller: (u32, u32),
    /// Directories already opened by a walk under this trust (see [`DirCache`]).
    dirs: DirCache,
}

/// The directories the walks of one plan have opened, by canonical path: a later walk
/// through the same directory starts from the fd (and the stat) the first one pinned
/// instead of opening every component from `/` again (the shipped gateway policy walks
/// /usr, /var/lib/<home> and the npm prefix dozens of times: ~700 openat/fstat/close per
/// launch, docs/performance.md). Only directories reached on the way to another component
/// are kept, never a symlink (a link is judged afresh each time) and never a walk's last
/// component (its caller gets an fd of its own). Each entry is the inode the trust rules
/// accepted when it was first opened, so one plan sees one snapshot of every directory it
/// walks through, as a single walk always did. It lives as long as the [`Trust`]: built
/// by `plan::prepare` after the private /tmp is mounted (so /tmp is the private tmpfs's)
/// and dropped with it, before any launch step; a directory created later (`ensure_dir`)
/// is found by openat beneath its cached parent, since missing names are not cached.
#[derive(Debug, Clone, Default)]
struct DirCache(Arc<Mutex<HashMap<PathBuf, CachedDir>>>);

/// A directory's fd (O_PATH, shared with the walks' stacks) and the stat judged at its open.
type CachedDir = (Arc<OwnedFd>, Meta);

impl DirCache {
    fn get(&self, path: &Path) -> Option<CachedDir> {
        let map = self.0.lock().ok()?;
        map.get(path).map(|(fd, meta)| (Arc::clone(fd), *meta))
    }

    fn put(&self, path: &Path, fd: &Arc<OwnedFd>, meta: Meta) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(path.to_path_buf(), (Arc::clone(fd), meta));
        }
    }
}

impl Trust {
    /// The rule for this process: root rule when euid is 0, else the caller's rule with
    /// `writable` as the confined write set.
    pub fn new(ids: Ids, writable: Vec<FileId>) -> Trust {
        Trust {
            ids,
            root_start: nix::unistd::geteuid().is_root(),
            writable,
            caller: (
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            ),
            dirs: DirCache::default(),
        }
    }

    /// For files read before the target is known (the policy file): the caller is the target.
    pub fn for_caller() -> Trust {
        Trust::new(crate::identity::current(), Vec::new())
    }
}

/// Why `link` (in `dir`, below `ancestors`) must not be followed under `trust`, or None.
pub fn link_refused(
    dir: &Meta,
    link: &Meta,
    ancestors: &[FileId],
    trust: &Trust,
) -> Option<String> {
    let shared = dir.mode & 0o022 != 0;
    if trust.root_start {
        if link.uid != 0 {
            return Some(format!(
                "the link is owned by uid {}, not root; a root start follows only root's links",
                link.uid
            ));
        }
        if dir.uid != 0 || shared {
            return Some(format!(
                "its directory (uid {}, mode {:04o}) is writable by others than root; a root start follows only links in directories only root can write",
                dir.uid,
                dir.mode & 0o7777
            ));
        }
        return None;
    }
    if ancestors.iter().any(|a| trust.writable.contains(a)) {
        return Some(
            "it lies inside the policy's write/create set, where the confined target could have planted it"
                .into(),
        );
    }
    if link.uid != 0 && link.uid != trust.caller.0 {
        return Some(format!(
            "the link is owned by uid {}, another user",
            link.uid
        ));
    }
    let sticky = dir.mode & libc::S_ISVTX != 0;
    let group_shared = dir.mode & 0o020 != 0 && dir.gid != trust.caller.1;
    if !sticky && (dir.mode & 0o002 != 0 || group_shared) {
        return Some(format!(
            "its directory (mode {:04o}) is writable by other users",
            dir.mode & 0o7777
        ));
    }
    None
}

fn stat_fd(fd: &OwnedFd, path: &Path) -> Result<Meta, PathError> {
    fstat(fd.as_fd())
        .map(|st| Meta::of(&st))
        .map_err(|e| PathError::io(path, "fstat", e))
}

fn open_root(path: &Path) -> Result<OwnedFd, PathError> {
    nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| PathError::io(path, "open(\"/\", O_PATH)", e))
}

/// Open one name beneath `dir` without following it, even if it is a symlink.
fn open_nofollow(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd, nix::Error> {
    openat(
        dir.as_fd(),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// One directory on the walk: its fd (shared with the trust's [`DirCache`]), stat and
/// canonical path.
struct Step {
    fd: Arc<OwnedFd>,
    meta: Meta,
    path: PathBuf,
}

/// The walk state shared by `resolve` and `ensure_dir`.
struct Walk<'a> {
    path: &'a Path,
    trust: &'a Trust,
    stack: Vec<Step>,
    pending: VecDeque<OsString>,
    followed: Vec<(PathBuf, PathBuf)>,
    links: usize,
}

/// What the next component turned out to be.
enum Next {
    /// Opened (not a symlink); `last` when no component follows.
    Opened {
        fd: Arc<OwnedFd>,
        meta: Meta,
        last: bool,
    },
    /// The component does not exist.
    Missing(OsString),
    /// A trusted symlink was expanded into `pending`.
    Followed,
    /// A `..` or `.` was consumed.
    Moved,
    /// Nothing left.
    Done,
}

impl<'a> Walk<'a> {
    fn new(path: &'a Path, trust: &'a Trust) -> Result<Walk<'a>, PathError> {
        if !path.is_absolute() {
            return Err(PathError::Refused {
                path: path.to_path_buf(),
                why: "not an absolute path".into(),
            });
        }
        let root = Path::new("/");
        let (fd, meta) = match trust.dirs.get(root) {
            Some(hit) => hit,
            None => {
                let fd = Arc::new(open_root(path)?);
                let meta = stat_fd(&fd, path)?;
                trust.dirs.put(root, &fd, meta);
                (fd, meta)
            }
        };
        Ok(Walk {
            path,
            trust,
            stack: vec![Step {
                fd,
                meta,
                path: PathBuf::from("/"),
            }],
            pending: components(path),
            followed: Vec::new(),
            links: 0,
        })
    }

    fn top(&self) -> &Step {
        // The stack always holds "/" (never popped below one entry).
        &self.stack[self.stack.len() - 1]
    }

    /// Advance by one component, following a symlink only if the target cannot have planted it.
    fn next(&mut self, follow_last_symlink: bool) -> Result<Next, PathError> {
        let Some(name) = self.pending.pop_front() else {
            return Ok(Next::Done);
        };
        if name == ".." {
            if self.stack.len() > 1 {
                self.stack.pop();
            }
            return Ok(Next::Moved);
        }
        if name == "." || name.is_empty() {
            return Ok(Next::Moved);
        }
        let here = self.top().path.join(&name);
        let last = self.pending.is_empty();
        if !last {
            if let Some((fd, meta)) = self.trust.dirs.get(&here) {
                return Ok(Next::Opened { fd, meta, last });
            }
        }
        let fd = match open_nofollow(&self.top().fd, &name) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) => return Ok(Next::Missing(name)),
            Err(e) => {
                return Err(PathError::io(
                    self.path,
                    format!("openat({})", here.display()),
                    e,
                ))
            }
        };
        let meta = stat_fd(&fd, &here)?;
        if meta.is_symlink() {
            // readlinkat(2): an empty pathname reads the link behind an O_PATH|O_NOFOLLOW fd,
            // so the link judged below is the very inode that was opened.
            let target = PathBuf::from(
                readlinkat(fd.as_fd(), "").map_err(|e| PathError::io(&here, "readlinkat", e))?,
            );
            let ancestors = self.ancestors();
            if let Some(why) = link_refused(&self.top().meta, &meta, &ancestors, self.trust) {
                return Err(PathError::UnsafeSymlink {
                    path: self.path.to_path_buf(),
                    link: here,
                    target,
                    why,
                });
            }
            if last && !follow_last_symlink {
                return Err(PathError::Refused {
                    path: self.path.to_path_buf(),
                    why: format!("{} is a symlink (-> {})", here.display(), target.display()),
                });
            }
            self.links += 1;
            if self.links > MAX_SYMLINKS {
                return Err(PathError::TooManySymlinks {
                    path: self.path.to_path_buf(),
                });
            }
            if target.is_absolute() {
                self.stack.truncate(1);
            }
            let mut expanded = components(&target);
            expanded.extend(self.pending.drain(..));
            self.pending = expanded;
            self.followed.push((here, target));
            return Ok(Next::Followed);
        }
        if !last && !meta.is_dir() {
            return Err(PathError::NotDirectory {
                path: self.path.to_path_buf(),
                at: here,
            });
        }
        let fd = Arc::new(fd);
        if !last {
            self.trust.dirs.put(&here, &fd, meta);
        }
        Ok(Next::Opened { fd, meta, last })
    }

    fn push(&mut self, fd: Arc<OwnedFd>, meta: Meta, name: &OsStr) {
        let path = self.top().path.join(name);
        self.stack.push(Step { fd, meta, path });
    }

    fn ancestors(&self) -> Vec<FileId> {
        self.stack.iter().map(|s| s.meta.id).collect()
    }
}

/// An fd of the caller's own: the walk's last component was opened fresh (no other owner);
/// a directory the cache also holds (a path that ends in `..`, or `/` itself) is dup'ed.
fn unshared(fd: Arc<OwnedFd>, path: &Path) -> Result<OwnedFd, PathError> {
    Arc::try_unwrap(fd).or_else(|shared| {
        shared.try_clone().map_err(|e| {
            PathError::io(
                path,
                "dup",
                nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)),
            )
        })
    })
}

/// The components of `p` as names (`/` dropped, `..` kept for the walk to apply).
fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Resolve an absolute path for a Landlock rule, following only symlinks the target could
/// not have planted (see the module header).
pub fn resolve(path: &Path, trust: &Trust) -> Result<Resolved, PathError> {
    let mut w = Walk::new(path, trust)?;
    loop {
        // The name of the component being opened, for the stack.
        let name = w.pending.front().cloned().unwrap_or_default();
        match w.next(true)? {
            Next::Done => {
                // The path named a directory (possibly "/"): reopen the top as the result.
                let ancestors = w.ancestors();
                let top = w.stack.pop().ok_or_else(|| PathError::Refused {
                    path: path.to_path_buf(),
                    why: "empty walk".into(),
                })?;
                let mut ancestors = ancestors;
                ancestors.pop();
                return Ok(Resolved {
                    fd: unshared(top.fd, path)?,
                    path: top.path,
                    meta: top.meta,
                    ancestors,
                    followed: w.followed,
                });
            }
            Next::Missing(n) => {
                return Err(PathError::Missing {
                    path: path.to_path_buf(),
                    missing: w.top().path.join(n),
                })
            }
            Next::Followed | Next::Moved => {}
            Next::Opened { fd, meta, last } => {
                if last {
                    let ancestors = w.ancestors();
                    return Ok(Resolved {
                        fd: unshared(fd, path)?,
                        path: w.top().path.join(&name),
                        meta,
                        ancestors,
                        followed: w.followed,
                    });
                }
                w.push(fd, meta, &name);
            }
        }
    }
}

/// Reopen an O_PATH fd for reading, through /proc/self/fd (the inode itself, not a name).
/// Only regular files: opening a FIFO or a device as root could block or have side effects.
pub fn reopen_for_read(r: &Resolved) -> Result<std::fs::File, PathError> {
    if !r.meta.is_regular() {
        return Err(PathError::Refused {
            path: r.path.clone(),
            why: "not a regular file".into(),
        });
    }
    std::fs::File::open(format!("/proc/self/fd/{}", r.fd.as_raw_fd())).map_err(|source| {
        PathError::Io {
            path: r.path.clone(),
            call: "open(/proc/self/fd/N, O_RDONLY)".into(),
            source,
        }
    })
}

/// Why a file's content is refused (size cap, not regular).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: not a regular file (a FIFO, device or directory could block or never end); point it at a regular file")]
    NotRegular { path: PathBuf },
    #[error("{path}: larger than the {max}-byte limit; this is not a file clawjail reads")]
    TooLarge { path: PathBuf, max: u64 },
    #[error(transparent)]
    Path(#[from] PathError),
}

/// Read at most `max` bytes of the regular file behind `r`: reopened through
/// /proc/self/fd with O_NONBLOCK (open(2): a FIFO opened O_RDONLY|O_NONBLOCK returns at
/// once instead of waiting for a writer), fstat'ed again to be the same regular inode, and
/// read through `take(max + 1)` so /dev/zero or a sparse multi-GiB file costs `max` bytes.
pub fn read_capped(r: &Resolved, max: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    if !r.meta.is_regular() {
        return Err(ReadError::NotRegular {
            path: r.path.clone(),
        });
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", r.fd.as_raw_fd()))
        .map_err(|source| PathError::Io {
            path: r.path.clone(),
            call: "open(/proc/self/fd/N, O_RDONLY|O_NONBLOCK)".into(),
            source,
        })?;
    let st = f.metadata().map_err(|source| PathError::Io {
        path: r.path.clone(),
        call: "fstat".into(),
        source,
    })?;
    if !st.is_file() || st.dev() != r.meta.id.dev || st.ino() != r.meta.id.ino {
        return Err(ReadError::NotRegular {
            path: r.path.clone(),
        });
    }
    if st.len() > max {
        return Err(ReadError::TooLarge {
            path: r.path.clone(),
            max,
        });
    }
    let mut buf = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|source| PathError::Io {
            path: r.path.clone(),
            call: "read".into(),
            source,
        })?;
    if buf.len() as u64 > max {
        return Err(ReadError::TooLarge {
            path: r.path.clone(),
            max,
        });
    }
    Ok(buf)
}

/// Remove the entry `path` names, by unlinkat(2) on its parent's fd (the parent reached by
/// the safe walk under `trust`, the last component never followed): a directory only when
/// `dir` (and only if empty, AT_REMOVEDIR), anything else only when not `dir`. A missing
/// entry is not an error. For clawjail's own leftovers in directories others can write.
pub fn remove_beneath(path: &Path, trust: &Trust, dir: bool) -> Result<(), String> {
    use nix::unistd::{unlinkat, UnlinkatFlags};
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err("no parent directory".into());
    };
    let p = resolve(parent, trust).map_err(|e| e.to_string())?;
    let st =
        match nix::sys::stat::fstatat(p.fd.as_fd(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        {
            Ok(st) => st,
            Err(nix::Error::ENOENT) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if is_dir != dir {
        return Err(format!(
            "is {}a directory now; left alone",
            if is_dir { "" } else { "not " }
        ));
    }
    let flag = if dir {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    unlinkat(p.fd.as_fd(), name, flag).map_err(|e| e.to_string())
}

/// One entry of a directory listing, opened O_PATH|O_NOFOLLOW beneath the directory's fd.
#[derive(Debug)]
pub struct Child {
    pub fd: OwnedFd,
    pub path: PathBuf,
    pub meta: Meta,
}

/// List a resolved directory's entries, each opened beneath the directory's fd.
pub fn children(dir_fd: &OwnedFd, dir_path: &Path) -> Result<Vec<Child>, PathError> {
    let listing = format!("/proc/self/fd/{}", dir_fd.as_raw_fd());
    let rd = std::fs::read_dir(&listing).map_err(|source| PathError::Io {
        path: dir_path.to_path_buf(),
        call: "read_dir".into(),
        source,
    })?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|source| PathError::Io {
            path: dir_path.to_path_buf(),
            call: "read_dir".into(),
            source,
        })?;
        let name = ent.file_name();
        let here = dir_path.join(&name);
        let fd = match open_nofollow(dir_fd, &name) {
            Ok(fd) => fd,
            // Removed between the listing and the open: nothing to grant.
            Err(nix::Error::ENOENT) => continue,
            Err(e) => return Err(PathError::io(&here, "openat", e)),
        };
        let meta = stat_fd(&fd, &here)?;
        out.push(Child {
            fd,
            path: here,
            meta,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// What `ensure_dir` did (or would do, in `check`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum DirOutcome {
    /// Already there, owned by the target and not group/world-writable.
    Existing { path: PathBuf },
    /// Created now (outermost first), owned by the target with the given mode.
    Created {
        path: PathBuf,
        created: Vec<PathBuf>,
    },
    /// `check`/dry-run: these components would be created.
    WouldCreate {
        path: PathBuf,
        missing: Vec<PathBuf>,
    },
}

impl fmt::Display for DirOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirOutcome::Existing { path } => write!(f, "{}: exists", path.display()),
            DirOutcome::Created { path, created } => {
                write!(f, "{}: created {}", path.display(), join(created))
            }
            DirOutcome::WouldCreate { path, missing } => {
                write!(f, "{}: would create {}", path.display(), join(missing))
            }
        }
    }
}

fn join(v: &[PathBuf]) -> String {
    v.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether an existing directory may be reused as the target's: owned by the target and
/// not writable by group or others (someone else could swap its contents).
pub fn check_reusable(meta: &Meta, ids: &Ids) -> Result<(), String> {
    if !meta.is_dir() {
        return Err("exists and is not a directory".into());
    }
    if meta.uid != ids.uid {
        let who = nix::unistd::User::from_uid(Uid::from_raw(meta.uid))
            .ok()
            .flatten()
            .map(|u| format!(" ({})", u.name))
            .unwrap_or_default();
        return Err(format!(
            "exists but is owned by uid {}{who}, not the target uid {}: someone else created it first, so it could hold their links or files; refusing to reuse it. Fix: remove it (or chown it to uid {}); for names in /tmp, start as root with `[filesystem] private_tmp = true` so the target gets a /tmp nobody else can write",
            meta.uid, ids.uid, ids.uid
        ));
    }
    if meta.mode & 0o022 != 0 {
        return Err(format!(
            "exists but is group- or world-writable (mode {:04o}); refusing to reuse it",
            meta.mode & 0o7777
        ));
    }
    Ok(())
}

/// Create `path` (and missing parents) for the target: mkdirat + fchown + fchmod on fds,
/// never following a symlink the target could have planted, never a symlink as the last
/// component. A missing component is created only under a parent owned by root or by the
/// target. With `apply == false` nothing is created and the missing components are reported.
pub fn ensure_dir(
    path: &Path,
    trust: &Trust,
    mode: u32,
    apply: bool,
) -> Result<DirOutcome, PathError> {
    let ids = &trust.ids;
    let mut w = Walk::new(path, trust)?;
    let mut created = Vec::new();
    let mut retried = false;
    loop {
        let name = w.pending.front().cloned().unwrap_or_default();
        match w.next(false)? {
            Next::Done => {
                let top = w.top();
                if created.is_empty() {
                    check_reusable(&top.meta, ids).map_err(|why| PathError::Refused {
                        path: path.to_path_buf(),
                        why,
                    })?;
                    return Ok(DirOutcome::Existing {
                        path: top.path.clone(),
                    });
                }
                return Ok(DirOutcome::Created {
                    path: top.path.clone(),
                    created,
                });
            }
            Next::Followed | Next::Moved => {}
            Next::Opened { fd, meta, .. } => {
                if !meta.is_dir() {
                    return Err(PathError::NotDirectory {
                        path: path.to_path_buf(),
                        at: w.top().path.join(&name),
                    });
                }
                w.push(fd, meta, &name);
            }
            Next::Missing(n) => {
                let parent = &w.top().meta;
                let parent_path = w.top().path.clone();
                if parent.uid != 0 && parent.uid != ids.uid {
                    return Err(PathError::Refused {
                        path: path.to_path_buf(),
                        why: format!(
                            "{} is missing and its parent {} is owned by uid {} (neither root nor the target); refusing to create it there",
                            parent_path.join(&n).display(),
                            parent_path.display(),
                            parent.uid
                        ),
                    });
                }
                if !apply {
                    let mut missing = vec![parent_path.join(&n)];
                    let mut p = parent_path.join(&n);
                    for rest in w.pending.drain(..) {
                        p = p.join(rest);
                        missing.push(p.clone());
                    }
                    return Ok(DirOutcome::WouldCreate {
                        path: path.to_path_buf(),
                        missing,
                    });
                }
                match make_owned_dir(&w.top().fd, &n, ids, mode) {
                    Ok((fd, meta)) => {
                        retried = false;
                        created.push(parent_path.join(&n));
                        w.push(Arc::new(fd), meta, &n);
                    }
                    Err(nix::Error::EEXIST) if !retried => {
                        // Someone created it between our open and mkdirat: judge it afresh.
                        retried = true;
                        w.pending.push_front(n);
                    }
                    Err(e) => {
                        return Err(PathError::io(
                            &parent_path.join(&n),
                            format!("mkdirat({:04o})", mode),
                            e,
                        ))
                    }
                }
            }
        }
    }
}

/// mkdirat(2) `name` beneath `parent`, open it O_DIRECTORY|O_NOFOLLOW, check it is the
/// directory we just made (owned by our euid), then fchown(2) to the target and fchmod(2)
/// to `mode` (mkdirat applies the umask, so the mode is set explicitly).
fn make_owned_dir(
    parent: &OwnedFd,
    name: &OsStr,
    ids: &Ids,
    mode: u32,
) -> Result<(OwnedFd, Meta), nix::Error> {
    mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o700))?;
    let fd = openat(
        parent.as_fd(),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let st = fstat(fd.as_fd())?;
    if st.st_uid != nix::unistd::geteuid().as_raw() {
        // Not the directory we made (swapped in between): stop.
        return Err(nix::Error::EEXIST);
    }
    fchown(
        fd.as_fd(),
        Some(Uid::from_raw(ids.uid)),
        Some(Gid::from_raw(ids.gid)),
    )?;
    fchmod(fd.as_fd(), Mode::from_bits_truncate(mode as libc::mode_t))?;
    let st = fstat(fd.as_fd())?;
    Ok((fd, Meta::of(&st)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn ids(uid: u32) -> Ids {
        Ids {
            uid,
            gid: uid,
            groups: vec![],
            user_name: None,
        }
    }

    fn meta(mode: u32, uid: u32, gid: u32) -> Meta {
        Meta {
            id: FileId { dev: 1, ino: 2 },
            mode,
            uid,
            gid,
        }
    }

    fn trust(root: bool, caller: u32, writable: Vec<FileId>) -> Trust {
        Trust {
            ids: ids(caller),
            root_start: root,
            writable,
            caller: (caller, caller),
            dirs: DirCache::default(),
        }
    }

    #[test]
    fn root_start_follows_only_root_links_in_root_only_dirs() {
        let t = trust(true, 65534, vec![]);
        let root_dir = meta(libc::S_IFDIR | 0o755, 0, 0);
        let root_link = meta(libc::S_IFLNK | 0o777, 0, 0);
        assert_eq!(link_refused(&root_dir, &root_link, &[], &t), None);
        // A third user's link in sticky /tmp: the env-file attack.
        let tmp = meta(libc::S_IFDIR | 0o1777, 0, 0);
        let other = meta(libc::S_IFLNK | 0o777, 1000, 1000);
        assert!(link_refused(&tmp, &other, &[], &t).is_some());
        // Even root's own link in a directory others can write.
        assert!(link_refused(&tmp, &root_link, &[], &t).is_some());
        let home = meta(libc::S_IFDIR | 0o755, 1000, 1000);
        assert!(link_refused(&home, &root_link, &[], &t).is_some());
        let target_link = meta(libc::S_IFLNK | 0o777, 65534, 65534);
        assert!(link_refused(&root_dir, &target_link, &[], &t).is_some());
    }

    #[test]
    fn unprivileged_start_follows_own_links_outside_the_write_set() {
        let write = FileId { dev: 9, ino: 9 };
        let t = trust(false, 1000, vec![write]);
        let home = meta(libc::S_IFDIR | 0o755, 1000, 1000);
        let own = meta(libc::S_IFLNK | 0o777, 1000, 1000);
        // ~/.npm-global/bin/openclaw -> ../lib/node_modules/openclaw/openclaw.mjs
        assert_eq!(
            link_refused(&home, &own, &[FileId { dev: 1, ino: 1 }], &t),
            None
        );
        // The same link inside a write dir: the confined target could have planted it.
        assert!(link_refused(&home, &own, &[FileId { dev: 1, ino: 1 }, write], &t).is_some());
        // A third user's link, even in sticky /tmp.
        let tmp = meta(libc::S_IFDIR | 0o1777, 0, 0);
        let other = meta(libc::S_IFLNK | 0o777, 61002, 61002);
        assert!(link_refused(&tmp, &other, &[], &t).is_some());
        assert_eq!(link_refused(&tmp, &own, &[], &t), None);
        // A world-writable, non-sticky directory: anyone could have swapped the link.
        let world = meta(libc::S_IFDIR | 0o777, 0, 0);
        assert!(link_refused(&world, &own, &[], &t).is_some());
        // Group-writable by the caller's own group is still the caller's.
        let own_group = meta(libc::S_IFDIR | 0o775, 1000, 1000);
        assert_eq!(link_refused(&own_group, &own, &[], &t), None);
    }

    /// The per-plan directory cache: a second walk through the same directories starts
    /// from the pinned fds (and gets the same answer), its last component is opened fresh,
    /// and a symlink is judged on every walk (never cached).
    #[test]
    fn walks_of_one_trust_share_directories_but_judge_every_link() {
        let base = scratch("dircache");
        let sub = base.join("dir/sub");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("a"), b"a").unwrap();
        std::fs::write(sub.join("b"), b"b").unwrap();
        let shared = base.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::symlink(&sub, shared.join("link")).unwrap();
        let me = Trust::for_caller();
        let a = resolve(&sub.join("a"), &me).unwrap();
        let cached = me.dirs.get(&sub).expect("dir/sub is cached").1;
        let b = resolve(&sub.join("b"), &me).unwrap();
        assert_eq!(a.ancestors, b.ancestors);
        assert_eq!(a.ancestors.last(), Some(&cached.id));
        assert_ne!(a.meta.id, b.meta.id);
        // Last components are the caller's own fds, not cache entries.
        assert!(me.dirs.get(&sub.join("b")).is_none());
        assert_ne!(a.fd.as_raw_fd(), b.fd.as_raw_fd());
        // The same answer as a walk without a cache.
        let fresh = resolve(&sub.join("b"), &Trust::for_caller()).unwrap();
        assert_eq!((fresh.meta.id, fresh.ancestors), (b.meta.id, b.ancestors));
        // A link in a world-writable directory is refused on every walk, not only the first.
        let strict = trust(true, 65534, vec![]);
        for _ in 0..2 {
            let e = resolve(&shared.join("link/a"), &strict).unwrap_err();
            assert!(matches!(e, PathError::UnsafeSymlink { .. }), "{e}");
        }
        assert!(strict.dirs.get(&shared.join("link")).is_none());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn reuse_requires_target_owner_and_no_group_write() {
        let t = ids(65534);
        assert!(check_reusable(&meta(libc::S_IFDIR | 0o700, 65534, 65534), &t).is_ok());
        assert!(check_reusable(&meta(libc::S_IFDIR | 0o700, 0, 0), &t).is_err());
        assert!(check_reusable(&meta(libc::S_IFDIR | 0o770, 65534, 65534), &t).is_err());
        assert!(check_reusable(&meta(libc::S_IFREG | 0o600, 65534, 65534), &t).is_err());
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cj-paths-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&d).ok();
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn resolve_follows_system_links_and_pins_the_inode() {
        let me = Trust::for_caller();
        // /proc/self is a root-owned link in a root-owned directory.
        let r = resolve(Path::new("/proc/self/.."), &me).unwrap();
        assert_eq!(r.path, PathBuf::from("/proc"));
        let r = resolve(Path::new("/"), &me).unwrap();
        assert!(r.meta.is_dir());
        assert!(r.ancestors.is_empty());
    }

    /// The creation logic against a symlink planted by the target in a directory it owns:
    /// `ensure_dir` must refuse, create nothing behind the link, and name the link.
    #[test]
    fn ensure_dir_refuses_a_planted_symlink() {
        let d = scratch("planted");
        let owned = d.join("home");
        std::fs::create_dir(&owned).unwrap();
        let victim = d.join("victim");
        std::fs::create_dir(&victim).unwrap();
        // The target owns `home`: as root, chown it to 65534 and act for that uid;
        // unprivileged, the caller is the target.
        let me = if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&owned, Some(65534), Some(65534)).unwrap();
            Trust::new(ids(65534), vec![])
        } else {
            let me = Trust::new(crate::identity::current(), vec![]);
            let w = resolve(&owned, &me).unwrap().meta.id;
            Trust::new(crate::identity::current(), vec![w])
        };
        std::os::unix::fs::symlink(&victim, owned.join("state")).unwrap();
        let err = ensure_dir(&owned.join("state/ws"), &me, 0o700, true).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("state"), "{msg}");
        assert!(msg.contains("symlink"), "{msg}");
        assert!(!victim.join("ws").exists(), "created behind the link");
        // The last component as a symlink is refused too, even as a dry run.
        std::os::unix::fs::symlink(&victim, owned.join("last")).unwrap();
        assert!(ensure_dir(&owned.join("last"), &me, 0o700, false).is_err());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn ensure_dir_creates_parents_owned_with_mode_and_dry_runs() {
        let d = scratch("create");
        let me = Trust::for_caller();
        let want = d.join("a/b/c");
        match ensure_dir(&want, &me, 0o700, false).unwrap() {
            DirOutcome::WouldCreate { missing, .. } => assert_eq!(missing.len(), 3),
            o => panic!("{o:?}"),
        }
        assert!(!d.join("a").exists());
        match ensure_dir(&want, &me, 0o750, true).unwrap() {
            DirOutcome::Created { created, .. } => assert_eq!(created.len(), 3),
            o => panic!("{o:?}"),
        }
        let m = std::fs::metadata(&want).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o750);
        assert_eq!(m.uid(), me.ids.uid);
        assert!(matches!(
            ensure_dir(&want, &me, 0o700, true).unwrap(),
            DirOutcome::Existing { .. }
        ));
        std::fs::set_permissions(&want, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(ensure_dir(&want, &me, 0o700, true).is_err());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn resolve_reports_the_missing_component() {
        let me = Trust::for_caller();
        match resolve(Path::new("/nonexistent-cj/x"), &me) {
            Err(PathError::Missing { missing, .. }) => {
                assert_eq!(missing, PathBuf::from("/nonexistent-cj"))
            }
            o => panic!("{o:?}"),
        }
    }
}
