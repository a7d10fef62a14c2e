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
//! AnyIP routes over netlink, capture sockets, SCM_RIGHTS) and the inbound forward
//! ([`inbound`]: a socket factory inside, the client's address kept) are implemented and tested,
//! end to end in test-made namespaces (tests/it/egress.rs). [`wire`] puts them into `run`:
//! the target in the namespace, the broker in the supervisor, Landlock connect limited to
//! the capture ports, inbound forwarding. Not yet: `verify`'s egress rows
//! (src/verify/egress.rs says so in the report).

pub mod broker;
pub mod connect;
pub mod dns;
pub mod inbound;
pub mod inspect;
pub mod netns;
pub mod ranges;
pub mod relay;
pub mod rules;
pub mod shed;
mod view;
pub mod wire;
pub use view::EgressView;

use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;

pub use rules::{DomainPattern, EgressRules, LogLevel};

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
    /// Whether this start can make the namespace (tried in a throwaway child).
    pub namespace: NamespaceCheck,
}

/// The namespace this start would use, and whether it could be made here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceCheck {
    /// `CLONE_NEWNET` (root) or `CLONE_NEWUSER|CLONE_NEWNET` (unprivileged).
    pub kind: &'static str,
    /// `Ok(ipv6)`: made, lo up, AnyIP routes in place (IPv6 too when true);
    /// `Err(why)`: the failing call and the kernel's answer.
    pub result: Result<bool, String>,
    pub fix: Option<String>,
}

impl NamespaceCheck {
    /// Try it now (see [`netns::probe_in_child`]).
    pub fn probe(privileged: bool, uid: u32, gid: u32) -> Self {
        let kind = if privileged && netns::root_needs_user_namespace() {
            "CLONE_NEWUSER|CLONE_NEWNET mapping every id to itself (root start without CAP_SYS_ADMIN, as in a container)"
        } else if privileged {
            "CLONE_NEWNET (root start)"
        } else {
            "CLONE_NEWUSER|CLONE_NEWNET mapping the caller's uid and gid (unprivileged start)"
        };
        let result = netns::probe_in_child(privileged, uid, gid).map(|lo| lo.ipv6);
        let fix = result.as_ref().err().map(|e| netns::fix_for(privileged, e));
        NamespaceCheck { kind, result, fix }
    }
}

/// Fail closed before the first irreversible step: a policy that asks for egress control
/// never runs without it. Refused when the namespace cannot be made here (the cause and
/// the fix are named).
pub fn refuse_run_unless_enforceable(plan: Option<&EgressPlan>) -> Result<(), String> {
    let Some(p) = plan else { return Ok(()) };
    if let Err(e) = &p.namespace.result {
        return Err(format!(
            "refusing to start: the policy's [egress] section needs the target in its own network namespace ({}), and it cannot be made here: {e}; fix: {}",
            p.namespace.kind,
            p.namespace.fix.as_deref().unwrap_or("see docs/egress.md")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(result: Result<bool, String>, privileged: bool) -> EgressPlan {
        let fix = result.as_ref().err().map(|e| netns::fix_for(privileged, e));
        EgressPlan {
            rules: EgressRules::default(),
            inbound: vec![],
            namespace: NamespaceCheck {
                kind: "k",
                result,
                fix,
            },
        }
    }

    #[test]
    fn run_refuses_without_a_namespace_and_names_the_fix() {
        assert_eq!(refuse_run_unless_enforceable(None), Ok(()));
        assert_eq!(
            refuse_run_unless_enforceable(Some(&plan(Ok(true), true))),
            Ok(())
        );
        let apparmor = plan(
            Err("RTM_NEWLINK lo up: EPERM: Operation not permitted".into()),
            false,
        );
        let m = refuse_run_unless_enforceable(Some(&apparmor)).unwrap_err();
        assert!(
            m.contains("cannot be made here")
                && m.contains("apparmor_restrict_unprivileged_userns"),
            "{m}"
        );
        let v = serde_json::to_value(apparmor.view()).unwrap();
        assert_eq!(v["namespace"]["available"], false);
        assert!(v["namespace"]["fix"].as_str().unwrap().contains("userns,"));
        let no_userns = netns::fix_for(false, "unshare(CLONE_NEWUSER|CLONE_NEWNET): EPERM");
        assert!(no_userns.contains("max_user_namespaces"), "{no_userns}");
        // In a container, the runtime's seccomp profile: the shipped one is named.
        for privileged in [true, false] {
            let f = netns::fix_for(privileged, "unshare(CLONE_NEWUSER|CLONE_NEWNET): EPERM");
            assert!(f.contains("examples/docker/seccomp-clawjail.json"), "{f}");
        }
        assert!(netns::fix_for(true, "unshare(CLONE_NEWNET): EPERM").contains("CAP_SYS_ADMIN"));
    }
}
