//! Landlock network and scope rows: TCP bind/connect, UDP, unix sockets, signals.

use super::*;

pub(super) fn network(inp: &Inputs<'_>) -> Vec<Check> {
    let fx = inp.fx;
    vec![
        Check::new(
            "tcp-connect-unlisted",
            Kind::Enforcement,
            "landlock-net",
            format!(
                "TCP connect 127.0.0.1:{} (verify's listener, not in network.connect)",
                fx.unlisted_connect_port
            ),
            Action::TcpConnect,
            vec!["127.0.0.1".into(), fx.unlisted_connect_port.to_string()],
            Expect::Denied,
        ),
        Check::new(
            "tcp-bind-unlisted",
            Kind::Enforcement,
            "landlock-net",
            format!(
                "TCP bind 127.0.0.1:{} (not in network.bind)",
                fx.unlisted_bind_port
            ),
            Action::TcpBind,
            vec!["127.0.0.1".into(), fx.unlisted_bind_port.to_string()],
            Expect::Denied,
        ),
    ]
}

pub(super) fn scopes(inp: &Inputs<'_>) -> Vec<Check> {
    let fx = inp.fx;
    use landlock::Scope;
    // socket(AF_UNIX) is refused by seccomp unless network.unix; then the scope decides.
    let abstract_outside = !inp.landlock.scoped(Scope::AbstractUnixSocket);
    let (abs_expect, abs_layer) = match (inp.lines.unix.is_some(), abstract_outside) {
        (false, _) => (Expect::Denied, "seccomp"),
        (true, false) => (Expect::Denied, "landlock-scope"),
        (true, true) => (Expect::Allowed, "landlock-scope"),
    };
    let mut v = vec![Check::new(
        "abstract-unix",
        Kind::Enforcement,
        abs_layer,
        format!(
            "connect to verify's abstract unix socket @{}",
            fx.abstract_name
        ),
        Action::AbstractConnect,
        vec![fx.abstract_name.clone()],
        abs_expect,
    )];
    if let Some(pid) = fx.outside_pid {
        v.push(Check::new(
            "signal-outside",
            Kind::Enforcement,
            "landlock-scope",
            format!("SIGCONT to pid {pid} (same uid, outside the sandbox)"),
            Action::Kill,
            vec![pid.to_string(), libc::SIGCONT.to_string()],
            if !inp.landlock.scoped(Scope::Signal) {
                Expect::Allowed
            } else {
                Expect::Denied
            },
        ));
    }
    v
}
