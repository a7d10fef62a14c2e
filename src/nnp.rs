//! no_new_privs: execve never grants privilege again (setuid bits and file capabilities
//! are ignored) — kernel Documentation/userspace-api/no_new_privs.rst. It is also what lets
//! an unprivileged process install seccomp filters and Landlock rulesets. Always set;
//! there is no policy key to turn it off.

use std::io;

use crate::kernel::Kernel;

/// prctl(PR_SET_NO_NEW_PRIVS, 1), then read it back.
pub fn set_no_new_privs(k: &mut impl Kernel) -> Result<(), (String, io::Error)> {
    k.set_no_new_privs()
        .map_err(|e| ("prctl(PR_SET_NO_NEW_PRIVS, 1)".to_string(), e))?;
    match k.get_no_new_privs() {
        Ok(true) => Ok(()),
        Ok(false) => Err((
            "prctl(PR_GET_NO_NEW_PRIVS)".to_string(),
            io::Error::other("still 0 after setting it"),
        )),
        Err(e) => Err(("prctl(PR_GET_NO_NEW_PRIVS)".to_string(), e)),
    }
}
