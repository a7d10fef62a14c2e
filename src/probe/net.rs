//! Probe actions on sockets: TCP bind/connect, unix sockets, signals to outside. (Landlock net, scopes.)

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};

use super::{arg, Outcome};

pub fn run(action: &str, args: &[String]) -> Option<Outcome> {
    Some(match action {
        // connect(2) to 127.0.0.1:PORT.
        "tcp-connect" => match arg::<u16>(args, 0) {
            Ok(p) => Outcome::from_io(TcpStream::connect((Ipv4Addr::LOCALHOST, p)), |_| {
                String::new()
            }),
            Err(o) => o,
        },
        // bind(2) (+ listen) on 127.0.0.1:PORT.
        "tcp-bind" => match arg::<u16>(args, 0) {
            Ok(p) => Outcome::from_io(TcpListener::bind((Ipv4Addr::LOCALHOST, p)), |l| {
                l.local_addr()
                    .map(|a| a.port().to_string())
                    .unwrap_or_default()
            }),
            Err(o) => o,
        },
        // connect(2) to the abstract unix socket "\0NAME".
        "abstract-connect" => match args.first() {
            Some(name) => Outcome::from_io(
                SocketAddr::from_abstract_name(name.as_bytes())
                    .and_then(|a| UnixStream::connect_addr(&a)),
                |_| String::new(),
            ),
            None => Outcome::Broken("name".into()),
        },
        // kill(PID, SIG).
        "kill" => match (arg::<i32>(args, 0), arg::<i32>(args, 1)) {
            (Ok(pid), Ok(sig)) => {
                let r = nix::sys::signal::Signal::try_from(sig)
                    .and_then(|s| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s));
                Outcome::from_nix(r, |_| String::new())
            }
            (Err(o), _) | (_, Err(o)) => o,
        },
        _ => return None,
    })
}
