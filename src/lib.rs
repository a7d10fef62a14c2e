//! clawjail: confine an AI-agent gateway before it starts.
//!
//! policy (what the operator wrote) -> plan (resolved, opened) -> launch (ordered,
//! irreversible steps) -> exec. See `launch::Step::ALL` for the order and why.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod audit;
pub mod caps;
pub mod cli;
pub mod egress;
pub mod elf;
pub mod env;
pub mod export;
pub mod fds;
pub mod identity;
pub mod kernel;
pub mod landlock;
pub mod launch;
pub mod learn;
pub mod limits;
pub mod mount_ns;
pub mod namespaces;
pub mod nnp;
pub mod paths;
pub mod plan;
pub mod policy;
pub mod probe;
pub mod report;
pub mod runrecord;
pub mod seccomp;
pub mod session;
pub mod signals;
pub mod supervisor;
pub mod sys;
pub mod syscall_table;
pub mod terminal;
pub mod verify;

#[cfg(test)]
mod launch_tests;

#[cfg(test)]
mod layering_tests;

#[cfg(test)]
mod doc_tests;
