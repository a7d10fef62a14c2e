//! The broker's event loop: DNS over UDP and TCP, and the capture listeners, on one
//! single-threaded tokio runtime (plus tokio's blocking pool for getaddrinfo).
//!
//! Runs in the supervisor, after the fork (the target must be forked from a
//! single-threaded process; tokio starts threads). It owns sockets that were created
//! inside the target's network namespace and passed out ([`BrokerSockets`]); it makes
//! none of its own toward the target. If the broker dies, those sockets close with it and
//! the target's connections find nothing: no network, never an open one.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::dns::{DnsDecision, DnsVerdict, Responder, SyntheticMap};
use super::relay::{reset, Relay, Upstream};
use super::rules::{EgressRules, LogLevel};
use super::shed::{FdBudget, Reserve, Shed};

/// Concurrent relayed connections at most; lowered at start to what the broker's file
/// descriptors allow ([`super::shed::FdBudget`]). Beyond it new ones are reset and logged
/// (fd exhaustion must not take the broker down).
pub const MAX_CONNECTIONS: usize = 4096;
/// Concurrent DNS-over-TCP clients at most (also lowered to the fd budget).
pub const MAX_DNS_TCP: usize = 64;
/// A DNS-over-TCP client has this long to send each message (slowloris bound).
pub const DNS_TCP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The sockets made inside the target's namespace, handed to the broker.
#[derive(Debug, Default)]
pub struct BrokerSockets {
    pub dns_udp: Vec<std::net::UdpSocket>,
    pub dns_tcp: Vec<std::net::TcpListener>,
    pub capture: Vec<std::net::TcpListener>,
    /// The CONNECT proxy on 127.0.0.1:`egress.proxy_port` ([`super::connect`]), if any.
    pub proxy: Vec<std::net::TcpListener>,
}

/// Shared state: the rules and the synthetic map (DNS writes it, the relay reads it).
pub struct Broker<U: Upstream> {
    pub relay: Arc<Relay<U>>,
    pub log: LogLevel,
    /// The spare descriptor every accept loop refuses with at EMFILE/ENFILE.
    pub reserve: Arc<Mutex<Reserve>>,
}

impl<U: Upstream> Broker<U> {
    pub fn new(rules: EgressRules, upstream: U) -> Self {
        let log = rules.log;
        Broker {
            relay: Arc::new(Relay {
                rules: Arc::new(rules),
                map: Arc::new(Mutex::new(SyntheticMap::default())),
                upstream,
                slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            }),
            log,
            reserve: Arc::new(Mutex::new(Reserve::new())),
        }
    }

    /// Lower the connection bound to what this process's descriptors allow, now (inside
    /// the runtime: its epoll and eventfd descriptors are counted). Returns the budget.
    pub fn fit_to_fds(&self, dns_tcp_listeners: bool) -> FdBudget {
        let max_dns = if dns_tcp_listeners { MAX_DNS_TCP } else { 0 };
        let b = match FdBudget::measure(MAX_CONNECTIONS, max_dns) {
            Ok(b) => b,
            Err(e) => {
                // Unknown: keep the fixed bounds; the spare still sheds at EMFILE.
                tracing::warn!(error = %e, "egress: cannot count free file descriptors");
                FdBudget {
                    free: usize::MAX,
                    connections: MAX_CONNECTIONS,
                    dns_tcp: max_dns,
                }
            }
        };
        let slots = &self.relay.slots;
        let excess = slots.available_permits().saturating_sub(b.connections);
        slots.forget_permits(excess);
        tracing::debug!(
            event = "egress-broker", free_fds = b.free, connections = b.connections,
            dns_tcp = b.dns_tcp,
            "egress broker: {} concurrent connections, {} DNS-over-TCP clients ({} descriptors free)",
            b.connections, b.dns_tcp, b.free
        );
        b
    }

    /// Serve every socket until one loop fails (an accept or recv error that is not
    /// per-connection). Must be called inside a tokio runtime.
    pub async fn serve(&self, sockets: BrokerSockets) -> io::Result<()> {
        let budget = self.fit_to_fds(!sockets.dns_tcp.is_empty());
        let mut set = tokio::task::JoinSet::new();
        for s in sockets.dns_udp {
            s.set_nonblocking(true)?;
            let sock = UdpSocket::from_std(s)?;
            let (relay, log) = (self.relay.clone(), self.log);
            set.spawn(async move { serve_dns_udp(sock, relay, log).await });
        }
        let tcp_slots = Arc::new(tokio::sync::Semaphore::new(budget.dns_tcp));
        for l in sockets.dns_tcp {
            l.set_nonblocking(true)?;
            let l = TcpListener::from_std(l)?;
            let (relay, log, slots) = (self.relay.clone(), self.log, tcp_slots.clone());
            let reserve = self.reserve.clone();
            set.spawn(async move { serve_dns_tcp(l, relay, log, slots, reserve).await });
        }
        for l in sockets.capture {
            l.set_nonblocking(true)?;
            let l = TcpListener::from_std(l)?;
            let (relay, log, reserve) = (self.relay.clone(), self.log, self.reserve.clone());
            set.spawn(async move { serve_capture(l, relay, log, reserve).await });
        }
        for l in sockets.proxy {
            l.set_nonblocking(true)?;
            let l = TcpListener::from_std(l)?;
            let (relay, log, reserve) = (self.relay.clone(), self.log, self.reserve.clone());
            set.spawn(async move { super::connect::serve_proxy(l, relay, log, reserve).await });
        }
        match set.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(io::Error::other(format!("broker task failed: {e}"))),
            None => Ok(()),
        }
    }
}

/// Run the broker on a fresh single-threaded runtime until it fails.
pub fn run_blocking<U: Upstream>(broker: &Broker<U>, sockets: BrokerSockets) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(broker.serve(sockets))
}

fn log_dns(d: &DnsDecision, peer: SocketAddr, transport: &str, level: LogLevel) {
    match &d.verdict {
        DnsVerdict::Answered(a) if level == LogLevel::All => tracing::info!(
            event = "egress-dns", verdict = "answered", name = %d.name, qtype = %d.qtype,
            synthetic = %a, transport, "egress dns: {} {} -> {a}", d.name, d.qtype
        ),
        DnsVerdict::NoData if level == LogLevel::All => tracing::info!(
            event = "egress-dns", verdict = "nodata", name = %d.name, qtype = %d.qtype,
            transport, "egress dns: {} {} -> no records", d.name, d.qtype
        ),
        DnsVerdict::Answered(_) | DnsVerdict::NoData => {}
        DnsVerdict::Refused { rcode, why } => tracing::warn!(
            event = "egress-dns", verdict = "refused", name = %d.name, qtype = %d.qtype,
            rcode, why = %why, transport, peer = %peer,
            "egress dns: refused {} {}: {why} ({rcode})", d.name, d.qtype
        ),
        DnsVerdict::Dropped(why) => tracing::warn!(
            event = "egress-dns", verdict = "dropped", why = %why, transport, peer = %peer,
            "egress dns: dropped a packet: {why}"
        ),
    }
}

fn respond<U: Upstream>(relay: &Relay<U>, packet: &[u8]) -> (Option<Vec<u8>>, DnsDecision) {
    let mut map = relay.map.lock().unwrap_or_else(|p| p.into_inner());
    Responder {
        rules: &relay.rules,
        map: &mut map,
    }
    .answer(packet)
}

async fn serve_dns_udp<U: Upstream>(
    sock: UdpSocket,
    relay: Arc<Relay<U>>,
    log: LogLevel,
) -> io::Result<()> {
    // 4096: larger than any query a stub sends (EDNS payloads advertise up to 4096).
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP errors from earlier sends surface here on Linux; not fatal.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e),
        };
        let (answer, d) = respond(&relay, &buf[..n]);
        log_dns(&d, peer, "udp", log);
        if let Some(a) = answer {
            if let Err(e) = sock.send_to(&a, peer).await {
                tracing::debug!(error = %e, "egress dns: send failed");
            }
        }
    }
}

async fn serve_dns_tcp<U: Upstream>(
    l: TcpListener,
    relay: Arc<Relay<U>>,
    log: LogLevel,
    slots: Arc<tokio::sync::Semaphore>,
    reserve: Arc<Mutex<Reserve>>,
) -> io::Result<()> {
    loop {
        let (s, peer) = match accept(&l, &reserve, "DNS-over-TCP").await? {
            Some(x) => x,
            None => continue,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                event = "egress-dns", verdict = "refused", transport = "tcp", peer = %peer,
                why = "DNS-over-TCP client limit reached (bounded by the file descriptor limit)",
                "egress dns: refused a TCP client {peer}: client limit reached"
            );
            reset(s);
            continue;
        };
        let relay = relay.clone();
        tokio::spawn(async move {
            if let Err(e) = dns_tcp_conn(s, peer, &relay, log).await {
                tracing::debug!(error = %e, "egress dns tcp: connection ended");
            }
            drop(permit);
        });
    }
}

/// RFC 1035 §4.2.2 / RFC 7766: each message is preceded by a two-byte length.
async fn dns_tcp_conn<U: Upstream>(
    mut s: TcpStream,
    peer: SocketAddr,
    relay: &Relay<U>,
    log: LogLevel,
) -> io::Result<()> {
    let mut msg = vec![0u8; u16::MAX as usize];
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(DNS_TCP_TIMEOUT, s.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        let n = usize::from(u16::from_be_bytes(len));
        let body = &mut msg[..n];
        tokio::time::timeout(DNS_TCP_TIMEOUT, s.read_exact(body))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        let (answer, d) = respond(relay, body);
        log_dns(&d, peer, "tcp", log);
        let Some(a) = answer else { return Ok(()) };
        let alen = u16::try_from(a.len()).map_err(|_| io::Error::other("answer too long"))?;
        s.write_all(&alen.to_be_bytes()).await?;
        s.write_all(&a).await?;
    }
}

/// accept(2) errors that concern one connection, or resource exhaustion the broker
/// survives (EMFILE/ENFILE: back off briefly, keep the listener).
pub(crate) fn per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::EMFILE
                | libc::ENFILE
        )
    ) || e.kind() == io::ErrorKind::ConnectionAborted
}

/// One accept for a broker loop: `Ok(None)` when this round produced no connection (one
/// refused at the fd limit, or a per-connection error after a short back-off); `Err` only
/// for a listener that failed for good.
pub(crate) async fn accept(
    l: &TcpListener,
    reserve: &Mutex<Reserve>,
    what: &str,
) -> io::Result<Option<(TcpStream, SocketAddr)>> {
    let e = match l.accept().await {
        Ok(x) => return Ok(Some(x)),
        Err(e) => e,
    };
    // The guard is dropped before any await (the shed itself is synchronous).
    let shed = super::shed::lock(reserve).shed(l, &e, what);
    match shed {
        Shed::Refused => Ok(None),
        Shed::Waiting(why) => {
            // EMFILE stays until an fd is freed: back off rather than spin. Short, so a
            // connection arriving meanwhile is refused within it.
            tracing::debug!(error = %e, why, "egress: {what} accept at the fd limit; retrying");
            tokio::time::sleep(super::shed::RETRY).await;
            Ok(None)
        }
        Shed::NotExhaustion if per_connection_error(&e) => {
            tracing::warn!(error = %e, "egress: {what} accept failed; retrying");
            tokio::time::sleep(super::shed::RETRY).await;
            Ok(None)
        }
        Shed::NotExhaustion => Err(e),
    }
}

async fn serve_capture<U: Upstream>(
    l: TcpListener,
    relay: Arc<Relay<U>>,
    log: LogLevel,
    reserve: Arc<Mutex<Reserve>>,
) -> io::Result<()> {
    loop {
        let s = match accept(&l, &reserve, "captured").await? {
            Some((s, _)) => s,
            None => continue,
        };
        // Under AnyIP capture the local address is the destination the target dialed.
        let dst = match s.local_addr() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "egress: getsockname failed; dropping the connection");
                continue;
            }
        };
        if let Err(e) = s.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        let relay = relay.clone();
        tokio::spawn(async move {
            let mut d = relay.handle(s, dst).await;
            d.log_once(log);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::relay::SystemUpstream;
    use crate::egress::rules::DomainPattern;
    use hickory_proto::op::{Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};
    use std::io::{Read, Write};
    use std::time::Duration;

    fn rules() -> EgressRules {
        EgressRules {
            domains: vec![DomainPattern::parse("api.example.com").unwrap()],
            ports: [443].into_iter().collect(),
            ips: vec![],
            host_services: vec![],
            log: LogLevel::All,
            ..Default::default()
        }
    }

    fn q(name: &str) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    /// The broker on real loopback sockets: UDP and TCP DNS, answered by one map.
    #[test]
    fn dns_over_udp_and_tcp_on_real_sockets() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (ua, ta) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        let broker = Broker::new(rules(), SystemUpstream);
        let map = broker.relay.map.clone();
        std::thread::spawn(move || {
            run_blocking(
                &broker,
                BrokerSockets {
                    dns_udp: vec![udp],
                    dns_tcp: vec![tcp],
                    capture: vec![],
                    proxy: vec![],
                },
            )
            .ok();
        });

        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(&q("api.example.com."), ua).unwrap();
        let mut buf = [0u8; 512];
        let n = c.recv(&mut buf).unwrap();
        let m = Message::from_vec(&buf[..n]).unwrap();
        let RData::A(a) = m.answers[0].data else {
            panic!("{m:?}")
        };
        assert_eq!(map.lock().unwrap().name_of(a.0), Some("api.example.com"));

        c.send_to(&q("exfil.attacker.example."), ua).unwrap();
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(
            Message::from_vec(&buf[..n]).unwrap().metadata.response_code,
            ResponseCode::NXDomain
        );

        let mut t = std::net::TcpStream::connect(ta).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for name in ["api.example.com.", "other.example."] {
            let p = q(name);
            t.write_all(&(p.len() as u16).to_be_bytes()).unwrap();
            t.write_all(&p).unwrap();
            let mut len = [0u8; 2];
            t.read_exact(&mut len).unwrap();
            let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
            t.read_exact(&mut body).unwrap();
            let m = Message::from_vec(&body).unwrap();
            if name.starts_with("api") {
                // Same address over TCP as over UDP: one map.
                assert_eq!(m.answers[0].data, RData::A(a));
            } else {
                assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
            }
        }
    }

    /// Refused queries are logged at WARN with the name, type, rcode and why; answers
    /// only under `log = "all"`.
    #[test]
    fn dns_decisions_are_logged() {
        use crate::egress::dns::{DnsDecision, DnsVerdict};
        let peer: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let answered = DnsDecision {
            name: "api.example.com".into(),
            qtype: "A".into(),
            verdict: DnsVerdict::Answered("198.18.0.1".parse().unwrap()),
        };
        let refused = DnsDecision {
            name: "c2VjcmV0.attacker.example".into(),
            qtype: "TXT".into(),
            verdict: DnsVerdict::Refused {
                rcode: "NXDOMAIN",
                why: "name not in egress.domains".into(),
            },
        };
        let lines = crate::egress::relay::tests::captured_json(|| {
            log_dns(&answered, peer, "udp", LogLevel::All);
            log_dns(&refused, peer, "udp", LogLevel::All);
            log_dns(&answered, peer, "udp", LogLevel::Refused);
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["verdict"], "answered");
        assert_eq!(lines[0]["synthetic"], "198.18.0.1");
        assert_eq!(lines[1]["event"], "egress-dns");
        assert_eq!(lines[1]["verdict"], "refused");
        assert_eq!(lines[1]["name"], "c2VjcmV0.attacker.example");
        assert_eq!(lines[1]["qtype"], "TXT");
        assert_eq!(lines[1]["rcode"], "NXDOMAIN");
        assert_eq!(lines[1]["level"], "WARN");
    }
}
