//! Probe actions on sockets: TCP bind/connect, unix sockets, signals to outside. (Landlock net, scopes.)

use super::action::Action;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};

use super::{arg, Outcome};

/// `[HOST] PORT`: one argument is a port on 127.0.0.1; two are a host and a port.
fn host_port(args: &[String]) -> Result<(IpAddr, u16), Outcome> {
    match args.len() {
        1 => Ok((IpAddr::V4(Ipv4Addr::LOCALHOST), arg(args, 0)?)),
        _ => Ok((arg(args, 0)?, arg(args, 1)?)),
    }
}

pub fn run(action: Action, args: &[String]) -> Option<Outcome> {
    Some(match action {
        // connect(2) to [HOST] PORT (default host 127.0.0.1).
        Action::TcpConnect => match host_port(args) {
            Ok(a) => Outcome::from_io(TcpStream::connect(a), |_| String::new()),
            Err(o) => o,
        },
        // bind(2) (+ listen) on [HOST] PORT.
        Action::TcpBind => match host_port(args) {
            Ok(a) => Outcome::from_io(TcpListener::bind(a), |l| {
                l.local_addr()
                    .map(|a| a.port().to_string())
                    .unwrap_or_default()
            }),
            Err(o) => o,
        },
        // sendto(2) of one UDP datagram to HOST PORT (Landlock has no UDP rules).
        Action::UdpSend => match host_port(args) {
            Ok(a) => Outcome::from_io(
                UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).and_then(|u| u.send_to(b"clawjail", a)),
                |n| format!("{n} bytes"),
            ),
            Err(o) => o,
        },
        // socket(AF_UNIX) + connect(2) to a pathname socket (docker.sock, ssh-agent).
        Action::UnixConnect => match args.first() {
            Some(path) => Outcome::from_io(UnixStream::connect(path), |_| String::new()),
            None => Outcome::Broken("path".into()),
        },
        // connect(2) to the abstract unix socket "\0NAME".
        Action::AbstractConnect => match args.first() {
            Some(name) => Outcome::from_io(
                SocketAddr::from_abstract_name(name.as_bytes())
                    .and_then(|a| UnixStream::connect_addr(&a)),
                |_| String::new(),
            ),
            None => Outcome::Broken("name".into()),
        },
        // kill(PID, SIG).
        Action::Kill => match (arg::<i32>(args, 0), arg::<i32>(args, 1)) {
            (Ok(pid), Ok(sig)) => {
                let r = nix::sys::signal::Signal::try_from(sig)
                    .and_then(|s| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s));
                Outcome::from_nix(r, |_| String::new())
            }
            (Err(o), _) | (_, Err(o)) => o,
        },
        // Egress mechanism (issue 13): make the target's namespace as clawjail does
        // (`user`: CLONE_NEWUSER|CLONE_NEWNET with this process's uid/gid; `net`:
        // CLONE_NEWNET), set lo up with AnyIP routes, make the capture listener for PORT,
        // connect to HOST:PORT and report the destination getsockname() gives the accepted
        // socket, then connect to HOST:PORT+1 (no listener). Single-threaded, as unshare
        // of a user namespace requires.
        Action::NetnsCapture => match (
            args.first().map(String::as_str),
            arg::<IpAddr>(args, 1),
            arg::<u16>(args, 2),
        ) {
            (Some(mode @ ("user" | "net")), Ok(host), Ok(port)) => netns_capture(mode, host, port),
            _ => Outcome::Broken("usage: netns-capture user|net HOST PORT".into()),
        },
        // Connect to HOST PORT (a name goes through the resolver, so in the target's
        // namespace it is the broker's synthetic address) and open with a ClientHello
        // naming SNI ("-" for none). `ok accepted` when anything comes back (a
        // ServerHello or an alert: the bytes reached a TLS server), `errno ECONNRESET`
        // when the broker refused the name (docs/egress.md), `ok closed` on a bare EOF.
        Action::TlsHello => match (args.first(), arg::<u16>(args, 1), args.get(2)) {
            (Some(host), Ok(port), Some(sni)) => tls_hello(host, port, sni),
            _ => Outcome::Broken("usage: tls-hello HOST PORT SNI|-".into()),
        },
        // A broker on loopback with RLIMIT_NOFILE set to LIMIT (this process only),
        // relaying to an echo server in the same process; prints `listening PORT PROXY DNS IN`
        // (the capture listener, the CONNECT proxy's, DNS over TCP's, and an inbound
        // forward's on 127.0.0.2:IN to the echo server's 127.0.0.1:IN), serves
        // until stdin closes (`hog`/`free` lines: take every free descriptor and give them
        // back), logs JSON decisions on stderr. The fd-exhaustion test drives it.
        Action::BrokerFdLimit => match arg::<u64>(args, 0) {
            // An optional echo upstream outside this process: one inside shares the fd
            // limit, and its own accept failing would hang a relayed connection instead of
            // the broker refusing it.
            Ok(limit) => broker_fd_limit(limit, arg::<std::net::SocketAddr>(args, 1).ok()),
            Err(o) => o,
        },
        // Egress rows of `verify` (src/probe/egress.rs): HOST PORT.
        Action::EgressTcp => match host_port(args) {
            Ok(a) => super::egress::tcp(a.into()),
            Err(o) => o,
        },
        // HOST PORT NAME: one datagram carrying NAME as a DNS query.
        Action::EgressUdp => match (host_port(&args[..args.len().min(2)]), args.get(2)) {
            (Ok(a), Some(n)) => super::egress::udp(a.into(), n),
            (Err(o), _) => o,
            (_, None) => Outcome::Broken("usage: egress-udp HOST PORT NAME".into()),
        },
        // NAME PORT.
        Action::EgressName => match (args.first(), arg::<u16>(args, 1)) {
            (Some(n), Ok(p)) => super::egress::name(n, p),
            (_, Err(o)) => o,
            (None, _) => Outcome::Broken("usage: egress-name NAME PORT".into()),
        },
        // NAME PORT SNI: look NAME up as egress-name does, connect, open with a TLS
        // ClientHello naming SNI (verify's SNI-mismatch row: domain fronting).
        Action::EgressSni => match (args.first(), arg::<u16>(args, 1), args.get(2)) {
            (Some(n), Ok(p), Some(sni)) => super::egress::sni(n, p, sni),
            (_, Err(o), _) => o,
            _ => Outcome::Broken("usage: egress-sni NAME PORT SNI".into()),
        },
        // tcp|udp|name|sni HOST PORT [NAME [SNI]].
        Action::EgressControl => {
            match (args.first(), arg::<IpAddr>(args, 1), arg::<u16>(args, 2)) {
                (Some(k), Ok(h), Ok(p)) => super::egress::control(
                    k,
                    h,
                    p,
                    args.get(3).map(String::as_str),
                    args.get(4).map(String::as_str),
                ),
                (_, Err(o), _) | (_, _, Err(o)) => o,
                (None, _, _) => Outcome::Broken("usage: egress-control KIND HOST PORT".into()),
            }
        }
        _ => return None,
    })
}

/// The broker's way out for `broker-fd-limit`: every dial goes to one local echo server.
struct Fixed(std::net::SocketAddr);

impl crate::egress::relay::Upstream for Fixed {
    async fn lookup(&self, _: &str, _: u16) -> std::io::Result<Vec<IpAddr>> {
        Ok(vec![self.0.ip()])
    }
    async fn connect(&self, _: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
        tokio::net::TcpStream::connect(self.0).await
    }
}

fn broker_fd_limit(limit: u64, upstream: Option<std::net::SocketAddr>) -> Outcome {
    use crate::egress::{broker, EgressRules};
    use std::io::{Read, Write};
    let sub = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .finish();
    if tracing::subscriber::set_global_default(sub).is_err() {
        return Outcome::Broken("tracing subscriber".into());
    }
    let (echo, capture) = match (
        TcpListener::bind("127.0.0.1:0"),
        TcpListener::bind("127.0.0.1:0"),
    ) {
        (Ok(e), Ok(c)) => (e, c),
        (Err(e), _) | (_, Err(e)) => return Outcome::Broken(e.to_string()),
    };
    let (echo_at, capture_at) = match (echo.local_addr(), capture.local_addr()) {
        (Ok(e), Ok(c)) => (upstream.unwrap_or(e), c),
        (Err(e), _) | (_, Err(e)) => return Outcome::Broken(e.to_string()),
    };
    // The broker's other accept loops, for the EMFILE check: the CONNECT proxy and DNS
    // over TCP.
    let (proxy, dns) = match (
        TcpListener::bind("127.0.0.1:0"),
        TcpListener::bind("127.0.0.1:0"),
    ) {
        (Ok(p), Ok(d)) => (p, d),
        (Err(e), _) | (_, Err(e)) => return Outcome::Broken(e.to_string()),
    };
    let (proxy_port, dns_port) = match (proxy.local_addr(), dns.local_addr()) {
        (Ok(p), Ok(d)) => (p.port(), d.port()),
        (Err(e), _) | (_, Err(e)) => return Outcome::Broken(e.to_string()),
    };
    // And an inbound forward: the "host" listener on 127.0.0.2 at the echo server's port
    // forwards to 127.0.0.1 at that port (the "inside"), through a socket factory on a
    // thread here (this process's namespace stands in for the target's).
    let inbound = match TcpListener::bind((std::net::Ipv4Addr::new(127, 0, 0, 2), echo_at.port())) {
        Ok(l) => l,
        Err(e) => return Outcome::Broken(format!("inbound listener: {e}")),
    };
    let (ours, theirs) = match std::os::unix::net::UnixStream::pair() {
        Ok(p) => p,
        Err(e) => return Outcome::Broken(e.to_string()),
    };
    std::thread::spawn(move || crate::egress::inbound::serve_factory(theirs));
    std::thread::spawn(move || {
        if upstream.is_some() {
            return;
        }
        for s in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut b = [0u8; 512];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 || s.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    // The capture listener's own address is the host service, so every connection is
    // relayed (Fixed sends it to the echo server).
    let rules = EgressRules {
        host_services: vec![capture_at],
        ..Default::default()
    };
    let b = broker::Broker::new(rules, Fixed(echo_at));
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(limit, |(_, h)| h);
    if let Err(e) =
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, limit, hard)
    {
        return Outcome::Errno(e as i32);
    }
    std::thread::spawn(move || {
        let got = crate::egress::wire::Received {
            sockets: broker::BrokerSockets {
                capture: vec![capture],
                proxy: vec![proxy],
                dns_tcp: vec![dns],
                ..Default::default()
            },
            factory: Some(ours),
        };
        let r = crate::egress::wire::serve_all(&b, got, vec![inbound]);
        println!("broker ended: {r:?}");
    });
    println!(
        "listening {} {proxy_port} {dns_port} {}",
        capture_at.port(),
        echo_at.port()
    );
    std::io::stdout().flush().ok();
    hog_on_request();
    Outcome::Ok("stopped".into())
}

/// `broker-fd-limit`'s stdin, one command a line, until EOF: `hog` opens /dev/null until
/// EMFILE (another part of the process taking every descriptor, outside the broker's
/// budget, so the broker's accept itself fails) and prints `hogged N`; `free` closes them
/// and prints `freed`.
fn hog_on_request() {
    use std::io::{BufRead, Write};
    let mut hog: Vec<std::fs::File> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "hog" => {
                while let Ok(f) = std::fs::File::open("/dev/null") {
                    hog.push(f);
                }
                println!("hogged {}", hog.len());
            }
            "free" => {
                hog.clear();
                println!("freed");
            }
            _ => println!("unknown command"),
        }
        std::io::stdout().flush().ok();
    }
}

fn tls_hello(host: &str, port: u16, sni: &str) -> Outcome {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let addr = match (host, port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) => return Outcome::Broken(format!("{host}: no address")),
        Err(e) => return Outcome::from_io::<()>(Err(e), |_| String::new()),
    };
    let timeout = std::time::Duration::from_secs(15);
    let mut s = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return Outcome::from_io::<()>(Err(e), |_| String::new()),
    };
    if let Err(e) = s.set_read_timeout(Some(timeout)) {
        return Outcome::Broken(e.to_string());
    }
    let hello = crate::egress::inspect::client_hello((sni != "-").then_some(sni));
    if let Err(e) = s.write_all(&hello) {
        return Outcome::from_io::<()>(Err(e), |_| String::new());
    }
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => Outcome::Ok("closed".into()),
        // A ServerHello (0x16) or an alert (0x15: this minimal hello offers no key share):
        // either way a TLS server saw the bytes.
        Ok(_) => Outcome::Ok("accepted".into()),
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            Outcome::Ok("no-answer".into())
        }
        Err(e) => Outcome::from_io::<()>(Err(e), |_| String::new()),
    }
}

fn netns_capture(mode: &str, host: IpAddr, port: u16) -> Outcome {
    use crate::egress::netns;
    let entered = if mode == "user" {
        netns::unshare_user_and_net(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    } else {
        netns::unshare_net()
    };
    if let Err(e) = entered {
        return Outcome::from_io::<()>(Err(e.source), |_| String::new());
    }
    let lo = match netns::set_up_loopback() {
        Ok(lo) => lo,
        Err(e) => return Outcome::Broken(e.to_string()),
    };
    let sockets = match netns::make_broker_sockets(&[port]) {
        Ok(s) => s,
        Err(e) => return Outcome::Broken(e.to_string()),
    };
    let Some(listener) = sockets.capture.first() else {
        return Outcome::Broken("no capture listener".into());
    };
    let client = match TcpStream::connect((host, port)) {
        Ok(c) => c,
        Err(e) => return Outcome::Broken(format!("connect {host}:{port}: {e}")),
    };
    let captured = match listener.accept() {
        Ok((s, _)) => s
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|e| e.to_string()),
        Err(e) => return Outcome::Broken(format!("accept: {e}")),
    };
    drop(client);
    let other = match TcpStream::connect((host, port.wrapping_add(1))) {
        Ok(_) => "connected".to_string(),
        Err(e) => e.raw_os_error().map_or(e.to_string(), super::errno_name),
    };
    Outcome::Ok(format!(
        "captured={captured} other_port={other} ipv6={}",
        lo.ipv6
    ))
}
