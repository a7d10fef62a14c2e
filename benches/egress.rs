//! Egress broker cost, in one run (issue 13 "Performance"): throughput of a 1 GiB
//! transfer direct, through the broker's relay, and through a minimal C splice(2) relay
//! (the floor; compiled by scripts/bench-egress.sh and passed as argv[1]); added latency
//! of a new connection; DNS answer latency; 1,000 concurrent relayed connections held;
//! namespace setup cost (root only). Loopback only.
//!
//! The relay is the production code path (`Relay::handle`): the destination is a
//! `host_services` endpoint, so no lookup is involved, and the broker dials the sink on
//! 127.0.0.1 exactly as it would a host service.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawjail::egress::broker::{run_blocking, Broker, BrokerSockets};
use clawjail::egress::relay::{Relay, SystemUpstream, Upstream};
use clawjail::egress::{DomainPattern, EgressRules, LogLevel};

const GIB: u64 = 1 << 30;
const CHUNK: usize = 1 << 20;
const ROUNDS: usize = 3;
const LATENCY_CONNS: usize = 1000;
const CONCURRENT: usize = 1000;

fn fail(m: &str) -> ! {
    eprintln!("bench-egress: {m}");
    std::process::exit(1)
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| fail(&format!("{what}: {e}")))
}

/// Reads to EOF, then answers the byte count (8 bytes, big-endian).
fn sink() -> SocketAddr {
    let l = ok(TcpListener::bind("127.0.0.1:0"), "bind sink");
    let a = ok(l.local_addr(), "sink addr");
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; CHUNK];
                let mut n = 0u64;
                while let Ok(k) = s.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    n += k as u64;
                }
                s.write_all(&n.to_be_bytes()).ok();
            });
        }
    });
    a
}

/// Echoes what it reads until EOF.
fn echo() -> SocketAddr {
    let l = ok(TcpListener::bind("127.0.0.1:0"), "bind echo");
    let a = ok(l.local_addr(), "echo addr");
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut b = vec![0u8; 64 * 1024];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 || s.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    a
}

/// A listener whose connections the broker's relay handles as if the target had dialed
/// `dst` (a host service).
fn broker_front(dst: SocketAddr, rules: EgressRules) -> SocketAddr {
    let l = ok(TcpListener::bind("127.0.0.1:0"), "bind front");
    let a = ok(l.local_addr(), "front addr");
    std::thread::spawn(move || {
        let rt = ok(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            "runtime",
        );
        rt.block_on(async move {
            let relay = Arc::new(Relay {
                rules: Arc::new(rules),
                map: Arc::default(),
                upstream: SystemUpstream,
                slots: Arc::new(tokio::sync::Semaphore::new(8192)),
            });
            ok(l.set_nonblocking(true), "nonblocking");
            let l = ok(tokio::net::TcpListener::from_std(l), "from_std");
            while let Ok((s, _)) = l.accept().await {
                s.set_nodelay(true).ok();
                let relay = relay.clone();
                tokio::spawn(async move {
                    let d = relay.handle(s, dst).await;
                    if d.verdict.is_err() {
                        eprintln!("bench-egress: relay refused: {:?}", d.verdict);
                    }
                });
            }
        });
    });
    a
}

/// The broker's way out for the inspected path: the name resolves to a public address
/// (checked as global like any answer) and the connect goes to the local sink or echo.
struct Pinned(SocketAddr);

impl Upstream for Pinned {
    async fn lookup(&self, _name: &str, _port: u16) -> std::io::Result<Vec<std::net::IpAddr>> {
        Ok(vec![std::net::IpAddr::from([93, 184, 216, 34])])
    }
    async fn connect(&self, _addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
        tokio::net::TcpStream::connect(self.0).await
    }
}

/// A listener whose connections the relay handles as if the target had dialed
/// api.example.com's synthetic address on 443: the full name path, TLS SNI inspection
/// included (the client must open with a ClientHello naming api.example.com).
fn broker_front_named(to: SocketAddr) -> SocketAddr {
    let l = ok(TcpListener::bind("127.0.0.1:0"), "bind front");
    let a = ok(l.local_addr(), "front addr");
    std::thread::spawn(move || {
        let rt = ok(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            "runtime",
        );
        rt.block_on(async move {
            let mut map = clawjail::egress::dns::SyntheticMap::default();
            let syn = map
                .assign("api.example.com")
                .unwrap_or_else(|| fail("synthetic map"));
            let relay = Arc::new(Relay {
                rules: Arc::new(rules_for(&[])),
                map: Arc::new(std::sync::Mutex::new(map)),
                upstream: Pinned(to),
                slots: Arc::new(tokio::sync::Semaphore::new(8192)),
            });
            let dst = SocketAddr::new(syn.into(), 443);
            ok(l.set_nonblocking(true), "nonblocking");
            let l = ok(tokio::net::TcpListener::from_std(l), "from_std");
            while let Ok((s, _)) = l.accept().await {
                s.set_nodelay(true).ok();
                let relay = relay.clone();
                tokio::spawn(async move {
                    let d = relay.handle(s, dst).await;
                    if d.verdict.is_err() {
                        eprintln!("bench-egress: relay refused: {:?}", d.verdict);
                    }
                });
            }
        });
    });
    a
}

/// A TLS 1.3-shaped ClientHello naming api.example.com (RFC 8446 §4.1.2), padded to
/// about the size a browser sends (~1.8 KiB with a post-quantum key share).
fn client_hello() -> Vec<u8> {
    let name = b"api.example.com";
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name);
    ext.extend_from_slice(&[0, 43, 0, 3, 2, 3, 4]);
    // padding (RFC 7685) standing for the key shares a real hello carries
    ext.extend_from_slice(&[0, 21]);
    ext.extend_from_slice(&1600u16.to_be_bytes());
    ext.extend_from_slice(&[0u8; 1600]);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn rules_for(services: &[SocketAddr]) -> EgressRules {
    EgressRules {
        domains: vec![ok(DomainPattern::parse("api.example.com"), "domain")],
        ports: [443].into_iter().collect(),
        ips: vec![],
        host_services: services.to_vec(),
        log: LogLevel::Refused,
        ..Default::default()
    }
}

/// Send `prefix` then 1 GiB, wait for the sink's count; Gbit/s.
fn transfer(to: SocketAddr, prefix: &[u8]) -> f64 {
    let buf = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut s = ok(TcpStream::connect(to), "connect");
    ok(s.write_all(prefix), "write prefix");
    let mut sent = 0u64;
    while sent < GIB {
        ok(s.write_all(&buf), "write");
        sent += CHUNK as u64;
    }
    ok(s.shutdown(std::net::Shutdown::Write), "shutdown");
    let mut n = [0u8; 8];
    ok(s.read_exact(&mut n), "read count");
    let secs = start.elapsed().as_secs_f64();
    let want = GIB + prefix.len() as u64;
    if u64::from_be_bytes(n) != want {
        fail(&format!(
            "sink got {} bytes, sent {want}",
            u64::from_be_bytes(n)
        ));
    }
    (GIB * 8) as f64 / secs / 1e9
}

fn best_of(to: SocketAddr, prefix: &[u8]) -> (f64, Vec<f64>) {
    let runs: Vec<f64> = (0..ROUNDS).map(|_| transfer(to, prefix)).collect();
    let best = runs.iter().copied().fold(0.0, f64::max);
    (best, runs)
}

/// Median microseconds of connect + `prefix` and 1 byte sent + all echoed back + close.
fn connect_latency(to: SocketAddr, prefix: &[u8]) -> f64 {
    let mut t = Vec::with_capacity(LATENCY_CONNS);
    let mut msg = prefix.to_vec();
    msg.push(b'x');
    let mut b = vec![0u8; msg.len()];
    for _ in 0..LATENCY_CONNS {
        let start = Instant::now();
        let mut s = ok(TcpStream::connect(to), "connect");
        s.set_nodelay(true).ok();
        ok(s.write_all(&msg), "write");
        ok(s.read_exact(&mut b), "read");
        t.push(start.elapsed().as_secs_f64() * 1e6);
    }
    median(&mut t)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Median microseconds of one A query answered by the broker's DNS over UDP.
fn dns_latency() -> f64 {
    let udp = ok(UdpSocket::bind("127.0.0.1:0"), "bind dns");
    let at = ok(udp.local_addr(), "dns addr");
    let b = Broker::new(rules_for(&[]), SystemUpstream);
    std::thread::spawn(move || {
        run_blocking(
            &b,
            BrokerSockets {
                dns_udp: vec![udp],
                ..BrokerSockets::default()
            },
        )
        .ok();
    });
    // A query for api.example.com, type A, class IN, RD set.
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["api", "example", "com"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let c = ok(UdpSocket::bind("127.0.0.1:0"), "client");
    ok(c.set_read_timeout(Some(Duration::from_secs(2))), "timeout");
    let mut buf = [0u8; 512];
    let mut t = Vec::new();
    for _ in 0..10_000 {
        let start = Instant::now();
        ok(c.send_to(&q, at), "send");
        ok(c.recv(&mut buf), "recv");
        t.push(start.elapsed().as_secs_f64() * 1e6);
    }
    median(&mut t)
}

/// Open CONCURRENT connections through the relay, then round-trip a byte on each.
fn concurrent(front: SocketAddr) -> usize {
    let mut conns = Vec::with_capacity(CONCURRENT);
    for _ in 0..CONCURRENT {
        match TcpStream::connect(front) {
            Ok(s) => conns.push(s),
            Err(e) => fail(&format!("connection {} failed: {e}", conns.len())),
        }
    }
    let mut alive = 0;
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut b = [0u8; 1];
        if s.write_all(b"y").is_ok() && s.read_exact(&mut b).is_ok() {
            alive += 1;
        }
    }
    alive
}

/// Microseconds to make the target's namespace: unshare, lo up + AnyIP, sockets.
fn netns_setup() -> Option<f64> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let mut t = Vec::new();
    for _ in 0..20 {
        let h = std::thread::spawn(|| {
            let start = Instant::now();
            clawjail::egress::netns::unshare_net().ok()?;
            clawjail::egress::netns::set_up_loopback().ok()?;
            let s = clawjail::egress::netns::make_broker_sockets(&[443]).ok()?;
            let us = start.elapsed().as_secs_f64() * 1e6;
            drop(s);
            Some(us)
        });
        t.push(h.join().ok()??);
    }
    Some(median(&mut t))
}

fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).ok();
    }
}

fn splice_relay(bin: &str, to: SocketAddr) -> (Child, SocketAddr) {
    // Let the kernel pick the port: bind here, find it, then hand the number over.
    let probe = ok(TcpListener::bind("127.0.0.1:0"), "port");
    let port = ok(probe.local_addr(), "port").port();
    drop(probe);
    let mut child = ok(
        Command::new(bin)
            .arg(port.to_string())
            .arg(to.port().to_string())
            .spawn(),
        "spawn splice relay",
    );
    let at: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..200 {
        if TcpStream::connect(at).is_ok() {
            return (child, at);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().ok();
    child.wait().ok();
    fail("splice relay did not start")
}

fn main() {
    // `cargo bench` passes --bench; the splice relay binary comes as the first other arg.
    let splice_bin = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let ns = netns_setup();
    raise_nofile();
    let sink_at = sink();
    let echo_at = echo();
    let rules = rules_for(&[sink_at, echo_at]);
    let via_broker = broker_front(sink_at, rules.clone());
    let via_broker_echo = broker_front(echo_at, rules);

    println!(
        "egress broker bench (loopback, {} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let hello = client_hello();
    let named = broker_front_named(sink_at);
    let named_echo = broker_front_named(echo_at);
    let (direct, dr) = best_of(sink_at, &[]);
    let (broker, br) = best_of(via_broker, &[]);
    let (inspected, ir) = best_of(named, &hello);
    println!("1 GiB transfer, best of {ROUNDS} (Gbit/s):");
    println!("  direct         {direct:6.2}   runs {dr:.2?}");
    println!(
        "  broker relay   {broker:6.2}   runs {br:.2?}   {:.2}x direct",
        broker / direct
    );
    println!(
        "  broker, name + SNI inspected {inspected:6.2}   runs {ir:.2?}   {:.2}x direct",
        inspected / direct
    );
    if let Some(bin) = &splice_bin {
        let (mut child, at) = splice_relay(bin, sink_at);
        let (splice, sr) = best_of(at, &[]);
        child.kill().ok();
        child.wait().ok();
        println!(
            "  C splice relay {splice:6.2}   runs {sr:.2?}   {:.2}x direct",
            splice / direct
        );
        println!(
            "  broker / C splice relay: {:.2}x, inspected / C splice relay: {:.2}x (goal >= 0.9)",
            broker / splice,
            inspected / splice
        );
    } else {
        println!("  C splice relay: not run (pass its binary; scripts/bench-egress.sh builds it)");
    }
    let ld = connect_latency(echo_at, &[]);
    let lb = connect_latency(via_broker_echo, &[]);
    println!(
        "new connection + 1-byte round trip, median of {LATENCY_CONNS}: direct {ld:.0} us, broker {lb:.0} us, added {:.0} us (goal <= 200)",
        lb - ld
    );
    let hd = connect_latency(echo_at, &hello);
    let hi = connect_latency(named_echo, &hello);
    println!(
        "new connection + ClientHello ({} bytes) + 1 byte echoed, median of {LATENCY_CONNS}: direct {hd:.0} us, broker with name lookup + SNI check {hi:.0} us, added {:.0} us (goal <= 200)",
        hello.len(),
        hi - hd
    );
    println!(
        "DNS answer (UDP, A, allowlisted name), median of 10000: {:.0} us",
        dns_latency()
    );
    let alive = concurrent(via_broker_echo);
    println!("{CONCURRENT} concurrent relayed connections held: {alive} answered");
    match ns {
        Some(us) => println!("namespace setup (unshare + lo up + AnyIP v4/v6 + DNS and one capture socket), median of 20: {us:.0} us"),
        None => println!("namespace setup: not measured (needs root)"),
    }
}
