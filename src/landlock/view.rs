//! The Landlock part of the plan's one serialisable view (`plan::view::PlanView`): what
//! `check --json` prints under `landlock`. Built from the plan without copying the rule
//! list; the rules are rendered only when serialised.

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::Value;

use super::compat::{Feature, FeatureState, Status};
use super::{lower, rights, FsRule, LandlockPlan, LIMITS};
use crate::policy::LandlockMode;
use landlock::Scope;

/// ABI, status, features and the final rule list, as `run` will apply them.
#[derive(Debug, Clone, Serialize)]
pub struct LandlockView<'a> {
    pub mode: &'static str,
    pub kernel_abi: i32,
    pub kernel_error: Option<&'a str>,
    pub effective_abi: i32,
    /// The test-only ABI override's warning, when one is set.
    pub test_abi_override: Option<String>,
    pub status: Status,
    pub features: &'a [FeatureState],
    pub handled_fs: String,
    pub tcp: &'static str,
    pub scopes: Vec<&'static str>,
    pub audit: &'static str,
    pub rules: Rules<'a>,
    pub net_rules: Vec<NetRule>,
    pub deny: &'a [Value],
    pub splits: &'a [lower::Split],
    pub automatic: &'a [Value],
    pub created_dirs: Vec<String>,
    pub optional_missing: &'a [Value],
    pub notes: &'a [String],
    pub cannot_enforce: &'static [&'static str],
}

/// One TCP port rule.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NetRule {
    pub port: u16,
    /// `bind_tcp` or `connect_tcp`.
    pub access: &'static str,
}

/// The filesystem rules, serialised one object each (path, kind, rights, why, opened).
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a>(&'a [FsRule]);

/// One filesystem rule as `check` shows it.
#[derive(Debug, Serialize)]
struct RuleView {
    path: String,
    kind: &'static str,
    rights: String,
    why: String,
    opened: &'static str,
}

impl Serialize for Rules<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for r in self.0 {
            seq.serialize_element(&RuleView {
                path: r.path.display().to_string(),
                kind: if r.is_dir { "dir" } else { "file" },
                rights: rights::names(r.rights),
                why: r.why.join("; "),
                opened: if r.fd.is_some() {
                    "yes"
                } else {
                    "at launch (directory created then)"
                },
            })?;
        }
        seq.end()
    }
}

impl LandlockPlan {
    /// This ruleset's part of the plan view.
    pub fn view(&self) -> LandlockView<'_> {
        let c = &self.compat;
        let net = |ports: &[u16], access: &'static str| -> Vec<NetRule> {
            ports.iter().map(|&port| NetRule { port, access }).collect()
        };
        let mut net_rules = net(&self.bind, "bind_tcp");
        net_rules.extend(net(&self.connect, "connect_tcp"));
        LandlockView {
            mode: match c.mode {
                LandlockMode::Required => "required",
                LandlockMode::BestEffort => "best-effort",
            },
            kernel_abi: c.kernel_abi,
            kernel_error: c.kernel_error.as_deref(),
            effective_abi: c.effective_abi,
            test_abi_override: c.override_warning(),
            status: c.expected_status(),
            features: &c.features,
            handled_fs: rights::names(self.handled_fs),
            tcp: if c.enforced(Feature::Tcp) {
                "every TCP bind/connect not listed is denied"
            } else {
                "NOT enforced"
            },
            scopes: self
                .scopes
                .iter()
                .map(|s| match s {
                    Scope::AbstractUnixSocket => "abstract_unix_socket",
                    Scope::Signal => "signal",
                    _ => "other",
                })
                .collect(),
            audit: if c.enforced(Feature::Audit) {
                "log_new_exec"
            } else {
                "unavailable"
            },
            rules: Rules(&self.rules),
            net_rules,
            deny: &self.report.deny,
            splits: &self.report.splits,
            automatic: &self.report.automatic,
            created_dirs: self.report.created.iter().map(|o| o.to_string()).collect(),
            optional_missing: &self.report.optional_missing,
            notes: &self.report.notes,
            cannot_enforce: LIMITS,
        }
    }
}
