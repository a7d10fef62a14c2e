//! Integration tests: launch.
#[allow(unused_imports)]
use crate::util::*;
