//! What verify sets up while still root, before any child is confined: a scratch
//! directory outside every policy list, loopback listeners, unix sockets, a sleeping
//! process of the target uid outside the sandbox, a deliberately leaked fd, a planted
//! secret in verify's own environment, and one pty per child. All of it is removed (and
//! the process killed) when `Fixtures` is dropped.
//!
//! Never touches a real user's files: paths the policy names are only read; the few
//! files created inside the policy's write directory (link and write attempts) carry
//! verify's pid in their name and are unlinked afterwards.

use std::fs;
use std::io;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::identity::Ids;

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
    /// Files created elsewhere (in the policy's write dir, /tmp) to unlink at the end.
    pub cleanup: Vec<PathBuf>,
    /// Open listeners and fds kept alive for the duration.
    _keep: Vec<OwnedFd>,
}

/// Where the scratch directory may go, in order of preference.
const SCRATCH_BASES: &[&str] = &["/var/tmp", "/tmp", "/dev/shm", "/run"];

impl Fixtures {
    /// Set everything up. `covered` says whether a path lies under any policy list;
    /// `connect`/`bind` are the policy's ports.
    pub fn set_up(
        target: Option<&Ids>,
        covered: &dyn Fn(&Path) -> bool,
        connect: &[u16],
        bind: &[u16],
    ) -> Result<Fixtures, FixtureError> {
        let pid = std::process::id();
        let name = format!("clawjail-verify-{pid}");
        let (scratch, scratch_outside) = SCRATCH_BASES
            .iter()
            .map(|b| Path::new(b).join(&name))
            .find(|p| !covered(p))
            .map(|p| (p, true))
            .unwrap_or_else(|| (Path::new(SCRATCH_BASES[0]).join(&name), false));
        make_private_dir(&scratch, 0o755)?;
        let mut keep = Vec::new();

        let outside_file = scratch.join("outside-secret.txt");
        write_file(&outside_file, "clawjail-verify-outside\n", 0o644)?;
        let owned_dir = scratch.join("owned");
        make_private_dir(&owned_dir, 0o700)?;
        let owned_file = owned_dir.join("hardlink-source.txt");
        write_file(&owned_file, "clawjail-verify-owned\n", 0o600)?;
        if let Some(ids) = target {
            for p in [&owned_dir, &owned_file] {
                std::os::unix::fs::chown(p, Some(ids.uid), Some(ids.gid))
                    .map_err(fx_err(format!("chown {}", p.display())))?;
            }
        }

        let leaked = scratch.join("leaked-secret.txt");
        write_file(&leaked, &format!("{LEAKED_CONTENT}\n"), 0o600)?;
        // Deliberately without O_CLOEXEC: the cloexec step must stop it at exec.
        let leaked_fd = nix::fcntl::open(&leaked, OFlag::O_RDONLY, Mode::empty())
            .map_err(nix_err("opening the leaked fd"))?;
        let leaked_raw = leaked_fd.as_raw_fd();
        keep.push(leaked_fd);

        let unix_socket = scratch.join("verify.sock");
        let ul = UnixListener::bind(&unix_socket).map_err(fx_err("binding verify.sock"))?;
        fs::set_permissions(&unix_socket, fs::Permissions::from_mode(0o777))
            .map_err(fx_err("chmod verify.sock"))?;
        keep.push(OwnedFd::from(ul));

        let abstract_name = format!("clawjail-verify-{pid}");
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

        // SAFETY-free: set_var is safe in edition 2021; verify is single-threaded here.
        std::env::set_var(PLANTED_ENV, "clawjail-verify-planted-secret");

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
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("verify: could not remove {}: {e}", p.display()),
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.scratch) {
            tracing::warn!("verify: could not remove {}: {e}", self.scratch.display());
        }
    }
}

/// mkdir with a mode; an existing directory is accepted only if it is a real directory
/// owned by us (never a planted symlink in a sticky /tmp).
fn make_private_dir(p: &Path, mode: u32) -> Result<(), FixtureError> {
    match fs::DirBuilder::new().mode(mode).create(p) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let m = fs::symlink_metadata(p).map_err(fx_err(format!("{}", p.display())))?;
            if !m.is_dir() || m.uid() != nix::unistd::geteuid().as_raw() {
                return Err(FixtureError {
                    what: format!("{} exists and is not our directory", p.display()),
                    source: io::Error::from(io::ErrorKind::AlreadyExists),
                });
            }
        }
        Err(e) => return Err(fx_err(format!("mkdir {}", p.display()))(e)),
    }
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .map_err(fx_err(format!("chmod {}", p.display())))
}

fn write_file(p: &Path, content: &str, mode: u32) -> Result<(), FixtureError> {
    fs::write(p, content).map_err(fx_err(format!("writing {}", p.display())))?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .map_err(fx_err(format!("chmod {}", p.display())))
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
    let ok = target.is_none_or(|ids| crate::identity::set_res_ids(ids).is_ok())
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
