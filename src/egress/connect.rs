//! The CONNECT proxy inside the target's namespace (`egress.proxy_port`): the ordinary
//! path for proxy-aware clients (curl, Node with `NODE_USE_ENV_PROXY=1`), carrying the
//! name explicitly.
//!
//! A listener on 127.0.0.1:PORT made inside the namespace with the capture sockets
//! ([`super::netns::make_proxy_listener`]) and served by the broker outside. The same
//! rules as a captured connection apply to the CONNECT target (RFC 9110 §9.3.6,
//! authority-form `host:port`):
//!
//! - a name must be allowlisted (`domains`) and its port relayed (`ports`); the broker
//!   resolves it itself and dials only global addresses ([`super::relay`]);
//! - an IP literal is judged exactly as a captured destination ([`classify`]): refused
//!   unless in `ips` (and global) or a `host_services` endpoint; a synthetic address
//!   stands for its name;
//! - after `200 Connection established`, the first bytes must name the target as on a
//!   captured connection (TLS SNI, HTTP Host per `egress.protocols`;
//!   [`super::inspect`]), before any upstream dial. A dial that then fails resets the
//!   tunnel (the client sees the reset, not a 502: the 200 was already sent, and sending
//!   it first is what keeps a fronting attempt from causing any upstream connect).
//!
//! Anything but a well-formed CONNECT gets an HTTP error status and the connection is
//! closed: 400 for garbage, 405 for other methods (plain-HTTP forwarding is not offered:
//! `HTTP_PROXY` is not set, so plain-HTTP clients go direct and are captured and
//! inspected like any other connection), 403 for a refused target, 503 at the
//! connection bound. The request head is bounded ([`MAX_REQUEST_HEAD`], [`REQUEST_TIMEOUT`]).
//! [`parse_connect`] is pure (fuzzed: fuzz/fuzz_targets/connect.rs).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::dns::SyntheticMap;
use super::relay::{classify, ConnDecision, Destination, Refused, Relay, Upstream};
use super::rules::{normalize_name, EgressRules, LogLevel};

/// The longest CONNECT request head read (request line and headers).
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A CONNECT request head, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectParse {
    /// Not a complete head yet.
    NeedMore,
    /// `CONNECT host:port`: the authority as written and the head's length (bytes after
    /// it belong to the tunnel).
    Connect { authority: String, head_len: usize },
    /// Not acceptable: the status to answer and why.
    Bad { status: u16, why: String },
}

/// Parse the request head with httparse. Pure; never panics on any input (fuzzed).
pub fn parse_connect(buf: &[u8]) -> ConnectParse {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let bad = |status, why: String| ConnectParse::Bad { status, why };
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST_HEAD => bad(
            431,
            format!("request head longer than {MAX_REQUEST_HEAD} bytes"),
        ),
        Ok(httparse::Status::Partial) => ConnectParse::NeedMore,
        Err(e) => bad(400, format!("not an HTTP/1.x request: {e}")),
        Ok(httparse::Status::Complete(head_len)) => match (req.method, req.path) {
            (Some("CONNECT"), Some(authority)) => ConnectParse::Connect {
                authority: authority.to_string(),
                head_len,
            },
            (Some(m), _) => bad(
                405,
                format!("method {m}: only CONNECT is offered (plain HTTP goes direct and is inspected there)"),
            ),
            (None, _) => bad(400, "no method".into()),
        },
    }
}

/// Split `host:port` / `[v6]:port` (the port is required in authority-form).
pub fn split_authority(authority: &str) -> Result<(&str, u16), String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (h, p) = rest
                .split_once("]:")
                .filter(|(h, _)| h.parse::<std::net::Ipv6Addr>().is_ok())
                .ok_or_else(|| format!("{authority:?} is not [IPv6]:PORT"))?;
            (h, p)
        }
        None => authority
            .rsplit_once(':')
            .ok_or_else(|| format!("{authority:?} has no port (authority-form is HOST:PORT)"))?,
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{authority:?}: bad port"))?;
    if host.is_empty() || host.contains('@') {
        return Err(format!("{authority:?}: bad host"));
    }
    Ok((host, port))
}

/// The destination a CONNECT target stands for, by the same rules as a captured
/// connection. Pure.
pub fn decide(
    rules: &EgressRules,
    map: &SyntheticMap,
    authority: &str,
) -> Result<Destination, Refused> {
    let (host, port) = split_authority(authority).map_err(Refused::Proxy)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return classify(rules, map, SocketAddr::new(ip, port));
    }
    // A bracketed host that is not IPv6, or an IPv4 in a non-canonical form glibc would
    // accept ("0x7f.1", "2130706433"): never a name, never allowlisted.
    let name = normalize_name(host).map_err(|m| Refused::Proxy(format!("{host:?}: {m}")))?;
    let last = name.rsplit('.').next().unwrap_or_default();
    if last.bytes().all(|b| b.is_ascii_digit()) || name.starts_with("0x") {
        return Err(Refused::LiteralNotAllowed);
    }
    if !rules.name_allowed(&name) {
        return Err(Refused::Proxy(format!("{name} is not in egress.domains")));
    }
    if !rules.ports.contains(&port) {
        return Err(Refused::Port(port));
    }
    Ok(Destination::Name { name, port })
}

/// Serve the proxy listener until accept fails for good.
pub async fn serve_proxy<U: Upstream>(
    l: TcpListener,
    relay: Arc<Relay<U>>,
    log: LogLevel,
    reserve: Arc<std::sync::Mutex<super::shed::Reserve>>,
) -> std::io::Result<()> {
    loop {
        let (s, _) = match super::broker::accept(&l, &reserve, "proxy").await? {
            Some(x) => x,
            None => continue,
        };
        let at = s
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        if let Err(e) = s.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        let relay = relay.clone();
        tokio::spawn(async move {
            handle(&relay, s, at).await.log_once(log);
        });
    }
}

/// One proxy client: read the head, decide, answer, then relay like a captured
/// connection. Returns the decision for the log (`dst` is the proxy's own address; the
/// name is the CONNECT target's host).
pub async fn handle<U: Upstream>(
    relay: &Relay<U>,
    mut client: TcpStream,
    at: SocketAddr,
) -> ConnDecision {
    let start = Instant::now();
    let mut d = ConnDecision {
        dst: at,
        name: None,
        upstream: None,
        verdict: Ok(()),
        bytes_out: 0,
        bytes_in: 0,
        duration: Duration::ZERO,
        logged: false,
    };
    let Ok(_permit) = relay.slots.clone().try_acquire_owned() else {
        answer(&mut client, 503, "connection limit reached").await;
        d.verdict = Err(Refused::Busy);
        d.duration = start.elapsed();
        return d;
    };
    let (buf, parsed) = read_head(&mut client).await;
    let (authority, head_len) = match parsed {
        ConnectParse::Connect {
            authority,
            head_len,
        } => (authority, head_len),
        ConnectParse::Bad { status, why } => {
            answer(&mut client, status, &why).await;
            d.verdict = Err(Refused::Proxy(why));
            d.duration = start.elapsed();
            return d;
        }
        ConnectParse::NeedMore => {
            d.verdict = Err(Refused::Proxy(
                "no complete request head (closed or timed out)".into(),
            ));
            d.duration = start.elapsed();
            return d;
        }
    };
    d.name = Some(authority.clone());
    let decided = {
        let map = relay.map.lock().unwrap_or_else(|p| p.into_inner());
        decide(&relay.rules, &map, &authority)
    };
    let dest = match decided {
        Ok(dest) => dest,
        Err(r) => {
            answer(&mut client, 403, &r.to_string()).await;
            d.verdict = Err(r);
            d.duration = start.elapsed();
            return d;
        }
    };
    if let Err(e) = client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
    {
        d.verdict = Err(Refused::Proxy(format!("writing 200: {e}")));
        d.duration = start.elapsed();
        return d;
    }
    let port = match &dest {
        Destination::Name { port, .. } => *port,
        Destination::HostService(a) | Destination::Literal(a) => a.port(),
    };
    let rest = buf.get(head_len..).unwrap_or_default().to_vec();
    relay
        .relay_decided(client, port, Ok(dest), rest, &mut d)
        .await;
    d.duration = start.elapsed();
    d
}

/// Read until [`parse_connect`] decides, within the bounds. On timeout or EOF the result
/// is `NeedMore`.
async fn read_head(client: &mut TcpStream) -> (Vec<u8>, ConnectParse) {
    let mut buf = Vec::new();
    let work = async {
        loop {
            let mut chunk = [0u8; 2048];
            let want = MAX_REQUEST_HEAD
                .saturating_sub(buf.len())
                .clamp(1, chunk.len());
            match client.read(&mut chunk[..want]).await {
                Ok(0) | Err(_) => return ConnectParse::NeedMore,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            match parse_connect(&buf) {
                ConnectParse::NeedMore => {}
                done => return done,
            }
        }
    };
    let parsed = tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .unwrap_or(ConnectParse::NeedMore);
    (buf, parsed)
}

/// An HTTP error status with the reason in the body, then close.
async fn answer(client: &mut TcpStream, status: u16, why: &str) {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let body = format!("clawjail egress: {why}\n");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if status == 405 { "Allow: CONNECT\r\n" } else { "" }
    );
    if client.write_all(head.as_bytes()).await.is_ok() {
        client.write_all(body.as_bytes()).await.ok();
    }
    client.shutdown().await.ok();
}

/// The proxy variables for the target (`egress.proxy_env = true`), which the plan sets
/// over any the policy passes: HTTPS_PROXY and https_proxy (curl reads both cases for
/// HTTPS; most libraries read one or the other), NODE_USE_ENV_PROXY=1 (Node >= 24's
/// built-in fetch and http(s) honour the proxy variables only with it), and NO_PROXY for
/// loopback (the gateway's own local calls). HTTP_PROXY is deliberately not set: the
/// proxy offers CONNECT only, and plain HTTP is captured and inspected directly.
pub fn proxy_env(rules: &EgressRules) -> Vec<(&'static str, String)> {
    let Some(port) = rules.proxy_port.filter(|_| rules.proxy_env) else {
        return Vec::new();
    };
    let url = format!("http://127.0.0.1:{port}");
    let loopback = "localhost,127.0.0.1,::1".to_string();
    vec![
        ("HTTPS_PROXY", url.clone()),
        ("https_proxy", url),
        ("NODE_USE_ENV_PROXY", "1".into()),
        ("NO_PROXY", loopback.clone()),
        ("no_proxy", loopback),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::rules::DomainPattern;

    fn rules() -> EgressRules {
        EgressRules {
            domains: vec![
                DomainPattern::parse("api.example.com").unwrap(),
                DomainPattern::parse("*.discord.gg").unwrap(),
            ],
            ports: [443].into_iter().collect(),
            ips: vec!["8.8.8.0/24".parse().unwrap()],
            host_services: vec!["127.0.0.1:11434".parse().unwrap()],
            log: LogLevel::All,
            proxy_port: Some(3128),
            proxy_env: true,
            ..Default::default()
        }
    }

    #[test]
    fn connect_heads_are_parsed_and_everything_else_answered() {
        let req = b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n\x16\x03\x01";
        assert_eq!(
            parse_connect(req),
            ConnectParse::Connect {
                authority: "api.example.com:443".into(),
                head_len: req.len() - 3
            }
        );
        assert_eq!(
            parse_connect(b"CONNECT api.example.com:443 HTTP/1.1\r\n"),
            ConnectParse::NeedMore
        );
        for (bad, status) in [
            (&b"GET http://evil.example/ HTTP/1.1\r\n\r\n"[..], 405),
            (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", 400),
            (b"CONNECT a b c\r\n\r\n", 400),
        ] {
            assert!(
                matches!(parse_connect(bad), ConnectParse::Bad { status: s, .. } if s == status),
                "{bad:?}"
            );
        }
        let long = format!(
            "CONNECT a:443 HTTP/1.1\r\nX: {}",
            "a".repeat(MAX_REQUEST_HEAD)
        );
        assert!(matches!(
            parse_connect(long.as_bytes()),
            ConnectParse::Bad { status: 431, .. }
        ));
    }

    #[test]
    fn targets_follow_the_same_rules_as_captured_connections() {
        let r = rules();
        let mut map = SyntheticMap::default();
        let syn = map.assign("api.example.com").unwrap();
        let ok = |a: &str| decide(&r, &map, a);
        assert_eq!(
            ok("API.example.com.:443"),
            Ok(Destination::Name {
                name: "api.example.com".into(),
                port: 443
            })
        );
        assert!(matches!(
            ok("gateway.discord.gg:443"),
            Ok(Destination::Name { .. })
        ));
        assert_eq!(
            ok(&format!("{syn}:443")),
            Ok(Destination::Name {
                name: "api.example.com".into(),
                port: 443
            })
        );
        assert_eq!(
            ok("8.8.8.8:443"),
            Ok(Destination::Literal("8.8.8.8:443".parse().unwrap()))
        );
        assert_eq!(
            ok("127.0.0.1:11434"),
            Ok(Destination::HostService("127.0.0.1:11434".parse().unwrap()))
        );
        for (a, why) in [
            ("evil.example:443", "not in egress.domains"),
            ("discord.gg:443", "not in egress.domains"),
            ("api.example.com:80", "port 80"),
            ("169.254.169.254:443", "IP literal"),
            ("[fd00:ec2::254]:443", "IP literal"),
            ("[::ffff:169.254.169.254]:443", "IP literal"),
            ("1.2.3.4:443", "IP literal"),
            ("2130706433:443", "IP literal"),
            ("0x7f.0.0.1:443", "IP literal"),
            ("127.0.0.1:443", "IP literal"),
            ("api.example.com", "no port"),
            ("user@api.example.com:443", "bad host"),
            ("[api.example.com]:443", "IPv6"),
            ("api.example.com:0", "bad port"),
            ("api example.com:443", "characters"),
        ] {
            let e = ok(a).unwrap_err().to_string();
            assert!(e.contains(why), "{a}: {e}");
        }
    }

    /// A proxy client that never sends its request head is dropped after
    /// REQUEST_TIMEOUT (paused clock) and logged as refused.
    #[test]
    fn a_silent_proxy_client_is_timed_out() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let d = rt.block_on(async {
            let relay = Relay {
                rules: Arc::new(rules()),
                map: Arc::default(),
                upstream: crate::egress::relay::SystemUpstream,
                slots: Arc::new(tokio::sync::Semaphore::new(4)),
            };
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let at = l.local_addr().unwrap();
            let _silent = TcpStream::connect(at).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            handle(&relay, s, at).await
        });
        assert!(
            matches!(&d.verdict, Err(Refused::Proxy(m)) if m.contains("timed out")),
            "{:?}",
            d.verdict
        );
    }

    #[test]
    fn proxy_variables_only_when_asked() {
        let vars: std::collections::BTreeMap<_, _> = proxy_env(&rules()).into_iter().collect();
        assert_eq!(vars["HTTPS_PROXY"], "http://127.0.0.1:3128");
        assert_eq!(vars["https_proxy"], "http://127.0.0.1:3128");
        assert_eq!(vars["NODE_USE_ENV_PROXY"], "1");
        assert!(!vars.contains_key("HTTP_PROXY"));
        assert!(proxy_env(&EgressRules {
            proxy_env: false,
            ..rules()
        })
        .is_empty());
    }
}
