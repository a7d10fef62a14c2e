//! Command line: `run`, `check`, `verify`, `audit`, `export`, `completions`, `man`.
//! Exit codes for `run`:
//! the target's own once it runs; 125 when clawjail refuses or a step fails (the target
//! never ran); 126 when the exec itself fails; 127 when the target is not found.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::plan::{self, PrepareOptions};
use crate::policy::{self, Loaded, Origin, Source};

#[derive(Debug, Parser)]
#[command(
    name = "clawjail",
    version,
    about = "Confine an AI-agent gateway before it starts",
    long_about = None,
    after_help = "Examples:
  clawjail run -- openclaw gateway                  embedded default policy
  clawjail run --policy /etc/clawjail/gateway.toml --var PORT=18789 -- openclaw gateway
  clawjail check --policy policy.toml -- openclaw    print the plan run would apply
  clawjail verify --policy policy.toml               attempt what the policy forbids
  clawjail audit                                     inspect a live installation
  clawjail completions bash > /etc/bash_completion.d/clawjail
  clawjail man --dir /usr/local/share/man/man1"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Confine and exec a command: clawjail run [--policy FILE] -- CMD [ARGS...]
    Run(RunArgs),
    /// Validate a policy, resolve it on this machine and print the plan `run` would apply.
    Check(CheckArgs),
    /// Attempt forbidden and allowed actions under a policy, each with a control, and print
    /// PASS/FAIL/INCONCLUSIVE/NOT ENFORCEABLE/ACCEPTED per row. Exit 0 only if all pass.
    Verify(VerifyArgs),
    /// Inspect the live installation (read-only): findings with fixes and an exposure score.
    Audit(AuditArgs),
    /// Print a shell completion script: clawjail completions bash > /etc/bash_completion.d/clawjail
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command into --dir.
    Man(ManArgs),
    /// Render the policy for systemd, an OCI runtime or Kubernetes (docs/export.md).
    Export(crate::export::args::ExportArgs),
    /// Run the target once, confined but with its allowlists opened, and propose a policy
    /// from what it did (files, TCP ports, syscalls); docs/learn.md.
    Learn(LearnArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print the rows as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Print the findings and the score as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when the exposure score is above N (0-10).
    #[arg(long, value_name = "N")]
    pub threshold: Option<f64>,
    /// The gateway's state directory (default: ~/.openclaw of each gateway process owner).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Select gateway processes whose command line contains PATTERN (default: both
    /// "openclaw" and "gateway").
    #[arg(long, value_name = "PATTERN")]
    pub process: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write clawjail.1 and clawjail-<command>.1 into DIR instead of printing clawjail.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Policy file (default: $CLAWJAIL_POLICY, then /etc/clawjail/policy.toml, then the embedded default).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Set a policy variable: --var PORT=18789 (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    policy::vars::parse_cli_var(s)
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Print the plan and stop before the first irreversible step.
    #[arg(long)]
    pub dry_run: bool,
    /// Fork: the child is confined and execs the target; the parent stays as a minimal
    /// PID 1 (subreaper, signal relay, exit status). For container entrypoints.
    #[arg(long)]
    pub init: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `clawjail learn` (docs/learn.md).
#[derive(Debug, Args)]
pub struct LearnArgs {
    /// The base policy (default: as for `run`): its identity, env, limits, deny list and
    /// session handling apply while learning; the output keeps them.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Write the proposed policy here (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// End the run after this many seconds (SIGTERM, then SIGKILL 5 s later) and write
    /// the policy. Without it the run ends when the target exits or on Ctrl-C.
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// The command to learn.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also print a readable disassembly of the seccomp filter.
    #[arg(long)]
    pub bpf: bool,
    /// Optional command, to show its resolved exec chain.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// A failure reported once by main, with the exit code to use.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    fn new(code: i32, message: impl ToString) -> Self {
        Failure {
            code,
            message: message.to_string(),
        }
    }
}

/// Find and load the policy: --policy, $CLAWJAIL_POLICY, /etc/clawjail/policy.toml, embedded.
pub fn load_policy(flag: Option<&PathBuf>) -> Result<Loaded, policy::PolicyError> {
    const SYSTEM: &str = "/etc/clawjail/policy.toml";
    let origin = if let Some(p) = flag {
        Origin::Flag(p.display().to_string())
    } else if let Some(p) = std::env::var_os("CLAWJAIL_POLICY").filter(|p| !p.is_empty()) {
        Origin::Env(PathBuf::from(p).display().to_string())
    } else if std::path::Path::new(SYSTEM).exists() {
        Origin::System(SYSTEM.to_string())
    } else {
        Origin::Embedded
    };
    let text = match &origin {
        Origin::Embedded => policy::EMBEDDED_DEFAULT.to_string(),
        Origin::Flag(p) | Origin::Env(p) | Origin::System(p) => read_policy_file(p, &origin)?,
    };
    policy::load(Source::new(origin, text))
}

/// Most bytes of a policy file (the shipped one is a few KiB).
pub const POLICY_MAX: u64 = 1024 * 1024;

/// Read a policy file the way root may trust it: reached by the safe walk (no other user's
/// symlink, `paths::Trust`), a regular file (a FIFO would block, /dev/zero never ends),
/// owned by root or the caller, not group/other-writable (else another user could rewrite
/// what root enforces), at most [`POLICY_MAX`] bytes, UTF-8.
fn read_policy_file(p: &str, origin: &Origin) -> Result<String, policy::PolicyError> {
    use crate::paths::{self, PathError, ReadError, Trust};
    let whole = |code, msg: String| policy::PolicyError::whole(p, code, msg);
    let how = origin.how();
    let path = std::path::Path::new(p);
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| whole("unreadable", format!("cannot read policy ({how}): {e}")))?
            .join(path)
    };
    let r = paths::resolve(&abs, &Trust::for_caller()).map_err(|e| match e {
        PathError::UnsafeSymlink { .. } => whole(
            "untrusted-policy",
            format!("refusing the policy ({how}): {e}"),
        ),
        e => whole("unreadable", format!("cannot read policy ({how}): {e}")),
    })?;
    if !r.meta.is_regular() {
        return Err(whole(
            "untrusted-policy",
            format!("refusing the policy ({how}): not a regular file (a FIFO or device could block or never end); pass a regular file"),
        ));
    }
    let caller = nix::unistd::getuid().as_raw();
    if r.meta.uid != 0 && r.meta.uid != caller {
        return Err(whole(
            "untrusted-policy",
            format!("refusing the policy ({how}): owned by uid {}, neither root nor the caller (uid {caller}), so someone else decides what is enforced; fix: chown root:root {p}", r.meta.uid),
        ));
    }
    if r.meta.mode & 0o022 != 0 {
        return Err(whole(
            "untrusted-policy",
            format!("refusing the policy ({how}): mode {:04o} lets group or others rewrite it; fix: chmod go-w {p}", r.meta.mode & 0o7777),
        ));
    }
    let bytes = paths::read_capped(&r, POLICY_MAX).map_err(|e| match e {
        ReadError::Path(e) => whole("unreadable", format!("cannot read policy ({how}): {e}")),
        e => whole(
            "untrusted-policy",
            format!("refusing the policy ({how}): {e}"),
        ),
    })?;
    String::from_utf8(bytes).map_err(|_| {
        whole(
            "unreadable",
            format!("cannot read policy ({how}): not UTF-8 text"),
        )
    })
}

/// Set up tracing on stderr (text or one JSON object per line).
pub fn init_logging(format: LogFormat) {
    // CLAWJAIL_LOG=debug|warn|error|off; default info.
    let level = match std::env::var("CLAWJAIL_LOG").as_deref() {
        Ok("debug") => tracing::level_filters::LevelFilter::DEBUG,
        Ok("warn") => tracing::level_filters::LevelFilter::WARN,
        Ok("error") => tracing::level_filters::LevelFilter::ERROR,
        Ok("off") => tracing::level_filters::LevelFilter::OFF,
        _ => tracing::level_filters::LevelFilter::INFO,
    };
    if level == tracing::level_filters::LevelFilter::OFF {
        // No subscriber at all: every event is then disabled at its call site, and the
        // launch does not pay for building a formatter it never uses (docs/performance.md).
        return;
    }
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second init (tests) is harmless; the first subscriber stays.
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    if result.is_err() {
        tracing::debug!("logging already initialised");
    }
}

/// `clawjail __verify-exec ACTION ARGS...`: verify's internal re-exec, answered before clap
/// so that it appears in no help, completion or man page. `None` for any other command line.
pub fn internal_command(args: &[OsString]) -> Option<i32> {
    // `__verify-egress`: verify's confined egress attempt, `run` of the policy on stdin
    // (src/verify/egress.rs).
    if args.get(1).map(OsString::as_os_str)
        == Some(std::ffi::OsStr::new(crate::verify::egress::INTERNAL))
    {
        let rest: Option<Vec<String>> = args[2..]
            .iter()
            .map(|a| a.clone().into_string().ok())
            .collect();
        return Some(crate::verify::egress::internal(&rest.unwrap_or_default()));
    }
    if args.get(1).map(OsString::as_os_str) != Some(std::ffi::OsStr::new("__verify-exec")) {
        return None;
    }
    let action: Option<Vec<String>> = args[2..]
        .iter()
        .map(|a| a.clone().into_string().ok())
        .collect();
    Some(match action {
        Some(action) => crate::verify::exec_probe(&action),
        None => crate::verify::exec_probe(&["non-utf8-argument".to_string()]),
    })
}

pub fn run(cli: Cli) -> Result<i32, Failure> {
    match cli.command {
        Command::Run(a) => cmd_run(a),
        Command::Check(a) => cmd_check(a),
        Command::Verify(a) => cmd_verify(a),
        Command::Audit(a) => cmd_audit(a),
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(a.shell, &mut cmd, "clawjail", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man(a) => cmd_man(a),
        Command::Export(a) => crate::export::args::run(a),
        Command::Learn(a) => cmd_learn(a),
    }
}

fn cmd_man(a: ManArgs) -> Result<i32, Failure> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = a.dir else {
        clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .map_err(|e| Failure::new(2, format!("man page: {e}")))?;
        return Ok(0);
    };
    clap_mangen::generate_to(cmd, &dir)
        .map_err(|e| Failure::new(2, format!("man pages into {}: {e}", dir.display())))?;
    Ok(0)
}

fn cmd_audit(a: AuditArgs) -> Result<i32, Failure> {
    if let Some(t) = a.threshold {
        if !(0.0..=10.0).contains(&t) {
            return Err(Failure::new(
                2,
                format!("--threshold {t}: expected 0 to 10"),
            ));
        }
    }
    let report = crate::audit::run(&crate::audit::AuditOptions {
        process: a.process,
        state_dir: a.state_dir,
    });
    if a.json {
        let mut v = serde_json::to_value(&report).map_err(|e| Failure::new(2, e))?;
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("threshold".into(), serde_json::json!(a.threshold));
            m.insert(
                "exceeded".into(),
                serde_json::Value::Bool(crate::audit::exceeds(report.score, a.threshold)),
            );
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Failure::new(2, e))?
        );
    } else {
        print!("{}", crate::audit::render_text(&report, a.threshold));
    }
    Ok(i32::from(crate::audit::exceeds(report.score, a.threshold)))
}

fn cmd_verify(a: VerifyArgs) -> Result<i32, Failure> {
    // The confined child's launch event would interleave with the table: warnings only,
    // unless CLAWJAIL_LOG asks for more.
    if std::env::var_os("CLAWJAIL_LOG").is_none() {
        std::env::set_var("CLAWJAIL_LOG", "warn");
    }
    init_logging(LogFormat::Text);
    // A policy or plan error exits like `run` would (125), with the same located message.
    let loaded = load_policy(a.policy.policy.as_ref()).map_err(|e| Failure::new(125, e))?;
    let report = crate::verify::run(&loaded, &a.policy.vars).map_err(|e| {
        let code = match e {
            crate::verify::VerifyError::Plan(_) => 125,
            _ => 2,
        };
        Failure::new(code, e)
    })?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Failure::new(2, e))?
        );
    } else {
        print!("{}", crate::verify::render::text(&report));
    }
    Ok(if report.passed { 0 } else { 1 })
}

fn cmd_check(a: CheckArgs) -> Result<i32, Failure> {
    init_logging(LogFormat::Text);
    let loaded = load_policy(a.policy.policy.as_ref()).map_err(|e| Failure::new(1, e))?;
    let opts = PrepareOptions {
        cli_vars: a.policy.vars,
        command: (!a.command.is_empty()).then_some(a.command),
        init: false,
        apply: false,
        ..Default::default()
    };
    let plan = plan::prepare(&loaded, &opts).map_err(|e| Failure::new(1, e))?;
    let v = crate::report::CheckView::of(&plan, a.bpf)
        .to_value()
        .map_err(|e| Failure::new(1, e))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Failure::new(1, e))?
        );
    } else {
        print!("{}", crate::report::render_text(&v));
    }
    Ok(0)
}

fn cmd_run(a: RunArgs) -> Result<i32, Failure> {
    init_logging(a.log_format);
    let loaded = load_policy(a.policy.policy.as_ref()).map_err(|e| Failure::new(125, e))?;
    let opts = PrepareOptions {
        cli_vars: a.policy.vars,
        command: Some(a.command),
        init: a.init,
        apply: !a.dry_run,
        ..Default::default()
    };
    let plan = plan::prepare(&loaded, &opts).map_err(|e| {
        let code = match &e {
            plan::PlanError::Target(plan::target::TargetError::NotFound { .. }) => 127,
            _ => 125,
        };
        Failure::new(code, e)
    })?;
    // Fail closed: a policy that asks for egress control never runs without it.
    crate::egress::refuse_run_unless_enforceable(plan.egress.as_ref())
        .map_err(|m| Failure::new(125, m))?;
    if a.dry_run {
        let v = crate::report::CheckView::of(&plan, false)
            .to_value()
            .map_err(|e| Failure::new(125, e))?;
        print!("{}", crate::report::render_text(&v));
        println!(
            "dry run: stopped before the first irreversible step ({})",
            crate::launch::Step::NewSession
        );
        return Ok(0);
    }
    // Written while still root, so the record is root-owned; a failure is only a warning.
    crate::runrecord::leave_for_run(&plan, &loaded.policy);
    let (code, e) = crate::launch::apply_and_exec(&plan);
    Err(Failure::new(code, e))
}

/// `clawjail learn`: prepare like `run` (symlink trust from the base), swap in the learning
/// Landlock (allow-all split around `deny`, TCP open) and seccomp (USER_NOTIF) plans,
/// always fork the supervisor with the learn job, apply, exec. The supervisor writes the
/// policy (src/learn/).
fn cmd_learn(a: LearnArgs) -> Result<i32, Failure> {
    init_logging(LogFormat::Text);
    let base = load_policy(a.policy.policy.as_ref()).map_err(|e| Failure::new(125, e))?;
    let duration = match a.duration {
        Some(s) if s.is_finite() && s > 0.0 => Some(std::time::Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(Failure::new(
                2,
                format!("--duration {s}: expected seconds > 0"),
            ))
        }
        None => None,
    };
    let handoff = crate::learn::handoff::Handoff::new()
        .map_err(|e| Failure::new(125, format!("socketpair(handoff): {e}")))?;
    let opts = PrepareOptions {
        cli_vars: a.policy.vars,
        command: Some(a.command.clone()),
        init: false,
        apply: true,
        link_trust_from: Some(base.clone()),
    };
    let mut plan = plan::prepare(&crate::learn::learning_policy(&base), &opts).map_err(|e| {
        let code = match &e {
            plan::PlanError::Target(plan::target::TargetError::NotFound { .. }) => 127,
            _ => 125,
        };
        Failure::new(code, e)
    })?;
    let unlisted = (0..512u32)
        .filter(|nr| plan.seccomp.unlisted(*nr))
        .collect();
    plan.seccomp = plan
        .seccomp
        .for_learning(handoff.target_fd())
        .map_err(|e| Failure::new(125, e))?;
    plan.landlock.open_network_for_learning();
    // The supervisor must exist: fork even where `run` would exec in place.
    plan.session = crate::session::SessionMode::Init;
    let vars = plan.vars.clone();
    let fs = &base.policy.filesystem;
    let job = crate::learn::Job {
        handoff,
        out: a.out,
        duration,
        deny: crate::learn::expand_all(&vars, fs.deny.iter().map(|e| &e.get_ref().path)),
        instance_dirs: crate::learn::expand_all(&vars, fs.create.iter().map(|e| e.get_ref())),
        home: vars.get("HOME").map(PathBuf::from),
        uid: plan.identity.ids().uid,
        vars,
        base,
        unlisted,
        command: a.command,
    };
    plan.supervisor.learn = Some(std::sync::Arc::new(job));
    eprintln!(
        "clawjail learn: base policy {} ({}); deny entries enforced, allowlists opened",
        plan.source.file, plan.source.selected_by
    );
    let (code, e) = crate::launch::apply_and_exec(&plan);
    Err(Failure::new(code, e))
}
