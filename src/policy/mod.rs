//! Policy v1: what the operator wrote, validated without touching the system.
//!
//! This layer only parses and checks shape (ripgrep's "low args"): no NSS lookups, no
//! `open`. Everything that needs the machine (users, paths, the target, BPF) happens in
//! [`crate::plan`]. Values deserialize into their types ([`values`]: modes, capabilities,
//! ports, path templates, limits), so `plan` never parses a string again; every key keeps
//! its span (`toml::Spanned`, or [`Located`] for keys with a default, booleans included),
//! so any later error can point at `file:line:col`.
//!
//! The reference for every key is `docs/policy.md`.

pub mod diag;
pub mod egress;
pub mod values;
pub mod vars;

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

pub use diag::PolicyError;
pub use values::{
    Cap, EnvName, Flag, LimitKind, LimitValue, Limits, Located, Mode, PathEntry, PathTemplate,
    PortSpec, Syscall,
};

/// The policy compiled into the binary, used when neither `--policy`, `$CLAWJAIL_POLICY`
/// nor `/etc/clawjail/policy.toml` names one.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../policies/openclaw-gateway.toml");

/// The only schema version this build understands.
pub const SUPPORTED_VERSION: u32 = 1;

/// Where a policy came from, for the launch log, `check` and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--policy FILE`
    Flag(String),
    /// `$CLAWJAIL_POLICY`
    Env(String),
    /// `/etc/clawjail/policy.toml`
    System(String),
    /// compiled in (`policies/openclaw-gateway.toml`)
    Embedded,
}

impl Origin {
    /// The name used in `file:line:col` diagnostics.
    pub fn display_name(&self) -> &str {
        match self {
            Origin::Flag(p) | Origin::Env(p) | Origin::System(p) => p,
            Origin::Embedded => "<embedded:openclaw-gateway.toml>",
        }
    }

    /// How the policy was selected, e.g. "--policy" or "$CLAWJAIL_POLICY".
    pub fn how(&self) -> &'static str {
        match self {
            Origin::Flag(_) => "--policy",
            Origin::Env(_) => "$CLAWJAIL_POLICY",
            Origin::System(_) => "/etc/clawjail/policy.toml",
            Origin::Embedded => "embedded default",
        }
    }
}

/// The policy text with its origin and digest; diagnostics are rendered against it.
#[derive(Debug, Clone)]
pub struct Source {
    pub origin: Origin,
    pub text: String,
    pub sha256: String,
}

impl Source {
    pub fn new(origin: Origin, text: String) -> Self {
        let sha256 = hex(&Sha256::digest(text.as_bytes()));
        Source {
            origin,
            text,
            sha256,
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(before.chars().count(), |nl| {
            before[nl + 1..].chars().count()
        }) + 1;
        (line, col)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A parsed, shape-checked policy together with its source text.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub source: Source,
    pub policy: Policy,
    /// `[egress]` validated into rules; `None` when the section is absent (destinations
    /// are then not controlled).
    pub egress: Option<crate::egress::EgressRules>,
}

/// Parse and validate policy text. Pure: used by `run`, `check`, `verify` and the fuzzer.
pub fn parse(text: &str) -> Result<Policy, toml::de::Error> {
    toml::from_str(text)
}

/// Parse, then apply the checks that need no system access (version, names, modes).
/// Every problem in the file is reported at once (up to [`diag::MAX_ERRORS`]): the first
/// is the error itself, the rest ride along in [`PolicyError::more`].
pub fn load(source: Source) -> Result<Loaded, PolicyError> {
    let (policy, mut errs) = diag::parse_collecting(&source);
    let mut egress = None;
    if let Some(policy) = &policy {
        validate(&source, policy, &mut errs);
        if let Some(section) = &policy.egress {
            egress = egress::compile(&source, section, &mut errs);
        }
    }
    match (policy, diag::combine(errs)) {
        (_, Some(e)) => Err(e),
        (Some(policy), None) => Ok(Loaded {
            source,
            policy,
            egress,
        }),
        // parse_collecting returns no policy only with at least one error.
        (None, None) => Err(PolicyError::whole(
            source.origin.display_name(),
            "syntax",
            "the policy could not be parsed",
        )),
    }
}

/// A user or group given by name or by number.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum IdSpec {
    Id(u32),
    Name(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Schema version; must be 1.
    pub version: Spanned<i64>,
    #[serde(default)]
    pub description: Option<Spanned<String>>,
    /// Default values for `${NAME}` variables; `--var NAME=VALUE` overrides them.
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<VarDef>>,
    /// What changes when clawjail is started unprivileged (a laptop user).
    #[serde(default)]
    pub unprivileged: Unprivileged,
    #[serde(default)]
    pub identity: Identity,
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Absent means: nothing is reachable but the automatic exec chain (fail closed).
    #[serde(default)]
    pub filesystem: Filesystem,
    /// Absent means: no TCP bind or connect at all, no AF_UNIX sockets.
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub seccomp: Seccomp,
    #[serde(default)]
    pub env: Env,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub process: Process,
    #[serde(default)]
    pub kernel: Kernel,
    #[serde(default)]
    pub risk: Risk,
    /// Egress by destination (docs/egress.md). Absent: destinations are not controlled.
    #[serde(default)]
    pub egress: Option<egress::Egress>,
}

/// A variable's definition: a string (which may use other variables), or a value
/// derived from the machine at plan time (docs/policy.md, "Derived variables").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarDef {
    Value(String),
    Derived(Derive),
}

/// `{ which = "node", strip = 1 }` or `{ openclaw_port = "${STATE_DIR}/openclaw.json" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Derive {
    /// A program name, searched in the CALLER's PATH as a shell would; the value is the
    /// path where it was found (its last component is not followed if it is a link).
    #[serde(default)]
    pub which: Option<String>,
    /// With `which`: drop this many trailing components (1: its directory, 2: the prefix
    /// of a `PREFIX/bin/NAME` layout).
    #[serde(default)]
    pub strip: Option<u32>,
    /// The TCP port an `openclaw gateway` will listen on, found as the gateway finds it:
    /// `--port` in the command, else the caller's `OPENCLAW_GATEWAY_PORT`, else
    /// `gateway.port` in this config file, else 18789.
    #[serde(default)]
    pub openclaw_port: Option<String>,
}

impl Derive {
    /// Exactly one source; `strip` only with `which`; `which` a bare program name.
    pub fn check_shape(&self) -> Result<(), String> {
        match (&self.which, &self.openclaw_port) {
            (Some(w), None) => {
                if w.is_empty() || w.contains('/') {
                    return Err(format!(
                        "which = {w:?}: expected a program name without '/', searched in the caller's PATH"
                    ));
                }
                Ok(())
            }
            (None, Some(_)) if self.strip.is_some() => {
                Err("strip only applies to which = \"NAME\"".into())
            }
            (None, Some(_)) => Ok(()),
            _ => Err(
                "expected exactly one of which = \"NAME\" (with optional strip = N) or openclaw_port = \"CONFIG FILE\""
                    .into(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for VarDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = VarDef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, or a table { which = \"NAME\", strip = N } or { openclaw_port = \"CONFIG\" }")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<VarDef, E> {
                Ok(VarDef::Value(s.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<VarDef, A::Error> {
                Derive::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(VarDef::Derived)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[unprivileged]`: definitions that apply only when clawjail is not started as root.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unprivileged {
    /// Replace `[vars]` entries (and add new ones) on an unprivileged start; `--var`
    /// still wins.
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<VarDef>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Target user (name or uid). Required when clawjail starts as root.
    #[serde(default)]
    pub user: Option<Spanned<IdSpec>>,
    /// Target group; default: the user's primary group.
    #[serde(default)]
    pub group: Option<Spanned<IdSpec>>,
    /// Exactly these supplementary groups; default none.
    #[serde(default)]
    pub supplementary_groups: Vec<Spanned<IdSpec>>,
    /// Allow the target to run with uid 0 or gid 0.
    #[serde(default)]
    pub allow_root: Flag,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Capabilities that survive into the target (through the ambient set), e.g.
    /// `["CAP_NET_BIND_SERVICE"]`. Everything else is cleared from every set.
    #[serde(default)]
    pub keep: Vec<Spanned<Cap>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    /// Read files and list directories (no execute). A leading `?` marks an optional entry.
    #[serde(default)]
    pub read: Vec<Spanned<PathEntry>>,
    /// Read plus create/remove/rename/truncate/write inside the tree.
    #[serde(default)]
    pub write: Vec<Spanned<PathEntry>>,
    /// Execute + read. The target's own exec chain is added automatically.
    #[serde(default)]
    pub exec: Vec<Spanned<PathEntry>>,
    /// Never reachable, even under an allowed parent.
    #[serde(default)]
    pub deny: Vec<Spanned<PathEntry>>,
    /// Directories clawjail creates (owned by the target, `create_mode`) before the rules
    /// are built, like systemd's StateDirectory=.
    #[serde(default)]
    pub create: Vec<Spanned<PathTemplate>>,
    /// Mode for `create`d directories, octal string; default "0700".
    #[serde(default)]
    pub create_mode: Option<Spanned<Mode>>,
    /// A private /tmp (fresh tmpfs in a mount namespace) on root starts, so nobody can
    /// squat the names the gateway hard-codes there. Not possible on an unprivileged
    /// start or without CAP_SYS_ADMIN: then /tmp stays shared (reported as degraded) and
    /// a squatted name is refused.
    #[serde(default)]
    pub private_tmp: Flag,
    /// Allow the chown family (seccomp; Landlock does not mediate chown). Default false.
    #[serde(default)]
    pub allow_chown: Flag,
    /// Allow setting/removing extended attributes (seccomp; Landlock does not mediate
    /// them). Default false.
    #[serde(default)]
    pub allow_xattr: Flag,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// TCP ports the target may bind. 0 = the whole ephemeral range (not by default).
    #[serde(default)]
    pub bind: Vec<Spanned<PortSpec>>,
    /// TCP ports the target may connect to (any address).
    #[serde(default)]
    pub connect: Vec<Spanned<PortSpec>>,
    /// Allow `socket(AF_UNIX)` (pathname and abstract sockets, subject to `[scope]`).
    /// socketpair(SOCK_STREAM|SOCK_SEQPACKET) is always allowed.
    #[serde(default)]
    pub unix: Flag,
}

/// Landlock scopes (ABI 6): what the target may reach outside its own sandbox.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Connect to abstract unix sockets created outside the sandbox.
    #[serde(default)]
    pub abstract_unix_outside: Flag,
    /// Send signals to processes outside the sandbox.
    #[serde(default)]
    pub signal_outside: Flag,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeccompProfile {
    #[default]
    Default,
    Strict,
    Custom,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeccompAction {
    /// Denied calls fail with EPERM.
    #[default]
    Errno,
    /// Denied calls kill the process (SIGSYS).
    Kill,
    /// Learning mode: nothing is denied, would-be denials are logged by the kernel.
    Log,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seccomp {
    #[serde(default)]
    pub profile: Located<SeccompProfile>,
    #[serde(default)]
    pub action: Located<SeccompAction>,
    /// Extra syscalls to allow (names).
    #[serde(default)]
    pub allow: Vec<Spanned<Syscall>>,
    /// Extra syscalls to deny (names).
    #[serde(default)]
    pub deny: Vec<Spanned<Syscall>>,
}

/// Where the policy first uses `${TMP}`: a `[filesystem]` entry (read, write, exec, deny),
/// then `create`, then an `env.set` value. clawjail creates that directory whenever the
/// policy uses it, so `run` (landlock), `export` and `learn` must agree on what "uses"
/// means: this is the one definition.
pub fn tmp_use(fs: &Filesystem, env: &Env) -> Option<std::ops::Range<usize>> {
    let uses = |s: &str| s.contains("${TMP}");
    fs.read
        .iter()
        .chain(&fs.write)
        .chain(&fs.exec)
        .chain(&fs.deny)
        .find(|v| uses(v.get_ref().path.as_str()))
        .map(|v| v.span())
        .or_else(|| {
            fs.create
                .iter()
                .find(|v| uses(v.get_ref().as_str()))
                .map(|v| v.span())
        })
        .or_else(|| {
            env.set
                .values()
                .find(|v| uses(v.get_ref()))
                .map(|v| v.span())
        })
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Env {
    /// Variable names passed through from clawjail's environment.
    #[serde(default)]
    pub pass: Vec<Spanned<EnvName>>,
    /// Variables set to a value (variables expanded).
    #[serde(default)]
    pub set: BTreeMap<String, Spanned<String>>,
    /// KEY=VALUE files read before the drop; mode 0600 or stricter, owned by root or target.
    #[serde(default)]
    pub files: Vec<Spanned<PathEntry>>,
    /// Allow names that make the loader or a runtime load code (LD_*, NODE_OPTIONS, ...).
    #[serde(default)]
    pub allow_code_loading_vars: Flag,
    /// Pass LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES and keep fds 3.. for socket activation.
    #[serde(default)]
    pub socket_activation: Flag,
    /// Pass NOTIFY_SOCKET (systemd Type=notify). Needs `network.unix = true` to be usable.
    #[serde(default)]
    pub notify_socket: Flag,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Working directory of the target (variables expanded); default: unchanged.
    #[serde(default)]
    pub workdir: Option<Spanned<PathTemplate>>,
    /// Octal umask, default "0077".
    #[serde(default)]
    pub umask: Option<Spanned<Mode>>,
    /// Put the target in a session of its own (no controlling tty). Default true.
    #[serde(default = "values::on")]
    pub new_session: Flag,
    /// Allow SysV IPC and POSIX message queues shared with the rest of the machine when
    /// clawjail cannot give the target an IPC namespace of its own. Default false.
    #[serde(default)]
    pub allow_shared_ipc: Flag,
    /// Give the target a PID namespace of its own on a root start (clawjail then forks and
    /// stays as the namespace's init). Default true.
    #[serde(default = "values::on")]
    pub pid_namespace: Flag,
    /// What the target gets when any of fds 0-2 is a terminal (docs/terminal.md).
    #[serde(default)]
    pub terminal: Located<TerminalMode>,
}

/// `process.terminal`: the target never receives a descriptor of the caller's terminal.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TerminalMode {
    /// A new pseudo-terminal for every terminal among fds 0-2; the supervisor relays input
    /// and output (sudo's use_pty, `runuser --pty`, `systemd-run --pty`).
    #[default]
    Pty,
    /// stdin from /dev/null; terminal stdout/stderr through a new pty relayed output-only.
    /// The caller's terminal is never read and its modes never changed (daemons).
    NullStdin,
}

impl Default for Process {
    fn default() -> Self {
        Process {
            workdir: None,
            umask: None,
            new_session: values::on(),
            allow_shared_ipc: Flag::default(),
            pid_namespace: values::on(),
            terminal: Located::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LandlockMode {
    /// Refuse to start unless every right the policy implies is enforced.
    #[default]
    Required,
    /// Start anyway and log, feature by feature, what was dropped.
    BestEffort,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    #[serde(default)]
    pub landlock: Located<LandlockMode>,
    /// Refuse to start on a kernel whose Landlock ABI is lower (both modes).
    #[serde(default)]
    pub min_landlock_abi: Option<Spanned<i64>>,
}

/// Risks the operator accepts knowingly; `clawjail verify` reports them instead of failing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Risk {
    #[serde(default)]
    pub accept: Vec<Spanned<String>>,
}

/// Shape checks that need no system access. Every problem is collected, not just the
/// first, so one run reports them all (as compilers do).
fn validate(src: &Source, p: &Policy, errs: &mut Vec<PolicyError>) {
    if *p.version.get_ref() != i64::from(SUPPORTED_VERSION) {
        errs.push(PolicyError::at(
            src,
            p.version.span(),
            "unsupported-version",
            "version",
            format!(
                "unsupported policy version {}; this clawjail understands version = {}",
                p.version.get_ref(),
                SUPPORTED_VERSION
            ),
        ));
    }
    let all_vars = p
        .vars
        .iter()
        .map(|(n, v)| (format!("vars.{n}"), n, v))
        .chain(
            p.unprivileged
                .vars
                .iter()
                .map(|(n, v)| (format!("unprivileged.vars.{n}"), n, v)),
        );
    for (key, name, value) in all_vars {
        if let Err(m) = vars::check_var_name(name) {
            errs.push(PolicyError::at(src, value.span(), "bad-variable", &key, m));
        } else if vars::BUILTIN.contains(&name.as_str()) && name != "STATE_DIR" {
            errs.push(PolicyError::at(
                src,
                value.span(),
                "bad-variable",
                &key,
                format!("${{{name}}} comes from the target user and cannot be set in [vars]"),
            ));
        } else if let VarDef::Derived(d) = value.get_ref() {
            if let Err(m) = d.check_shape() {
                errs.push(PolicyError::at(src, value.span(), "bad-variable", &key, m));
            }
        }
    }
    for c in &p.filesystem.create {
        if c.get_ref().as_str().starts_with('?') {
            errs.push(PolicyError::at(
                src,
                c.span(),
                "bad-value",
                "filesystem.create",
                "create entries cannot be optional ('?'): clawjail creates them",
            ));
        }
    }
    if let Some(abi) = &p.kernel.min_landlock_abi {
        if !(1..=255).contains(abi.get_ref()) {
            errs.push(PolicyError::at(
                src,
                abi.span(),
                "bad-value",
                "kernel.min_landlock_abi",
                format!(
                    "min_landlock_abi = {} is out of range; expected 1 to 9",
                    abi.get_ref()
                ),
            ));
        }
    }
    for (name, value) in &p.env.set {
        if let Err(m) = check_env_name(name) {
            let key = format!("env.set.{name}");
            errs.push(PolicyError::at(src, value.span(), "bad-env-name", &key, m));
        }
    }
}

/// An environment variable name: non-empty, no `=`, no NUL.
pub fn check_env_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        Err(format!(
            "invalid environment variable name {name:?}: must be non-empty without '=' or NUL"
        ))
    } else {
        Ok(())
    }
}
