//! The CONNECT proxy's request parser and target decision on arbitrary bytes. Never
//! panics; a parsed head never claims more bytes than it was given; an allowed name
//! target is always an allowlisted name on a relayed port.
#![no_main]

use clawjail::egress::connect::{decide, parse_connect, ConnectParse};
use clawjail::egress::dns::SyntheticMap;
use clawjail::egress::relay::Destination;
use clawjail::egress::{DomainPattern, EgressRules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rules = EgressRules {
        domains: vec![
            DomainPattern::parse("api.example.com").unwrap(),
            DomainPattern::parse("*.discord.gg").unwrap(),
        ],
        ports: [443].into_iter().collect(),
        ips: vec!["8.8.8.0/24".parse().unwrap()],
        host_services: vec!["127.0.0.1:11434".parse().unwrap()],
        ..Default::default()
    };
    let mut map = SyntheticMap::default();
    map.assign("api.example.com");
    if let ConnectParse::Connect { authority, head_len } = parse_connect(data) {
        assert!(head_len <= data.len());
        if let Ok(Destination::Name { name, port }) = decide(&rules, &map, &authority) {
            assert!(rules.name_allowed(&name) && rules.ports.contains(&port), "{name}:{port}");
        }
    }
    // The authority decision alone, on the raw bytes as text.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(Destination::Name { name, port }) = decide(&rules, &map, text) {
            assert!(rules.name_allowed(&name) && rules.ports.contains(&port), "{name}:{port}");
        }
    }
});
