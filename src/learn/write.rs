//! The proposed policy: policy v1 TOML that `run` accepts unchanged. The base policy's
//! other sections are kept; `[filesystem] read/write/exec/create`, `[network] bind/connect`
//! and `[seccomp] allow` are the learned ones, each entry commented with its count and the
//! first program that needed it; recorded values equal to a policy variable are written as
//! the variable; a `# [review]` comment block lists what a reviewer must look at, and with
//! a base policy a `# [diff]` block what changed against it.

// `write!` into a String cannot fail; its Result is ignored on purpose.
#![allow(clippy::let_underscore_must_use)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::collapse::{self, Context, Rule};
use super::record::{Class, Recording, Stat};
use super::Job;

/// Secrets-like names: flagged whenever recorded (granted or not).
const SECRETS: &[&str] = &[
    "/.ssh",
    "/.aws",
    "/.gnupg",
    "/.netrc",
    "/.git-credentials",
    "/.config/gcloud",
    "/.kube",
    "/.docker",
    "/.azure",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/ssl/private",
    "id_rsa",
    "id_ed25519",
    ".pem",
    ".key",
    "/.password-store",
    "/.mozilla",
    "/.config/chromium",
    "/.config/google-chrome",
];

/// Variables the writer may substitute, longest value first: the built-ins and the
/// base's `[vars]` / `[unprivileged.vars]` names (the output keeps those tables).
fn substitutions(job: &Job) -> Vec<(String, String)> {
    let mut names: BTreeSet<String> = ["HOME", "STATE_DIR", "TMP"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    names.extend(job.base.policy.vars.keys().cloned());
    names.extend(job.base.policy.unprivileged.vars.keys().cloned());
    let mut v: Vec<(String, String)> = names
        .into_iter()
        .filter_map(|n| job.vars.get(&n).map(|val| (n, val.to_string())))
        .filter(|(_, val)| val.starts_with('/') && val.len() > 1 && !val.contains(':'))
        .collect();
    v.sort_by_key(|(_, val)| std::cmp::Reverse(val.len()));
    v
}

/// A recorded path in policy form: the longest variable value it starts with, then
/// `${UID}` in components that end in `-<uid>` or are `<uid>`.
pub fn with_vars(path: &Path, subs: &[(String, String)], uid: u32) -> String {
    let s = path.display().to_string();
    let mut out = s.clone();
    for (name, val) in subs {
        if s == *val {
            out = format!("${{{name}}}");
            break;
        }
        if let Some(rest) = s.strip_prefix(val.as_str()) {
            if rest.starts_with('/') {
                out = format!("${{{name}}}{rest}");
                break;
            }
        }
    }
    if uid == 0 {
        return out;
    }
    let u = uid.to_string();
    out.split('/')
        .map(|c| {
            if c == u {
                "${UID}".to_string()
            } else if let Some(pre) = c.strip_suffix(&format!("-{u}")) {
                format!("{pre}-${{UID}}")
            } else {
                c.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn why(stat: &Stat, extra: &str) -> String {
    format!(
        "{} call{}{extra}, first: {}",
        stat.count,
        if stat.count == 1 { "" } else { "s" },
        stat.first
    )
}

/// The base table without the keys the learner writes.
fn base_rest(job: &Job) -> Result<(toml::Table, toml::Table, toml::Table, toml::Table), String> {
    let mut t: toml::Table = job
        .base
        .source
        .text
        .parse()
        .map_err(|e| format!("re-reading the base policy: {e}"))?;
    let take = |t: &mut toml::Table, k: &str| match t.remove(k) {
        Some(toml::Value::Table(x)) => x,
        _ => toml::Table::new(),
    };
    let mut fs = take(&mut t, "filesystem");
    let mut net = take(&mut t, "network");
    let mut sc = take(&mut t, "seccomp");
    for k in ["read", "write", "exec", "create"] {
        fs.remove(k);
    }
    net.remove("bind");
    net.remove("connect");
    sc.remove("allow");
    t.remove("version");
    t.remove("description");
    Ok((t, fs, net, sc))
}

struct Out {
    text: String,
    review: Vec<String>,
}

/// Build the text; returns it and the diff lines.
pub fn render(job: &Job, rec: &Recording) -> Result<(String, Vec<String>), String> {
    let subs = substitutions(job);
    let ctx = Context {
        home: job.home.as_deref(),
        deny: &job.deny,
        instance_dirs: &job.instance_dirs,
    };
    let (rules, notes) = collapse::collapse(rec, &ctx);
    let (rest, fs, net, sc) = base_rest(job)?;
    let mut o = Out {
        text: String::new(),
        review: Vec::new(),
    };
    let cmd: Vec<String> = job
        .command
        .iter()
        .map(|c| c.to_string_lossy().to_string())
        .collect();
    let _ = writeln!(
        o.text,
        "# Proposed by `clawjail learn` from one run of: {}",
        cmd.join(" ")
    );
    let _ = writeln!(
        o.text,
        "# Base policy: {} (sha256 {}). {} events recorded.",
        job.base.source.origin.display_name(),
        job.base.source.sha256,
        rec.events
    );
    let _ = writeln!(
        o.text,
        "# Read the [review] block at the end before using it (docs/learn.md)."
    );
    let _ = writeln!(o.text, "version = 1");
    let _ = writeln!(
        o.text,
        "description = {}",
        q(&format!(
            "learned by clawjail learn from `{}`",
            cmd.join(" ")
        ))
    );
    let rest_text = toml::to_string(&rest).map_err(|e| e.to_string())?;
    let _ = writeln!(o.text, "\n{}", rest_text.trim_end());

    // [filesystem]
    let _ = writeln!(o.text, "\n[filesystem]");
    for (k, v) in &fs {
        if k != "deny" {
            let _ = writeln!(o.text, "{k} = {v}");
        }
    }
    let mut create: Vec<(String, String)> = job
        .base
        .policy
        .filesystem
        .create
        .iter()
        .map(|c| {
            (
                c.get_ref().as_str().to_string(),
                "from the base policy".to_string(),
            )
        })
        .collect();
    let mut lists: Vec<(Class, Vec<(String, String)>)> = Vec::new();
    for class in [Class::Read, Class::Write, Class::Exec] {
        let mut entries = Vec::new();
        for r in rules.iter().filter(|r| r.class == class) {
            let mut p = with_vars(&r.path, &subs, job.uid);
            let extra = if r.collapsed {
                format!(", {} entries collapsed", r.merged)
            } else if r.merged > 1 {
                format!(", {} entries", r.merged)
            } else {
                String::new()
            };
            if r.instance {
                if r.is_dir {
                    if !create.iter().any(|(c, _)| *c == p) {
                        create.push((
                            p.clone(),
                            format!(
                                "must exist before Landlock: {}",
                                if rec.created.contains(&r.path) {
                                    "created by the run"
                                } else {
                                    "per-instance directory"
                                }
                            ),
                        ));
                    }
                } else {
                    p = format!("?{p}");
                }
            }
            review_rule(&mut o.review, r, &p, job);
            entries.push((p, why(&r.stat, &extra)));
        }
        entries.sort();
        lists.push((class, entries));
    }
    list(&mut o.text, "create", &create);
    for (class, entries) in &lists {
        list(&mut o.text, class.key(), entries);
    }
    if let Some(d) = fs.get("deny") {
        let _ = writeln!(o.text, "deny = {d}");
    }
    // Writes into exec dirs.
    let execs: Vec<&Rule> = rules.iter().filter(|r| r.class == Class::Exec).collect();
    for w in rules.iter().filter(|r| r.class == Class::Write && r.is_dir) {
        for e in &execs {
            if e.path.starts_with(&w.path) {
                o.review.push(format!("write into an exec location: write {} covers exec {} (the target can replace what it runs)", w.path.display(), e.path.display()));
            }
        }
    }

    // [network]
    let _ = writeln!(o.text, "\n[network]");
    for (k, v) in &net {
        let _ = writeln!(o.text, "{k} = {v}");
    }
    let port = job.vars.get("PORT").map(str::to_string);
    let ports =
        |map: &std::collections::BTreeMap<u16, super::record::PortUse>| -> Vec<(String, String)> {
            map.iter()
                .map(|(p, u)| {
                    let v = if port.as_deref() == Some(p.to_string().as_str()) {
                        q("${PORT}")
                    } else {
                        p.to_string()
                    };
                    let addrs: Vec<&str> = u.addrs.iter().map(String::as_str).collect();
                    (v, why(&u.stat, &format!(", addresses {}", addrs.join(" "))))
                })
                .collect()
        };
    // Port 0 is not proposed: as a Landlock rule it allows the whole ephemeral range.
    let mut bind = ports(&rec.bind);
    bind.retain(|(p, _)| p != "0");
    let connect = ports(&rec.connect);
    raw_list(&mut o.text, "bind", &bind);
    raw_list(&mut o.text, "connect", &connect);
    if rec.bind.contains_key(&0) {
        o.review.push(format!("not granted: network.bind 0 ({}): the target bound an ephemeral port; 0 as a rule allows the whole ephemeral range, add it by hand only if the program needs it", rec.bind.get(&0).map_or(String::new(), |u| why(&u.stat, ""))));
    }
    for (p, u) in rec.bind.iter().chain(&rec.connect) {
        for a in &u.addrs {
            if !a.starts_with("127.") && a != "::1" && a != "0.0.0.0" && a != "::" {
                o.review.push(format!("TCP port {p} used with address {a}: Landlock allows the port on every address (docs/egress.md for destinations)"));
            }
        }
    }
    for (path, s) in &rec.unix {
        o.review.push(format!("unix socket {path} ({}): needs network.unix = true, which this learned policy does not change", why(s, "")));
    }

    // [seccomp]
    let _ = writeln!(o.text, "\n[seccomp]");
    for (k, v) in &sc {
        let _ = writeln!(o.text, "{k} = {v}");
    }
    let allow: Vec<(String, String)> = rec
        .syscalls
        .iter()
        .map(|(n, s)| (n.clone(), why(s, "")))
        .collect();
    list(&mut o.text, "allow", &allow);
    if !allow.is_empty() {
        o.review.push(format!(
            "syscalls outside the base profile: {} (seccomp.allow; check each in docs/seccomp.md)",
            allow
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // Review notes from the recording itself.
    for (p, s) in &notes.denied {
        o.review.push(format!(
            "denied by the base policy, kept denied: {} ({})",
            p.display(),
            why(s, "")
        ));
    }
    for (c, p, s) in &notes.not_granted {
        o.review.push(format!("not granted: {} {} ({}): a rule on this directory would grant its whole tree; grant what is needed beneath it by hand", c.key(), p.display(), why(s, "")));
    }
    for ((_, p), a) in &rec.accesses {
        let ps = p.display().to_string();
        if SECRETS.iter().any(|s| ps.contains(s)) {
            o.review
                .push(format!("secrets-like path: {ps} ({})", why(&a.stat, "")));
        }
    }
    if job.base.policy.egress.is_some() {
        o.review.push("the base has [egress]: names were not recorded (the broker's record mode is not in this build); the section is kept as it was".into());
    }
    let _ = writeln!(
        o.text,
        "\n# [review] what a reviewer must look at (docs/learn.md):"
    );
    if o.review.is_empty() {
        let _ = writeln!(o.text, "#   nothing flagged");
    }
    let mut seen = BTreeSet::new();
    for r in &o.review {
        if seen.insert(r.clone()) {
            let _ = writeln!(o.text, "#   - {r}");
        }
    }
    let diff = diff(job, &lists, &bind, &connect, &allow);
    if !diff.is_empty() {
        let _ = writeln!(
            o.text,
            "\n# [diff] against the base policy ({}):",
            job.base.source.origin.display_name()
        );
        for d in &diff {
            let _ = writeln!(o.text, "#   {d}");
        }
    }
    Ok((o.text, diff))
}

fn review_rule(review: &mut Vec<String>, r: &Rule, p: &str, _job: &Job) {
    let depth = r.path.components().count() - 1;
    if r.collapsed && depth <= 2 {
        review.push(format!(
            "broad collapse: {} {p} ({} entries, depth {depth})",
            r.class.key(),
            r.merged
        ));
    } else if r.class == Class::Read
        && r.is_dir
        && !r.collapsed
        && depth <= 2
        && !r.path.starts_with("/proc")
    {
        review.push(format!(
            "directory listing granted as a tree: {} {p}",
            r.class.key()
        ));
    }
    if r.path.starts_with("/proc") {
        review.push(format!("/proc access: {} {p}", r.class.key()));
    }
}

fn list(text: &mut String, key: &str, entries: &[(String, String)]) {
    let quoted: Vec<(String, String)> = entries.iter().map(|(v, w)| (q(v), w.clone())).collect();
    raw_list(text, key, &quoted);
}

fn raw_list(text: &mut String, key: &str, entries: &[(String, String)]) {
    if entries.is_empty() {
        let _ = writeln!(text, "{key} = []");
        return;
    }
    let _ = writeln!(text, "{key} = [");
    for (v, why) in entries {
        let _ = writeln!(text, "  {v},  # {why}");
    }
    let _ = writeln!(text, "]");
}

/// `+ list entry` (learned, not in the base) and `- list entry` (in the base, not learned).
fn diff(
    job: &Job,
    lists: &[(Class, Vec<(String, String)>)],
    bind: &[(String, String)],
    connect: &[(String, String)],
    allow: &[(String, String)],
) -> Vec<String> {
    let p = &job.base.policy;
    let written = |v: &[toml::Spanned<crate::policy::PathEntry>]| -> BTreeSet<String> {
        v.iter().map(|s| s.get_ref().written()).collect()
    };
    let ports = |v: &[toml::Spanned<crate::policy::PortSpec>]| -> BTreeSet<String> {
        v.iter().map(|s| s.get_ref().to_string()).collect()
    };
    let mut out = Vec::new();
    let mut one = |key: &str, base: BTreeSet<String>, learned: BTreeSet<String>| {
        for l in learned.difference(&base) {
            out.push(format!("+ {key} {l}"));
        }
        for b in base.difference(&learned) {
            out.push(format!("- {key} {b}"));
        }
    };
    for (class, entries) in lists {
        let base = match class {
            Class::Read => written(&p.filesystem.read),
            Class::Write => written(&p.filesystem.write),
            Class::Exec => written(&p.filesystem.exec),
        };
        one(
            &format!("filesystem.{}", class.key()),
            base,
            entries.iter().map(|(v, _)| v.clone()).collect(),
        );
    }
    let unq = |v: &[(String, String)]| -> BTreeSet<String> {
        v.iter()
            .map(|(x, _)| x.trim_matches('"').to_string())
            .collect()
    };
    one("network.bind", ports(&p.network.bind), unq(bind));
    one("network.connect", ports(&p.network.connect), unq(connect));
    let names = |v: &[toml::Spanned<crate::policy::Syscall>]| -> BTreeSet<String> {
        v.iter().map(|s| s.get_ref().to_string()).collect()
    };
    one("seccomp.allow", names(&p.seccomp.allow), unq(allow));
    out
}

/// Write the policy (to `--out` or stdout) and return the summary for stderr.
pub fn write(job: &Job, rec: &Recording) -> Result<String, String> {
    let (text, diff) = render(job, rec)?;
    match &job.out {
        Some(path) => write_file(path, &text)?,
        None => print!("{text}"),
    }
    let mut msg =
        format!(
        "clawjail learn: wrote {} ({} paths, {} bind / {} connect ports, {} new syscalls recorded)",
        job.out.as_ref().map_or("the policy to stdout".to_string(), |p| p.display().to_string()),
        rec.accesses.len(),
        rec.bind.len(),
        rec.connect.len(),
        rec.syscalls.len()
    );
    if !diff.is_empty() {
        let _ = write!(msg, "\nclawjail learn: diff against the base policy:");
        for d in diff {
            let _ = write!(msg, "\n  {d}");
        }
    }
    Ok(msg)
}

/// New file, 0600 (it names the machine's paths); an existing one is replaced.
fn write_file(path: &PathBuf, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn longest_variable_wins_and_uid_components_become_uid() {
        let subs = vec![
            ("STATE_DIR".to_string(), "/home/oc/.openclaw".to_string()),
            ("HOME".to_string(), "/home/oc".to_string()),
        ];
        let w = |p: &str| with_vars(Path::new(p), &subs, 999);
        assert_eq!(w("/home/oc/.openclaw"), "${STATE_DIR}");
        assert_eq!(w("/home/oc/.openclaw/agents/x"), "${STATE_DIR}/agents/x");
        assert_eq!(
            w("/home/oc/.cache/openclaw-999"),
            "${HOME}/.cache/openclaw-${UID}"
        );
        assert_eq!(w("/home/oc/.openclawx"), "${HOME}/.openclawx");
        assert_eq!(w("/run/user/999/bus"), "/run/user/${UID}/bus");
        assert_eq!(w("/opt/x9999"), "/opt/x9999");
    }
}
