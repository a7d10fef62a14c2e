//! seccomp: one combined BPF filter, installed last (seccomp(2)).
//!
//! NOT IMPLEMENTED YET: `prepare` refuses every policy.

use std::io;

use crate::plan::PlanError;
use crate::policy::{self, Source};

pub struct SeccompInputs<'a> {
    pub src: &'a Source,
    pub cfg: &'a policy::Seccomp,
    /// `network.unix`: allow socket(AF_UNIX).
    pub allow_unix: bool,
}

#[derive(Debug)]
pub struct SeccompPlan {
    _private: (),
}

impl SeccompPlan {
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({"status": "not implemented"})
    }

    /// Readable disassembly for `check --bpf`.
    pub fn disassemble(&self) -> String {
        "not implemented".into()
    }

    /// One line for the launch event, e.g. "default profile, action errno, 612 instructions".
    pub fn describe_short(&self) -> String {
        "not implemented".into()
    }

    /// seccomp(SECCOMP_SET_MODE_FILTER) on this thread. Must be the last step before exec.
    pub fn install(&self) -> Result<(), (String, io::Error)> {
        Err(("seccomp".into(), io::Error::other("not implemented")))
    }
}

pub fn prepare(inp: &SeccompInputs<'_>) -> Result<SeccompPlan, PlanError> {
    let _ = (inp.src, inp.cfg, inp.allow_unix);
    Err(PlanError::NotImplemented("seccomp"))
}
