//! Integration tests: seccomp.
#[allow(unused_imports)]
use crate::util::*;
