//! Integration tests: verify.
#[allow(unused_imports)]
use crate::util::*;
