//! Probe actions on sockets: TCP bind/connect, unix sockets, signals to outside. (Landlock net, scopes.)

use super::Outcome;

pub fn run(action: &str, _args: &[String]) -> Option<Outcome> {
    let _ = action;
    None::<Outcome>
}
