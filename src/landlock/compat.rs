//! Fail-closed compatibility: which Landlock features the policy implies, which ABI provides
//! each, and what this kernel (or the test-only override) can enforce.
//!
//! `required` refuses when any implied feature is missing, naming it and its ABI.
//! `best-effort` starts and reports each feature as enforced or dropped. `min_landlock_abi`
//! is a floor in both modes. clawjail decides the degradation itself and then asks the crate
//! for exactly that with `CompatLevel::HardRequirement`, so the crate never drops anything on
//! its own (its `SoftRequirement` can silently enforce nothing: research/crates.md §1.1).

use crate::policy::LandlockMode;

use super::rights::MAX_ABI;

/// Test-only: treat the kernel as an older Landlock ABI (only lowers; logged loudly).
pub const TEST_ABI_ENV: &str = "CLAWJAIL_TEST_LANDLOCK_ABI";

/// One Landlock feature (landlock(7) "Versions"). An enum, not a name: a misspelled
/// feature does not compile, so no rule can be skipped by a typo while restrict_self still
/// succeeds (issue 12). Matches on it are exhaustive, so a new feature must be placed.
///
/// ```compile_fail
/// // A misspelled feature cannot be constructed:
/// let _ = clawjail::landlock::compat::Feature::Tpc;
/// ```
/// ```
/// let _ = clawjail::landlock::compat::Feature::Tcp;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    Fs,
    Refer,
    Truncate,
    Tcp,
    IoctlDev,
    Scopes,
    Audit,
    AllThreads,
    ResolveUnix,
}

impl Feature {
    /// Every feature, in ABI order.
    pub const ALL: [Feature; 9] = [
        Feature::Fs,
        Feature::Refer,
        Feature::Truncate,
        Feature::Tcp,
        Feature::IoctlDev,
        Feature::Scopes,
        Feature::Audit,
        Feature::AllThreads,
        Feature::ResolveUnix,
    ];

    /// The name shown by `check`, the launch event and the docs.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Fs => "fs",
            Feature::Refer => "refer",
            Feature::Truncate => "truncate",
            Feature::Tcp => "tcp",
            Feature::IoctlDev => "ioctl_dev",
            Feature::Scopes => "scopes",
            Feature::Audit => "audit",
            Feature::AllThreads => "all_threads",
            Feature::ResolveUnix => "resolve_unix",
        }
    }

    /// The Landlock ABI that introduced the feature.
    pub fn abi(self) -> i32 {
        match self {
            Feature::Fs => 1,
            Feature::Refer => 2,
            Feature::Truncate => 3,
            Feature::Tcp => 4,
            Feature::IoctlDev => 5,
            Feature::Scopes => 6,
            Feature::Audit => 7,
            Feature::AllThreads => 8,
            Feature::ResolveUnix => 9,
        }
    }

    pub fn what(self) -> &'static str {
        match self {
            Feature::Fs => "filesystem read/write/execute rules",
            Feature::Refer => "rename/link between directories of the write set (below ABI 2 the kernel refuses all of them)",
            Feature::Truncate => "truncate(2)/O_TRUNC outside the write set",
            Feature::Tcp => "TCP bind/connect port rules",
            Feature::IoctlDev => "ioctl on device files opened in the sandbox",
            Feature::Scopes => "abstract unix sockets and signals to processes outside the sandbox",
            Feature::Audit => "audit records for denials after exec (log_new_exec)",
            Feature::AllThreads => "restricting every thread at once (TSYNC; clawjail is single-threaded here)",
            Feature::ResolveUnix => "connecting to pathname unix sockets",
        }
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Features this build never uses (above `MAX_ABI`).
fn used(f: Feature) -> bool {
    f.abi() <= MAX_ABI
}

/// What the policy needs from Landlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Any write rule exists (Refer is what lets renames inside the write set work).
    pub refer: bool,
    /// At least one scope is not opted out.
    pub scopes: bool,
}

impl Needs {
    /// Whether the policy implies `f`. Audit is observability, not access control, so it is
    /// never a reason to refuse (it is still reported as dropped when unavailable).
    pub fn implies(&self, f: Feature) -> bool {
        match f {
            Feature::Refer => self.refer,
            Feature::Scopes => self.scopes,
            Feature::Audit | Feature::AllThreads | Feature::ResolveUnix => false,
            Feature::Fs | Feature::Truncate | Feature::Tcp | Feature::IoctlDev => true,
        }
    }
}

/// What clawjail does with one feature. Decides whether a rule is applied, so an enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Enforced,
    Dropped,
    NotNeeded,
    NotUsedByThisBuild,
}

/// The ruleset status clawjail reports, from the policy's point of view (the landlock
/// crate's `RulesetStatus` says only what the kernel did with what was asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Status {
    FullyEnforced,
    PartiallyEnforced,
    NotEnforced,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::FullyEnforced => "FullyEnforced",
            Status::PartiallyEnforced => "PartiallyEnforced",
            Status::NotEnforced => "NotEnforced",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-feature verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FeatureState {
    pub feature: Feature,
    pub abi: i32,
    pub state: State,
    pub what: &'static str,
}

/// The ABI decision, made once in `prepare` and shown by `check` and the launch event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compat {
    pub mode: LandlockMode,
    /// What the kernel reports (0: no Landlock), or the errno name when unavailable.
    pub kernel_abi: i32,
    pub kernel_error: Option<String>,
    /// The test-only override value, when set.
    pub test_override: Option<i32>,
    /// min(kernel, override, MAX_ABI): what clawjail will ask the kernel to enforce.
    pub effective_abi: i32,
    pub features: Vec<FeatureState>,
}

impl Compat {
    /// The verdict on `f`. `decide` lists every feature, so this never falls back.
    pub fn state(&self, f: Feature) -> State {
        self.features
            .iter()
            .find(|s| s.feature == f)
            .map_or(State::NotUsedByThisBuild, |s| s.state)
    }

    pub fn enforced(&self, f: Feature) -> bool {
        self.state(f) == State::Enforced
    }

    pub fn in_state(&self, state: State) -> Vec<Feature> {
        self.features
            .iter()
            .filter(|f| f.state == state)
            .map(|f| f.feature)
            .collect()
    }

    pub fn dropped(&self) -> Vec<Feature> {
        self.in_state(State::Dropped)
    }

    /// The ruleset status clawjail will report: the policy's view, not just the crate's.
    pub fn expected_status(&self) -> Status {
        if self.effective_abi <= 0 {
            Status::NotEnforced
        } else if self.dropped().is_empty() {
            Status::FullyEnforced
        } else {
            Status::PartiallyEnforced
        }
    }

    /// Warning text for the test override, when one is active.
    pub fn override_warning(&self) -> Option<String> {
        self.test_override.map(|v| {
            if v < self.kernel_abi.min(MAX_ABI) {
                format!("TEST-ONLY {TEST_ABI_ENV}={v}: treating the kernel (Landlock ABI {}) as ABI {v}; features above ABI {v} are NOT enforced. Never set this in production.", self.kernel_abi)
            } else {
                format!("TEST-ONLY {TEST_ABI_ENV}={v} is set but has no effect (it can only lower the ABI; the kernel provides {})", self.kernel_abi)
            }
        })
    }
}

/// Parse the override: a number 0..=9; anything else is an error (fail closed).
pub fn parse_override(raw: Option<&str>) -> Result<Option<i32>, String> {
    match raw {
        None => Ok(None),
        Some(s) => match s.trim().parse::<i32>() {
            Ok(n) if (0..=9).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "{TEST_ABI_ENV}={s:?}: expected a Landlock ABI number 0 to 9 (test-only)"
            )),
        },
    }
}

/// Decide what will be enforced. Pure: `kernel_abi` comes from
/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`.
pub fn decide(
    mode: LandlockMode,
    kernel_abi: i32,
    kernel_error: Option<String>,
    test_override: Option<i32>,
    needs: Needs,
) -> Compat {
    let mut effective = kernel_abi.clamp(0, MAX_ABI);
    if let Some(o) = test_override {
        effective = effective.min(o);
    }
    let features = Feature::ALL
        .into_iter()
        .map(|f| {
            let state = if !used(f) {
                State::NotUsedByThisBuild
            } else if !needs.implies(f) && f != Feature::Audit {
                State::NotNeeded
            } else if f.abi() <= effective {
                State::Enforced
            } else {
                State::Dropped
            };
            FeatureState {
                feature: f,
                abi: f.abi(),
                state,
                what: f.what(),
            }
        })
        .collect();
    Compat {
        mode,
        kernel_abi,
        kernel_error,
        test_override,
        effective_abi: effective,
        features,
    }
}

/// Features the policy implies that this ABI lacks, as "tcp (ABI 4)".
pub fn missing_implied(c: &Compat, needs: Needs) -> Vec<String> {
    Feature::ALL
        .into_iter()
        .filter(|&f| used(f) && needs.implies(f) && f.abi() > c.effective_abi)
        .map(|f| format!("{} (ABI {}: {})", f.name(), f.abi(), f.what()))
        .collect()
}

/// Features introduced between `have+1` and `want`, for the min_landlock_abi message.
pub fn missing_up_to(have: i32, want: i32) -> Vec<String> {
    Feature::ALL
        .into_iter()
        .filter(|f| f.abi() > have && f.abi() <= want)
        .map(|f| format!("{} (ABI {})", f.name(), f.abi()))
        .collect()
}

/// `kernel.min_landlock_abi`: a floor on the effective ABI in both modes.
pub fn floor_refusal(c: &Compat, min_abi: i32) -> Option<String> {
    if c.effective_abi >= min_abi {
        return None;
    }
    let build = if min_abi > MAX_ABI {
        format!(" (this clawjail build enforces at most ABI {MAX_ABI})")
    } else {
        String::new()
    };
    Some(format!(
        "kernel.min_landlock_abi = {min_abi}, but {}{build}; missing: {}",
        describe_abi(c),
        missing_up_to(c.effective_abi, min_abi).join(", ")
    ))
}

/// `kernel.landlock = "required"`: every implied feature must be enforceable.
pub fn required_refusal(c: &Compat, needs: Needs) -> Option<String> {
    if c.mode != LandlockMode::Required {
        return None;
    }
    let missing = missing_implied(c, needs);
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "kernel.landlock = \"required\", but {}, which cannot enforce: {}. Run on a newer kernel, or set kernel.landlock = \"best-effort\" to start without them",
        describe_abi(c),
        missing.join("; ")
    ))
}

/// Why `prepare` must refuse, if it must: the floor first, then `required`.
pub fn refusal(c: &Compat, needs: Needs, min_abi: Option<i32>) -> Option<String> {
    min_abi
        .and_then(|m| floor_refusal(c, m))
        .or_else(|| required_refusal(c, needs))
}

pub fn describe_abi(c: &Compat) -> String {
    let kernel = match (&c.kernel_error, c.kernel_abi) {
        (Some(e), _) => format!("Landlock is unavailable on this kernel ({e})"),
        (None, k) => format!("the kernel provides Landlock ABI {k}"),
    };
    match c.test_override {
        Some(o) if o < c.kernel_abi.min(MAX_ABI) => {
            format!("{kernel}, lowered to ABI {o} by the test-only {TEST_ABI_ENV}")
        }
        _ => kernel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Needs = Needs {
        refer: true,
        scopes: true,
    };

    #[test]
    fn abi7_enforces_everything_used() {
        let c = decide(LandlockMode::Required, 7, None, None, ALL);
        assert_eq!(c.effective_abi, 7);
        assert!(c.dropped().is_empty());
        assert_eq!(c.expected_status(), Status::FullyEnforced);
        assert_eq!(refusal(&c, ALL, None), None);
    }

    #[test]
    fn newer_kernels_are_capped_at_the_reviewed_abi() {
        let c = decide(LandlockMode::Required, 9, None, None, ALL);
        assert_eq!(c.effective_abi, MAX_ABI);
        assert_eq!(refusal(&c, ALL, None), None);
    }

    #[test]
    fn override_only_lowers_and_required_refuses_naming_features() {
        let c = decide(LandlockMode::Required, 7, None, Some(3), ALL);
        assert_eq!(c.effective_abi, 3);
        let msg = refusal(&c, ALL, None).unwrap();
        assert!(msg.contains("tcp (ABI 4"), "{msg}");
        assert!(msg.contains("scopes (ABI 6"), "{msg}");
        assert!(msg.contains("CLAWJAIL_TEST_LANDLOCK_ABI"), "{msg}");
        let up = decide(LandlockMode::Required, 5, None, Some(7), ALL);
        assert_eq!(up.effective_abi, 5);
    }

    #[test]
    fn best_effort_reports_each_dropped_feature() {
        let c = decide(LandlockMode::BestEffort, 7, None, Some(3), ALL);
        assert_eq!(refusal(&c, ALL, None), None);
        assert_eq!(
            c.dropped(),
            vec![
                Feature::Tcp,
                Feature::IoctlDev,
                Feature::Scopes,
                Feature::Audit
            ]
        );
        assert_eq!(c.expected_status(), Status::PartiallyEnforced);
    }

    #[test]
    fn floor_applies_in_both_modes() {
        for mode in [LandlockMode::Required, LandlockMode::BestEffort] {
            let c = decide(mode, 7, None, None, ALL);
            let msg = refusal(&c, ALL, Some(9)).unwrap();
            assert!(msg.contains("all_threads (ABI 8)"), "{msg}");
            assert!(msg.contains("resolve_unix (ABI 9)"), "{msg}");
        }
    }

    #[test]
    fn scopes_opted_out_are_not_needed() {
        let needs = Needs {
            refer: true,
            scopes: false,
        };
        let c = decide(LandlockMode::Required, 5, None, None, needs);
        assert_eq!(refusal(&c, needs, None), None);
        assert!(c
            .features
            .iter()
            .any(|f| f.feature == Feature::Scopes && f.state == State::NotNeeded));
    }

    #[test]
    fn no_landlock_required_refuses_best_effort_is_not_enforced() {
        let c = decide(LandlockMode::Required, 0, Some("ENOSYS".into()), None, ALL);
        assert!(refusal(&c, ALL, None).unwrap().contains("unavailable"));
        let c = decide(
            LandlockMode::BestEffort,
            0,
            Some("ENOSYS".into()),
            None,
            ALL,
        );
        assert_eq!(c.expected_status(), Status::NotEnforced);
    }

    #[test]
    fn override_must_be_a_number() {
        assert!(parse_override(Some("x")).is_err());
        assert!(parse_override(Some("10")).is_err());
        assert_eq!(parse_override(Some("3")).unwrap(), Some(3));
    }

    /// The names `check --json` and the launch event print are the ones docs/landlock.md
    /// and landlock(7) use, and serde agrees with `name()` (no second spelling). A feature
    /// is a `Feature` value, never a string: `Feature::Tpc` does not compile, and the only
    /// way from text to a feature is not offered at all.
    #[test]
    fn feature_names_are_one_spelling_and_abis_ascend() {
        let mut last = 0;
        for f in Feature::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.name(), "{f:?}");
            assert!(f.abi() > last, "{f:?} out of ABI order");
            last = f.abi();
        }
        let c = decide(LandlockMode::Required, 7, None, None, ALL);
        assert_eq!(c.features.len(), Feature::ALL.len());
        let v = serde_json::to_value(&c.features[3]).unwrap();
        assert_eq!(v["feature"], "tcp");
        assert_eq!(v["state"], "enforced");
        assert_eq!(
            serde_json::to_value(State::NotUsedByThisBuild).unwrap(),
            "not-used-by-this-build"
        );
        assert!(c.enforced(Feature::Tcp) && c.enforced(Feature::Scopes));
        assert_eq!(c.state(Feature::ResolveUnix), State::NotUsedByThisBuild);
    }
}
