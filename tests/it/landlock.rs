//! Integration tests: landlock.
#[allow(unused_imports)]
use crate::util::*;
