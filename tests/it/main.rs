//! One integration binary (ripgrep's tests/tests.rs): each area in its own file.
//! Root-only tests print "skipped: needs root" and return when not run as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unused_macros)]

// First, so its macros are visible to the modules below.
#[macro_use]
mod util;

mod audit;
mod cli;
mod egress;
mod egress_container;
mod egress_names;
mod egress_run;
mod export;
mod isolation;
mod landlock;
mod laptop;
mod launch;
mod learn;
mod openclaw;
mod planted;
mod policy_errors;
mod seccomp;
mod terminal;
mod verify;
