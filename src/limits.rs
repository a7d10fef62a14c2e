//! Resource limits, umask and working directory.
//!
//! Enforces: each policy rlimit as soft = hard (setrlimit(2)), so the target cannot raise it.
//! RLIMIT_NPROC counts processes per real uid across the machine; exceeding it makes
//! execve fail with EAGAIN (execve(2)). No address-space limit by default: V8 and
//! WebAssembly reserve far more than they use; cap memory with cgroups instead.

use std::io;

use nix::sys::resource::Resource;

use crate::kernel::Kernel;

use crate::policy::LimitKind;

/// One rlimit as it will be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rlimit {
    #[serde(serialize_with = "ser_resource")]
    pub resource: Resource,
    pub name: &'static str,
    /// `None` = RLIM_INFINITY.
    pub value: Option<u64>,
}

fn ser_resource<S: serde::Serializer>(r: &Resource, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{r:?}"))
}

/// The kernel resource a `[limits]` key sets.
pub fn resource(kind: LimitKind) -> Resource {
    match kind {
        LimitKind::Nofile => Resource::RLIMIT_NOFILE,
        LimitKind::Nproc => Resource::RLIMIT_NPROC,
        LimitKind::Core => Resource::RLIMIT_CORE,
        LimitKind::AddressSpace => Resource::RLIMIT_AS,
        LimitKind::Cpu => Resource::RLIMIT_CPU,
        LimitKind::Fsize => Resource::RLIMIT_FSIZE,
    }
}

/// setrlimit(resource, value, value) for each.
pub fn set_rlimits(k: &mut impl Kernel, limits: &[Rlimit]) -> Result<(), (String, io::Error)> {
    for l in limits {
        let v = l.value.unwrap_or(libc::RLIM_INFINITY);
        k.setrlimit(l.resource, v, v)
            .map_err(|e| (format!("setrlimit({:?}, {v}, {v})", l.resource), e))?;
    }
    Ok(())
}

/// umask(2).
pub fn set_umask(k: &mut impl Kernel, mask: u32) {
    k.umask(nix::sys::stat::Mode::from_bits_truncate(
        mask as libc::mode_t,
    ));
}

/// chdir(2) as the target user, so DAC is checked against the target's ids.
pub fn change_dir(k: &mut impl Kernel, dir: &std::path::Path) -> Result<(), (String, io::Error)> {
    k.chdir(dir)
        .map_err(|e| (format!("chdir({})", dir.display()), e))
}
