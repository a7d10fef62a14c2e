//! Is this address globally routable? The broker dials only addresses that pass
//! [`check_global`], whatever name or literal led to them.
//!
//! Source: the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and the
//! RFCs each row cites), the IPv4 multicast and IPv6 address-space registries. Where the
//! registry marks a block "globally reachable" but it is not a place an agent has any
//! business dialing (protocol anycast inside 192.0.0.0/24 and 2001::/23, the well-known
//! NAT64 prefix), the broker refuses it too: stricter than the registry, never looser.
//!
//! IPv6 is judged by an allowlist, not a denylist: only the global unicast space
//! 2000::/3 (IANA IPv6 Address Space registry) can be global, minus its special blocks.
//! Everything else (::/8 with ::1, ::, IPv4-compatible; 100::/64; fc00::/7 with
//! fd00:ec2::254; fe80::/10; fec0::/10; ff00::/8; every unassigned block) is refused.
//! Two IPv6 forms carry an IPv4 address and are judged by it: IPv4-mapped ::ffff:0:0/96
//! and 6to4 2002::/16 (RFC 3056: bits 16..48). Teredo 2001::/32 hides its addresses
//! (obfuscated client, server) and is refused with the rest of 2001::/23.
//!
//! Pure: no I/O. Used by the relay (every resolved or literal address) and by policy
//! validation (`egress.ips` CIDRs may not overlap a refused block).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A block the broker never dials, with the registry's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub net: IpNet,
    /// What the block is, as the registry or RFC names it.
    pub name: &'static str,
    /// The RFC that assigns it.
    pub rfc: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8, name: &'static str, rfc: &'static str) -> Block {
    Block {
        net: IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)),
        name,
        rfc,
    }
}

const fn v6(s: [u16; 8], len: u8, name: &'static str, rfc: &'static str) -> Block {
    Block {
        net: IpNet::V6(Ipv6Net::new_assert(
            Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
            len,
        )),
        name,
        rfc,
    }
}

/// IPv4 blocks that are not globally routable (special-purpose registry, multicast,
/// reserved, broadcast). Order: most specific name first where blocks nest.
pub const V4_REFUSED: &[Block] = &[
    v4(0, 0, 0, 0, 8, "\"this network\"", "RFC 791"),
    v4(10, 0, 0, 0, 8, "private-use", "RFC 1918"),
    v4(
        100,
        64,
        0,
        0,
        10,
        "shared address space (CGNAT)",
        "RFC 6598",
    ),
    v4(127, 0, 0, 0, 8, "loopback", "RFC 1122"),
    v4(
        169,
        254,
        0,
        0,
        16,
        "link-local (cloud metadata 169.254.169.254)",
        "RFC 3927",
    ),
    v4(172, 16, 0, 0, 12, "private-use", "RFC 1918"),
    v4(192, 0, 0, 0, 24, "IETF protocol assignments", "RFC 6890"),
    v4(192, 0, 2, 0, 24, "documentation (TEST-NET-1)", "RFC 5737"),
    v4(
        192,
        88,
        99,
        0,
        24,
        "6to4 relay anycast (deprecated)",
        "RFC 7526",
    ),
    v4(192, 168, 0, 0, 16, "private-use", "RFC 1918"),
    v4(
        198,
        18,
        0,
        0,
        15,
        "benchmarking (the broker's synthetic answers)",
        "RFC 2544",
    ),
    v4(
        198,
        51,
        100,
        0,
        24,
        "documentation (TEST-NET-2)",
        "RFC 5737",
    ),
    v4(203, 0, 113, 0, 24, "documentation (TEST-NET-3)", "RFC 5737"),
    v4(224, 0, 0, 0, 4, "multicast", "RFC 5771"),
    v4(255, 255, 255, 255, 32, "limited broadcast", "RFC 919"),
    v4(240, 0, 0, 0, 4, "reserved", "RFC 1112"),
];

/// The only IPv6 space that can be global (IANA IPv6 Address Space registry).
pub const V6_GLOBAL_UNICAST: Block = v6(
    [0x2000, 0, 0, 0, 0, 0, 0, 0],
    3,
    "global unicast",
    "RFC 4291",
);

/// Named IPv6 blocks, checked before the 2000::/3 rule so refusals say what was hit.
/// Blocks outside 2000::/3 are listed for the message; the 2000::/3 rule refuses them
/// anyway.
pub const V6_REFUSED: &[Block] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified", "RFC 4291"),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback", "RFC 4291"),
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        96,
        "IPv4-compatible (deprecated)",
        "RFC 4291",
    ),
    v6(
        [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
        96,
        "NAT64 well-known prefix",
        "RFC 6052",
    ),
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "NAT64 local-use prefix",
        "RFC 8215",
    ),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only", "RFC 6666"),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo", "RFC 4380"),
    v6(
        [0x2001, 0x2, 0, 0, 0, 0, 0, 0],
        48,
        "benchmarking",
        "RFC 5180",
    ),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments",
        "RFC 2928",
    ),
    v6(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "documentation",
        "RFC 3849",
    ),
    v6(
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "documentation",
        "RFC 9637",
    ),
    v6(
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "segment routing (SRv6) SIDs",
        "RFC 9602",
    ),
    v6(
        [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
        128,
        "unique local (AWS metadata fd00:ec2::254)",
        "RFC 4193",
    ),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local", "RFC 4193"),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local", "RFC 4291"),
    v6(
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
        "site-local (deprecated)",
        "RFC 3879",
    ),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast", "RFC 4291"),
];

/// IPv6 blocks that embed an IPv4 address, judged by it.
pub const V6_MAPPED: Block = v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "IPv4-mapped", "RFC 4291");
pub const V6_6TO4: Block = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4", "RFC 3056");

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address lies in a refused block.
    In(Block),
    /// An IPv6 address outside 2000::/3 that no named block covers.
    NotGlobalUnicast,
    /// An IPv6 form (IPv4-mapped, 6to4) whose embedded IPv4 address is refused.
    Embedded {
        form: Block,
        v4: Ipv4Addr,
        block: Block,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::In(b) => write!(f, "{} {} ({})", b.name, b.net, b.rfc),
            Refusal::NotGlobalUnicast => write!(
                f,
                "outside IPv6 global unicast {} ({})",
                V6_GLOBAL_UNICAST.net, V6_GLOBAL_UNICAST.rfc
            ),
            Refusal::Embedded { form, v4, block } => write!(
                f,
                "{} {} embedding {v4}: {} {} ({})",
                form.name, form.net, block.name, block.net, block.rfc
            ),
        }
    }
}

fn first_v4_block(ip: Ipv4Addr) -> Option<Block> {
    V4_REFUSED
        .iter()
        .find(|b| matches!(b.net, IpNet::V4(n) if n.contains(&ip)))
        .copied()
}

fn first_v6_block(ip: &Ipv6Addr) -> Option<Block> {
    V6_REFUSED
        .iter()
        .find(|b| matches!(b.net, IpNet::V6(n) if n.contains(ip)))
        .copied()
}

fn v6_net(b: &Block) -> Option<Ipv6Net> {
    match b.net {
        IpNet::V6(n) => Some(n),
        IpNet::V4(_) => None,
    }
}

/// The IPv4 address inside an IPv4-mapped or 6to4 address, with the form.
pub fn embedded_v4(ip: &Ipv6Addr) -> Option<(Block, Ipv4Addr)> {
    let o = ip.octets();
    if v6_net(&V6_MAPPED).is_some_and(|n| n.contains(ip)) {
        return Some((V6_MAPPED, Ipv4Addr::new(o[12], o[13], o[14], o[15])));
    }
    if v6_net(&V6_6TO4).is_some_and(|n| n.contains(ip)) {
        return Some((V6_6TO4, Ipv4Addr::new(o[2], o[3], o[4], o[5])));
    }
    None
}

/// `Ok(())` when the broker may dial `ip`; otherwise the block that forbids it.
pub fn check_global(ip: IpAddr) -> Result<(), Refusal> {
    match ip {
        IpAddr::V4(v4) => match first_v4_block(v4) {
            Some(b) => Err(Refusal::In(b)),
            None => Ok(()),
        },
        IpAddr::V6(v6) => {
            if let Some((form, inner)) = embedded_v4(&v6) {
                return match first_v4_block(inner) {
                    Some(block) => Err(Refusal::Embedded {
                        form,
                        v4: inner,
                        block,
                    }),
                    None => Ok(()),
                };
            }
            if let Some(b) = first_v6_block(&v6) {
                return Err(Refusal::In(b));
            }
            if v6_net(&V6_GLOBAL_UNICAST).is_some_and(|n| n.contains(&v6)) {
                Ok(())
            } else {
                Err(Refusal::NotGlobalUnicast)
            }
        }
    }
}

/// Shorthand for [`check_global`].
pub fn is_global(ip: IpAddr) -> bool {
    check_global(ip).is_ok()
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// For `egress.ips`: the first refused block a CIDR overlaps, so a policy cannot open a
/// private range by listing it. IPv4-mapped and 6to4 CIDRs are refused outright: write
/// the IPv4 form instead (the relay dials it as IPv4).
pub fn cidr_overlaps_refused(net: &IpNet) -> Option<Refusal> {
    let net = net.trunc();
    match net {
        IpNet::V4(_) => V4_REFUSED
            .iter()
            .find(|b| overlaps(&b.net, &net))
            .map(|b| Refusal::In(*b)),
        IpNet::V6(n6) => {
            if let Some(b) = [V6_MAPPED, V6_6TO4]
                .iter()
                .chain(V6_REFUSED.iter())
                .find(|b| overlaps(&b.net, &net))
            {
                return Some(Refusal::In(*b));
            }
            match v6_net(&V6_GLOBAL_UNICAST) {
                Some(g) if g.contains(&n6) => None,
                _ => Some(Refusal::NotGlobalUnicast),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn refused(s: &str) -> Refusal {
        match check_global(ip(s)) {
            Err(r) => r,
            Ok(()) => panic!("{s} was judged global"),
        }
    }

    fn block_of(s: &str) -> String {
        match refused(s) {
            Refusal::In(b) => b.net.to_string(),
            Refusal::Embedded { block, .. } => format!("embedded {}", block.net),
            Refusal::NotGlobalUnicast => "not-2000::/3".into(),
        }
    }

    /// Every IPv4 block: its first, last and a middle address are refused, and the
    /// addresses just outside it are not (unless a neighbouring block takes them).
    #[test]
    fn every_v4_block_is_refused_at_its_edges() {
        for b in V4_REFUSED {
            let IpNet::V4(n) = b.net else { unreachable!() };
            for a in [n.network(), n.broadcast()] {
                assert!(!is_global(IpAddr::V4(a)), "{a} in {} judged global", n);
            }
            let mid =
                u32::from(n.network()) + ((u32::from(n.broadcast()) - u32::from(n.network())) / 2);
            assert!(!is_global(IpAddr::V4(Ipv4Addr::from(mid))));
            for outside in [
                u32::from(n.network()).checked_sub(1),
                u32::from(n.broadcast()).checked_add(1),
            ]
            .into_iter()
            .flatten()
            {
                let o = Ipv4Addr::from(outside);
                let in_other = V4_REFUSED.iter().any(|x| x.net.contains(&IpAddr::V4(o)));
                assert_eq!(is_global(IpAddr::V4(o)), !in_other, "{o} next to {n}");
            }
        }
    }

    #[test]
    fn the_issues_v4_examples_are_refused() {
        assert_eq!(block_of("169.254.169.254"), "169.254.0.0/16");
        assert_eq!(block_of("10.1.2.3"), "10.0.0.0/8");
        assert_eq!(block_of("172.16.0.1"), "172.16.0.0/12");
        assert_eq!(block_of("172.31.255.255"), "172.16.0.0/12");
        assert_eq!(block_of("192.168.1.1"), "192.168.0.0/16");
        assert_eq!(block_of("100.64.0.1"), "100.64.0.0/10");
        assert_eq!(block_of("100.127.255.254"), "100.64.0.0/10");
        assert_eq!(block_of("127.0.0.1"), "127.0.0.0/8");
        assert_eq!(block_of("127.255.255.255"), "127.0.0.0/8");
        assert_eq!(block_of("0.0.0.0"), "0.0.0.0/8");
        assert_eq!(block_of("0.1.2.3"), "0.0.0.0/8");
        assert_eq!(block_of("198.18.0.7"), "198.18.0.0/15");
        assert_eq!(block_of("198.19.255.255"), "198.18.0.0/15");
        assert_eq!(block_of("192.0.0.9"), "192.0.0.0/24");
        assert_eq!(block_of("192.0.0.170"), "192.0.0.0/24");
        assert_eq!(block_of("192.0.2.10"), "192.0.2.0/24");
        assert_eq!(block_of("198.51.100.1"), "198.51.100.0/24");
        assert_eq!(block_of("203.0.113.5"), "203.0.113.0/24");
        assert_eq!(block_of("224.0.0.251"), "224.0.0.0/4");
        assert_eq!(block_of("239.255.255.250"), "224.0.0.0/4");
        assert_eq!(block_of("240.0.0.1"), "240.0.0.0/4");
        assert_eq!(block_of("255.255.255.255"), "255.255.255.255/32");
        assert_eq!(block_of("255.255.255.254"), "240.0.0.0/4");
        assert_eq!(block_of("192.88.99.1"), "192.88.99.0/24");
    }

    #[test]
    fn public_v4_is_global() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "192.31.196.1",
            "192.175.48.1",
        ] {
            assert!(is_global(ip(s)), "{s} refused: {:?}", check_global(ip(s)));
        }
    }

    #[test]
    fn the_issues_v6_examples_are_refused() {
        assert_eq!(block_of("::"), "::/128");
        assert_eq!(block_of("::1"), "::1/128");
        assert_eq!(block_of("::7f00:1"), "::/96");
        assert_eq!(block_of("fc00::1"), "fc00::/7");
        assert_eq!(block_of("fd12:3456::1"), "fc00::/7");
        assert_eq!(block_of("fd00:ec2::254"), "fd00:ec2::254/128");
        assert_eq!(block_of("fe80::1"), "fe80::/10");
        assert_eq!(block_of("febf:ffff::1"), "fe80::/10");
        assert_eq!(block_of("fec0::1"), "fec0::/10");
        assert_eq!(block_of("ff02::1"), "ff00::/8");
        assert_eq!(block_of("64:ff9b::a9fe:a9fe"), "64:ff9b::/96");
        assert_eq!(block_of("64:ff9b::808:808"), "64:ff9b::/96");
        assert_eq!(block_of("64:ff9b:1::1"), "64:ff9b:1::/48");
        assert_eq!(block_of("100::1"), "100::/64");
        assert_eq!(block_of("2001::1"), "2001::/32");
        assert_eq!(
            block_of("2001:0:4136:e378:8000:63bf:3fff:fdd2"),
            "2001::/32"
        );
        assert_eq!(block_of("2001:2::1"), "2001:2::/48");
        assert_eq!(block_of("2001:1::1"), "2001::/23");
        assert_eq!(block_of("2001:1ff::1"), "2001::/23");
        assert_eq!(block_of("2001:db8::10"), "2001:db8::/32");
        assert_eq!(block_of("3fff::1"), "3fff::/20");
        assert_eq!(block_of("5f00::1"), "5f00::/16");
        // Outside 2000::/3 and in no named block: unassigned space.
        assert_eq!(block_of("4000::1"), "not-2000::/3");
        assert_eq!(block_of("e000::1"), "not-2000::/3");
        assert_eq!(block_of("1::1"), "not-2000::/3");
    }

    #[test]
    fn mapped_and_6to4_are_judged_by_their_ipv4() {
        assert_eq!(
            block_of("::ffff:169.254.169.254"),
            "embedded 169.254.0.0/16"
        );
        assert_eq!(block_of("::ffff:127.0.0.1"), "embedded 127.0.0.0/8");
        assert_eq!(block_of("::ffff:10.0.0.1"), "embedded 10.0.0.0/8");
        assert_eq!(block_of("::ffff:198.18.0.1"), "embedded 198.18.0.0/15");
        assert!(is_global(ip("::ffff:8.8.8.8")));
        // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
        assert_eq!(block_of("2002:a9fe:a9fe::1"), "embedded 169.254.0.0/16");
        assert_eq!(block_of("2002:0a00:0001::1"), "embedded 10.0.0.0/8");
        assert_eq!(block_of("2002:7f00:1::"), "embedded 127.0.0.0/8");
        assert_eq!(block_of("2002:c0a8:0101::1"), "embedded 192.168.0.0/16");
        assert!(is_global(ip("2002:0808:0808::1")));
        let r = refused("2002:a9fe:a9fe::1").to_string();
        assert!(r.contains("6to4") && r.contains("169.254.169.254"), "{r}");
    }

    #[test]
    fn public_v6_is_global() {
        for s in [
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "2001:200::1", // first address after 2001::/23
            "2620:4f:8000::1",
            "2003::1",
            "3ffe::1",
            "3fff:1000::", // just past 3fff::/20
        ] {
            assert!(is_global(ip(s)), "{s} refused: {:?}", check_global(ip(s)));
        }
    }

    #[test]
    fn refusals_name_the_block_and_rfc() {
        let r = refused("169.254.169.254").to_string();
        assert!(
            r.contains("169.254.0.0/16") && r.contains("RFC 3927") && r.contains("metadata"),
            "{r}"
        );
        let r = refused("4000::1").to_string();
        assert!(r.contains("2000::/3"), "{r}");
    }

    #[test]
    fn cidrs_overlapping_refused_blocks_are_found() {
        let o = |s: &str| cidr_overlaps_refused(&s.parse().unwrap());
        assert!(o("8.8.8.0/24").is_none());
        assert!(o("10.0.0.5/32").is_some());
        assert!(o("0.0.0.0/0").is_some());
        assert!(o("8.0.0.0/4").is_some(), "8.0.0.0/4 contains 10/8");
        assert!(o("169.254.169.254/32").is_some());
        assert!(o("172.0.0.0/8").is_some());
        assert!(o("2606:4700::/32").is_none());
        assert!(o("::/0").is_some());
        assert!(o("2000::/3").is_some(), "2000::/3 contains 2001:db8::/32");
        assert!(o("::ffff:8.8.8.8/128").is_some());
        assert!(o("2002:808:808::/48").is_some());
        assert!(o("fd00::/8").is_some());
        assert!(o("4000::/16").is_some());
        // Host bits set are truncated, not trusted.
        assert!(o("10.0.0.1/8").is_some());
    }
}
