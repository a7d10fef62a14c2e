//! The target's only resolver: answers allowlisted names with synthetic addresses, refuses
//! everything else, forwards nothing.
//!
//! - An `A` query for an allowlisted name gets one address from [`SYNTHETIC_NET`]
//!   (198.18.0.0/15), assigned on first use and sticky for the life of the run; the relay
//!   maps it back to the name ([`SyntheticMap::name_of`]).
//! - `AAAA` and every other type for an allowlisted name: NOERROR with no records
//!   ("NODATA", RFC 2308 §2.2), so getaddrinfo with AF_UNSPEC and Happy Eyeballs clients
//!   use the IPv4 answer at once. Synthetic IPv6 would add a second capture family for no
//!   gain: the broker dials upstream over IPv6 on its own when the name has AAAA records.
//! - Any other name: NXDOMAIN (fails fast in glibc, no retry against another server),
//!   logged. Never forwarded: a query name cannot carry data out (DNS tunnelling).
//! - Not a standard query, more than one question, class other than IN: NOTIMP, FORMERR,
//!   REFUSED. Responses and undecodable packets shorter than a header are dropped, never
//!   answered (no reflection loops).
//! - The map is bounded ([`MAX_NAMES`]); when full, new names get SERVFAIL. It never evicts:
//!   an address the target already holds must never start meaning another name.
//!
//! Wire format: hickory-proto (decoding untrusted packets is where hand-written parsers
//! fail). The policy decision is ours and sits in [`Responder::answer`].

use std::collections::HashMap;
use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::rules::{normalize_name, EgressRules};
use super::SYNTHETIC_NET;

/// Most distinct names one run may resolve. A wildcard lets the target mint names, so the
/// map must be bounded; 65,536 is half the synthetic range and far above what a gateway
/// resolves (tens of names).
pub const MAX_NAMES: usize = 65_536;

/// TTL of synthetic answers. The mapping never changes during a run, so any TTL is
/// correct; a short one keeps resolvers' caches from outliving a restarted broker.
pub const TTL: u32 = 60;

/// The largest UDP answer we send without EDNS (RFC 1035 §4.2.1). Ours are far smaller.
pub const UDP_MAX: usize = 512;

/// Synthetic address <-> name, bounded, never evicting.
#[derive(Debug)]
pub struct SyntheticMap {
    by_name: HashMap<String, Ipv4Addr>,
    by_addr: HashMap<Ipv4Addr, String>,
    next: u32,
    capacity: usize,
}

impl Default for SyntheticMap {
    fn default() -> Self {
        SyntheticMap::with_capacity(MAX_NAMES)
    }
}

impl SyntheticMap {
    pub fn with_capacity(capacity: usize) -> Self {
        // Never more than the range holds minus its first and last address.
        let usable = (u32::from(SYNTHETIC_NET.broadcast()) - u32::from(SYNTHETIC_NET.network()) - 1)
            as usize;
        SyntheticMap {
            by_name: HashMap::new(),
            by_addr: HashMap::new(),
            next: u32::from(SYNTHETIC_NET.network()) + 1,
            capacity: capacity.min(usable),
        }
    }

    /// The address for `name` (normalised), assigning the next free one on first use;
    /// `None` when the map is full.
    pub fn assign(&mut self, name: &str) -> Option<Ipv4Addr> {
        if let Some(a) = self.by_name.get(name) {
            return Some(*a);
        }
        if self.by_name.len() >= self.capacity {
            return None;
        }
        let addr = Ipv4Addr::from(self.next);
        self.next += 1;
        self.by_name.insert(name.to_string(), addr);
        self.by_addr.insert(addr, name.to_string());
        Some(addr)
    }

    /// The name a synthetic address was handed out for.
    pub fn name_of(&self, addr: Ipv4Addr) -> Option<&str> {
        self.by_addr.get(&addr).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// What the responder decided about one packet, for the decision log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsDecision {
    /// The query name as sent, printable (non-printable bytes escaped), or "-".
    pub name: String,
    pub qtype: String,
    pub verdict: DnsVerdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsVerdict {
    /// Allowlisted name, `A`: this synthetic address.
    Answered(Ipv4Addr),
    /// Allowlisted name, another type: empty answer.
    NoData,
    /// Refused, with the response code sent and why.
    Refused { rcode: &'static str, why: String },
    /// Not answered at all (a response, or shorter than a header).
    Dropped(String),
}

impl DnsVerdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, DnsVerdict::Answered(_) | DnsVerdict::NoData)
    }
}

/// The query name as dotted text with every byte outside printable ASCII escaped, for
/// logs; and whether it is hostname-shaped (only such names can match the allowlist).
fn printable_name(name: &Name) -> String {
    let mut out = String::new();
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// Decide on queries and build the answers. Pure: sockets are in [`serve_udp`]/[`serve_tcp`].
#[derive(Debug)]
pub struct Responder<'a> {
    pub rules: &'a EgressRules,
    pub map: &'a mut SyntheticMap,
}

impl Responder<'_> {
    /// Answer one DNS message (UDP payload, or a TCP message without its length prefix).
    /// `None`: send nothing.
    pub fn answer(&mut self, packet: &[u8]) -> (Option<Vec<u8>>, DnsDecision) {
        let req = match Message::from_vec(packet) {
            Ok(m) => m,
            Err(e) => return self.undecodable(packet, &e.to_string()),
        };
        let mut decision = DnsDecision {
            name: "-".into(),
            qtype: "-".into(),
            verdict: DnsVerdict::Dropped(String::new()),
        };
        if req.metadata.message_type != MessageType::Query {
            decision.verdict = DnsVerdict::Dropped("a response, not a query".into());
            return (None, decision);
        }
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        if req.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(UDP_MAX as u16);
            resp.set_edns(edns);
        }
        let refuse = |resp: &mut Message, code: ResponseCode, rcode: &'static str, why: &str| {
            resp.metadata.response_code = code;
            DnsVerdict::Refused {
                rcode,
                why: why.to_string(),
            }
        };
        if req.metadata.op_code != OpCode::Query {
            decision.verdict = refuse(
                &mut resp,
                ResponseCode::NotImp,
                "NOTIMP",
                "not a standard query",
            );
            return (encode(&resp), decision);
        }
        let [q] = req.queries.as_slice() else {
            decision.verdict = refuse(
                &mut resp,
                ResponseCode::FormErr,
                "FORMERR",
                "not exactly one question",
            );
            return (encode(&resp), decision);
        };
        resp.add_query(q.clone());
        decision.name = printable_name(&q.name);
        decision.qtype = q.query_type.to_string();
        decision.verdict = self.decide(q, &mut resp, refuse);
        (encode(&resp), decision)
    }

    fn decide(
        &mut self,
        q: &Query,
        resp: &mut Message,
        refuse: impl Fn(&mut Message, ResponseCode, &'static str, &str) -> DnsVerdict,
    ) -> DnsVerdict {
        if q.query_class != DNSClass::IN {
            return refuse(resp, ResponseCode::Refused, "REFUSED", "class is not IN");
        }
        let name = match label_text(&q.name).and_then(|t| normalize_name(&t).ok()) {
            Some(n) if self.rules.name_allowed(&n) => n,
            _ => {
                return refuse(
                    resp,
                    ResponseCode::NXDomain,
                    "NXDOMAIN",
                    "name not in egress.domains",
                )
            }
        };
        if q.query_type != RecordType::A {
            return DnsVerdict::NoData;
        }
        match self.map.assign(&name) {
            Some(addr) => {
                resp.add_answer(Record::from_rdata(q.name.clone(), TTL, RData::A(A(addr))));
                DnsVerdict::Answered(addr)
            }
            None => refuse(
                resp,
                ResponseCode::ServFail,
                "SERVFAIL",
                "synthetic address map is full (egress.domains wildcards minted too many names)",
            ),
        }
    }

    /// A packet hickory cannot decode: FORMERR with its id if it has a whole header and is
    /// a query, otherwise nothing.
    fn undecodable(&self, packet: &[u8], err: &str) -> (Option<Vec<u8>>, DnsDecision) {
        let mut d = DnsDecision {
            name: "-".into(),
            qtype: "-".into(),
            verdict: DnsVerdict::Dropped(format!("undecodable: {err}")),
        };
        // RFC 1035 §4.1.1: 12-byte header; QR is the top bit of byte 2.
        if packet.len() < 12 || packet[2] & 0x80 != 0 {
            return (None, d);
        }
        let id = u16::from_be_bytes([packet[0], packet[1]]);
        let mut resp = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
        resp.metadata.recursion_available = true;
        d.verdict = DnsVerdict::Refused {
            rcode: "FORMERR",
            why: format!("undecodable: {err}"),
        };
        (encode(&resp), d)
    }
}

/// Dotted text of a name when every label is hostname-shaped bytes; `None` otherwise (so
/// escapes and odd bytes can never be normalised into an allowed name).
fn label_text(name: &Name) -> Option<String> {
    let mut out = String::new();
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if !label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        {
            return None;
        }
        out.push_str(std::str::from_utf8(label).ok()?);
    }
    Some(out)
}

fn encode(m: &Message) -> Option<Vec<u8>> {
    match m.to_vec() {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, "egress dns: cannot encode an answer; sending none");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::rules::{DomainPattern, LogLevel};

    fn rules() -> EgressRules {
        EgressRules {
            domains: vec![
                DomainPattern::parse("api.example.com").unwrap(),
                DomainPattern::parse("*.discord.gg").unwrap(),
            ],
            ports: [443].into_iter().collect(),
            ips: vec![],
            host_services: vec![],
            log: LogLevel::All,
            ..Default::default()
        }
    }

    /// A query as glibc's res_mkquery sends it: id, RD, one question, optional EDNS.
    fn query(id: u16, name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    fn ask(map: &mut SyntheticMap, packet: &[u8]) -> (Option<Message>, DnsDecision) {
        let r = rules();
        let (bytes, d) = Responder { rules: &r, map }.answer(packet);
        (bytes.map(|b| Message::from_vec(&b).unwrap()), d)
    }

    #[test]
    fn allowlisted_a_gets_a_sticky_synthetic_address() {
        let mut map = SyntheticMap::default();
        let (m, d) = ask(
            &mut map,
            &query(0x1234, "api.example.com.", RecordType::A, false),
        );
        let m = m.unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.recursion_available && m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1, "the question is echoed");
        assert_eq!(m.answers.len(), 1);
        let RData::A(A(addr)) = m.answers[0].data else {
            panic!("{m:?}")
        };
        assert!(SYNTHETIC_NET.contains(&addr));
        assert_eq!(m.answers[0].ttl, TTL);
        assert_eq!(d.verdict, DnsVerdict::Answered(addr));
        assert_eq!(map.name_of(addr), Some("api.example.com"));
        // Same name, any case: same address. Another name: another address.
        let (m2, _) = ask(&mut map, &query(7, "API.Example.COM.", RecordType::A, true));
        let m2 = m2.unwrap();
        assert_eq!(m2.answers[0].data, RData::A(A(addr)));
        assert!(m2.edns.is_some(), "EDNS in, EDNS out (RFC 6891 §6.1.1)");
        let (m3, _) = ask(
            &mut map,
            &query(8, "gateway.discord.gg.", RecordType::A, false),
        );
        let RData::A(A(addr3)) = m3.unwrap().answers[0].data else {
            panic!()
        };
        assert_ne!(addr3, addr);
        assert_eq!(map.name_of(addr3), Some("gateway.discord.gg"));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn aaaa_and_other_types_for_allowed_names_are_nodata() {
        let mut map = SyntheticMap::default();
        for t in [
            RecordType::AAAA,
            RecordType::TXT,
            RecordType::HTTPS,
            RecordType::MX,
            RecordType::ANY,
        ] {
            let (m, d) = ask(&mut map, &query(1, "api.example.com.", t, false));
            let m = m.unwrap();
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{t}");
            assert!(m.answers.is_empty(), "{t}: {m:?}");
            assert_eq!(d.verdict, DnsVerdict::NoData);
        }
        assert!(map.is_empty(), "no address is minted for non-A queries");
    }

    #[test]
    fn other_names_get_nxdomain_and_nothing_else() {
        let mut map = SyntheticMap::default();
        for (name, t) in [
            ("exfil-c2VjcmV0LXRva2Vu.attacker.example.", RecordType::A),
            ("discord.gg.", RecordType::A),
            ("example.com.", RecordType::A),
            ("api.example.com.evil.example.", RecordType::A),
            ("169.254.169.254.in-addr.arpa.", RecordType::PTR),
            ("metadata.google.internal.", RecordType::A),
            ("attacker.example.", RecordType::TXT),
        ] {
            let (m, d) = ask(&mut map, &query(9, name, t, false));
            let m = m.unwrap();
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
            assert!(m.answers.is_empty() && m.authorities.is_empty() && m.additionals.is_empty());
            assert!(
                matches!(
                    d.verdict,
                    DnsVerdict::Refused {
                        rcode: "NXDOMAIN",
                        ..
                    }
                ),
                "{d:?}"
            );
            assert_eq!(d.name, name.trim_end_matches('.'));
        }
        assert!(map.is_empty());
    }

    /// A label with bytes a hostname cannot have (here "api\000.example.com" spelled as
    /// raw wire bytes) must never be normalised into an allowed name.
    #[test]
    fn odd_bytes_in_labels_never_match_and_are_escaped_in_the_log() {
        #[rustfmt::skip]
        let packet: Vec<u8> = [
            &[0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..], // id, RD, 1 question
            &[4, b'a', b'p', b'i', 0], &[7], b"example", &[3], b"com", &[0],
            &[0, 1, 0, 1],                                        // A, IN
        ].concat();
        let mut map = SyntheticMap::default();
        let (m, d) = ask(&mut map, &packet);
        assert_eq!(m.unwrap().metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(d.name, "api\\000.example.com");
        // The same bytes with a dot inside a label ("api.example" as one label) too.
        #[rustfmt::skip]
        let packet: Vec<u8> = [
            &[0, 2, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
            &[11], b"api.example", &[3], b"com", &[0], &[0, 1, 0, 1],
        ].concat();
        let (m, d) = ask(&mut map, &packet);
        assert_eq!(m.unwrap().metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(d.name, "api\\046example.com");
    }

    /// Hand-built bytes as glibc sends them (no hickory on the query side).
    #[test]
    fn a_raw_glibc_style_query_is_answered() {
        #[rustfmt::skip]
        let packet: Vec<u8> = [
            &[0x5a, 0x5a, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 0][..], // RD + AD, as glibc 2.36
            &[3], b"api", &[7], b"EXAMPLE", &[3], b"com", &[0],
            &[0, 1, 0, 1],
        ].concat();
        let mut map = SyntheticMap::default();
        let (m, d) = ask(&mut map, &packet);
        let m = m.unwrap();
        assert_eq!(m.metadata.id, 0x5a5a);
        assert!(matches!(d.verdict, DnsVerdict::Answered(_)));
        assert_eq!(m.answers.len(), 1);
    }

    #[test]
    fn malformed_and_odd_messages() {
        let mut map = SyntheticMap::default();
        // Shorter than a header: dropped.
        let (m, d) = ask(&mut map, &[1, 2, 3]);
        assert!(m.is_none() && matches!(d.verdict, DnsVerdict::Dropped(_)));
        // A header claiming a question that is not there: FORMERR with the id.
        let (m, _) = ask(&mut map, &[0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        let m = m.unwrap();
        assert_eq!(
            (m.metadata.id, m.metadata.response_code),
            (9, ResponseCode::FormErr)
        );
        // A response is never answered (no loops between two responders).
        let mut resp = Message::response(3, OpCode::Query);
        resp.add_query(Query::query(
            Name::from_ascii("api.example.com.").unwrap(),
            RecordType::A,
        ));
        let (m, d) = ask(&mut map, &resp.to_vec().unwrap());
        assert!(m.is_none() && matches!(d.verdict, DnsVerdict::Dropped(_)));
        // Two questions: FORMERR, nothing minted.
        let mut two = Message::query();
        two.add_query(Query::query(
            Name::from_ascii("api.example.com.").unwrap(),
            RecordType::A,
        ));
        two.add_query(Query::query(
            Name::from_ascii("a.discord.gg.").unwrap(),
            RecordType::A,
        ));
        let (m, _) = ask(&mut map, &two.to_vec().unwrap());
        assert_eq!(m.unwrap().metadata.response_code, ResponseCode::FormErr);
        // Not a standard query (UPDATE): NOTIMP.
        let mut upd = Message::new(4, MessageType::Query, OpCode::Update);
        upd.add_query(Query::query(
            Name::from_ascii("api.example.com.").unwrap(),
            RecordType::SOA,
        ));
        let (m, _) = ask(&mut map, &upd.to_vec().unwrap());
        assert_eq!(m.unwrap().metadata.response_code, ResponseCode::NotImp);
        // Class CH (version.bind): REFUSED.
        let mut ch = Query::query(Name::from_ascii("api.example.com.").unwrap(), RecordType::A);
        ch.set_query_class(DNSClass::CH);
        let mut m = Message::query();
        m.add_query(ch);
        let (r, _) = ask(&mut map, &m.to_vec().unwrap());
        assert_eq!(r.unwrap().metadata.response_code, ResponseCode::Refused);
        assert!(map.is_empty());
    }

    #[test]
    fn the_map_is_bounded_and_never_evicts() {
        let mut map = SyntheticMap::with_capacity(2);
        let a = ask(&mut map, &query(1, "a.discord.gg.", RecordType::A, false)).1;
        let b = ask(&mut map, &query(2, "b.discord.gg.", RecordType::A, false)).1;
        let (m, c) = ask(&mut map, &query(3, "c.discord.gg.", RecordType::A, false));
        assert_eq!(m.unwrap().metadata.response_code, ResponseCode::ServFail);
        assert!(matches!(
            c.verdict,
            DnsVerdict::Refused {
                rcode: "SERVFAIL",
                ..
            }
        ));
        // Earlier names keep their addresses.
        let a2 = ask(&mut map, &query(4, "a.discord.gg.", RecordType::A, false)).1;
        assert_eq!(a.verdict, a2.verdict);
        assert_ne!(a.verdict, b.verdict);
        assert_eq!(map.len(), 2);
        // The capacity never exceeds the range.
        let big = SyntheticMap::with_capacity(usize::MAX);
        assert_eq!(big.capacity, (1 << 17) - 2);
    }

    #[test]
    fn answers_fit_a_plain_udp_datagram() {
        let mut map = SyntheticMap::default();
        let long = format!(
            "{}.discord.gg.",
            [
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(50)
            ]
            .join(".")
        );
        let r = rules();
        let (bytes, d) = Responder {
            rules: &r,
            map: &mut map,
        }
        .answer(&query(1, &long, RecordType::A, true));
        assert!(d.verdict.is_allowed(), "{d:?}");
        assert!(bytes.unwrap().len() <= UDP_MAX);
    }

    proptest::proptest! {
        /// Whatever arrives on port 53 (random bytes, or a valid query with bytes flipped),
        /// the responder never panics, never answers a response, and whatever it sends is a
        /// well-formed DNS response carrying the query's id and no address unless the name
        /// is allowlisted.
        #[test]
        fn arbitrary_packets_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            flips in proptest::collection::vec((0usize..64, proptest::num::u8::ANY), 0..6),
        ) {
            let mut map = SyntheticMap::with_capacity(16);
            let r = rules();
            for packet in [bytes.clone(), {
                let mut q = query(0x4242, "api.example.com.", RecordType::A, true);
                for (i, b) in &flips {
                    let n = q.len();
                    q[i % n] ^= b;
                }
                q
            }] {
                let (answer, _) = Responder { rules: &r, map: &mut map }.answer(&packet);
                if let Some(a) = answer {
                    let m = Message::from_vec(&a).unwrap();
                    proptest::prop_assert_eq!(m.metadata.message_type, MessageType::Response);
                    proptest::prop_assert_eq!(&a[..2], &packet[..2]);
                    for rec in &m.answers {
                        proptest::prop_assert!(r.name_allowed(&rec.name.to_ascii()));
                    }
                }
            }
        }
    }
}
