//! Read-only views of the `Plan` shared by `check`, the launch event and the run record,
//! so the three cannot describe the same plan differently.

use super::Plan;

impl Plan {
    /// What the terminal step does, for `check` and the launch event.
    pub fn terminal_line(&self) -> String {
        match &self.terminal {
            Some(t) => t.describe(),
            None => "none: no terminal on fds 0-2 here (nothing to relay, no fork for it; pipes, files and sockets pass through)".to_string(),
        }
    }
}
