//! Names bound to the bytes: the first bytes of a relayed connection must name the
//! destination the target was allowed to reach, before the broker dials anything.
//!
//! A synthetic address binds a connection to the name its DNS answer was for, but the
//! bytes the target then sends choose the site at a shared front end: TLS's server_name
//! (RFC 6066 §3) and HTTP's Host (RFC 9112 §3.2) or absolute-form target (RFC 9112
//! §3.2.2: a server uses the target's authority over Host). So, per `egress.protocols`:
//!
//! - `tls` (default): the bytes must be TLS handshake records carrying one ClientHello
//!   (reassembled across records and reads: RFC 8446 §5.1 allows a handshake message to
//!   span records), with exactly one `host_name` SNI equal to the name (case-insensitive,
//!   one trailing dot ignored). No SNI: refused unless the destination is an `ips`
//!   literal (a literal has no name to compare; the protocol is still checked).
//! - `http`: one HTTP/1.x request head whose single Host (port, if given, the
//!   destination's) and absolute-form authority, if any, are the name.
//! - `tcp`: nothing is read; the address alone binds the name.
//!
//! Parsing is done by maintained crates (tls-parser, httparse); this module only frames
//! and bounds: at most [`MAX_TLS_BYTES`] / [`MAX_HTTP_HEAD`] are buffered, within
//! [`INSPECT_TIMEOUT`]. The bytes read are returned so the relay replays them to the
//! upstream unchanged. [`inspect`] is pure (fuzzed: fuzz/fuzz_targets/inspect.rs).
//!
//! What this cannot see (docs/egress.md "Limits"): the Host inside TLS (HTTP/2
//! `:authority` or HTTP/1 Host after the handshake) is encrypted; a front end that routes
//! by it regardless of SNI still allows fronting. Later requests on a kept-alive plain
//! HTTP connection are not inspected.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::rules::{normalize_name, PortKind};

/// How long a client has to send the bytes that name its destination (a client that
/// never sends must not hold a slot forever).
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most TLS bytes buffered to find a complete ClientHello. Browsers' hellos with
/// post-quantum key shares are about 2 KiB; 32 KiB leaves room for large PSK tickets
/// and padding while bounding memory per connection.
pub const MAX_TLS_BYTES: usize = 32 * 1024;
/// The most bytes of an HTTP request head buffered.
pub const MAX_HTTP_HEAD: usize = 16 * 1024;
/// Headers parsed in one request head; more is refused.
pub const MAX_HEADERS: usize = 100;

/// What the bytes must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect<'a> {
    /// This name (already normalised or not: both sides are normalised).
    Name(&'a str),
    /// An `ips` literal: no name to bind; the protocol is still checked.
    Literal,
}

/// What the inspection found, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A ClientHello, with its SNI if any.
    Tls(Option<String>),
    /// An HTTP request head, with its Host if any.
    Http(Option<String>),
    /// A `tcp` port: nothing read.
    Raw,
}

/// Why the first bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The SNI names another host.
    Sni { sni: String, name: String },
    /// A ClientHello without a server name, to a name destination.
    NoSni,
    /// The HTTP Host (or absolute-form authority) names another host.
    Host { host: String, name: String },
    /// An HTTP request without Host, to a name destination.
    NoHost,
    /// Not the protocol the port is marked for, or malformed.
    Malformed(String),
    /// More than the bound without a complete hello or head.
    Oversized(usize),
    /// The client sent nothing (or not enough) within [`INSPECT_TIMEOUT`].
    Timeout,
    /// The client closed before a complete hello or head.
    Eof,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Sni { sni, name } => write!(
                f,
                "TLS SNI {sni:?} is not {name}, the name this connection is bound to"
            ),
            Mismatch::NoSni => f.write_str(
                "TLS ClientHello without a server name (SNI) to a name; only egress.ips destinations may omit it",
            ),
            Mismatch::Host { host, name } => write!(
                f,
                "HTTP Host {host:?} is not {name}, the name this connection is bound to"
            ),
            Mismatch::NoHost => f.write_str("HTTP request without a Host header"),
            Mismatch::Malformed(m) => f.write_str(m),
            Mismatch::Oversized(n) => write!(
                f,
                "no complete ClientHello or request head within {n} bytes"
            ),
            Mismatch::Timeout => write!(
                f,
                "the client sent no complete ClientHello or request head within {}s",
                INSPECT_TIMEOUT.as_secs()
            ),
            Mismatch::Eof => f.write_str("the client closed before a complete ClientHello or request head"),
        }
    }
}

/// One step of inspection over the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not enough bytes yet.
    NeedMore,
    /// The bytes name the destination.
    Allowed(Seen),
    /// They do not (or cannot).
    Refused(Mismatch),
}

/// Decide on the bytes received so far. Pure; never panics on any input (fuzzed).
pub fn inspect(kind: PortKind, buf: &[u8], expect: Expect<'_>, port: u16) -> Progress {
    match kind {
        PortKind::Tcp => Progress::Allowed(Seen::Raw),
        PortKind::Tls => inspect_tls(buf, expect),
        PortKind::Http => inspect_http(buf, expect, port),
    }
}

fn malformed(m: impl Into<String>) -> Progress {
    Progress::Refused(Mismatch::Malformed(m.into()))
}

/// TLS: reassemble the handshake records, then parse the first handshake message.
pub fn inspect_tls(buf: &[u8], expect: Expect<'_>) -> Progress {
    use tls_parser::nom::Err as NomErr;
    // Fast refusal of anything that is not a handshake record (plain HTTP, SSH, SSLv2's
    // 0x80 hello, garbage): no need to wait for more bytes.
    if let Some(&b) = buf.first() {
        if b != 0x16 {
            return malformed(format!(
                "not a TLS handshake record (first byte 0x{b:02x}) on a port marked tls"
            ));
        }
    }
    let mut rest = buf;
    let mut handshake = Vec::new();
    loop {
        if rest.is_empty() {
            break;
        }
        match tls_parser::parse_tls_raw_record(rest) {
            Ok((after, rec)) => {
                if rec.hdr.record_type != tls_parser::TlsRecordType::Handshake {
                    return malformed(format!(
                        "TLS record type {} before the ClientHello was complete",
                        rec.hdr.record_type
                    ));
                }
                if rec.hdr.version.0 >> 8 != 3 {
                    return malformed(format!("TLS record version 0x{:04x}", rec.hdr.version.0));
                }
                // RFC 8446 §5.1: zero-length handshake fragments are not allowed.
                if rec.data.is_empty() {
                    return malformed("empty TLS handshake record");
                }
                handshake.extend_from_slice(rec.data);
                rest = after;
                // Stop at the end of the first handshake message: what follows (a
                // middlebox-compatibility ChangeCipherSpec, early data) is the
                // upstream's business, not a name.
                if hello_complete(&handshake) {
                    break;
                }
            }
            Err(NomErr::Incomplete(_)) => break,
            Err(_) => return malformed("malformed or oversized TLS record"),
        }
    }
    if handshake.len() < 4 {
        return Progress::NeedMore;
    }
    if handshake[0] != 1 {
        return malformed(format!(
            "first TLS handshake message is type {}, not a ClientHello",
            handshake[0]
        ));
    }
    let len = u32::from_be_bytes([0, handshake[1], handshake[2], handshake[3]]) as usize;
    if len + 4 > MAX_TLS_BYTES {
        return Progress::Refused(Mismatch::Oversized(MAX_TLS_BYTES));
    }
    if handshake.len() < len + 4 {
        return Progress::NeedMore;
    }
    let hello = match tls_parser::parse_tls_message_handshake(&handshake[..len + 4]) {
        Ok((
            _,
            tls_parser::TlsMessage::Handshake(tls_parser::TlsMessageHandshake::ClientHello(ch)),
        )) => ch,
        Ok(_) | Err(_) => return malformed("malformed TLS ClientHello"),
    };
    let sni = match hello.ext {
        Some(ext) => match server_name(ext) {
            Ok(s) => s,
            Err(m) => return malformed(m),
        },
        None => None,
    };
    match (sni, expect) {
        (None, Expect::Literal) => Progress::Allowed(Seen::Tls(None)),
        (None, Expect::Name(_)) => Progress::Refused(Mismatch::NoSni),
        (Some(s), Expect::Literal) => Progress::Allowed(Seen::Tls(Some(s))),
        (Some(s), Expect::Name(name)) => {
            if same_name(&s, name) {
                Progress::Allowed(Seen::Tls(Some(s)))
            } else {
                Progress::Refused(Mismatch::Sni {
                    sni: s,
                    name: name.to_string(),
                })
            }
        }
    }
}

/// The fewest bytes `buf` must hold before [`inspect_tls`] can say more than it did: the
/// end of the first incomplete record, or the next record header. Saturating: any input.
pub fn tls_bytes_needed(buf: &[u8]) -> usize {
    let mut pos = 0usize;
    loop {
        let Some(h) = buf.get(pos..pos.saturating_add(5)) else {
            return pos.saturating_add(5);
        };
        let end = pos
            .saturating_add(5)
            .saturating_add(usize::from(u16::from_be_bytes([h[3], h[4]])));
        if end > buf.len() {
            return end;
        }
        pos = end;
    }
}

/// The first handshake message's header and body are all in `hs`.
fn hello_complete(hs: &[u8]) -> bool {
    hs.len() >= 4 && hs.len() - 4 >= u32::from_be_bytes([0, hs[1], hs[2], hs[3]]) as usize
}

/// The one `host_name` in the server_name extension, if present. Every extension is
/// framed (type, length); one whose content tls-parser cannot read is skipped as opaque
/// unless it is server_name itself, so a hello the parser half-understands can never hide
/// a later SNI. Two server_name extensions, or two host names, are refused (RFC 6066 §3:
/// at most one of each type; RFC 8446 §4.2: no duplicate extensions).
fn server_name(mut ext: &[u8]) -> Result<Option<String>, String> {
    use tls_parser::TlsExtension;
    let mut found: Option<String> = None;
    while !ext.is_empty() {
        let (after, parsed) = match tls_parser::parse_tls_client_hello_extension(ext) {
            Ok(x) => x,
            Err(_) => match tls_parser::parse_tls_extension_unknown(ext) {
                Ok((after, TlsExtension::Unknown(t, _))) if t.0 != 0 => {
                    (after, TlsExtension::Unknown(t, &[]))
                }
                Ok(_) => return Err("malformed TLS server_name extension".into()),
                Err(_) => return Err("malformed TLS extensions block".into()),
            },
        };
        ext = after;
        if let TlsExtension::SNI(list) = parsed {
            if found.is_some() {
                return Err("two TLS server_name extensions".into());
            }
            let mut names = list
                .iter()
                .filter(|(t, _)| *t == tls_parser::SNIType::HostName);
            let Some((_, raw)) = names.next() else {
                return Err("TLS server_name extension without a host_name".into());
            };
            if names.next().is_some() {
                return Err("TLS server_name with two host names".into());
            }
            let s = std::str::from_utf8(raw)
                .map_err(|_| "TLS SNI is not ASCII".to_string())?
                .to_string();
            found = Some(s);
        }
    }
    Ok(found)
}

/// Case-insensitive, one trailing dot ignored; names that are not hostname-shaped never
/// match (an SNI with a NUL or a space cannot equal an allowlisted name).
pub fn same_name(got: &str, want: &str) -> bool {
    match (normalize_name(got), normalize_name(want)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// HTTP/1.x: parse the request head (httparse) and check Host and an absolute-form
/// target.
pub fn inspect_http(buf: &[u8], expect: Expect<'_>, port: u16) -> Progress {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= MAX_HTTP_HEAD {
                Progress::Refused(Mismatch::Oversized(MAX_HTTP_HEAD))
            } else {
                Progress::NeedMore
            };
        }
        Ok(httparse::Status::Complete(_)) => {}
        Err(e) => {
            return malformed(format!(
                "not an HTTP/1.x request head on a port marked http: {e}"
            ))
        }
    }
    if req.method == Some("CONNECT") {
        return malformed(
            "CONNECT on a captured port (use the broker's CONNECT proxy, egress.proxy_port)",
        );
    }
    let mut hosts = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    let host = match (hosts.next(), hosts.next()) {
        (Some(h), None) => match std::str::from_utf8(h.value) {
            Ok(v) => Some(v.trim().to_string()),
            Err(_) => return malformed("HTTP Host is not ASCII"),
        },
        (None, _) => None,
        // RFC 9112 §3.2: a server must reject more than one Host; refusing here keeps a
        // front end that picks the other one from seeing it.
        (Some(_), Some(_)) => return malformed("two HTTP Host headers"),
    };
    // Absolute-form target (RFC 9112 §3.2.2): the server routes by its authority.
    let target_authority = req.path.and_then(absolute_authority);
    match expect {
        Expect::Literal => Progress::Allowed(Seen::Http(host)),
        Expect::Name(name) => {
            let Some(h) = host else {
                return Progress::Refused(Mismatch::NoHost);
            };
            for authority in std::iter::once(h.as_str()).chain(target_authority) {
                if !authority_is(authority, name, port) {
                    return Progress::Refused(Mismatch::Host {
                        host: authority.to_string(),
                        name: name.to_string(),
                    });
                }
            }
            Progress::Allowed(Seen::Http(Some(h)))
        }
    }
}

/// `scheme://authority/...` -> authority; origin-form (`/x`) and `*` -> None.
fn absolute_authority(path: &str) -> Option<&str> {
    let (_, rest) = path.split_once("://")?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// `name` or `name:port` (port = the destination's), no userinfo, no IP literal.
pub fn authority_is(authority: &str, name: &str, port: u16) -> bool {
    if authority.contains('@') || authority.starts_with('[') {
        return false;
    }
    let (host, p) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if let Some(p) = p {
        if p.parse::<u16>() != Ok(port) {
            return false;
        }
    }
    same_name(host, name)
}

/// Read from `r` until [`inspect`] decides, within [`INSPECT_TIMEOUT`]. `prefix` holds
/// bytes already read (a CONNECT request's tail). Returns every byte read, to be
/// replayed to the upstream unchanged.
pub async fn read_and_inspect<R: AsyncRead + Unpin>(
    r: &mut R,
    kind: PortKind,
    expect: Expect<'_>,
    port: u16,
    prefix: Vec<u8>,
) -> Result<(Vec<u8>, Seen), Mismatch> {
    if kind == PortKind::Tcp {
        return Ok((prefix, Seen::Raw));
    }
    let limit = match kind {
        PortKind::Http => MAX_HTTP_HEAD,
        _ => MAX_TLS_BYTES,
    };
    let mut buf = prefix;
    // Re-parse only when the new bytes can change the answer (a client trickling one byte
    // per segment must not make the broker parse the same prefix thousands of times):
    // TLS once the record being read is complete, HTTP when a line ends.
    let mut due = true;
    let mut need = 0;
    let work = async {
        loop {
            if !buf.is_empty() && due {
                match inspect(kind, &buf, expect, port) {
                    // Computed on bytes inspect judged incomplete, so they are all still
                    // the hello's records.
                    Progress::NeedMore => need = tls_bytes_needed(&buf).max(1),
                    Progress::Allowed(seen) => return Ok(seen),
                    Progress::Refused(m) => return Err(m),
                }
            }
            if buf.len() >= limit {
                return Err(Mismatch::Oversized(limit));
            }
            let mut chunk = [0u8; 4096];
            let want = (limit - buf.len()).min(chunk.len());
            match r.read(&mut chunk[..want]).await {
                Ok(0) => return Err(Mismatch::Eof),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    // The first bytes are always looked at (garbage is refused at once).
                    due = need == 0
                        || match kind {
                            PortKind::Http => chunk[..n].contains(&b'\n'),
                            _ => buf.len() >= need,
                        }
                        || buf.len() >= limit;
                }
                Err(e) => return Err(Mismatch::Malformed(format!("reading the client: {e}"))),
            }
        }
    };
    match tokio::time::timeout(INSPECT_TIMEOUT, work).await {
        Ok(Ok(seen)) => Ok((buf, seen)),
        Ok(Err(m)) => Err(m),
        Err(_) => Err(Mismatch::Timeout),
    }
}

/// A ClientHello as a TLS 1.3 client sends it (RFC 8446 §4.1.2), naming `sni` (or
/// none), in one record. Built by hand, not by the parser under test: used by the probe's
/// `tls-hello` action (verify's SNI row), the tests, the fuzz seeds and the benchmark.
pub fn client_hello(sni: Option<&str>) -> Vec<u8> {
    hello_with(&sni.map(sni_ext).unwrap_or_default())
}

/// A server_name extension with one host_name (RFC 6066 §3).
pub fn sni_ext(name: &str) -> Vec<u8> {
    let n = name.as_bytes();
    let list_len = 3 + n.len();
    let mut ext = vec![0, 0]; // server_name
    ext.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(list_len as u16).to_be_bytes());
    ext.push(0); // host_name
    ext.extend_from_slice(&(n.len() as u16).to_be_bytes());
    ext.extend_from_slice(n);
    ext
}

/// A ClientHello with `first` extensions, then supported_versions and an extension the
/// parser does not know (ECH outer, 0xfe0d), in one record.
pub fn hello_with(first: &[u8]) -> Vec<u8> {
    let mut ext = first.to_vec();
    ext.extend_from_slice(&[0, 43, 0, 3, 2, 3, 4]);
    ext.extend_from_slice(&[0xfe, 0x0d, 0, 2, 0xaa, 0xbb]);
    let mut body = Vec::new();
    body.extend_from_slice(&[3, 3]); // legacy_version
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    records(&hs, hs.len())
}

/// Wrap handshake bytes in handshake records of at most `size` bytes each.
pub fn records(hs: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in hs.chunks(size.max(1)) {
        out.extend_from_slice(&[0x16, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello as a TLS 1.3 client sends it, with `sni` (or none), built by hand
    /// from RFC 8446 §4.1.2 so the tests do not depend on the parser under test.
    pub(crate) fn client_hello(sni: Option<&str>) -> Vec<u8> {
        super::client_hello(sni)
    }

    pub(crate) use super::{hello_with, records, sni_ext};

    fn tls(buf: &[u8], e: Expect<'_>) -> Progress {
        inspect(PortKind::Tls, buf, e, 443)
    }

    #[test]
    fn sni_must_be_the_name_case_and_trailing_dot_insensitive() {
        let n = Expect::Name("api.example.com");
        for ok in ["api.example.com", "API.Example.COM", "api.example.com."] {
            assert_eq!(
                tls(&client_hello(Some(ok)), n),
                Progress::Allowed(Seen::Tls(Some(ok.into()))),
                "{ok}"
            );
        }
        for bad in [
            "evil.example",
            "x.api.example.com",
            "api.example.com\0.evil",
            "api.example.com..",
            "",
        ] {
            assert!(
                matches!(tls(&client_hello(Some(bad)), n), Progress::Refused(_)),
                "{bad:?}"
            );
        }
        assert_eq!(
            tls(&client_hello(Some("other.example")), n),
            Progress::Refused(Mismatch::Sni {
                sni: "other.example".into(),
                name: "api.example.com".into()
            })
        );
    }

    #[test]
    fn no_sni_is_refused_for_names_and_allowed_for_literals() {
        let h = client_hello(None);
        assert_eq!(
            tls(&h, Expect::Name("api.example.com")),
            Progress::Refused(Mismatch::NoSni)
        );
        assert_eq!(tls(&h, Expect::Literal), Progress::Allowed(Seen::Tls(None)));
    }

    /// A hello split across records (RFC 8446 §5.1) and across reads: every prefix but the
    /// whole needs more; the whole decides.
    #[test]
    fn split_hellos_are_reassembled() {
        let one = client_hello(Some("api.example.com"));
        let hs = &one[5..];
        for size in [1, 7, 40] {
            let split = records(hs, size);
            for cut in 1..split.len() {
                assert_eq!(
                    tls(&split[..cut], Expect::Name("api.example.com")),
                    Progress::NeedMore,
                    "size {size} cut {cut}"
                );
            }
            assert!(matches!(
                tls(&split, Expect::Name("api.example.com")),
                Progress::Allowed(_)
            ));
            assert!(matches!(
                tls(
                    &records(&client_hello(Some("evil.example"))[5..], size),
                    Expect::Name("api.example.com")
                ),
                Progress::Refused(Mismatch::Sni { .. })
            ));
        }
    }

    /// The re-parse hint never asks for fewer bytes than a decision needs: for every
    /// prefix of a split hello, inspect needs more exactly while the hint is not met at a
    /// record boundary.
    #[test]
    fn the_tls_hint_points_at_the_end_of_the_record_being_read() {
        let split = records(&client_hello(Some("api.example.com"))[5..], 9);
        for cut in 0..split.len() {
            let need = tls_bytes_needed(&split[..cut]);
            assert!(need > cut, "cut {cut}: need {need}");
            assert!(need <= split.len(), "cut {cut}: need {need}");
        }
        assert_eq!(tls_bytes_needed(&[0x16, 3, 1, 0xff]), 5);
        assert_eq!(tls_bytes_needed(&[0x16, 3, 1, 0, 3, 1]), 8);
        assert_eq!(tls_bytes_needed(&[0x16, 3, 1, 0xff, 0xff]), 5 + 0xffff);
    }

    #[test]
    fn non_tls_and_malformed_records_are_refused_at_once() {
        let n = Expect::Name("api.example.com");
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            &[0x80, 0x2e, 0x01, 0x03, 0x01][..],
            &[0x17, 3, 3, 0, 1, 0][..],          // application data first
            &[0x16, 3, 3, 0, 0][..],             // empty handshake record
            &[0x16, 3, 3, 0xff, 0xff][..],       // record over 2^14 + 2048
            &[0x16, 3, 3, 0, 4, 2, 0, 0, 0][..], // ServerHello type
        ] {
            assert!(matches!(tls(bad, n), Progress::Refused(_)), "{bad:?}");
        }
        // A ClientHello claiming 1 MiB is refused without waiting for it.
        assert_eq!(
            tls(&[0x16, 3, 1, 0, 4, 1, 0x10, 0, 0], n),
            Progress::Refused(Mismatch::Oversized(MAX_TLS_BYTES))
        );
    }

    #[test]
    fn duplicate_or_hidden_server_names_are_refused() {
        let n = Expect::Name("api.example.com");
        let mut two = sni_ext("api.example.com");
        two.extend_from_slice(&sni_ext("evil.example"));
        assert!(
            matches!(tls(&hello_with(&two), n), Progress::Refused(Mismatch::Malformed(ref m)) if m.contains("two")),
            "{:?}",
            tls(&hello_with(&two), n)
        );
        // A malformed known extension (ec_point_formats claiming 9 bytes in 1) before the
        // SNI: skipped as opaque, and the SNI behind it is still found and checked.
        let mut hidden = vec![0, 11, 0, 2, 9, 0];
        hidden.extend_from_slice(&sni_ext("evil.example"));
        assert!(
            matches!(
                tls(&hello_with(&hidden), n),
                Progress::Refused(Mismatch::Sni { .. })
            ),
            "{:?}",
            tls(&hello_with(&hidden), n)
        );
        // An extensions block whose framing is broken is refused, not read as "no SNI".
        let mut broken = sni_ext("api.example.com");
        broken.extend_from_slice(&[0, 11, 0, 9, 1]);
        assert!(matches!(
            tls(&hello_with(&broken), n),
            Progress::Refused(Mismatch::Malformed(_))
        ));
    }

    fn http(buf: &str, e: Expect<'_>) -> Progress {
        inspect(PortKind::Http, buf.as_bytes(), e, 80)
    }

    #[test]
    fn http_host_must_be_the_name() {
        let n = Expect::Name("api.example.com");
        for ok in [
            "GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: API.example.com.:80\r\n\r\n",
            "GET http://api.example.com/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
        ] {
            assert!(matches!(http(ok, n), Progress::Allowed(_)), "{ok}");
        }
        for (bad, want) in [
            (
                "GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n",
                "evil.example",
            ),
            (
                "GET / HTTP/1.1\r\nHost: api.example.com:8080\r\n\r\n",
                "api.example.com:8080",
            ),
            (
                "GET http://evil.example/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
                "evil.example",
            ),
            (
                "GET / HTTP/1.1\r\nHost: user@api.example.com\r\n\r\n",
                "user@api.example.com",
            ),
            ("GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n", "10.0.0.1"),
        ] {
            assert_eq!(
                http(bad, n),
                Progress::Refused(Mismatch::Host {
                    host: want.into(),
                    name: "api.example.com".into()
                }),
                "{bad}"
            );
        }
        assert_eq!(
            http("GET / HTTP/1.0\r\n\r\n", n),
            Progress::Refused(Mismatch::NoHost)
        );
        assert!(matches!(
            http(
                "GET / HTTP/1.1\r\nHost: api.example.com\r\nHost: evil.example\r\n\r\n",
                n
            ),
            Progress::Refused(Mismatch::Malformed(_))
        ));
        assert!(matches!(
            http(
                "CONNECT evil.example:443 HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
                n
            ),
            Progress::Refused(Mismatch::Malformed(_))
        ));
        assert!(matches!(
            http("\x16\x03\x01garbage", n),
            Progress::Refused(Mismatch::Malformed(_))
        ));
        assert_eq!(
            http("GET / HTTP/1.1\r\nHost: api.exa", n),
            Progress::NeedMore
        );
        assert_eq!(
            http("GET / HTTP/1.0\r\n\r\n", Expect::Literal),
            Progress::Allowed(Seen::Http(None))
        );
        let huge = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HTTP_HEAD));
        assert_eq!(
            http(&huge, n),
            Progress::Refused(Mismatch::Oversized(MAX_HTTP_HEAD))
        );
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Over a real socket: a hello written in 3-byte pieces is read whole and returned
    /// byte for byte; a client that sends half a hello and waits is timed out (paused
    /// clock); one that closes early is refused.
    #[test]
    fn reads_are_bounded_and_the_bytes_returned_unchanged() {
        rt().block_on(async {
            use tokio::io::AsyncWriteExt;
            let hello = client_hello(Some("api.example.com"));
            let (mut a, mut b) = tokio::io::duplex(64);
            let h2 = hello.clone();
            let writer = tokio::spawn(async move {
                for c in h2.chunks(3) {
                    a.write_all(c).await.unwrap();
                    tokio::task::yield_now().await;
                }
                a
            });
            let (bytes, seen) = read_and_inspect(
                &mut b,
                PortKind::Tls,
                Expect::Name("api.example.com"),
                443,
                vec![],
            )
            .await
            .unwrap();
            assert_eq!(bytes, hello);
            assert_eq!(seen, Seen::Tls(Some("api.example.com".into())));
            let mut a = writer.await.unwrap();
            drop(b);
            a.shutdown().await.ok();

            let (mut a, mut b) = tokio::io::duplex(64);
            a.write_all(&hello[..10]).await.unwrap();
            drop(a);
            assert_eq!(
                read_and_inspect(
                    &mut b,
                    PortKind::Tls,
                    Expect::Name("api.example.com"),
                    443,
                    vec![]
                )
                .await,
                Err(Mismatch::Eof)
            );
        });
        let paused = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        paused.block_on(async {
            let (_a, mut b) = tokio::io::duplex(64);
            assert_eq!(
                read_and_inspect(
                    &mut b,
                    PortKind::Http,
                    Expect::Name("api.example.com"),
                    80,
                    vec![]
                )
                .await,
                Err(Mismatch::Timeout)
            );
        });
    }
}
