//! Egress by destination: the target reaches only the hosts `[egress]` names.
//!
//! Mechanism (docs/egress.md; research in shared/research/egress-and-learning.md §1): the
//! target runs in a network namespace holding only `lo`, with AnyIP routes that land every
//! destination on capture listeners made inside the namespace and handed to a broker
//! outside it. The broker answers DNS only for allowlisted names, with synthetic
//! addresses ([`dns`]), maps each captured connection back to its name, resolves the name
//! itself, refuses every address that is not globally routable ([`ranges`]) and relays
//! to exactly the address it checked ([`relay`]).
//!
//! Status in this build: the policy section, the address ranges, the DNS responder, the
//! relay, the broker's event loop and the namespace pieces ([`netns`]: unshare, lo up and
//! AnyIP routes over netlink, capture sockets, SCM_RIGHTS) are implemented and tested,
//! end to end in test-made namespaces (tests/it/egress.rs). They are not yet wired into
//! `run` (target in the namespace, broker in the supervisor, Landlock connect limited to
//! the capture ports), so `run` refuses a policy with `[egress]`
//! ([`refuse_run_until_wired`]).

pub mod broker;
pub mod dns;
pub mod netns;
pub mod ranges;
pub mod relay;
pub mod rules;

use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;

use serde_json::{json, Value};

pub use rules::{DomainPattern, EgressRules, LogLevel};

/// Why `run` refuses today. Kept as one constant so tests and docs quote it exactly.
pub const NOT_WIRED: &str = "egress is not implemented yet in this build";

/// Where synthetic DNS answers come from: 198.18.0.0/15, reserved for benchmarking
/// (RFC 2544), so no real destination is ever shadowed, and refused by [`ranges`] as a
/// dial target, so a synthetic address can never be relayed to as a literal.
pub const SYNTHETIC_NET: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15);

/// `[egress]` resolved against the variables (inbound addresses), for `check` and `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPlan {
    pub rules: EgressRules,
    /// Host listeners forwarded to the same port on 127.0.0.1 inside the namespace.
    pub inbound: Vec<SocketAddr>,
}

impl EgressPlan {
    /// `check`'s egress section.
    pub fn describe(&self) -> Value {
        let r = &self.rules;
        json!({
            "controlled": true,
            "status": format!("{NOT_WIRED}: `run` refuses this policy (exit 125)"),
            "domains": r.domains.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "ports": r.ports.iter().collect::<Vec<_>>(),
            "ips": r.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "host_services": r.host_services.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "inbound": self.inbound.iter().map(|a| format!("{a} -> 127.0.0.1:{} inside", a.port())).collect::<Vec<_>>(),
            "log": r.log,
            "dns": format!("only the names above are answered, with synthetic IPv4 addresses from {}; AAAA gets an empty answer; every other query gets NXDOMAIN and is never forwarded", SYNTHETIC_NET),
            "refused_always": "addresses that are not globally routable (IANA special-purpose registries: loopback, RFC 1918, CGNAT, link-local and metadata, ULA, documentation, benchmarking, multicast, NAT64, Teredo; IPv4-mapped and 6to4 by their IPv4), except host_services",
            "plan": [
                "target in its own network namespace holding only lo (root: CLONE_NEWNET; unprivileged: CLONE_NEWUSER|CLONE_NEWNET)",
                "AnyIP routes on lo: every TCP destination lands on a capture listener for the ports above; other ports and all UDP but DNS find nothing",
                "the broker outside the namespace: DNS for allowlisted names, relay to the checked address",
            ],
        })
    }
}

/// `check`'s egress section when the policy has none.
pub fn describe_absent() -> Value {
    json!({
        "controlled": false,
        "status": "destinations are not controlled: no [egress] section. Landlock's network.connect ports apply to every host (cloud metadata, private ranges, loopback and any resolver over UDP 53 included); add [egress] (docs/egress.md) to allow named hosts only",
    })
}

/// Until the namespace and broker are wired into `run`, a policy that asks for egress
/// control must not run without it (fail closed).
pub fn refuse_run_until_wired(plan: Option<&EgressPlan>) -> Result<(), String> {
    match plan {
        None => Ok(()),
        Some(_) => Err(format!(
            "{NOT_WIRED}; refusing to start: the policy's [egress] section asks that the target reach only the hosts it names, and this build cannot enforce that yet (remove [egress] to run with Landlock's port rules only, which do not control destinations)"
        )),
    }
}
