//! Integration tests: openclaw.
#[allow(unused_imports)]
use crate::util::*;
