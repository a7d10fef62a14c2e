//! What will be / was enforced: `check`'s plan rendering and the one launch event.
//!
//! Both are built from the same `Plan`, so `check` shows exactly what `run` applies.
//! Variable values from the environment are never printed, only names.

use serde_json::{json, Value};

use crate::launch::Step;
use crate::plan::{IdentityPlan, Plan};

/// Limits of the kernel mechanisms that no policy can change; printed by `check`, the
/// README and `verify`.
pub const CANNOT_ENFORCE: &[&str] = &[
    "Landlock Execute limits execve of files, not code: any readable ELF can be run through the dynamic loader (ld-linux-x86-64.so.2 /bin/sh), an ELF copied into a memfd runs with execveat (no path, so no Landlock rule applies), and an interpreter runs any readable script. Grant read on library directories, not on /usr/bin; a tricked agent with Node can run code it writes, inside the same confinement.",
    "Landlock TCP rules match ports only: any host on an allowed port is reachable (cloud metadata 169.254.169.254:80 included if 80 is allowed); use nftables (meta skuid) or systemd IPAddressDeny= for addresses.",
    "UDP (DNS included) and ICMP are not controlled by Landlock on this kernel.",
    "listen() without bind() auto-binds an ephemeral port even when no bind rule allows it (landlock-lsm/linux#15).",
    "Pathname unix sockets are not covered by Landlock below ABI 9; clawjail closes them by refusing socket(AF_UNIX) in seccomp unless network.unix = true.",
    "Terminal: escape sequences in the target's output reach the caller's terminal through the pty relay (title, cursor, terminal answers that come back as input), as with every pty relay (docs/terminal.md); a SIGKILL of the supervisor leaves the terminal in raw mode.",
    "Landlock (ABI <= 7) does not mediate inotify or utimes: a watch on a directory outside the grants reports names and timing, and the owner can set the times of its files there. Mode, owner and xattr changes outside the grants are closed by seccomp instead (docs/isolation.md).",
    "Without a PID and IPC namespace of its own (unprivileged start, or a container that refuses unshare) the target shares them with the host: seccomp then limits prlimit/setpriority/sched_set*/ioprio_set to the caller itself and refuses SysV IPC and POSIX mq; with one, the target gets a /proc of its own that lists only its namespace.",
    "Memory is not capped by clawjail (no address-space limit by default: V8 reserves far more than it uses); use cgroups (systemd MemoryMax=, compose mem_limit).",
];

/// The plan as JSON (`check --json`); the text form is rendered from this.
pub fn plan_json(plan: &Plan) -> Value {
    let ids = plan.identity.ids();
    let identity = match &plan.identity {
        IdentityPlan::Switch { .. } => json!({
            "mode": "switch", "uid": ids.uid, "gid": ids.gid, "groups": ids.groups,
            "user": ids.user_name, "allow_root": plan.allow_root,
        }),
        IdentityPlan::Keep { reason, .. } => json!({
            "mode": "keep", "uid": ids.uid, "gid": ids.gid, "groups": ids.groups,
            "user": ids.user_name, "reason": reason,
        }),
    };
    let keep: Vec<String> = plan.caps.keep.iter().map(|c| c.to_string()).collect();
    let target = plan.target.as_ref().map(|t| {
        json!({
            "command": t.command,
            "exec": t.exec_path.display().to_string(),
            "argv": t.argv.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>(),
            "exec_chain": t.chain,
        })
    });
    let steps: Vec<Value> = Step::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"n": i + 1, "step": s.name(), "what": s.summary()}))
        .collect();
    json!({
        "policy": plan.source,
        "identity": identity,
        "capabilities": {
            "keep": keep,
            "bounding_set": if plan.privileged { format!("drop 0..={} except kept", plan.caps.last_cap) } else { "kept (unprivileged start cannot drop it; no_new_privs makes it inert)".to_string() },
            "securebits": if plan.privileged { format!("{:#x}", plan.caps.securebits) } else { "unchanged (needs CAP_SETPCAP)".to_string() },
        },
        "no_new_privs": true,
        "session": format!("{:?}", plan.session).to_lowercase(),
        "terminal": plan.terminal_line(),
        "namespaces": plan.namespaces.describe(),
        "limits": plan.limits.iter().map(|l| json!({"name": l.name, "value": l.value.map_or("unlimited".to_string(), |v| v.to_string())})).collect::<Vec<_>>(),
        "umask": format!("{:04o}", plan.umask),
        "workdir": plan.workdir.as_ref().map(|w| w.display().to_string()),
        "env": {
            "names": plan.env.names().into_iter().map(|(n, f)| json!({"name": n, "from": f})).collect::<Vec<_>>(),
            "missing_pass": plan.env.missing,
        },
        "fds": {"cloexec_from": 3 + plan.fds.keep_listen_fds, "socket_activation_fds": plan.fds.keep_listen_fds},
        "private_tmp": plan.private_tmp,
        "landlock": plan.landlock.describe(),
        "seccomp": plan.seccomp.describe(),
        "target": target,
        "egress": plan.egress.as_ref().map_or_else(crate::egress::describe_absent, |e| e.describe()),
        "variables": plan.vars.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "variable_sources": plan.vars.origins().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "steps": steps,
        "degraded": plan.degraded,
        "cannot_enforce": CANNOT_ENFORCE,
    })
}

/// The order `check` prints sections in: the policy, then the steps' order, then limits.
const SECTION_ORDER: &[&str] = &[
    "policy",
    "identity",
    "capabilities",
    "session",
    "terminal",
    "namespaces",
    "limits",
    "umask",
    "workdir",
    "no_new_privs",
    "env",
    "fds",
    "private_tmp",
    "landlock",
    "seccomp",
    "egress",
    "target",
    "variables",
    "variable_sources",
    "steps",
    "degraded",
    "cannot_enforce",
];

/// Render JSON as indented `key: value` text, section by section (in `SECTION_ORDER`,
/// then any others).
pub fn render_text(v: &Value) -> String {
    let mut out = String::new();
    if let Value::Object(map) = v {
        let known = SECTION_ORDER.iter().filter_map(|k| map.get_key_value(*k));
        let others = map
            .iter()
            .filter(|(k, _)| !SECTION_ORDER.contains(&k.as_str()));
        for (k, val) in known.chain(others) {
            out.push_str(&format!("[{k}]\n"));
            render_value(val, 1, &mut out);
            out.push('\n');
        }
    }
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("-".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn render_value(v: &Value, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match scalar(val) {
                    Some(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                    None if is_empty(val) => out.push_str(&format!("{pad}{k}: (none)\n")),
                    None => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        render_value(val, depth + 1, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str(&format!("{pad}(none)\n"));
            }
            for item in items {
                match item {
                    Value::Object(m) if m.values().all(|x| scalar(x).is_some()) => {
                        let parts: Vec<String> = m
                            .iter()
                            .map(|(k, x)| format!("{k}={}", scalar(x).unwrap_or_default()))
                            .collect();
                        out.push_str(&format!("{pad}- {}\n", parts.join("  ")));
                    }
                    other => match scalar(other) {
                        Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                        None => {
                            out.push_str(&format!("{pad}-\n"));
                            render_value(other, depth + 1, out);
                        }
                    },
                }
            }
        }
        other => {
            // Multi-line text (the BPF disassembly): indent every line alike.
            for line in scalar(other).unwrap_or_default().lines() {
                out.push_str(&format!("{pad}{line}\n"));
            }
        }
    }
}

fn is_empty(v: &Value) -> bool {
    matches!(v, Value::Array(a) if a.is_empty()) || matches!(v, Value::Object(o) if o.is_empty())
}
