//! `[egress]`: the policy section as written, and its validation into
//! [`crate::egress::EgressRules`] (every key documented in docs/egress.md).
//!
//! Validation needs no system access. `inbound` may hold variables (`${PORT}`), so it is
//! checked here only when it has none, and resolved in `plan`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::{PolicyError, Source};
use crate::egress::{ranges, DomainPattern, EgressRules, LogLevel, SYNTHETIC_NET};

/// The DNS port: the broker answers it; it cannot also be a relayed port.
const DNS_PORT: u16 = 53;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Egress {
    /// Names the target may reach: exact, or `*.example.com` (subdomains only).
    #[serde(default)]
    pub domains: Vec<Spanned<String>>,
    /// TCP ports the broker relays for names and `ips`.
    #[serde(default)]
    pub ports: Vec<Spanned<i64>>,
    /// Literal destinations (CIDRs or addresses) allowed without a name; none may overlap
    /// a block that is not globally routable.
    #[serde(default)]
    pub ips: Vec<Spanned<String>>,
    /// Host-side endpoints `ADDR:PORT` the broker dials as written (a local model server).
    #[serde(default)]
    pub host_services: Vec<Spanned<String>>,
    /// Host listeners `ADDR:PORT` forwarded to 127.0.0.1:PORT inside the namespace.
    #[serde(default)]
    pub inbound: Vec<Spanned<String>>,
    /// `all` (default) or `refused`.
    #[serde(default)]
    pub log: LogLevel,
}

fn err(
    src: &Source,
    s: &Spanned<impl Sized>,
    code: &'static str,
    key: &str,
    m: String,
) -> PolicyError {
    PolicyError::at(src, s.span(), code, key, m)
}

/// Validate `[egress]` into rules. Every error names the entry's place and key; all of
/// them are pushed to `errs` (the file's errors are reported together), and the rules are
/// returned only when there was none.
pub fn compile(src: &Source, e: &Egress, errs: &mut Vec<PolicyError>) -> Option<EgressRules> {
    let before = errs.len();
    let mut domains = BTreeSet::new();
    for d in &e.domains {
        match DomainPattern::parse(d.get_ref()) {
            Ok(p) => {
                domains.insert(p);
            }
            Err(m) => errs.push(err(src, d, "bad-domain", "egress.domains", m)),
        }
    }
    let mut ports = BTreeSet::new();
    for p in &e.ports {
        match port(src, p, "egress.ports") {
            Ok(v) => {
                ports.insert(v);
            }
            Err(x) => errs.push(x),
        }
    }
    let mut ips = Vec::new();
    for i in &e.ips {
        match cidr(src, i) {
            Ok(n) => ips.push(n),
            Err(x) => errs.push(x),
        }
    }
    let mut host_services = Vec::new();
    for h in &e.host_services {
        match endpoint(src, h, "egress.host_services") {
            Ok(a) if SYNTHETIC_NET.contains(&ranges_v4(a.ip())) => errs.push(err(
                src,
                h,
                "bad-host-service",
                "egress.host_services",
                format!("{a} lies in {SYNTHETIC_NET}, the range the broker's synthetic DNS answers come from"),
            )),
            Ok(a) => host_services.push(a),
            Err(x) => errs.push(x),
        }
    }
    for i in &e.inbound {
        if !i.get_ref().contains('$') {
            if let Err(x) = endpoint(src, i, "egress.inbound") {
                errs.push(x);
            }
        }
    }
    if e.ports.is_empty() && (!e.domains.is_empty() || !e.ips.is_empty()) {
        let at = e
            .domains
            .first()
            .map(Spanned::span)
            .or_else(|| e.ips.first().map(Spanned::span))
            .unwrap_or(0..0);
        errs.push(PolicyError::at(
            src,
            at,
            "missing-key",
            "egress.ports",
            "domains or ips are listed but egress.ports is empty, so nothing could be reached; add the ports to relay, e.g. ports = [443]",
        ));
    }
    (errs.len() == before).then(|| EgressRules {
        domains: domains.into_iter().collect(),
        ports,
        ips,
        host_services,
        log: e.log,
    })
}

/// The IPv4 address to test against the synthetic range (IPv4-mapped unwrapped).
fn ranges_v4(ip: IpAddr) -> std::net::Ipv4Addr {
    match crate::egress::rules::unmap(ip) {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
    }
}

fn port(src: &Source, p: &Spanned<i64>, key: &str) -> Result<u16, PolicyError> {
    let n = *p.get_ref();
    match u16::try_from(n) {
        Ok(DNS_PORT) => Err(err(src, p, "bad-port", key, format!(
            "port {DNS_PORT} is the broker's DNS: the target's queries are answered inside, never relayed; remove it"
        ))),
        Ok(v) if v != 0 => Ok(v),
        _ => Err(err(src, p, "bad-port", key, format!("port {n} is out of range; expected 1 to 65535"))),
    }
}

fn cidr(src: &Source, i: &Spanned<String>) -> Result<IpNet, PolicyError> {
    let s = i.get_ref().trim();
    let net = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match s.parse::<IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => {
                return Err(err(src, i, "bad-ip", "egress.ips", format!(
                    "\"{s}\" is not an address or CIDR; expected e.g. \"203.0.114.7\" or \"2606:4700::/32\""
                )))
            }
        },
    };
    if net.trunc() != net {
        return Err(err(
            src,
            i,
            "bad-ip",
            "egress.ips",
            format!(
                "\"{s}\" has host bits set; write the network, {}",
                net.trunc()
            ),
        ));
    }
    if let Some(r) = ranges::cidr_overlaps_refused(&net) {
        return Err(err(src, i, "ip-not-global", "egress.ips", format!(
            "\"{s}\" overlaps {r}, which the broker never dials; for one loopback or LAN service list its ADDR:PORT in egress.host_services"
        )));
    }
    Ok(net)
}

fn endpoint(src: &Source, s: &Spanned<String>, key: &str) -> Result<SocketAddr, PolicyError> {
    let text = s.get_ref().trim();
    match text.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(a),
        Ok(_) => Err(err(src, s, "bad-endpoint", key, format!("\"{text}\": port 0 is not an endpoint"))),
        Err(_) => Err(err(src, s, "bad-endpoint", key, format!(
            "\"{text}\" is not ADDR:PORT; expected e.g. \"127.0.0.1:11434\" or \"[::1]:11434\" (no names: the broker dials it as written)"
        ))),
    }
}

/// Resolve `inbound` after variable expansion.
pub fn inbound_addr(
    src: &Source,
    s: &Spanned<String>,
    expanded: &str,
) -> Result<SocketAddr, PolicyError> {
    endpoint(
        src,
        &Spanned::new(s.span(), expanded.to_string()),
        "egress.inbound",
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::{load, Origin, PolicyError, Source};

    fn load_text(t: &str) -> Result<crate::policy::Loaded, PolicyError> {
        load(Source::new(Origin::Flag("p.toml".into()), t.into()))
    }

    fn err(t: &str) -> PolicyError {
        match load_text(t) {
            Ok(_) => panic!("accepted:\n{t}"),
            Err(e) => e,
        }
    }

    #[test]
    fn absent_section_is_none_and_empty_section_denies_everything() {
        assert!(load_text("version = 1\n").unwrap().egress.is_none());
        let l = load_text("version = 1\n[egress]\n").unwrap();
        let r = l.egress.unwrap();
        assert!(r.domains.is_empty() && r.ports.is_empty() && r.ips.is_empty());
    }

    #[test]
    fn a_full_section_compiles() {
        let l = load_text(
            "version = 1\n[egress]\ndomains = [\"api.anthropic.com\", \"*.discord.gg\", \"API.anthropic.com.\"]\nports = [443, 443, 80]\nips = [\"8.8.8.0/24\", \"2606:4700::1\"]\nhost_services = [\"127.0.0.1:11434\", \"[::1]:8080\"]\ninbound = [\"127.0.0.1:${PORT}\"]\nlog = \"refused\"\n",
        )
        .unwrap();
        let r = l.egress.unwrap();
        assert_eq!(r.domains.len(), 2, "duplicates folded: {:?}", r.domains);
        assert_eq!(r.ports.iter().copied().collect::<Vec<_>>(), vec![80, 443]);
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.host_services.len(), 2);
        assert_eq!(r.log, crate::egress::LogLevel::Refused);
    }

    #[test]
    fn errors_are_located_with_key_and_code() {
        let e = err(
            "version = 1\n[egress]\nports = [443]\ndomains = [\"ok.example.com\", \"*.com\"]\n",
        );
        assert_eq!(
            (e.code, e.key.as_str(), e.position),
            ("bad-domain", "egress.domains", Some((4, 30)))
        );
        assert!(e.message.contains("top-level"), "{e}");

        let e = err("version = 1\n[egress]\nports = [443]\nips = [\"10.0.0.0/8\"]\n");
        assert_eq!((e.code, e.key.as_str()), ("ip-not-global", "egress.ips"));
        assert!(
            e.message.contains("RFC 1918") && e.message.contains("host_services"),
            "{e}"
        );

        let e = err("version = 1\n[egress]\nports = [443]\nips = [\"169.254.169.254\"]\n");
        assert_eq!(e.code, "ip-not-global");
        let e = err("version = 1\n[egress]\nports = [443]\nips = [\"8.8.8.1/24\"]\n");
        assert_eq!(e.code, "bad-ip");
        let e = err("version = 1\n[egress]\nports = [443]\nips = [\"example.com\"]\n");
        assert_eq!(e.code, "bad-ip");

        let e = err("version = 1\n[egress]\nports = [53]\n");
        assert_eq!((e.code, e.position), ("bad-port", Some((3, 10))));
        let e = err("version = 1\n[egress]\nports = [70000]\n");
        assert_eq!(e.code, "bad-port");
        let e = err("version = 1\n[egress]\nports = [0]\n");
        assert_eq!(e.code, "bad-port");

        let e = err("version = 1\n[egress]\ndomains = [\"a.example.com\"]\n");
        assert_eq!((e.code, e.key.as_str()), ("missing-key", "egress.ports"));

        let e = err("version = 1\n[egress]\nhost_services = [\"localhost:11434\"]\n");
        assert_eq!(
            (e.code, e.key.as_str()),
            ("bad-endpoint", "egress.host_services")
        );
        let e = err("version = 1\n[egress]\nhost_services = [\"198.18.0.1:80\"]\n");
        assert_eq!(e.code, "bad-host-service");
        let e = err("version = 1\n[egress]\ninbound = [\"127.0.0.1:0\"]\n");
        assert_eq!((e.code, e.key.as_str()), ("bad-endpoint", "egress.inbound"));
    }

    #[test]
    fn unknown_keys_and_bad_log_values_are_rejected() {
        let e = err("version = 1\n[egress]\ndomain = [\"a.example.com\"]\n");
        assert_eq!((e.code, e.key.as_str()), ("unknown-key", "egress.domain"));
        assert!(
            e.message.contains("domains") && e.message.contains("host_services"),
            "{e}"
        );
        let e = err("version = 1\n[egress]\nlog = \"verbose\"\n");
        assert_eq!(e.code, "bad-value");
    }

    /// The shipped gateway policy controls destinations: its [egress] names OpenClaw's
    /// own hosts and forwards the gateway port.
    #[test]
    fn the_gateway_policy_has_an_egress_allowlist() {
        let l = load_text(crate::policy::EMBEDDED_DEFAULT).unwrap();
        let r = l.egress.unwrap();
        assert!(r.name_allowed("catalog.openclaw.ai"));
        assert!(!r.name_allowed("169.254.169.254") && !r.name_allowed("evil.example.com"));
        assert_eq!(r.ports.iter().copied().collect::<Vec<_>>(), [443]);
    }
}
