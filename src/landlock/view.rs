//! The Landlock part of the plan's one serialisable view (`plan::view::PlanView`): what
//! `check --json` prints under `landlock`. Built from the plan without copying the rule
//! list; the rules are rendered only when serialised.

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

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
    pub deny: &'a [DenyEntry],
    pub splits: &'a [lower::Split],
    pub automatic: &'a [AutoRule],
    pub created_dirs: Vec<String>,
    pub optional_missing: &'a [OptionalMissing],
    pub notes: &'a [String],
    pub cannot_enforce: &'static [&'static str],
}

/// A `filesystem.deny` entry: an existing path (its own inode is cut out of the grants) or a
/// missing one, guarded by splitting the nearest existing parent.
#[derive(Debug, Clone, Serialize)]
pub struct DenyEntry {
    pub path: String,
    pub exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guarded_by_splitting: Option<String>,
}

/// A rule the target's exec chain needs (its ELF interpreter, libraries, scripts).
#[derive(Debug, Clone, Serialize)]
pub struct AutoRule {
    pub path: String,
    pub rights: String,
    pub why: String,
}

/// An optional (`?`) entry skipped because it does not exist.
#[derive(Debug, Clone, Serialize)]
pub struct OptionalMissing {
    /// The policy key, e.g. `filesystem.read`.
    pub list: &'static str,
    pub path: String,
    /// The first component that is missing.
    pub missing: String,
}

/// What restrict_self achieved, for the launch event (`LandlockOutcome::summary`).
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeSummary {
    pub kernel_abi: i32,
    pub effective_abi: i32,
    pub status: Status,
    /// The landlock crate's own RulesetStatus.
    pub ruleset_status: String,
    pub enforced: Vec<Feature>,
    pub dropped: Vec<Feature>,
    pub fs_rules: usize,
    pub tcp_bind: Vec<u16>,
    pub tcp_connect: Vec<u16>,
    pub test_abi_override: Option<String>,
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

/// Compact JSON with sorted keys, as the launch event's `landlock` field.
impl std::fmt::Display for OutcomeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        write!(f, "{v}")
    }
}
