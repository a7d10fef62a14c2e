//! `[egress]` in `verify`: one row per forbidden destination class, attempted through the
//! real thing and never towards the real network.
//!
//! Confined: `clawjail __verify-egress` (below) is `clawjail run` of this policy with
//! `clawjail __verify-exec egress-… ARGS` as the target: the supervisor, the target's
//! network namespace (only `lo`, AnyIP) and the broker are `run`'s own. Inside that
//! namespace every destination lands on the broker's listeners or on nothing, so the
//! attempt never leaves the machine; the broker refuses it before dialing, and its
//! decision log (JSON on stderr) must name the refusal: an errno that the broker did not
//! log is a FAIL (the refusal was not the broker's). A row is only attempted when the
//! broker's own pure decision (`relay::classify`, `rules.name_allowed`) refuses it; a
//! destination this policy allows is never attempted (verify does not dial the world).
//!
//! Control: `clawjail __verify-exec egress-control …`, the same probe in a fresh network
//! namespace of the same shape (only `lo` with AnyIP) where the probe itself listens on
//! the destination (and answers the name): the probe reaches it when nothing is in the
//! way. Nothing leaves there either.
//!
//! What is not attempted: the inbound listeners (`verify` leaves them out so a running
//! gateway's port does not stop it), allowed names (they would need the real upstream),
//! `host_services` (the operator's real service). Issue 14's SNI/Host rows go in
//! `rows()` next to these.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};

use super::row::{self, Evidence, Expect, Got, Kind, Row};
use crate::egress::rules::{DomainPattern, PortKind};
use crate::egress::{dns::SyntheticMap, relay, EgressRules, LogLevel};
use crate::policy::{Loaded, Origin, Source};

/// The internal command `verify` runs each confined attempt through.
pub const INTERNAL: &str = "__verify-egress";

/// Test hook: the confined attempt runs WITHOUT `[egress]` (no namespace, no broker), so a
/// test can show the rows fail when the broker is not in the way. Honoured only in a
/// network namespace other than PID 1's (a test-made one), never on the host's network.
pub const TEST_NO_BROKER: &str = "CLAWJAIL_VERIFY_TEST_NO_BROKER";

/// The report line for a policy with `[egress]`, or `None` without it.
pub fn note(loaded: &Loaded) -> Option<String> {
    loaded.egress.as_ref().map(|_| {
        "egress: the egress-* rows run each attempt through `clawjail run` of this policy (supervisor, network namespace and broker; the inbound listeners left out), so nothing leaves the machine; their controls run the same probe in a fresh namespace of the same shape where verify listens on the destination. The other rows run without the namespace, with `run`'s Landlock connect rule (the capture ports and 53). Allowed names and host_services are not attempted (they would dial real hosts); the SNI-mismatch row names an allowed name but is refused on its first bytes, before any lookup or dial".to_string()
    })
}

/// How a row's refusal shows in the broker's decision log.
enum Decision {
    Connect(SocketAddr),
    Dns(String),
    /// A connection bound to an allowed name, refused for its first bytes (TLS SNI).
    Sni(String),
    /// No broker listener for it: the namespace's kernel refuses (said in the note).
    None(&'static str),
}

struct EgressRow {
    id: &'static str,
    attempt: String,
    /// Probe action and arguments, confined.
    action: Vec<String>,
    /// egress-control arguments.
    control: Vec<String>,
    decision: Decision,
}

fn tcp_row(id: &'static str, what: &str, dst: SocketAddr, rules: &EgressRules) -> EgressRow {
    let decision = if rules.capture_ports().contains(&dst.port()) {
        Decision::Connect(dst)
    } else {
        Decision::None("no capture listener on this port: Landlock's connect rule and the empty namespace refuse it")
    };
    EgressRow {
        id,
        attempt: format!("TCP connect {dst} ({what})"),
        action: vec![
            "egress-tcp".into(),
            dst.ip().to_string(),
            dst.port().to_string(),
        ],
        control: vec!["tcp".into(), dst.ip().to_string(), dst.port().to_string()],
        decision,
    }
}

/// A global literal the policy's `ips` does not list (the broker refuses it unless listed).
fn public_literal(rules: &EgressRules, port: u16) -> Option<SocketAddr> {
    ["1.1.1.1", "9.9.9.9", "8.8.8.8", "2606:4700:4700::1111"]
        .iter()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .map(|a| SocketAddr::new(a, port))
        .find(|d| relay::classify(rules, &SyntheticMap::default(), *d).is_err())
}

/// The rows, derived from the rules; a destination the broker would dial is left out.
fn derive(rules: &EgressRules) -> Vec<EgressRow> {
    let port = rules.ports.iter().next().copied().unwrap_or(443);
    let v4 = |a: [u8; 4], p: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), p);
    let mut v = vec![
        tcp_row(
            "egress-metadata-443",
            "cloud metadata",
            v4([169, 254, 169, 254], 443),
            rules,
        ),
        tcp_row(
            "egress-metadata-80",
            "cloud metadata",
            v4([169, 254, 169, 254], 80),
            rules,
        ),
        tcp_row(
            "egress-rfc1918-10",
            "10.0.0.0/8",
            v4([10, 0, 0, 1], port),
            rules,
        ),
        tcp_row(
            "egress-rfc1918-192",
            "192.168.0.0/16",
            v4([192, 168, 1, 1], port),
            rules,
        ),
        tcp_row(
            "egress-ula",
            "IPv6 ULA fc00::/7",
            SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)), port),
            rules,
        ),
        tcp_row(
            "egress-loopback",
            "a loopback service on an allowed port: 127.0.0.1 inside is not the host's",
            v4([127, 0, 0, 1], port),
            rules,
        ),
    ];
    if let Some(d) = public_literal(rules, port) {
        v.push(tcp_row(
            "egress-public-literal",
            "a public IP literal, no DNS, not in egress.ips",
            d,
            rules,
        ));
    }
    v.retain(|r| match r.decision {
        Decision::Connect(d) => relay::classify(rules, &SyntheticMap::default(), d).is_err(),
        _ => true,
    });
    let exfil = "c2VjcmV0LXRva2Vu.exfil.clawjail-verify.invalid";
    if !rules.name_allowed(exfil) {
        v.push(EgressRow {
            id: "egress-dns-exfil",
            attempt: format!(
                "UDP DNS query for {exfil} (data in the name) to 8.8.8.8:53, a foreign resolver"
            ),
            action: vec![
                "egress-udp".into(),
                "8.8.8.8".into(),
                "53".into(),
                exfil.into(),
            ],
            control: vec!["udp".into(), "8.8.8.8".into(), "53".into(), exfil.into()],
            decision: Decision::Dns(exfil.into()),
        });
    }
    let unlisted = "unlisted.clawjail-verify.invalid";
    if !rules.name_allowed(unlisted) {
        v.push(EgressRow {
            id: "egress-unlisted-name",
            attempt: format!(
                "look up {unlisted} (not in egress.domains) and connect to it on {port}"
            ),
            action: vec!["egress-name".into(), unlisted.into(), port.to_string()],
            control: vec![
                "name".into(),
                "192.0.2.10".into(),
                port.to_string(),
                unlisted.into(),
            ],
            decision: Decision::Dns(unlisted.into()),
        });
    }
    if let Some(row) = sni_row(rules) {
        v.push(row);
    }
    v.push(EgressRow {
        id: "egress-quic",
        attempt: "UDP datagram to 1.1.1.1:443 (QUIC's first flight)".into(),
        action: vec!["egress-udp".into(), "1.1.1.1".into(), "443".into(), "quic.clawjail-verify.invalid".into()],
        control: vec!["udp".into(), "1.1.1.1".into(), "443".into(), "quic.clawjail-verify.invalid".into()],
        decision: Decision::None("only UDP 53 is captured in the namespace: the kernel answers port unreachable; nothing reaches the broker or leaves"),
    });
    v
}

/// Domain fronting: an allowed name (the first exact entry of `domains`) looked up through
/// the broker, then a TLS ClientHello naming another host. The broker checks the SNI before
/// it looks the name up or dials anything (docs/egress.md "Names bound to the bytes"), so
/// nothing leaves. None when no exact name is allowed on a `tls` port.
fn sni_row(rules: &EgressRules) -> Option<EgressRow> {
    let port = rules
        .ports
        .iter()
        .copied()
        .find(|p| rules.port_kind(*p) == PortKind::Tls)?;
    let name = rules.domains.iter().find_map(|d| match d {
        DomainPattern::Exact(n) => Some(n.clone()),
        DomainPattern::Subdomains(_) => None,
    })?;
    let front = "fronted.clawjail-verify.invalid";
    Some(EgressRow {
        id: "egress-sni-mismatch",
        attempt: format!(
            "look up {name} (allowed) and open TLS to it on {port} with SNI {front} (domain fronting)"
        ),
        action: vec![
            "egress-sni".into(),
            name.clone(),
            port.to_string(),
            front.into(),
        ],
        control: vec![
            "sni".into(),
            "192.0.2.10".into(),
            port.to_string(),
            name.clone(),
            front.into(),
        ],
        decision: Decision::Sni(name),
    })
}

/// The last JSON `Got` line of a probe's stdout.
fn parse_got(stdout: &str) -> Option<Got> {
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Got>(l).ok())
}

/// Did the broker log a refusal for this row?
fn broker_refused(stderr: &str, d: &Decision) -> bool {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|j| {
            let s = |k: &str| j.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            if s("verdict") != "refused" {
                return false;
            }
            match d {
                Decision::Connect(dst) => {
                    let logged = s("dst");
                    s("event") == "egress-connect"
                        && logged
                            .parse::<SocketAddr>()
                            .map(|l| SocketAddr::new(relay_unmap(l.ip()), l.port()) == *dst)
                            .unwrap_or(false)
                }
                Decision::Sni(name) => {
                    s("event") == "egress-connect"
                        && s("name") == *name
                        && s("why").starts_with("TLS SNI")
                }
                Decision::Dns(name) => {
                    s("event") == "egress-dns" && s("name").trim_end_matches('.') == name
                }
                Decision::None(_) => false,
            }
        })
}

fn relay_unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The confined attempt: `clawjail __verify-egress` with the policy text on stdin.
fn confined(
    exe: &Path,
    loaded: &Loaded,
    vars: &[(String, String)],
    action: &[String],
) -> (Got, String) {
    let mut cmd = Command::new(exe);
    cmd.arg(INTERNAL).arg(loaded.source.origin.display_name());
    for (k, v) in vars {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg("--").args(action);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                Got::Broken {
                    why: format!("spawn {}: {e}", exe.display()),
                },
                String::new(),
            )
        }
    };
    if let Some(mut i) = child.stdin.take() {
        // A failed write shows as `run` refusing the (empty) policy: NotConfined, a FAIL.
        i.write_all(loaded.source.text.as_bytes()).ok();
    }
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => {
            return (
                Got::Broken {
                    why: format!("wait: {e}"),
                },
                String::new(),
            )
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    match parse_got(&stdout) {
        Some(g) => (g, stderr),
        None => {
            let last = stderr.lines().last().unwrap_or("").to_string();
            (
                Got::NotConfined {
                    why: format!("`run` exited {:?}: {last}", out.status.code()),
                },
                stderr,
            )
        }
    }
}

fn control(exe: &Path, args: &[String]) -> Got {
    let out = Command::new(exe)
        .arg("__verify-exec")
        .arg("egress-control")
        .args(args)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) => parse_got(&String::from_utf8_lossy(&o.stdout)).unwrap_or(Got::Broken {
            why: "no answer from the control".into(),
        }),
        Err(e) => Got::Broken { why: e.to_string() },
    }
}

/// The egress rows for the plan's `[egress]` rules, each attempted confined (through
/// `run` of `loaded`) and in its control.
pub fn rows(
    loaded: &Loaded,
    rules: Option<&EgressRules>,
    vars: &[(String, String)],
    exe: &Path,
) -> Vec<Row> {
    let Some(rules) = rules else {
        return Vec::new();
    };
    derive(rules)
        .into_iter()
        .map(|r| {
            let (mut got, stderr) = confined(exe, loaded, vars, &r.action);
            if got.is_denied() {
                if let Decision::Connect(_) | Decision::Dns(_) = r.decision {
                    if !broker_refused(&stderr, &r.decision) {
                        got = Got::Ok {
                            detail: format!(
                                "{} but the broker logged no refusal for it: not the broker's doing",
                                got.describe()
                            ),
                        };
                    }
                }
            }
            let control = control(exe, &r.control);
            let ev = Evidence {
                kind: Kind::Enforcement,
                expect: &Expect::Denied,
                layer: "egress",
                confined: &got,
                control: Some(&control),
                policy_allows: None,
                risk: None,
                accepted: false,
                limit_note: None,
            };
            let (status, mut note, gap) = row::decide(&ev);
            match r.decision {
                Decision::None(why) => note = format!("{note}; {why}").trim_start_matches("; ").to_string(),
                _ if status == row::Status::Pass => {
                    note = format!("{note}; the broker logged the refusal").trim_start_matches("; ").to_string()
                }
                _ => {}
            }
            Row {
                id: r.id.to_string(),
                kind: Kind::Enforcement,
                attempt: r.attempt,
                expect: Expect::Denied.describe(),
                got: got.describe(),
                control: Some(control.describe()),
                status,
                layer: "egress",
                note,
                gap,
            }
        })
        .collect()
}

/// In a network namespace other than PID 1's (a test-made one)?
fn in_private_netns() -> bool {
    match (
        std::fs::read_link("/proc/1/ns/net"),
        std::fs::read_link("/proc/self/ns/net"),
    ) {
        (Ok(a), Ok(b)) => a != b,
        _ => false,
    }
}

/// `clawjail __verify-egress POLICY_NAME [NAME=VALUE]... -- ACTION ARGS...` with the policy
/// text on stdin: `run` of that policy without its inbound listeners, decisions logged in
/// full as JSON, with `clawjail __verify-exec ACTION ARGS` as the target.
pub fn internal(args: &[String]) -> i32 {
    match internal_run(args) {
        Ok(code) => code,
        Err(m) => {
            eprintln!("clawjail: {m}");
            125
        }
    }
}

fn internal_run(args: &[String]) -> Result<i32, String> {
    let Some(sep) = args.iter().position(|a| a == "--") else {
        return Err("usage: __verify-egress NAME [VAR=VALUE]... -- ACTION ARGS".into());
    };
    let (head, action) = (&args[..sep], &args[sep + 1..]);
    let name = head.first().cloned().unwrap_or_default();
    let vars: Vec<(String, String)> = head
        .iter()
        .skip(1)
        .filter_map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("policy text on stdin: {e}"))?;
    let mut loaded =
        crate::policy::load(Source::new(Origin::Flag(name), text)).map_err(|e| e.to_string())?;
    if let Some(e) = loaded.policy.egress.as_mut() {
        e.inbound.clear();
    }
    if let Some(r) = loaded.egress.as_mut() {
        r.log = LogLevel::All;
    }
    if std::env::var_os(TEST_NO_BROKER).is_some() {
        if !in_private_netns() {
            return Err(format!(
                "{TEST_NO_BROKER} is honoured only in a test-made network namespace"
            ));
        }
        loaded.policy.egress = None;
        loaded.egress = None;
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut command = vec![exe.into_os_string(), "__verify-exec".into()];
    command.extend(action.iter().map(Into::into));
    // `run --log-format json` on stderr (as `cli::init_logging` sets it up; not called
    // from here, verify stays below cli): the decisions are read back as JSON.
    let json = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::level_filters::LevelFilter::INFO)
        .with_target(false)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .try_init();
    if json.is_err() {
        return Err("cannot set up the JSON decision log".into());
    }
    let opts = crate::plan::PrepareOptions {
        cli_vars: vars,
        command: Some(command),
        init: false,
        apply: true,
        ..Default::default()
    };
    let plan = crate::plan::prepare(&loaded, &opts).map_err(|e| e.to_string())?;
    crate::egress::refuse_run_unless_enforceable(plan.egress.as_ref())?;
    let applied = crate::launch::apply(&plan).map_err(|e| e.to_string())?;
    let e = crate::launch::exec(&plan, &applied);
    Err(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_log_is_matched_by_destination_and_name() {
        let line =
            r#"{"event":"egress-connect","verdict":"refused","dst":"[::ffff:10.0.0.1]:443"}"#;
        let d: SocketAddr = "10.0.0.1:443".parse().unwrap();
        assert!(broker_refused(line, &Decision::Connect(d)));
        let other: SocketAddr = "10.0.0.2:443".parse().unwrap();
        assert!(!broker_refused(line, &Decision::Connect(other)));
        let dns = r#"{"event":"egress-dns","verdict":"refused","name":"a.invalid."}"#;
        assert!(broker_refused(dns, &Decision::Dns("a.invalid".into())));
        assert!(!broker_refused(dns, &Decision::None("x")));
    }
}
