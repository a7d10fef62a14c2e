//! What verify sets up while still root, before any child is confined: a scratch
//! directory outside every policy list, loopback listeners, unix sockets, a sleeping
//! process of the target uid outside the sandbox, a deliberately leaked fd, a planted
//! secret in verify's own environment, and one pty per child. All of it is removed (and
//! the process killed) when `Fixtures` is dropped.
//!
//! Never touches a real user's files, nor acts through what someone else planted: paths the
//! policy names are only read; every file verify creates is created
//! O_CREAT|O_EXCL|O_NOFOLLOW beneath a directory fd (the scratch directory, itself made
//! with mkdirat under a base reached by `paths::resolve`), with a 128-bit random name from
//! getrandom(2), so nobody can pre-plant a link at that name (a pid was predictable: the
//! target planted links for the next pids and a control run truncated `~/.npmrc`). The few
//! files the probe creates inside the policy's write directory carry the same random token
//! and are removed by unlinkat(2) on the directory's fd, after checking by fstatat with
//! AT_SYMLINK_NOFOLLOW that the entry is not a directory (and, for verify's own files, that
//! it is still the very inode that was created).

use std::fs;
use std::io;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, Mode};
use nix::unistd::{fchown, unlinkat, Gid, Uid, UnlinkatFlags};
use std::os::fd::AsFd;

use crate::identity::Ids;
use crate::paths::{self, FileId, Trust};

/// The variable verify plants in its own environment; it must not reach the target.
pub const PLANTED_ENV: &str = "CLAWJAIL_VERIFY_API_TOKEN";
/// What the leaked fd's file contains.
pub const LEAKED_CONTENT: &str = "clawjail-verify-leaked-secret";

/// Why a fixture could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("verify fixture: {what}: {source}")]
pub struct FixtureError {
    pub what: String,
    #[source]
    pub source: io::Error,
}

fn fx_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> FixtureError {
    let what = what.into();
    move |source| FixtureError { what, source }
}

fn nix_err(what: impl Into<String>) -> impl FnOnce(nix::Error) -> FixtureError {
    let what = what.into();
    move |e| FixtureError {
        what,
        source: e.into(),
    }
}

/// Everything the rows attack.
pub struct Fixtures {
    pub scratch: PathBuf,
    /// Whether `scratch` lies outside every filesystem list of the policy.
    pub scratch_outside: bool,
    /// A root-owned 0644 file in `scratch`: readable by any uid, outside every list.
    pub outside_file: PathBuf,
    /// A directory owned by the target uid (0700) in `scratch`.
    pub owned_dir: PathBuf,
    /// A target-owned 0600 file in `owned_dir` (hard-link source).
    pub owned_file: PathBuf,
    /// A pathname unix socket (0777), standing in for docker.sock.
    pub unix_socket: PathBuf,
    /// An abstract unix socket name (without the leading NUL).
    pub abstract_name: String,
    /// A loopback port with a listener that no `connect` entry lists.
    pub unlisted_connect_port: u16,
    /// A free loopback port that no `bind` entry lists.
    pub unlisted_bind_port: u16,
    /// A bound UDP port on loopback.
    pub udp_port: u16,
    /// A sleeping process of the target uid outside the sandbox (signal/ptrace rows).
    pub outside_pid: Option<i32>,
    /// A SysV shared-memory segment owned by the target uid, holding `SHM_MARK`, as
    /// another process of that uid would leave it.
    pub shm_id: Option<i32>,
    /// An fd verify leaked on purpose (opened without O_CLOEXEC).
    pub leaked_fd: i32,
    /// One pty slave per child (control, confined), made that child's controlling tty.
    pub pty_slaves: [OwnedFd; 2],
    /// verify's own pid (the confined child's parent).
    pub verify_pid: i32,
    /// 128 random bits (hex) in every name verify or its probe creates.
    pub token: String,
    /// The scratch directory's fd (files in it are created and removed beneath it).
    scratch_fd: OwnedFd,
    /// verify's own files in `scratch`: (name, inode), removed by fd after an inode check.
    own: Vec<(String, FileId)>,
    /// Files created elsewhere (in the policy's write dir, /tmp) to unlink at the end.
    pub cleanup: Vec<PathBuf>,
    /// Open listeners and fds kept alive for the duration.
    _keep: Vec<OwnedFd>,
}

/// Put the secret the env row looks for into verify's own environment (before the plan
/// is prepared: `run` builds the target's envp from clawjail's environment).
pub fn plant_secret() {
    // set_var is safe in edition 2021; verify is single-threaded here.
    std::env::set_var(PLANTED_ENV, "clawjail-verify-planted-secret");
}

/// Where the scratch directory may go, in order of preference.
const SCRATCH_BASES: &[&str] = &["/var/tmp", "/tmp", "/dev/shm", "/run"];

impl Fixtures {
    /// Set everything up. `covered` says whether a rule of the plan reaches a path;
    /// `connect`/`bind` are the ports the plan and the policy name.
    pub fn set_up(
        target: Option<&Ids>,
        covered: &dyn Fn(&Path) -> bool,
        connect: &[u16],
        bind: &[u16],
    ) -> Result<Fixtures, FixtureError> {
        let pid = std::process::id();
        let token = crate::sys::random_token().map_err(fx_err("getrandom"))?;
        let name = format!("clawjail-verify-{token}");
        let (base, scratch_outside) = SCRATCH_BASES
            .iter()
            .map(Path::new)
            .find(|b| !covered(&b.join(&name)))
            .map(|b| (b, true))
            .unwrap_or_else(|| (Path::new(SCRATCH_BASES[0]), false));
        let scratch = base.join(&name);
        let scratch_fd = make_scratch(base, &name)?;
        let mut own = Vec::new();
        let mut keep = Vec::new();

        let outside_file = scratch.join("outside-secret.txt");
        own.push(create_at(
            &scratch_fd,
            "outside-secret.txt",
            "clawjail-verify-outside\n",
            0o644,
            None,
        )?);
        let owned_dir = scratch.join("owned");
        let owned_fd = mkdir_at(&scratch_fd, "owned", 0o700, target)?;
        let owned_file = owned_dir.join("hardlink-source.txt");
        create_at(
            &owned_fd,
            "hardlink-source.txt",
            "clawjail-verify-owned\n",
            0o600,
            target,
        )?;

        own.push(create_at(
            &scratch_fd,
            "leaked-secret.txt",
            &format!("{LEAKED_CONTENT}\n"),
            0o600,
            None,
        )?);
        // Deliberately without O_CLOEXEC: the cloexec step must stop it at exec.
        let leaked_fd = openat(
            scratch_fd.as_fd(),
            "leaked-secret.txt",
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(nix_err("opening the leaked fd"))?;
        let leaked_raw = leaked_fd.as_raw_fd();
        keep.push(leaked_fd);

        let unix_socket = scratch.join("verify.sock");
        let ul = UnixListener::bind(&unix_socket).map_err(fx_err("binding verify.sock"))?;
        fs::set_permissions(&unix_socket, fs::Permissions::from_mode(0o777))
            .map_err(fx_err("chmod verify.sock"))?;
        keep.push(OwnedFd::from(ul));

        let abstract_name = format!("clawjail-verify-{token}");
        let addr = SocketAddr::from_abstract_name(abstract_name.as_bytes())
            .map_err(fx_err("abstract socket name"))?;
        let al = UnixListener::bind_addr(&addr).map_err(fx_err("binding the abstract socket"))?;
        keep.push(OwnedFd::from(al));

        let (tl, unlisted_connect_port) = loopback_listener_not_in(connect)?;
        keep.push(OwnedFd::from(tl));
        let unlisted_bind_port = free_port_not_in(bind)?;
        let udp = UdpSocket::bind("127.0.0.1:0").map_err(fx_err("binding udp"))?;
        let udp_port = udp.local_addr().map_err(fx_err("udp addr"))?.port();
        keep.push(OwnedFd::from(udp));
        // The first allowed connect port gets a listener when it is free, so the allowed
        // row can succeed; if it is taken, something already listens there.
        if let Some(p) = connect.iter().copied().find(|p| *p != 0) {
            if let Ok(l) = TcpListener::bind(("127.0.0.1", p)) {
                keep.push(OwnedFd::from(l));
            }
        }

        let control_pty = nix::pty::openpty(None, None).map_err(nix_err("openpty"))?;
        let confined_pty = nix::pty::openpty(None, None).map_err(nix_err("openpty"))?;
        keep.push(control_pty.master);
        keep.push(confined_pty.master);
        let pty_slaves = [control_pty.slave, confined_pty.slave];

        let outside_pid = Some(spawn_outside_sleeper(target)?);
        let (uid, gid) = target.map_or(
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            ),
            |ids| (ids.uid, ids.gid),
        );
        // Without SysV IPC here (a kernel or container without it) the row is left out.
        let shm_id = match crate::sys::shm_create_owned(uid, gid, crate::probe::sys::SHM_MARK) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(
                    "verify: no SysV shared memory fixture ({e}); the sysv-shm row is skipped"
                );
                None
            }
        };
        Ok(Fixtures {
            scratch,
            scratch_outside,
            outside_file,
            owned_dir,
            owned_file,
            unix_socket,
            abstract_name,
            unlisted_connect_port,
            unlisted_bind_port,
            udp_port,
            outside_pid,
            shm_id,
            leaked_fd: leaked_raw,
            pty_slaves,
            verify_pid: pid as i32,
            token,
            scratch_fd,
            own,
            cleanup: Vec::new(),
            _keep: keep,
        })
    }
}

impl Drop for Fixtures {
    fn drop(&mut self) {
        if let Some(id) = self.shm_id {
            crate::sys::shm_remove(id);
        }
        if let Some(pid) = self.outside_pid {
            let pid = nix::unistd::Pid::from_raw(pid);
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
                if let Err(e) = nix::sys::wait::waitpid(pid, None) {
                    tracing::debug!("reaping the outside process: {e}");
                }
            }
        }
        for p in &self.cleanup {
            // Beneath its directory's fd, reached by the safe walk; never followed.
            if let Err(e) = paths::remove_beneath(p, &Trust::for_caller(), false) {
                tracing::warn!("verify: could not remove {}: {e}", p.display());
            }
        }
        for (name, id) in &self.own {
            if let Err(e) = remove_own(&self.scratch_fd, name, *id) {
                tracing::warn!("verify: could not remove {name}: {e}");
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.scratch) {
            tracing::warn!("verify: could not remove {}: {e}", self.scratch.display());
        }
    }
}

/// The scratch directory: mkdirat(2) of a fresh random name beneath `base` (reached by the
/// safe walk), opened O_DIRECTORY|O_NOFOLLOW and checked to be ours. An existing entry is
/// never reused: with a random name it can only be someone else's.
fn make_scratch(base: &Path, name: &str) -> Result<OwnedFd, FixtureError> {
    let trust = Trust::for_caller();
    let r = paths::resolve(base, &trust).map_err(|e| FixtureError {
        what: format!("{}", base.display()),
        source: io::Error::other(e.to_string()),
    })?;
    let dir = nix::fcntl::open(
        format!("/proc/self/fd/{}", r.fd.as_raw_fd()).as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nix_err(format!("opening {}", base.display())))?;
    let fd = mkdir_at(&dir, name, 0o755, None)?;
    Ok(fd)
}

/// mkdirat + open O_NOFOLLOW + fstat (ours, a directory) + optional fchown + fchmod.
fn mkdir_at(
    dir: &OwnedFd,
    name: &str,
    mode: u32,
    owner: Option<&Ids>,
) -> Result<OwnedFd, FixtureError> {
    mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o700))
        .map_err(nix_err(format!("mkdirat {name}")))?;
    let fd = openat(
        dir.as_fd(),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nix_err(format!("opening {name}")))?;
    let st = fstat(fd.as_fd()).map_err(nix_err(format!("fstat {name}")))?;
    if st.st_uid != nix::unistd::geteuid().as_raw() {
        return Err(FixtureError {
            what: format!("{name} is not the directory verify just made"),
            source: io::Error::from(io::ErrorKind::AlreadyExists),
        });
    }
    if let Some(ids) = owner {
        fchown(
            fd.as_fd(),
            Some(Uid::from_raw(ids.uid)),
            Some(Gid::from_raw(ids.gid)),
        )
        .map_err(nix_err(format!("fchown {name}")))?;
    }
    fchmod(fd.as_fd(), Mode::from_bits_truncate(mode as libc::mode_t))
        .map_err(nix_err(format!("fchmod {name}")))?;
    Ok(fd)
}

/// Create `name` beneath `dir` with O_CREAT|O_EXCL|O_NOFOLLOW (a planted name or link makes
/// it fail, never followed), write `content`, fchmod/fchown by fd. Returns its inode.
fn create_at(
    dir: &OwnedFd,
    name: &str,
    content: &str,
    mode: u32,
    owner: Option<&Ids>,
) -> Result<(String, FileId), FixtureError> {
    let fd = openat(
        dir.as_fd(),
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(nix_err(format!("creating {name}")))?;
    if let Some(ids) = owner {
        fchown(
            fd.as_fd(),
            Some(Uid::from_raw(ids.uid)),
            Some(Gid::from_raw(ids.gid)),
        )
        .map_err(nix_err(format!("fchown {name}")))?;
    }
    fchmod(fd.as_fd(), Mode::from_bits_truncate(mode as libc::mode_t))
        .map_err(nix_err(format!("fchmod {name}")))?;
    let st = fstat(fd.as_fd()).map_err(nix_err(format!("fstat {name}")))?;
    let mut f = fs::File::from(fd);
    io::Write::write_all(&mut f, content.as_bytes()).map_err(fx_err(format!("writing {name}")))?;
    Ok((
        name.to_string(),
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        },
    ))
}

/// Remove verify's own file `name` beneath `dir` if it is still the inode it created.
fn remove_own(dir: &OwnedFd, name: &str, id: FileId) -> Result<(), nix::Error> {
    match fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_dev == id.dev && st.st_ino == id.ino => {
            unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir)
        }
        Ok(_) => Err(nix::Error::ESTALE),
        Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

fn loopback_listener_not_in(ports: &[u16]) -> Result<(TcpListener, u16), FixtureError> {
    for _ in 0..20 {
        let l = TcpListener::bind("127.0.0.1:0").map_err(fx_err("binding a tcp listener"))?;
        let port = l.local_addr().map_err(fx_err("listener addr"))?.port();
        if !ports.contains(&port) {
            return Ok((l, port));
        }
    }
    Err(FixtureError {
        what: "no ephemeral port outside the policy's connect list".into(),
        source: io::Error::from(io::ErrorKind::AddrInUse),
    })
}

fn free_port_not_in(ports: &[u16]) -> Result<u16, FixtureError> {
    for _ in 0..20 {
        let l = TcpListener::bind("127.0.0.1:0").map_err(fx_err("finding a free port"))?;
        let port = l.local_addr().map_err(fx_err("listener addr"))?.port();
        if !ports.contains(&port) {
            return Ok(port);
        }
    }
    Err(FixtureError {
        what: "no free port outside the policy's bind list".into(),
        source: io::Error::from(io::ErrorKind::AddrInUse),
    })
}

/// A child that becomes the target uid, stays dumpable (so a same-uid ptrace control can
/// attach), dies with verify, and sleeps.
fn spawn_outside_sleeper(target: Option<&Ids>) -> Result<i32, FixtureError> {
    let pid = crate::sys::fork().map_err(fx_err("fork (outside process)"))?;
    if pid != 0 {
        return Ok(pid);
    }
    let ok = target.is_none_or(|ids| crate::identity::set_res_ids(&mut crate::kernel::Real, ids).is_ok())
        // A uid change clears the dumpable flag (prctl(2) PR_SET_DUMPABLE).
        && nix::sys::prctl::set_dumpable(true).is_ok()
        && crate::sys::set_pdeathsig(libc::SIGKILL).is_ok();
    if !ok {
        std::process::exit(1);
    }
    loop {
        nix::unistd::pause();
    }
}
