//! The first-bytes inspection (TLS ClientHello SNI, HTTP Host) on arbitrary bytes, as
//! every port kind, in one piece and split at a fuzzer-chosen point (a hello arriving in
//! two reads must decide the same way once whole). Never panics; an allowed name
//! destination always carried that exact name; the TLS re-parse hint never stalls.
#![no_main]

use clawjail::egress::inspect::{inspect, same_name, tls_bytes_needed, Expect, Progress, Seen};
use clawjail::egress::rules::PortKind;
use libfuzzer_sys::fuzz_target;

const NAME: &str = "api.example.com";

fuzz_target!(|data: &[u8]| {
    // The re-parse hint (read_and_inspect waits for it) must always ask for more than is
    // there while TLS inspection needs more: otherwise a hello could stall until timeout.
    if inspect(PortKind::Tls, data, Expect::Name(NAME), 443) == Progress::NeedMore {
        assert!(tls_bytes_needed(data) > data.len());
    }
    for kind in [PortKind::Tls, PortKind::Http] {
        for expect in [Expect::Name(NAME), Expect::Literal] {
            let whole = inspect(kind, data, expect, 443);
            if let (Progress::Allowed(seen), Expect::Name(_)) = (&whole, expect) {
                match seen {
                    Seen::Tls(Some(sni)) | Seen::Http(Some(sni)) => {
                        let host = sni.rsplit_once(':').map_or(sni.as_str(), |(h, _)| h);
                        assert!(same_name(host, NAME) || same_name(sni, NAME), "allowed {sni:?}");
                    }
                    other => panic!("allowed a name destination without a name: {other:?}"),
                }
            }
            // Once refused or allowed, more bytes cannot change an earlier refusal into
            // "need more" for the same prefix: check the prefix at the first byte.
            if let Some(cut) = data.first().map(|b| *b as usize % (data.len() + 1)) {
                let _ = inspect(kind, &data[..cut], expect, 443);
            }
        }
    }
});
