//! The egress part of the plan's one serialisable view (`plan::view::PlanView`): what
//! `check --json` prints under `egress`, with or without an `[egress]` section.

use serde::Serialize;

use super::{netns, rules::LogLevel, EgressPlan, NamespaceCheck, SYNTHETIC_NET};

/// `[egress]` resolved, or the statement that destinations are not controlled.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EgressView<'a> {
    Controlled(Box<Controlled<'a>>),
    Absent {
        /// Always false.
        controlled: bool,
        status: &'static str,
    },
}

/// What the broker and the network namespace will enforce.
#[derive(Debug, Clone, Serialize)]
pub struct Controlled<'a> {
    /// Always true.
    pub controlled: bool,
    pub status: &'static str,
    pub domains: Vec<String>,
    pub ports: Vec<u16>,
    pub ips: Vec<String>,
    pub host_services: Vec<String>,
    pub inbound: Vec<String>,
    pub log: LogLevel,
    /// Port (as a string key) -> what it must carry first (tls, http, tcp).
    pub protocols: std::collections::BTreeMap<String, String>,
    pub names_bound_to_bytes: &'static str,
    pub proxy: Option<String>,
    pub namespace: NamespaceView<'a>,
    pub dns: String,
    pub refused_always: &'static str,
    pub plan: [&'static str; 3],
}

/// The namespace this start would use, and whether it could be made here.
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceView<'a> {
    pub kind: &'static str,
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<&'a str>,
    /// Ubuntu >= 23.10: shown whenever the kernel has the knob, so a root start that works
    /// today says what an unprivileged start of the same policy would meet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apparmor_restrict_unprivileged_userns: Option<bool>,
}

impl NamespaceCheck {
    fn view(&self) -> NamespaceView<'_> {
        let (ipv6, error) = match &self.result {
            Ok(v6) => (Some(*v6), None),
            Err(e) => (None, Some(e.as_str())),
        };
        NamespaceView {
            kind: self.kind,
            available: self.result.is_ok(),
            ipv6,
            error,
            fix: self.fix.as_deref(),
            apparmor_restrict_unprivileged_userns: netns::apparmor_restricts_userns(),
        }
    }
}

impl EgressPlan {
    /// `check`'s egress section.
    pub fn view(&self) -> EgressView<'_> {
        let r = &self.rules;
        EgressView::Controlled(Box::new(Controlled {
            controlled: true,
            status: match &self.namespace.result {
                Err(_) => "the network namespace cannot be made here: `run` refuses this policy (exit 125); see namespace.fix",
                Ok(_) => "enforced by `run`: the target runs in its own network namespace, the broker in the supervisor",
            },
            domains: r.domains.iter().map(ToString::to_string).collect(),
            ports: r.ports.iter().copied().collect(),
            ips: r.ips.iter().map(ToString::to_string).collect(),
            host_services: r.host_services.iter().map(ToString::to_string).collect(),
            inbound: self
                .inbound
                .iter()
                .map(|a| format!("{a} -> 127.0.0.1:{} inside", a.port()))
                .collect(),
            log: r.log,
            protocols: r
                .ports
                .iter()
                .map(|p| (p.to_string(), r.port_kind(*p).to_string()))
                .collect(),
            names_bound_to_bytes: "before any upstream dial, a tls port's ClientHello must carry the destination's name as SNI (none: refused unless the address is in ips), an http port's request Host must be that name; tcp ports are not inspected (the address alone binds the name)",
            proxy: r.proxy_port.map(|p| format!("CONNECT proxy on 127.0.0.1:{p} inside the namespace (same rules; HTTPS_PROXY{} set for the target)", if r.proxy_env { "" } else { " not" })),
            namespace: self.namespace.view(),
            dns: format!("only the names above are answered, with synthetic IPv4 addresses from {SYNTHETIC_NET}; AAAA gets an empty answer; every other query gets NXDOMAIN and is never forwarded"),
            refused_always: "addresses that are not globally routable (IANA special-purpose registries: loopback, RFC 1918, CGNAT, link-local and metadata, ULA, documentation, benchmarking, multicast, NAT64, Teredo; IPv4-mapped and 6to4 by their IPv4), except host_services",
            plan: [
                "target in its own network namespace holding only lo (root: CLONE_NEWNET; unprivileged: CLONE_NEWUSER|CLONE_NEWNET)",
                "AnyIP routes on lo: every TCP destination lands on a capture listener for the ports above; other ports and all UDP but DNS find nothing",
                "the broker outside the namespace: DNS for allowlisted names, relay to the checked address",
            ],
        }))
    }
}

impl EgressView<'_> {
    /// `check`'s egress section of a plan with or without `[egress]`.
    pub fn of(plan: Option<&EgressPlan>) -> EgressView<'_> {
        match plan {
            Some(p) => p.view(),
            None => EgressView::Absent {
                controlled: false,
                status: "destinations are not controlled: no [egress] section. Landlock's network.connect ports apply to every host (cloud metadata, private ranges, loopback and any resolver over UDP 53 included); add [egress] (docs/egress.md) to allow named hosts only",
            },
        }
    }
}
