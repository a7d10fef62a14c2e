//! Integration tests: policy_errors.
#[allow(unused_imports)]
use crate::util::*;
