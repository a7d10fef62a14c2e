//! One captured connection: decide, resolve, check, dial the checked address, copy bytes.
//!
//! The decision is made once, here, whatever path led to the connection (the CONNECT
//! proxy, src/egress/connect.rs, decides the destination from its request instead of
//! [`classify`] and joins at [`Relay::relay_decided`]):
//!
//! 1. The original destination is the listener's local address (`getsockname()`: with
//!    AnyIP routes the kernel accepts every destination on `lo` and keeps it as the local
//!    address; research E4). IPv4-mapped forms are unwrapped.
//! 2. Exactly a `host_services` endpoint: dial it as written (the only way to a host's
//!    loopback or LAN service).
//! 3. A synthetic address: the name the DNS responder handed it out for. Unknown synthetic
//!    addresses (never answered, or from another run) are refused. The port must be in
//!    `ports`.
//! 4. Any other address is a literal: refused unless `ips` and `ports` allow it.
//! 5. A name is resolved by the broker itself ([`Upstream::lookup`]); every address is
//!    checked ([`super::ranges::check_global`]); the broker dials only checked addresses,
//!    in the resolver's order, and never re-resolves between check and dial (no DNS
//!    rebinding window). Literals are checked the same way.
//!
//! 6. Before any dial, the first bytes must name the destination (TLS SNI, HTTP Host,
//!    per `egress.protocols`; [`super::inspect`]); they are replayed to the upstream
//!    unchanged. `host_services` and `tcp` ports are not inspected.
//!
//! Refused connections are reset (SO_LINGER 0), so clients fail at once with ECONNRESET
//! instead of reading an empty response. One log line per connection ([`ConnDecision`]).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::dns::SyntheticMap;
use super::inspect::{self, Expect, Mismatch};
use super::ranges::{check_global, Refusal};
use super::rules::{unmap, EgressRules, LogLevel};
use super::SYNTHETIC_NET;

/// Per-direction copy buffer. 64 KiB: loopback and LAN segments arrive in up to 64 KiB
/// reads; smaller buffers cost syscalls per byte (scripts/bench-egress.sh).
pub const COPY_BUF: usize = 64 * 1024;

/// Bound on one upstream connect attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the broker's own lookup of a name.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a captured connection is going, once decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A name (from a synthetic address) and the port to dial it on.
    Name { name: String, port: u16 },
    /// A `host_services` endpoint, dialed as written.
    HostService(SocketAddr),
    /// A literal address allowed by `ips`, already checked as global.
    Literal(SocketAddr),
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A synthetic address the responder never handed out.
    UnknownSynthetic,
    /// A port not in `egress.ports`.
    Port(u16),
    /// A literal address not in `egress.ips`.
    LiteralNotAllowed,
    /// The address (literal, or every address the name resolved to) is not global.
    NotGlobal(IpAddr, Box<Refusal>),
    /// The name resolved to no address.
    NoAddress,
    /// The broker's lookup failed or timed out.
    Lookup(String),
    /// Every checked address refused or timed out the connect.
    Connect(String),
    /// The broker is at its connection bound.
    Busy,
    /// The first bytes do not name the destination (SNI, Host), or are not the port's
    /// protocol.
    Inspect(Mismatch),
    /// A CONNECT request that could not be read or is not allowed as written.
    Proxy(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::UnknownSynthetic => {
                f.write_str("synthetic address never handed out by the broker's DNS")
            }
            Refused::Port(p) => write!(f, "port {p} is not in egress.ports"),
            Refused::LiteralNotAllowed => f.write_str(
                "IP literal not in egress.ips (names only: resolve through the broker's DNS)",
            ),
            Refused::NotGlobal(ip, r) => write!(f, "{ip} is not globally routable: {r}"),
            Refused::NoAddress => f.write_str("name resolved to no address"),
            Refused::Lookup(e) => write!(f, "lookup failed: {e}"),
            Refused::Connect(e) => write!(f, "upstream connect failed: {e}"),
            Refused::Busy => f.write_str(
                "connection limit reached (sized to the file descriptor limit; connections held are kept)",
            ),
            Refused::Inspect(m) => write!(f, "{m}"),
            Refused::Proxy(m) => write!(f, "CONNECT: {m}"),
        }
    }
}

/// Step 1-4: what a connection to `dst` is, or why it is refused. Pure.
pub fn classify(
    rules: &EgressRules,
    map: &SyntheticMap,
    dst: SocketAddr,
) -> Result<Destination, Refused> {
    let dst = SocketAddr::new(unmap(dst.ip()), dst.port());
    if let Some(hs) = rules.host_service(dst) {
        return Ok(Destination::HostService(hs));
    }
    if let IpAddr::V4(v4) = dst.ip() {
        if SYNTHETIC_NET.contains(&v4) {
            let name = map.name_of(v4).ok_or(Refused::UnknownSynthetic)?;
            if !rules.ports.contains(&dst.port()) {
                return Err(Refused::Port(dst.port()));
            }
            return Ok(Destination::Name {
                name: name.to_string(),
                port: dst.port(),
            });
        }
    }
    if !rules.literal_allowed(dst.ip(), dst.port()) {
        return Err(if rules.ports.contains(&dst.port()) {
            Refused::LiteralNotAllowed
        } else {
            Refused::Port(dst.port())
        });
    }
    check_global(dst.ip()).map_err(|r| Refused::NotGlobal(dst.ip(), Box::new(r)))?;
    Ok(Destination::Literal(dst))
}

/// Step 5: keep only global addresses, in order. Refused when none is left.
pub fn pin_addresses(resolved: &[IpAddr], port: u16) -> Result<Vec<SocketAddr>, Refused> {
    let mut first_refusal = None;
    let mut ok = Vec::new();
    for ip in resolved {
        let ip = unmap(*ip);
        match check_global(ip) {
            Ok(()) => ok.push(SocketAddr::new(ip, port)),
            Err(r) => {
                first_refusal.get_or_insert(Refused::NotGlobal(ip, Box::new(r)));
            }
        }
    }
    match (ok.is_empty(), first_refusal) {
        (false, _) => Ok(ok),
        (true, Some(r)) => Err(r),
        (true, None) => Err(Refused::NoAddress),
    }
}

/// The broker's way out: its own lookups and connects. Tests substitute one that maps
/// public addresses to a loopback upstream; the decision logic stays the same.
pub trait Upstream: Send + Sync + 'static {
    fn lookup(&self, name: &str, port: u16)
        -> impl Future<Output = io::Result<Vec<IpAddr>>> + Send;
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<TcpStream>> + Send;
}

/// The host's resolver (getaddrinfo, run on tokio's blocking pool: /etc/hosts,
/// /etc/resolv.conf, nsswitch as configured for the broker) and plain connects.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemUpstream;

impl Upstream for SystemUpstream {
    async fn lookup(&self, name: &str, port: u16) -> io::Result<Vec<IpAddr>> {
        // A trailing dot makes the name absolute: no search-list expansion (resolv.conf(5)
        // "search"), so an allowlisted name cannot become an internal one.
        let absolute = format!("{name}.");
        // Bounded: each lookup opens descriptors of its own outside the connection
        // budget (super::shed::HEADROOM counts them).
        static LOOKUPS: tokio::sync::Semaphore =
            tokio::sync::Semaphore::const_new(super::shed::MAX_LOOKUPS);
        let _turn = LOOKUPS
            .acquire()
            .await
            .map_err(|_| io::Error::other("lookups closed"))?;
        let addrs = tokio::net::lookup_host((absolute.as_str(), port)).await?;
        Ok(addrs.map(|a| a.ip()).collect())
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect(addr).await
    }
}

/// What the broker shares between connections.
pub struct Relay<U: Upstream> {
    pub rules: Arc<EgressRules>,
    pub map: Arc<Mutex<SyntheticMap>>,
    pub upstream: U,
    /// Bounds concurrent relayed connections; new ones beyond it are reset.
    pub slots: Arc<tokio::sync::Semaphore>,
}

/// One line per connection: never payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnDecision {
    /// The original destination as the target dialed it.
    pub dst: SocketAddr,
    /// The name a synthetic address stood for, if any.
    pub name: Option<String>,
    /// The address the broker dialed (or would have).
    pub upstream: Option<SocketAddr>,
    pub verdict: Result<(), Refused>,
    /// Bytes target -> upstream and upstream -> target.
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub duration: Duration,
    /// Already logged (a refusal is logged before the reset: [`ConnDecision::log_once`]).
    pub logged: bool,
}

impl ConnDecision {
    /// Log once. A refusal is logged before the client is reset, so the line is written
    /// before the client can see the reset and exit (a supervisor that ends with its
    /// target would otherwise lose it; `verify` reads the line as the proof that the
    /// refusal was the broker's); the caller's final log call is then a no-op.
    pub fn log_once(&mut self, level: LogLevel) {
        if !self.logged {
            self.log(level);
            self.logged = true;
        }
    }

    /// Emit the decision on the launch log's subscriber (text or JSON).
    pub fn log(&self, level: LogLevel) {
        let name = self.name.as_deref().unwrap_or("-");
        let upstream = self.upstream.map_or("-".to_string(), |u| u.to_string());
        let ms = self.duration.as_millis() as u64;
        match &self.verdict {
            Ok(()) if level == LogLevel::All => tracing::info!(
                event = "egress-connect",
                verdict = "allowed",
                name,
                dst = %self.dst,
                upstream = %upstream,
                bytes_out = self.bytes_out,
                bytes_in = self.bytes_in,
                duration_ms = ms,
                "egress: allowed {name} {} via {upstream}",
                self.dst
            ),
            Ok(()) => {}
            Err(why) => tracing::warn!(
                event = "egress-connect",
                verdict = "refused",
                name,
                dst = %self.dst,
                upstream = %upstream,
                why = %why,
                duration_ms = ms,
                "egress: refused {name} {}: {why}",
                self.dst
            ),
        }
    }
}

impl<U: Upstream> Relay<U> {
    /// Handle one accepted connection whose original destination is `dst`. Returns the
    /// decision after the connection ends (or is refused).
    pub async fn handle(&self, client: TcpStream, dst: SocketAddr) -> ConnDecision {
        let start = Instant::now();
        let mut d = ConnDecision {
            dst,
            name: None,
            upstream: None,
            verdict: Ok(()),
            bytes_out: 0,
            bytes_in: 0,
            duration: Duration::ZERO,
            logged: false,
        };
        let Ok(_permit) = self.slots.clone().try_acquire_owned() else {
            d.verdict = Err(Refused::Busy);
            d.duration = start.elapsed();
            d.log_once(self.rules.log);
            reset(client);
            return d;
        };
        let decided = {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            classify(&self.rules, &map, dst)
        };
        self.relay_decided(client, dst.port(), decided, Vec::new(), &mut d)
            .await;
        d.duration = start.elapsed();
        d
    }

    /// From a decided destination on: bind the name to the first bytes (`prefix`: bytes
    /// already read from the client), dial, replay those bytes, copy both ways. Records
    /// the outcome in `d`; a refused client is reset.
    pub async fn relay_decided(
        &self,
        mut client: TcpStream,
        port: u16,
        decided: Result<Destination, Refused>,
        prefix: Vec<u8>,
        d: &mut ConnDecision,
    ) {
        let upstream = match decided {
            Ok(dest) => match self.bind_name(&mut client, &dest, port, prefix, d).await {
                Ok(first) => self.dial(dest, d).await.map(|up| (up, first)),
                Err(r) => Err(r),
            },
            Err(r) => Err(r),
        };
        match upstream {
            Ok((mut up, first)) => {
                if let Err(e) = up.write_all(&first).await {
                    tracing::debug!(error = %e, "egress: replaying the first bytes failed");
                    reset(client);
                    return;
                }
                let (o, i) = copy_both(client, up).await;
                d.bytes_out = o + first.len() as u64;
                d.bytes_in = i;
            }
            Err(r) => {
                d.verdict = Err(r);
                d.log_once(self.rules.log);
                reset(client);
            }
        }
    }

    /// Step 6: the first bytes must name the destination (none read for host services
    /// and `tcp` ports). Returns the bytes read, to replay.
    async fn bind_name(
        &self,
        client: &mut TcpStream,
        dest: &Destination,
        port: u16,
        prefix: Vec<u8>,
        d: &mut ConnDecision,
    ) -> Result<Vec<u8>, Refused> {
        let expect = match dest {
            Destination::HostService(_) => return Ok(prefix),
            Destination::Name { name, .. } => {
                d.name = Some(name.clone());
                Expect::Name(name)
            }
            Destination::Literal(_) => Expect::Literal,
        };
        let kind = self.rules.port_kind(port);
        inspect::read_and_inspect(client, kind, expect, port, prefix)
            .await
            .map(|(bytes, _)| bytes)
            .map_err(Refused::Inspect)
    }

    async fn dial(&self, dest: Destination, d: &mut ConnDecision) -> Result<TcpStream, Refused> {
        let candidates = match dest {
            Destination::HostService(a) | Destination::Literal(a) => vec![a],
            Destination::Name { name, port } => {
                d.name = Some(name.clone());
                let resolved =
                    tokio::time::timeout(LOOKUP_TIMEOUT, self.upstream.lookup(&name, port))
                        .await
                        .map_err(|_| Refused::Lookup("timed out".into()))?
                        .map_err(|e| Refused::Lookup(e.to_string()))?;
                pin_addresses(&resolved, port)?
            }
        };
        let mut last = String::from("no address");
        for addr in candidates {
            d.upstream = Some(addr);
            match tokio::time::timeout(CONNECT_TIMEOUT, self.upstream.connect(addr)).await {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) => last = format!("{addr}: {e}"),
                Err(_) => last = format!("{addr}: timed out"),
            }
        }
        Err(Refused::Connect(last))
    }
}

/// Close with RST (SO_LINGER 0): the client fails at once instead of reading EOF.
pub(crate) fn reset(s: TcpStream) {
    if s.set_zero_linger().is_err() {
        tracing::debug!("SO_LINGER 0 failed; closing normally");
    }
    drop(s);
}

/// Copy both directions until both are done; half-close is passed on (shutdown(SHUT_WR)
/// after EOF), so request/response protocols that close their sending side work.
/// Returns (client -> upstream, upstream -> client) byte counts, also on error.
pub async fn copy_both(mut client: TcpStream, mut upstream: TcpStream) -> (u64, u64) {
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let mut out = 0u64;
    let mut inn = 0u64;
    let (a, b) = tokio::join!(
        pump(&mut cr, &mut uw, &mut out),
        pump(&mut ur, &mut cw, &mut inn)
    );
    if let Err(e) = a.and(b) {
        tracing::debug!(error = %e, "egress relay ended with an error");
    }
    (out, inn)
}

async fn pump<R, W>(r: &mut R, w: &mut W, count: &mut u64) -> io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return w.shutdown().await;
        }
        w.write_all(&buf[..n]).await?;
        *count += n as u64;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::egress::rules::{DomainPattern, PortKind};
    use std::collections::HashMap;

    fn rules() -> EgressRules {
        EgressRules {
            domains: vec![DomainPattern::parse("api.example.com").unwrap()],
            ports: [443].into_iter().collect(),
            ips: vec!["8.8.8.0/24".parse().unwrap()],
            host_services: vec!["127.0.0.1:11434".parse().unwrap()],
            log: LogLevel::All,
            ..Default::default()
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn mapped() -> (SyntheticMap, std::net::Ipv4Addr) {
        let mut m = SyntheticMap::default();
        let a = m.assign("api.example.com").unwrap();
        (m, a)
    }

    #[test]
    fn synthetic_addresses_become_their_names() {
        let (map, a) = mapped();
        let r = rules();
        assert_eq!(
            classify(&r, &map, SocketAddr::new(a.into(), 443)),
            Ok(Destination::Name {
                name: "api.example.com".into(),
                port: 443
            })
        );
        let v6 = SocketAddr::new(IpAddr::V6(a.to_ipv6_mapped()), 443);
        assert!(matches!(
            classify(&r, &map, v6),
            Ok(Destination::Name { .. })
        ));
        assert_eq!(
            classify(&r, &map, SocketAddr::new(a.into(), 80)),
            Err(Refused::Port(80))
        );
        assert_eq!(
            classify(&r, &map, sa("198.18.200.1:443")),
            Err(Refused::UnknownSynthetic)
        );
    }

    /// The forbidden destinations, each as the target would dial it.
    #[test]
    fn literals_are_refused_unless_in_ips_and_global() {
        let (map, _) = mapped();
        let r = rules();
        for dst in [
            "169.254.169.254:443",
            "10.0.0.1:443",
            "192.168.1.1:443",
            "[fd00::1]:443",
            "[fd00:ec2::254]:443",
            "1.2.3.4:443",
            "127.0.0.1:443",
            "[::1]:443",
            "[::ffff:169.254.169.254]:443",
            "[2002:a9fe:a9fe::1]:443",
            "[64:ff9b::a9fe:a9fe]:443",
        ] {
            assert_eq!(
                classify(&r, &map, sa(dst)),
                Err(Refused::LiteralNotAllowed),
                "{dst}"
            );
        }
        assert_eq!(
            classify(&r, &map, sa("169.254.169.254:80")),
            Err(Refused::Port(80))
        );
        assert_eq!(
            classify(&r, &map, sa("8.8.8.8:443")),
            Ok(Destination::Literal(sa("8.8.8.8:443")))
        );
        assert_eq!(
            classify(&r, &map, sa("[::ffff:8.8.8.8]:443")),
            Ok(Destination::Literal(sa("8.8.8.8:443")))
        );
        assert_eq!(classify(&r, &map, sa("8.8.8.8:80")), Err(Refused::Port(80)));
    }

    #[test]
    fn host_services_are_exact() {
        let (map, _) = mapped();
        let r = rules();
        assert_eq!(
            classify(&r, &map, sa("127.0.0.1:11434")),
            Ok(Destination::HostService(sa("127.0.0.1:11434")))
        );
        assert_eq!(
            classify(&r, &map, sa("127.0.0.2:11434")),
            Err(Refused::Port(11434))
        );
    }

    /// DNS rebinding and private answers: a name that resolves to internal addresses is
    /// refused; mixed answers keep only the global ones, in order.
    #[test]
    fn resolved_addresses_are_pinned_to_global_ones() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let r = pin_addresses(&[ip("169.254.169.254")], 443).unwrap_err();
        assert!(matches!(r, Refused::NotGlobal(_, _)));
        assert!(r.to_string().contains("169.254.0.0/16"), "{r}");
        assert!(matches!(
            pin_addresses(&[ip("10.0.0.1"), ip("::1"), ip("fd00:ec2::254")], 443),
            Err(Refused::NotGlobal(..))
        ));
        assert_eq!(pin_addresses(&[], 443), Err(Refused::NoAddress));
        assert_eq!(
            pin_addresses(
                &[
                    ip("10.0.0.1"),
                    ip("93.184.216.34"),
                    ip("::ffff:192.168.0.1"),
                    ip("2606:2800::1")
                ],
                443
            ),
            Ok(vec![sa("93.184.216.34:443"), sa("[2606:2800::1]:443")])
        );
        assert_eq!(
            pin_addresses(&[ip("::ffff:93.184.216.34")], 443),
            Ok(vec![sa("93.184.216.34:443")])
        );
    }

    /// A test upstream: names resolve from a table; connects to "public" addresses are
    /// redirected to loopback listeners, and every address dialed is recorded.
    struct FakeUpstream {
        names: HashMap<String, Vec<IpAddr>>,
        routes: HashMap<SocketAddr, SocketAddr>,
        dialed: Arc<Mutex<Vec<SocketAddr>>>,
    }

    impl Upstream for FakeUpstream {
        async fn lookup(&self, name: &str, _port: u16) -> io::Result<Vec<IpAddr>> {
            self.names
                .get(name)
                .cloned()
                .ok_or_else(|| io::Error::other("no such name"))
        }
        async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
            self.dialed.lock().unwrap().push(addr);
            match self.routes.get(&addr) {
                Some(real) => TcpStream::connect(real).await,
                None => Err(io::Error::from(io::ErrorKind::ConnectionRefused)),
            }
        }
    }

    async fn echo_server() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    tokio::io::copy(&mut r, &mut w).await.ok();
                });
            }
        });
        a
    }

    /// Drive one relayed connection through a loopback pair: the "client" side is what
    /// the target holds, `dst` is what getsockname() would say under AnyIP capture.
    async fn relay_once(
        relay: Arc<Relay<FakeUpstream>>,
        dst: SocketAddr,
        payload: &[u8],
    ) -> (io::Result<Vec<u8>>, ConnDecision) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let la = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            relay.handle(s, dst).await
        });
        let mut c = TcpStream::connect(la).await.unwrap();
        let result = async {
            c.write_all(payload).await?;
            c.shutdown().await?;
            let mut got = Vec::new();
            c.read_to_end(&mut got).await?;
            Ok(got)
        }
        .await;
        (result, server.await.unwrap())
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn an_allowed_name_is_relayed_to_its_checked_address_and_logged_with_bytes() {
        rt().block_on(async {
            let echo = echo_server().await;
            let (map, syn) = mapped();
            let dialed = Arc::new(Mutex::new(Vec::new()));
            let relay = Arc::new(Relay {
                rules: Arc::new(rules()),
                map: Arc::new(Mutex::new(map)),
                upstream: FakeUpstream {
                    // A rebinding-style answer: private first, then public.
                    names: [(
                        "api.example.com".to_string(),
                        vec![
                            "10.0.0.7".parse().unwrap(),
                            "93.184.216.34".parse().unwrap(),
                        ],
                    )]
                    .into(),
                    routes: [(sa("93.184.216.34:443"), echo)].into(),
                    dialed: dialed.clone(),
                },
                slots: Arc::new(tokio::sync::Semaphore::new(8)),
            });
            // A ClientHello naming the name, then more bytes: replayed and relayed
            // unchanged.
            let mut payload = crate::egress::inspect::tests::client_hello(Some("api.example.com"));
            payload.extend_from_slice(b"hello upstream");
            let (got, d) = relay_once(relay, SocketAddr::new(syn.into(), 443), &payload).await;
            assert_eq!(got.unwrap(), payload);
            assert_eq!(d.verdict, Ok(()));
            assert_eq!(d.name.as_deref(), Some("api.example.com"));
            assert_eq!(d.upstream, Some(sa("93.184.216.34:443")));
            let n = payload.len() as u64;
            assert_eq!((d.bytes_out, d.bytes_in), (n, n));
            assert_eq!(
                *dialed.lock().unwrap(),
                vec![sa("93.184.216.34:443")],
                "10.0.0.7 was never dialed"
            );
        });
    }

    #[test]
    fn refused_connections_are_reset_and_never_dialed() {
        rt().block_on(async {
            let echo = echo_server().await;
            let (map, syn) = mapped();
            let dialed = Arc::new(Mutex::new(Vec::new()));
            let relay = Arc::new(Relay {
                rules: Arc::new(rules()),
                map: Arc::new(Mutex::new(map)),
                upstream: FakeUpstream {
                    names: [(
                        "api.example.com".to_string(),
                        vec!["169.254.169.254".parse().unwrap()],
                    )]
                    .into(),
                    // Even if a route existed, the broker must not use it.
                    routes: [
                        (sa("169.254.169.254:443"), echo),
                        (sa("10.0.0.1:443"), echo),
                    ]
                    .into(),
                    dialed: dialed.clone(),
                },
                slots: Arc::new(tokio::sync::Semaphore::new(8)),
            });
            for (dst, why) in [
                (SocketAddr::new(syn.into(), 443), "169.254.0.0/16"),
                (sa("10.0.0.1:443"), "not in egress.ips"),
                (sa("198.18.99.99:443"), "never handed out"),
            ] {
                let hello = crate::egress::inspect::tests::client_hello(Some("api.example.com"));
                let (got, d) = relay_once(relay.clone(), dst, &hello).await;
                match got {
                    Err(e) => assert!(
                        matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                        ),
                        "{dst}: {e}"
                    ),
                    Ok(bytes) => assert!(bytes.is_empty(), "{dst}: got {bytes:?}"),
                }
                let why_text = d.verdict.as_ref().unwrap_err().to_string();
                assert!(why_text.contains(why), "{dst}: {why_text}");
            }
            assert!(
                dialed.lock().unwrap().is_empty(),
                "dialed {:?}",
                dialed.lock().unwrap()
            );
        });
    }

    fn relay_with(
        rules: EgressRules,
        map: SyntheticMap,
        echo: SocketAddr,
        dialed: Arc<Mutex<Vec<SocketAddr>>>,
    ) -> Arc<Relay<FakeUpstream>> {
        Arc::new(Relay {
            rules: Arc::new(rules),
            map: Arc::new(Mutex::new(map)),
            upstream: FakeUpstream {
                names: [(
                    "api.example.com".to_string(),
                    vec!["93.184.216.34".parse().unwrap()],
                )]
                .into(),
                routes: [
                    (sa("93.184.216.34:443"), echo),
                    (sa("93.184.216.34:80"), echo),
                    (sa("8.8.8.8:443"), echo),
                ]
                .into(),
                dialed,
            },
            slots: Arc::new(tokio::sync::Semaphore::new(8)),
        })
    }

    /// Domain fronting: the allowed name's synthetic address, another name in the bytes.
    /// Refused before any dial, reset, logged with why; the control (same relay, the
    /// matching name) is relayed. `tcp` ports skip inspection; literals from `ips` may
    /// omit SNI.
    #[test]
    fn the_first_bytes_must_name_the_destination_before_any_dial() {
        rt().block_on(async {
            let echo = echo_server().await;
            let (map, syn) = mapped();
            let mut r = rules();
            r.ports.extend([80, 8443]);
            r.protocols = [(80, PortKind::Http), (8443, PortKind::Tcp)].into();
            let dialed = Arc::new(Mutex::new(Vec::new()));
            let relay = relay_with(r, map, echo, dialed.clone());
            let name443 = SocketAddr::new(syn.into(), 443);
            let name80 = SocketAddr::new(syn.into(), 80);
            let hello = crate::egress::inspect::tests::client_hello;
            for (dst, payload, why) in [
                (
                    name443,
                    hello(Some("evil.example")),
                    "TLS SNI \"evil.example\" is not api.example.com",
                ),
                (name443, hello(None), "without a server name"),
                (
                    name443,
                    b"GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n".to_vec(),
                    "not a TLS handshake",
                ),
                (
                    name80,
                    b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_vec(),
                    "HTTP Host \"evil.example\"",
                ),
                (
                    name80,
                    hello(Some("api.example.com")),
                    "not an HTTP/1.x request",
                ),
            ] {
                let (got, d) = relay_once(relay.clone(), dst, &payload).await;
                assert!(got.map_or(true, |b| b.is_empty()), "{why}");
                let text = d.verdict.as_ref().unwrap_err().to_string();
                assert!(text.contains(why), "{text}");
                assert_eq!(d.name.as_deref(), Some("api.example.com"));
            }
            assert!(
                dialed.lock().unwrap().is_empty(),
                "dialed {:?}",
                dialed.lock().unwrap()
            );
            // Controls: the matching name on each kind, and raw bytes on a tcp port.
            for (dst, payload) in [
                (name443, hello(Some("API.example.com."))),
                (
                    name80,
                    b"GET / HTTP/1.1\r\nHost: api.example.com:80\r\n\r\n".to_vec(),
                ),
            ] {
                let (got, d) = relay_once(relay.clone(), dst, &payload).await;
                assert_eq!(d.verdict, Ok(()));
                assert_eq!(got.unwrap(), payload);
            }
            assert_eq!(dialed.lock().unwrap().len(), 2);
        });
    }

    /// A client that connects to an allowed name and never sends: timed out after
    /// INSPECT_TIMEOUT (paused clock), reset, never dialed, logged with why.
    #[test]
    fn a_client_that_never_sends_is_timed_out_and_never_dialed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let d = rt.block_on(async {
            let echo = echo_server().await;
            let (map, syn) = mapped();
            let dialed = Arc::new(Mutex::new(Vec::new()));
            let relay = relay_with(rules(), map, echo, dialed.clone());
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let la = l.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (s, _) = l.accept().await.unwrap();
                relay.handle(s, SocketAddr::new(syn.into(), 443)).await
            });
            let _silent = TcpStream::connect(la).await.unwrap();
            let d = server.await.unwrap();
            assert!(dialed.lock().unwrap().is_empty());
            d
        });
        assert_eq!(d.verdict, Err(Refused::Inspect(Mismatch::Timeout)));
        let lines = captured_json(|| d.log(LogLevel::Refused));
        assert_eq!(lines[0]["verdict"], "refused");
        assert!(
            lines[0]["why"].as_str().unwrap().contains("within 10s"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn literals_from_ips_may_omit_sni_but_must_speak_tls() {
        rt().block_on(async {
            let echo = echo_server().await;
            let (map, _) = mapped();
            let relay = relay_with(rules(), map, echo, Arc::default());
            let lit = sa("8.8.8.8:443");
            let hello = crate::egress::inspect::tests::client_hello(None);
            let (got, d) = relay_once(relay.clone(), lit, &hello).await;
            assert_eq!((d.verdict, got.unwrap()), (Ok(()), hello));
            let (_, d) = relay_once(relay, lit, b"plain bytes").await;
            assert!(matches!(
                d.verdict,
                Err(Refused::Inspect(Mismatch::Malformed(_)))
            ));
        });
    }

    /// Everything `f` logs, as JSON lines (the launch log's `--log-format json` layout).
    pub(crate) fn captured_json(f: impl FnOnce()) -> Vec<serde_json::Value> {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::with_default(sub, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// One line per decision with name, destination, upstream, verdict and why, bytes,
    /// duration; `log = "refused"` keeps only refusals.
    #[test]
    fn decisions_are_logged_one_line_each_without_payloads() {
        let allowed = ConnDecision {
            dst: sa("198.18.0.1:443"),
            name: Some("api.example.com".into()),
            upstream: Some(sa("93.184.216.34:443")),
            verdict: Ok(()),
            bytes_out: 14,
            bytes_in: 2048,
            duration: Duration::from_millis(12),
            logged: false,
        };
        let refused = ConnDecision {
            dst: sa("169.254.169.254:443"),
            name: None,
            upstream: None,
            verdict: Err(Refused::LiteralNotAllowed),
            bytes_out: 0,
            bytes_in: 0,
            duration: Duration::from_millis(0),
            logged: false,
        };
        let lines = captured_json(|| {
            allowed.log(LogLevel::All);
            refused.log(LogLevel::All);
            allowed.log(LogLevel::Refused);
            refused.log(LogLevel::Refused);
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        let a = &lines[0];
        assert_eq!(a["event"], "egress-connect");
        assert_eq!(a["verdict"], "allowed");
        assert_eq!(a["name"], "api.example.com");
        assert_eq!(a["dst"], "198.18.0.1:443");
        assert_eq!(a["upstream"], "93.184.216.34:443");
        assert_eq!(
            (a["bytes_out"].as_u64(), a["bytes_in"].as_u64()),
            (Some(14), Some(2048))
        );
        assert_eq!(a["duration_ms"], 12);
        for r in &lines[1..] {
            assert_eq!(r["verdict"], "refused");
            assert_eq!(r["dst"], "169.254.169.254:443");
            assert!(
                r["why"].as_str().unwrap().contains("not in egress.ips"),
                "{r}"
            );
            assert_eq!(r["level"], "WARN");
        }
    }

    #[test]
    fn the_connection_bound_resets_new_connections() {
        rt().block_on(async {
            let (map, syn) = mapped();
            let relay = Arc::new(Relay {
                rules: Arc::new(rules()),
                map: Arc::new(Mutex::new(map)),
                upstream: FakeUpstream {
                    names: HashMap::new(),
                    routes: HashMap::new(),
                    dialed: Arc::default(),
                },
                slots: Arc::new(tokio::sync::Semaphore::new(0)),
            });
            let (_, d) = relay_once(relay, SocketAddr::new(syn.into(), 443), b"x").await;
            assert_eq!(d.verdict, Err(Refused::Busy));
        });
    }
}
