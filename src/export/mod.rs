//! `clawjail export`: one reviewed policy, rendered as the outer layer an engine enforces
//! itself (systemd unit, OCI seccomp profile, Kubernetes objects).
//!
//! The rule that keeps an export correct: an engine's directives apply to clawjail too, so
//! every export is the target's rules (from the policy, resolved here the way `run` would
//! resolve them for the target user) plus what clawjail itself needs for the chosen start
//! mode ([`needs`]). What each engine can and cannot mirror is in docs/export.md.
//!
//! Resolution happens on the machine that runs `export` (NSS for the target user, `~` and
//! `${...}` expanded, ports parsed, the seccomp table built exactly as `run` builds it), so
//! the rendered files name concrete paths; `--var` values are also passed on to the
//! `clawjail run` the export starts, so both sides expand the policy alike.

pub mod args;
pub mod k8s;
pub mod needs;
pub mod oci;
pub mod systemd;
pub mod yaml;

use std::path::{Path, PathBuf};

use serde::Serialize;
use toml::Spanned;

use crate::plan::{self, PlanError};
use crate::policy::{self, vars::Vars, Loaded, PolicyError, SeccompAction};
use crate::seccomp::{self, SeccompInputs, SeccompPlan};
pub use needs::Start;

/// Which engine to render for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// A systemd service unit (or, with --drop-in, a drop-in for an existing unit).
    Systemd,
    /// An OCI `linux.seccomp` profile for `--security-opt seccomp=FILE`.
    OciSeccomp,
    /// A Deployment, a Security Profiles Operator SeccompProfile and a NetworkPolicy.
    K8s,
}

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub start: Start,
    pub cli_vars: Vec<(String, String)>,
    /// The target command (systemd ExecStart=, the container's args).
    pub command: Vec<String>,
    /// Where the policy file will be on the machine that runs the unit/container.
    pub policy_at: String,
    /// Where the clawjail binary will be.
    pub clawjail_bin: String,
    /// Unit or object name.
    pub name: String,
    /// systemd: render a drop-in instead of a whole unit.
    pub drop_in: bool,
    /// k8s: the container image.
    pub image: String,
    /// k8s: the namespace.
    pub namespace: String,
}

/// Where a rendered line comes from: `file:line` and the policy line's text.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct From {
    pub line: usize,
    pub text: String,
}

impl From {
    /// `policy.toml:63 connect = [443]`.
    pub fn cite(&self, file: &str) -> String {
        if self.line == 0 {
            format!("{file} (default)")
        } else {
            format!("{file}:{} {}", self.line, self.text)
        }
    }
}

/// One `[filesystem]` entry, expanded.
#[derive(Debug, Clone, Serialize)]
pub struct PathRule {
    pub path: String,
    pub optional: bool,
    pub from: From,
}

/// A port with its policy line.
#[derive(Debug, Clone, Serialize)]
pub struct Port {
    pub port: u16,
    pub from: From,
}

/// An rlimit the policy sets.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    pub name: &'static str,
    /// None = unlimited.
    pub value: Option<u64>,
    pub from: From,
}

/// An env file: where it is read and whether its path goes through
/// `${CREDENTIALS_DIRECTORY}` (then systemd's LoadCredential= can hand it over).
#[derive(Debug, Clone, Serialize)]
pub struct EnvFile {
    pub path: String,
    pub optional: bool,
    pub via_credentials_directory: bool,
    pub from: From,
}

/// The policy, resolved for the target user on this machine.
#[derive(Debug)]
pub struct Resolved {
    /// The policy file's name in citations.
    pub file: String,
    pub sha256: String,
    pub start: Start,
    pub uid: u32,
    pub gid: u32,
    pub user_name: Option<String>,
    pub groups: Vec<u32>,
    pub identity_from: From,
    pub home: Option<String>,
    pub vars: Vars,
    pub read: Vec<PathRule>,
    pub write: Vec<PathRule>,
    pub exec: Vec<PathRule>,
    pub deny: Vec<PathRule>,
    pub create: Vec<PathRule>,
    pub create_mode: u32,
    pub bind: Vec<Port>,
    pub connect: Vec<Port>,
    pub unix: From,
    pub network_unix: bool,
    pub caps_keep: Vec<(String, From)>,
    pub limits: Vec<Limit>,
    pub umask: (u32, From),
    pub env_files: Vec<EnvFile>,
    pub seccomp: SeccompPlan,
    pub seccomp_from: From,
    pub seccomp_action: SeccompAction,
    pub needs: Vec<needs::Need>,
    /// The policy text (the k8s ConfigMap carries it).
    pub text: String,
}

fn from_span(loaded: &Loaded, span: std::ops::Range<usize>) -> From {
    if span.is_empty() && span.start == 0 {
        return From {
            line: 0,
            text: String::new(),
        };
    }
    let (line, _) = loaded.source.line_col(span.start);
    let text = loaded
        .source
        .text
        .lines()
        .nth(line - 1)
        .unwrap_or("")
        .split(" #")
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches(',')
        .to_string();
    From { line, text }
}

/// The line of a `[section]` header, for keys that are absent (defaults).
fn section(loaded: &Loaded, name: &str) -> From {
    let header = format!("[{name}]");
    match loaded.source.text.lines().position(|l| l.trim() == header) {
        Some(i) => From {
            line: i + 1,
            text: header,
        },
        None => From {
            line: 0,
            text: String::new(),
        },
    }
}

/// Resolve the policy for an export. Reads only: NSS, /proc/sys for limits' ranges.
pub fn resolve(loaded: &Loaded, opts: &ExportOptions) -> Result<Resolved, PlanError> {
    let src = &loaded.source;
    let p = &loaded.policy;
    // Both start modes run the target as [identity]: a root start switches to it, a user
    // start is *started* as it (User=, runAsUser), so the engine needs the same ids.
    let u = plan::user::resolve(src, &p.identity)?;
    if !p.identity.allow_root.get() && (u.ids.uid == 0 || u.ids.gid == 0) {
        return Err(PolicyError::at(
            src,
            p.identity.user.as_ref().map(|u| u.span()).unwrap_or(0..0),
            "root-target",
            "identity.user",
            "the target would run as uid 0 or gid 0; refusing to export it (identity.allow_root = false)",
        )
        .into());
    }
    // An export describes a service run as [identity]: the [vars] layer, never the laptop
    // one ([unprivileged.vars] is for a user starting clawjail as themselves).
    let command: Vec<std::ffi::OsString> = opts.command.iter().map(Into::into).collect();
    let vars = plan::build_vars(
        loaded,
        &u.ids,
        u.home.as_deref(),
        &opts.cli_vars,
        true,
        Some(&command),
    )?;
    if p.seccomp.action.get() == SeccompAction::Log {
        return Err(PolicyError::at(
            src,
            0..0,
            "export-learning-mode",
            "seccomp.action",
            "action = \"log\" is the learning mode (nothing is denied); an exported filter would either deny what clawjail lets through or claim enforcement that is not there. Export the policy you reviewed after learning (action = \"errno\" or \"kill\")",
        )
        .into());
    }
    if opts.start == Start::User {
        if let Some(c) = p.capabilities.keep.first() {
            return Err(PolicyError::at(
                src,
                c.span(),
                "keep-needs-root",
                "capabilities.keep",
                "a kept capability needs --start root: clawjail started as the user cannot grant what it lacks",
            )
            .into());
        }
    }
    let rule = |path: &policy::PathTemplate,
                optional: bool,
                span: std::ops::Range<usize>,
                key: &str|
     -> Result<PathRule, PlanError> {
        let p = path.expand_at(src, span.clone(), key, &vars)?;
        Ok(PathRule {
            path: p.display().to_string(),
            optional,
            from: from_span(loaded, span),
        })
    };
    let paths = |list: &[Spanned<policy::PathEntry>], key: &str| {
        list.iter()
            .map(|v| rule(&v.get_ref().path, v.get_ref().optional, v.span(), key))
            .collect::<Result<Vec<_>, _>>()
    };
    let fs = &p.filesystem;
    let mut create = fs
        .create
        .iter()
        .map(|v| rule(v.get_ref(), false, v.span(), "filesystem.create"))
        .collect::<Result<Vec<_>, _>>()?;
    // ${TMP} is created by clawjail whenever the policy uses it (landlock::create_dirs).
    if let Some(tmp) = vars.get("TMP") {
        let uses = |s: &str| s.contains("${TMP}");
        let span = [&fs.read, &fs.write, &fs.exec]
            .into_iter()
            .flatten()
            .find(|v| uses(v.get_ref().path.as_str()))
            .map(|v| v.span())
            .or_else(|| {
                fs.create
                    .iter()
                    .find(|v| uses(v.get_ref().as_str()))
                    .map(|v| v.span())
            })
            .or_else(|| {
                p.env
                    .set
                    .values()
                    .find(|v| v.get_ref().contains("${TMP}"))
                    .map(|v| v.span())
            });
        if let Some(span) = span {
            if !create.iter().any(|c| c.path == tmp) {
                create.push(PathRule {
                    path: tmp.to_string(),
                    optional: false,
                    from: from_span(loaded, span),
                });
            }
        }
    }
    let create_mode = fs.create_mode.as_ref().map_or(0o700, |m| m.get_ref().0);
    let ports = |list: &[Spanned<policy::PortSpec>], key: &str, zero: bool| {
        let nums = crate::landlock::net::ports(src, &vars, list, key, zero)?;
        // ports() dedups; pair each number with the first entry that produced it.
        Ok::<_, PlanError>(
            nums.into_iter()
                .map(|port| {
                    let span = list
                        .iter()
                        .find(|v| {
                            crate::landlock::net::ports(
                                src,
                                &vars,
                                std::slice::from_ref(*v),
                                key,
                                zero,
                            )
                            .is_ok_and(|n| n == [port])
                        })
                        .map(|v| v.span())
                        .unwrap_or(0..0);
                    Port {
                        port,
                        from: from_span(loaded, span),
                    }
                })
                .collect::<Vec<_>>(),
        )
    };
    let bind = ports(&p.network.bind, "network.bind", true)?;
    let connect = ports(&p.network.connect, "network.connect", false)?;
    let caps_keep = p
        .capabilities
        .keep
        .iter()
        .map(|c| (c.get_ref().to_string(), from_span(loaded, c.span())))
        .collect();
    let limits = limits(loaded)?;
    let umask = match &p.process.umask {
        Some(u) => (u.get_ref().0, from_span(loaded, u.span())),
        None => (0o077, section(loaded, "process")),
    };
    let mut env_files = Vec::new();
    for f in &p.env.files {
        let (optional, rest) = (f.get_ref().optional, f.get_ref().path.as_str());
        let path = f
            .get_ref()
            .path
            .expand_at(src, f.span(), "env.files", &vars)?;
        env_files.push(EnvFile {
            path: path.display().to_string(),
            optional,
            via_credentials_directory: rest.starts_with("${CREDENTIALS_DIRECTORY}/"),
            from: from_span(loaded, f.span()),
        });
    }
    let seccomp = seccomp::prepare(&SeccompInputs {
        src,
        cfg: &p.seccomp,
        guards: seccomp::guards::Options {
            allow_unix: p.network.unix.get(),
            allow_chown: p.filesystem.allow_chown.get(),
            allow_xattr: p.filesystem.allow_xattr.get(),
            // As `plan` decides it: a root start gives the target its own IPC namespace,
            // inside which SysV IPC is private and allowed; the outer layer must not refuse
            // what clawjail lets the target do.
            allow_ipc: p.process.allow_shared_ipc.get() || opts.start == Start::Root,
        },
    })?;
    let read = paths(&fs.read, "filesystem.read")?;
    let write = paths(&fs.write, "filesystem.write")?;
    let exec = paths(&fs.exec, "filesystem.exec")?;
    let deny = paths(&fs.deny, "filesystem.deny")?;
    Ok(Resolved {
        file: src.origin.display_name().to_string(),
        sha256: src.sha256.clone(),
        start: opts.start,
        uid: u.ids.uid,
        gid: u.ids.gid,
        user_name: u.ids.user_name.clone(),
        groups: u.ids.groups.clone(),
        identity_from: p
            .identity
            .user
            .as_ref()
            .map(|s| from_span(loaded, s.span()))
            .unwrap_or_else(|| section(loaded, "identity")),
        home: u.home.clone(),
        vars,
        read,
        write,
        exec,
        deny,
        create,
        create_mode,
        bind,
        connect,
        unix: section(loaded, "network"),
        network_unix: p.network.unix.get(),
        caps_keep,
        limits,
        umask,
        env_files,
        seccomp,
        seccomp_from: section(loaded, "seccomp"),
        seccomp_action: p.seccomp.action.get(),
        needs: needs::needs(&needs::NeedInputs {
            start: opts.start,
            // As plan decides it: a PID namespace needs the session step's fork.
            pid_namespace: p.process.pid_namespace.get() && p.process.new_session.get(),
            private_tmp: p.filesystem.private_tmp.get(),
            create_mode,
            egress: loaded.egress.is_some(),
        }),
        text: src.text.clone(),
    })
}

fn limits(loaded: &Loaded) -> Result<Vec<Limit>, PlanError> {
    let mut out = Vec::new();
    for (kind, v) in loaded.policy.limits.iter() {
        let name = kind.key();
        let value = match v.get() {
            policy::LimitValue::Unlimited if kind == policy::LimitKind::Nofile => {
                return Err(PolicyError::at(
                    &loaded.source,
                    v.span(),
                    "bad-value",
                    "limits.nofile",
                    "nofile cannot be unlimited",
                )
                .into())
            }
            policy::LimitValue::Unlimited => None,
            policy::LimitValue::Value(n) => Some(n),
        };
        let from = if v.is_written() {
            from_span(loaded, v.span())
        } else {
            From {
                line: 0,
                text: format!("{name} = 0 (default)"),
            }
        };
        out.push(Limit { name, value, from });
    }
    Ok(out)
}

impl Resolved {
    /// The syscalls the target may make (allowed, possibly with argument rules), by name.
    pub fn policy_syscalls(&self) -> Vec<&'static str> {
        self.seccomp
            .entries()
            .iter()
            .filter(|e| {
                matches!(
                    e.verdict,
                    seccomp::Verdict::Allow | seccomp::Verdict::AllowIf(_)
                )
            })
            .map(|e| e.name)
            .collect()
    }

    /// The target user as an engine names it: the passwd name, else the uid.
    pub fn user_spec(&self) -> String {
        self.user_name
            .clone()
            .unwrap_or_else(|| self.uid.to_string())
    }

    /// `--var` arguments for the `clawjail run` the engine starts: the export's own.
    pub fn run_vars(&self, opts: &ExportOptions) -> Vec<String> {
        opts.cli_vars
            .iter()
            .map(|(k, v)| format!("--var {k}={v}"))
            .collect()
    }

    /// Every path rule with the list it came from.
    pub fn all_paths(&self) -> impl Iterator<Item = (&'static str, &PathRule)> {
        self.read
            .iter()
            .map(|r| ("read", r))
            .chain(self.write.iter().map(|r| ("write", r)))
            .chain(self.exec.iter().map(|r| ("exec", r)))
            .chain(self.create.iter().map(|r| ("create", r)))
    }
}

/// Is `path` equal to or below `dir`?
pub fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/")) || dir.is_empty()
}

/// An absolute form of a path given on the command line, without resolving symlinks.
pub fn absolute(p: &Path) -> String {
    if p.is_absolute() {
        return p.display().to_string();
    }
    std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| PathBuf::from(p))
        .display()
        .to_string()
}

/// The rendered export: text for people, JSON for tools.
#[derive(Debug)]
pub struct Rendered {
    pub text: String,
    pub json: serde_json::Value,
}

/// Resolve and render.
pub fn export(
    loaded: &Loaded,
    engine: Engine,
    opts: &ExportOptions,
) -> Result<Rendered, PlanError> {
    let r = resolve(loaded, opts)?;
    match engine {
        Engine::Systemd => systemd::render(&r, opts),
        Engine::OciSeccomp => Ok(oci::render(&r)),
        Engine::K8s => k8s::render(&r, opts),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn opts(start: Start) -> ExportOptions {
        ExportOptions {
            start,
            cli_vars: Vec::new(),
            command: vec!["/usr/bin/true".into()],
            policy_at: "/etc/clawjail/policy.toml".into(),
            clawjail_bin: "/usr/local/bin/clawjail".into(),
            name: "t".into(),
            drop_in: false,
            image: "img".into(),
            namespace: "ns".into(),
        }
    }

    #[test]
    fn every_engine_has_a_json_form_naming_its_source() {
        let text =
            "version = 1\n[identity]\nuser = 65534\ngroup = 65534\n[network]\nbind = [8080]\n";
        let loaded = policy::load(policy::Source::new(
            policy::Origin::Flag("p.toml".into()),
            text.to_string(),
        ))
        .unwrap();
        for (engine, start) in [
            (Engine::Systemd, Start::Root),
            (Engine::OciSeccomp, Start::Root),
            (Engine::K8s, Start::User),
        ] {
            let out = export(&loaded, engine, &opts(start)).unwrap();
            assert_eq!(out.json["policy"], "p.toml");
            assert_eq!(out.json["policy_sha256"], loaded.source.sha256.as_str());
            assert_eq!(out.json["start"], start.name());
            assert!(out.json["clawjail_needs"]
                .as_array()
                .is_some_and(|n| !n.is_empty()));
            assert!(!out.text.is_empty());
        }
        let sd = export(&loaded, Engine::Systemd, &opts(Start::Root)).unwrap();
        let bind = sd.json["directives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["key"] == "SocketBindAllow")
            .unwrap();
        assert_eq!(bind["value"], "tcp:8080");
        assert!(bind["from"][0]
            .as_str()
            .unwrap()
            .starts_with("p.toml:6 bind = [8080]"));
        let oci = export(&loaded, Engine::OciSeccomp, &opts(Start::Root)).unwrap();
        let text_profile: serde_json::Value = serde_json::from_str(&oci.text).unwrap();
        assert_eq!(oci.json["profile"], text_profile);
        // A learning-mode policy is not exported.
        let log = policy::load(policy::Source::new(
            policy::Origin::Flag("p.toml".into()),
            format!("{text}[seccomp]\naction = \"log\"\n"),
        ))
        .unwrap();
        let e = export(&log, Engine::Systemd, &opts(Start::Root)).unwrap_err();
        assert!(e.to_string().contains("learning mode"), "{e}");
    }
}
