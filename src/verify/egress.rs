//! `[egress]` in `verify`. This build has no egress rows: verify's attempts are forked
//! children that apply the plan without `run`'s supervisor, so they run without the
//! target's network namespace and its broker. What that leaves unattempted is said in the
//! report (one "verify added" line), never hidden; the destinations themselves are
//! attempted against `clawjail run`, with controls, by tests/it/egress_run.rs.

use crate::policy::Loaded;

/// The report line for a policy with `[egress]`, or `None` without it.
pub fn note(loaded: &Loaded) -> Option<String> {
    loaded.egress.as_ref().map(|_| {
        "egress: the attempts run WITHOUT the target's network namespace and broker (`run` forks a supervisor for them; verify's attempts do not), with `run`'s Landlock connect rule (the capture ports and 53); so the udp and dest-address rows describe Landlock alone, and the [egress] destinations (metadata, private ranges, literals, unlisted names, DNS exfiltration, QUIC) are not attempted by verify in this build: tests/it/egress_run.rs attempts them against `run`, with controls (docs/egress.md)".to_string()
    })
}
