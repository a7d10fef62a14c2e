//! What will be enforced: `check`'s rendering of the plan. It prints the plan's one view
//! (`plan::view::PlanView`), whose parts also make the launch event (`launch`) and the
//! run record (`runrecord`), so `check` shows exactly what `run` applies and logs.
//! Variable values from the environment are never printed, only names.

use serde::Serialize;
use serde_json::Value;

use crate::launch::Step;
use crate::plan::view::PlanView;
use crate::plan::Plan;

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

/// What `check` prints: the plan's view, the launch steps in order, what no policy can
/// change, and with `--bpf` the filter's disassembly. `check --json` is this, serialised.
#[derive(Debug, Serialize)]
pub struct CheckView<'a> {
    #[serde(flatten)]
    pub plan: PlanView<'a>,
    pub steps: Vec<StepView>,
    pub cannot_enforce: &'static [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf: Option<String>,
}

/// One launch step, numbered as `check` and docs/design.md number them.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StepView {
    pub n: usize,
    pub step: &'static str,
    pub what: &'static str,
}

impl<'a> CheckView<'a> {
    /// `bpf`: include the filter's disassembly (`check --bpf`).
    pub fn of(plan: &'a Plan, bpf: bool) -> Self {
        CheckView {
            plan: PlanView::of(plan),
            steps: Step::ALL
                .iter()
                .enumerate()
                .map(|(i, s)| StepView {
                    n: i + 1,
                    step: s.name(),
                    what: s.summary(),
                })
                .collect(),
            cannot_enforce: CANNOT_ENFORCE,
            bpf: bpf.then(|| plan.seccomp.disassemble()),
        }
    }

    /// As a JSON value (object keys sorted), which `render_text` and `check --json` print.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }
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
