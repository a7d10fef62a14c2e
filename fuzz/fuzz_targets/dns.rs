//! The broker's DNS responder on arbitrary packets (UDP payloads and DNS-over-TCP
//! messages alike): it must never panic, must answer at most a bounded message, and must
//! only ever hand out synthetic addresses for allowlisted names.
#![no_main]

use clawjail::egress::dns::{Responder, SyntheticMap};
use clawjail::egress::{DomainPattern, EgressRules, SYNTHETIC_NET};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rules = EgressRules {
        domains: vec![
            DomainPattern::parse("api.example.com").unwrap(),
            DomainPattern::parse("*.discord.gg").unwrap(),
        ],
        ports: [443].into_iter().collect(),
        ..Default::default()
    };
    let mut map = SyntheticMap::default();
    let (answer, decision) = Responder {
        rules: &rules,
        map: &mut map,
    }
    .answer(data);
    if let Some(a) = answer {
        assert!(a.len() <= 4096, "answer of {} bytes", a.len());
    }
    if let clawjail::egress::dns::DnsVerdict::Answered(ip) = decision.verdict {
        assert!(SYNTHETIC_NET.contains(&ip));
        assert!(rules.name_allowed(&decision.name), "answered {}", decision.name);
    }
});
