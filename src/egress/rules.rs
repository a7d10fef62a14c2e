//! The egress allowlist as typed values, and the pure decisions on it: is this name
//! allowed, is this literal address allowed, is this destination a host service.
//!
//! Built once from the policy's `[egress]` section (`crate::policy::egress::compile`),
//! then shared by `check`, the DNS responder and the relay, so all three read the same
//! rules. No I/O here.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The longest name DNS can carry in presentation form (RFC 1035 2.3.4, without the
/// trailing dot).
pub const MAX_NAME_LEN: usize = 253;
/// The longest label (RFC 1035 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// A `domains` entry: an exact name, or `*.example.com` meaning every name strictly
/// below example.com (not example.com itself, as in TLS wildcard certificates but any
/// depth: `a.b.example.com` matches too).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum DomainPattern {
    Exact(String),
    Subdomains(String),
}

impl DomainPattern {
    /// Parse a policy entry. Names are ASCII (write IDNs as `xn--` punycode), compared
    /// case-insensitively, with one trailing dot ignored.
    pub fn parse(entry: &str) -> Result<DomainPattern, String> {
        if let Some(base) = entry.strip_prefix("*.") {
            let base = normalize_name(base).map_err(|m| format!("\"{entry}\": {m}"))?;
            if !base.contains('.') {
                return Err(format!(
                    "\"{entry}\" would allow every name under the top-level domain \"{base}\"; name a registered domain, e.g. \"*.example.{base}\""
                ));
            }
            return Ok(DomainPattern::Subdomains(base));
        }
        if entry.contains('*') {
            return Err(format!(
                "\"{entry}\": '*' is allowed only as a whole leading label, as in \"*.example.com\" (subdomains only)"
            ));
        }
        if entry.parse::<IpAddr>().is_ok() {
            return Err(format!(
                "\"{entry}\" is an IP address, not a name; list addresses in egress.ips (CIDRs) or egress.host_services (ADDR:PORT)"
            ));
        }
        normalize_name(entry)
            .map(DomainPattern::Exact)
            .map_err(|m| format!("\"{entry}\": {m}"))
    }

    /// Does this pattern allow `name` (already normalised by [`normalize_name`])?
    pub fn matches(&self, name: &str) -> bool {
        match self {
            DomainPattern::Exact(n) => n == name,
            DomainPattern::Subdomains(base) => name
                .strip_suffix(base.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(n) => f.write_str(n),
            DomainPattern::Subdomains(b) => write!(f, "*.{b}"),
        }
    }
}

/// Lower-case, drop one trailing dot, and check the name is hostname-shaped: labels of
/// 1..=63 letters, digits, '-' (not at either end) or '_' (service labels such as
/// `_dmarc`), 253 characters at most. Anything else (spaces, escapes, other bytes that
/// the DNS wire format would carry) is rejected, so it can never match an entry.
pub fn normalize_name(name: &str) -> Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("name longer than {MAX_NAME_LEN} characters"));
    }
    let lower = name.to_ascii_lowercase();
    for label in lower.split('.') {
        if label.is_empty() {
            return Err("empty label (\"..\" or a leading dot)".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!("label longer than {MAX_LABEL_LEN} characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "label \"{label}\" has characters other than letters, digits, '-' and '_' (write internationalised names as xn-- punycode)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label \"{label}\" starts or ends with '-'"));
        }
    }
    Ok(lower)
}

/// How much the broker logs. Refusals are always logged: a silent refusal would hide an
/// attempted escape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogLevel {
    /// One line per connection (allowed or refused) and per refused DNS query.
    #[default]
    All,
    /// Refused connections and refused queries only.
    Refused,
}

/// What the broker expects as the first bytes on a relayed port (`egress.protocols`),
/// checked before any upstream connect (src/egress/inspect.rs, docs/egress.md "Names
/// bound to the bytes").
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PortKind {
    /// A TLS ClientHello whose SNI is the name the destination stands for (the default).
    #[default]
    Tls,
    /// An HTTP/1.x request whose Host (and absolute-form target) is that name.
    Http,
    /// Raw TCP: no inspection, the name is bound by the address only.
    Tcp,
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortKind::Tls => "tls",
            PortKind::Http => "http",
            PortKind::Tcp => "tcp",
        })
    }
}

/// The CONNECT proxy port used when `proxy_env = true` and no `proxy_port` is given
/// (Squid's customary port).
pub const DEFAULT_PROXY_PORT: u16 = 3128;

/// The `[egress]` allowlist, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressRules {
    pub domains: Vec<DomainPattern>,
    /// Ports the broker captures (and dials upstream) for names and `ips`.
    pub ports: BTreeSet<u16>,
    /// Literal destinations allowed without a name. None overlaps a refused block.
    pub ips: Vec<IpNet>,
    /// Host-side endpoints dialed as written (the one way to reach a loopback or LAN
    /// service), matched exactly by address and port.
    pub host_services: Vec<SocketAddr>,
    pub log: LogLevel,
    /// Per-port kind of the first bytes; ports not listed are [`PortKind::Tls`].
    pub protocols: std::collections::BTreeMap<u16, PortKind>,
    /// An HTTP CONNECT proxy on 127.0.0.1:PORT inside the namespace, if any.
    pub proxy_port: Option<u16>,
    /// Set HTTPS_PROXY/https_proxy and NODE_USE_ENV_PROXY=1 for the target.
    pub proxy_env: bool,
}

impl EgressRules {
    /// Is `name` (any case, optional trailing dot) allowlisted?
    pub fn name_allowed(&self, name: &str) -> bool {
        match normalize_name(name) {
            Ok(n) => self.domains.iter().any(|d| d.matches(&n)),
            Err(_) => false,
        }
    }

    /// Is the literal destination `ip:port` allowed by `ips` and `ports`? (The relay
    /// still applies the global-address check to it.)
    pub fn literal_allowed(&self, ip: IpAddr, port: u16) -> bool {
        let ip = unmap(ip);
        self.ports.contains(&port) && self.ips.iter().any(|n| n.contains(&ip))
    }

    /// The host service at exactly `dst`, if one is listed.
    pub fn host_service(&self, dst: SocketAddr) -> Option<SocketAddr> {
        let dst = SocketAddr::new(unmap(dst.ip()), dst.port());
        self.host_services.iter().copied().find(|s| *s == dst)
    }

    /// What a relayed port must carry first (default TLS).
    pub fn port_kind(&self, port: u16) -> PortKind {
        self.protocols.get(&port).copied().unwrap_or_default()
    }

    /// Every port a capture listener is needed for: `ports` and host-service ports.
    pub fn capture_ports(&self) -> BTreeSet<u16> {
        let mut p = self.ports.clone();
        p.extend(self.host_services.iter().map(SocketAddr::port));
        p
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it stands for (a dual-stack listener
/// reports IPv4 destinations this way).
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(domains: &[&str]) -> EgressRules {
        EgressRules {
            domains: domains
                .iter()
                .map(|d| DomainPattern::parse(d).unwrap())
                .collect(),
            ports: [443].into_iter().collect(),
            ips: vec!["8.8.8.0/24".parse().unwrap()],
            host_services: vec!["127.0.0.1:11434".parse().unwrap()],
            log: LogLevel::All,
            ..Default::default()
        }
    }

    #[test]
    fn exact_names_match_case_and_trailing_dot_insensitively() {
        let r = rules(&["api.anthropic.com"]);
        assert!(r.name_allowed("api.anthropic.com"));
        assert!(r.name_allowed("API.Anthropic.COM."));
        assert!(!r.name_allowed("anthropic.com"));
        assert!(!r.name_allowed("x.api.anthropic.com"));
        assert!(!r.name_allowed("api.anthropic.com.evil.example"));
        assert!(!r.name_allowed("apiXanthropic.com"));
    }

    #[test]
    fn wildcard_means_subdomains_only_at_any_depth() {
        let r = rules(&["*.discord.gg"]);
        assert!(r.name_allowed("gateway.discord.gg"));
        assert!(r.name_allowed("a.b.discord.gg"));
        assert!(!r.name_allowed("discord.gg"));
        assert!(!r.name_allowed("evildiscord.gg"));
        assert!(!r.name_allowed("discord.gg.evil.example"));
        assert!(!r.name_allowed(".discord.gg"));
    }

    #[test]
    fn malformed_query_names_never_match() {
        let r = rules(&["*.example.com"]);
        for n in [
            "a b.example.com",
            "a\\.example.com",
            "..example.com",
            "-a.example.com",
            "é.example.com",
            "",
        ] {
            assert!(!r.name_allowed(n), "{n:?}");
        }
        let long = format!("{}.example.com", "a.".repeat(130));
        assert!(!r.name_allowed(&long));
    }

    #[test]
    fn bad_patterns_are_explained() {
        let e = |s: &str| DomainPattern::parse(s).unwrap_err();
        assert!(e("*.com").contains("top-level"));
        assert!(e("a.*.com").contains("leading label"));
        assert!(e("*").contains("leading label"));
        assert!(e("10.0.0.1").contains("egress.ips"));
        assert!(e("::1").contains("egress.ips"));
        assert!(e("exa mple.com").contains("characters"));
        assert!(e("").contains("empty"));
        assert!(e("a..b").contains("empty label"));
        assert_eq!(
            DomainPattern::parse("*.Example.COM.").unwrap(),
            DomainPattern::Subdomains("example.com".into())
        );
        assert_eq!(
            DomainPattern::parse("xn--bcher-kva.example")
                .unwrap()
                .to_string(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn literals_need_ips_and_ports() {
        let r = rules(&[]);
        assert!(r.literal_allowed("8.8.8.8".parse().unwrap(), 443));
        assert!(r.literal_allowed("::ffff:8.8.8.8".parse().unwrap(), 443));
        assert!(!r.literal_allowed("8.8.8.8".parse().unwrap(), 80));
        assert!(!r.literal_allowed("8.8.9.8".parse().unwrap(), 443));
    }

    #[test]
    fn host_services_match_exactly() {
        let r = rules(&[]);
        let hs: SocketAddr = "127.0.0.1:11434".parse().unwrap();
        assert_eq!(r.host_service(hs), Some(hs));
        assert_eq!(
            r.host_service("[::ffff:127.0.0.1]:11434".parse().unwrap()),
            Some(hs)
        );
        assert_eq!(r.host_service("127.0.0.2:11434".parse().unwrap()), None);
        assert_eq!(r.host_service("127.0.0.1:11435".parse().unwrap()), None);
        assert_eq!(
            r.capture_ports().into_iter().collect::<Vec<_>>(),
            vec![443, 11434]
        );
    }
}
