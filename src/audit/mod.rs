//! `clawjail audit`: inspect a live installation, read-only, and report findings with a
//! severity and a concrete fix, then an exposure score from 0 (locked down) to 10 (wide
//! open), in the spirit of `systemd-analyze security`.
//!
//! Never changes anything: it reads /proc, the state directory, /etc/sudoers*, the Docker
//! socket's mode and the run records `run` leaves under /run/clawjail. Run it as root for
//! the full view (other users' environments and sudoers are root-only); an unprivileged
//! audit says what it could not see.
//!
//! Score: the sum of the findings' weights (critical 4, high 2, medium 1, low 0.5, info
//! 0), capped at 10. One critical finding alone is already "4 of 10"; a gateway running as
//! root with no confinement and listening on every interface reaches 10.

pub mod host;
pub mod net;
pub mod procs;
pub mod statedir;
pub mod strength;

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// How bad a finding is. The weight is what it adds to the exposure score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Points added to the exposure score (documented in docs/verify-audit.md).
    pub fn weight(self) -> f64 {
        match self {
            Severity::Critical => 4.0,
            Severity::High => 2.0,
            Severity::Medium => 1.0,
            Severity::Low => 0.5,
            Severity::Info => 0.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing audit noticed, with the fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable kebab-case code, e.g. `listen-all-interfaces`.
    pub code: &'static str,
    pub severity: Severity,
    /// What it is about: "pid 1234 (node)", "/home/openclaw/.openclaw/.env", "host".
    pub subject: String,
    pub what: String,
    pub fix: String,
}

impl Finding {
    pub fn new(
        code: &'static str,
        severity: Severity,
        subject: impl Into<String>,
        what: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            code,
            severity,
            subject: subject.into(),
            what: what.into(),
            fix: fix.into(),
        }
    }
}

/// The exposure score: sum of weights, capped at 10, one decimal.
pub fn exposure_score(findings: &[Finding]) -> f64 {
    let sum: f64 = findings.iter().map(|f| f.severity.weight()).sum();
    (sum.min(10.0) * 10.0).round() / 10.0
}

/// Whether `--threshold N` fails the audit.
pub fn exceeds(score: f64, threshold: Option<f64>) -> bool {
    threshold.is_some_and(|t| score > t)
}

/// What to audit.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// Substring that selects gateway processes by command line; `None`: the default
    /// (`openclaw` and `gateway` both present).
    pub process: Option<String>,
    /// State directory; `None`: `~/.openclaw` of each matched process's owner.
    pub state_dir: Option<PathBuf>,
}

/// The whole audit, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub matched_by: String,
    pub processes: Vec<procs::ProcSummary>,
    pub findings: Vec<Finding>,
    pub score: f64,
}

/// Inspect the host. Read-only.
pub fn run(opts: &AuditOptions) -> Report {
    let matcher = procs::Matcher::new(opts.process.as_deref());
    let mut findings = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        findings.push(Finding::new(
            "limited-view",
            Severity::Info,
            "audit",
            "not running as root: other users' environments, sudoers and some state files cannot be read",
            "run `sudo clawjail audit` for the full view",
        ));
    }
    let record_dir = std::path::Path::new(crate::runrecord::DIR);
    let (gateways, notes) = procs::scan(&matcher, record_dir);
    findings.extend(notes);
    if gateways.is_empty() {
        findings.push(Finding::new(
            "no-gateway-process",
            Severity::Info,
            "host",
            format!("no running process matched {}", matcher.describe()),
            "start the gateway, or pass --process PATTERN to match its command line",
        ));
    }
    let container = host::container_signals();
    for p in &gateways {
        findings.extend(procs::check(p, record_dir));
        findings.extend(net::check_listeners(p));
        if p.uid == 0 && !container.is_empty() {
            findings.push(host::container_root_finding(p, &container));
        }
    }
    if !container.is_empty() {
        findings.push(host::container_info(&container));
    }
    for user in host::service_users(&gateways) {
        findings.extend(host::check_sudo(&user));
        findings.extend(host::check_docker_socket(&user));
    }
    for sd in statedir::targets(opts.state_dir.as_deref(), &gateways) {
        findings.extend(statedir::check(&sd));
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Report {
        matched_by: matcher.describe(),
        processes: gateways.iter().map(procs::ProcSummary::from).collect(),
        score: exposure_score(&findings),
        findings,
    }
}

/// The text report: one block per finding, then the score.
pub fn render_text(r: &Report, threshold: Option<f64>) -> String {
    let mut out = format!(
        "clawjail audit: {} gateway process(es) matched {}\n",
        r.processes.len(),
        r.matched_by
    );
    for p in &r.processes {
        out.push_str(&format!(
            "  pid {:<7} uid {:<6} {}\n",
            p.pid, p.uid, p.cmdline
        ));
    }
    out.push('\n');
    for f in &r.findings {
        out.push_str(&format!(
            "{:<8} {:<24} {}\n         {}\n         fix: {}\n",
            f.severity.name().to_uppercase(),
            f.code,
            f.subject,
            f.what,
            f.fix
        ));
    }
    out.push_str(&format!("\nexposure score: {:.1}/10", r.score));
    if let Some(t) = threshold {
        out.push_str(&format!(
            " (threshold {t}: {})",
            if exceeds(r.score, threshold) {
                "EXCEEDED"
            } else {
                "ok"
            }
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: Severity) -> Finding {
        Finding::new("x", s, "s", "w", "f")
    }

    #[test]
    fn score_sums_weights() {
        let v = [f(Severity::High), f(Severity::Medium), f(Severity::Low)];
        assert_eq!(exposure_score(&v), 3.5);
    }

    #[test]
    fn score_is_capped_at_ten_and_info_is_free() {
        assert_eq!(exposure_score(&vec![f(Severity::Critical); 4]), 10.0);
        assert_eq!(exposure_score(&vec![f(Severity::Info); 9]), 0.0);
        assert_eq!(exposure_score(&[]), 0.0);
    }

    #[test]
    fn threshold_fails_only_strictly_above() {
        assert!(!exceeds(3.0, Some(3.0)));
        assert!(exceeds(3.5, Some(3.0)));
        assert!(!exceeds(10.0, None));
    }

    #[test]
    fn severities_order_for_sorting() {
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
    }
}
