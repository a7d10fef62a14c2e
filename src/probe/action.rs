//! Every probe action, one enum shared by the probe binary, `verify` and the families'
//! dispatch: a misspelled action does not compile (it used to show up as INCONCLUSIVE
//! "probe action missing"). The names are the command-line spelling
//! (`clawjail-probe ACTION`, `clawjail __verify-exec ACTION`).

macro_rules! actions {
    ($($variant:ident => $name:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $($variant,)*
        }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The command-line spelling.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }

            /// The action a command line names, if any.
            pub fn from_name(name: &str) -> Option<Action> {
                match name {
                    $($name => Some(Action::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

actions! {
    Status => "status",
    Fds => "fds",
    EnvNames => "env-names",
    EnvGet => "env-get",
    Setuid0 => "setuid0",
    Setgid0 => "setgid0",
    Sid => "sid",
    ReadFd => "read-fd",
    Sleep => "sleep",
    Exit => "exit",
    KillSelf => "kill-self",
    Touch => "touch",
    Orphan => "orphan",
    Rlimit => "rlimit",
    Umask => "umask",
    Cwd => "cwd",
    Read => "read",
    SymlinkRead => "symlink-read",
    Write => "write",
    Create => "create",
    CreateFresh => "create-fresh",
    Mkdir => "mkdir",
    List => "list",
    Rename => "rename",
    Unlink => "unlink",
    Rmdir => "rmdir",
    Hardlink => "hardlink",
    Symlink => "symlink",
    MemfdExec => "memfd-exec",
    Exec => "exec",
    TcpConnect => "tcp-connect",
    TcpBind => "tcp-bind",
    UdpSend => "udp-send",
    UnixConnect => "unix-connect",
    AbstractConnect => "abstract-connect",
    Kill => "kill",
    NetnsCapture => "netns-capture",
    TlsHello => "tls-hello",
    BrokerFdLimit => "broker-fd-limit",
    UnshareUserns => "unshare-userns",
    CloneUserns => "clone-userns",
    CloneUsernsHigh => "clone-userns-high",
    Clone3 => "clone3",
    ForkAndThreads => "fork-and-threads",
    Tiocsti => "tiocsti",
    IoUringSetup => "io-uring-setup",
    PtraceParent => "ptrace-parent",
    PtraceAttach => "ptrace-attach",
    BpfMapCreate => "bpf-map-create",
    PerfEventOpen => "perf-event-open",
    Keyctl => "keyctl",
    AddKey => "add-key",
    Userfaultfd => "userfaultfd",
    MountTmpfs => "mount-tmpfs",
    Mount => "mount",
    NameToHandleAt => "name-to-handle-at",
    OpenByHandleAt => "open-by-handle-at",
    PersonalityRie => "personality-rie",
    Socket => "socket",
    Socketpair => "socketpair",
    SendtoFastopen => "sendto-fastopen",
    Int80Getpid => "int80-getpid",
    X32Getpid => "x32-getpid",
    Chmod => "chmod",
    Fchmodat2Opath => "fchmodat2-opath",
    ChmodProcfd => "chmod-procfd",
    Fchmod => "fchmod",
    Chown => "chown",
    Setxattr => "setxattr",
    Utimes => "utimes",
    Inotify => "inotify",
    Prlimit => "prlimit",
    PrlimitParent => "prlimit-parent",
    Renice => "renice",
    ReniceParent => "renice-parent",
    KillParent => "kill-parent",
    PrioUser => "prio-user",
    ReniceUser => "renice-user",
    SchedSetaffinity => "sched-setaffinity",
    SchedSetparam => "sched-setparam",
    SchedSetscheduler => "sched-setscheduler",
    SchedSetattr => "sched-setattr",
    Ioprio => "ioprio",
    GetRobustList => "get-robust-list",
    ShmHold => "shm-hold",
    ShmAttach => "shm-attach",
    ShmSelf => "shm-self",
    MqOpen => "mq-open",
    MqUnlink => "mq-unlink",
    MqHold => "mq-hold",
    TtyInfo => "tty-info",
    TtySteal => "tty-steal",
    AnnounceSleep => "announce-sleep",
    Ticks => "ticks",
    WinsizeWait => "winsize-wait",
    TtyReach => "tty-reach",
    AncestorFd => "ancestor-fd",
    ProcFd => "proc-fd",
    ReadLine => "read-line",
    EgressTcp => "egress-tcp",
    EgressUdp => "egress-udp",
    EgressName => "egress-name",
    EgressSni => "egress-sni",
    EgressControl => "egress-control",
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for &a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(a));
            assert!(seen.insert(a.name()), "{a:?} spelled twice");
        }
        assert_eq!(
            Action::from_name("io-uring-setup"),
            Some(Action::IoUringSetup)
        );
        assert_eq!(Action::from_name("io-uring-set-up"), None);
    }

    /// Every action is a match arm of some family (`probe::run` dispatches on `Action`, so
    /// a family that forgot one would return None: "probe action missing").
    #[test]
    fn every_action_has_a_family() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/probe");
        let mut text = String::new();
        for f in ["core.rs", "fs.rs", "net.rs", "sys.rs", "tty.rs"] {
            text.push_str(&std::fs::read_to_string(dir.join(f)).unwrap());
        }
        for &a in Action::ALL {
            let arm = format!("Action::{a:?}");
            assert!(
                text.contains(&format!("{arm} =>")) || text.contains(&format!("{arm} |")),
                "no family handles {a:?} ({})",
                a.name()
            );
        }
    }
}
