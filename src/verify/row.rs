//! Rows: one attempted action, what the policy says should happen, what happened under
//! confinement and in the control, and the verdict. The verdict logic is pure and tested
//! here; the runner only collects `Got`s.

use serde::{Deserialize, Serialize};

/// What a row checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The kernel enforces what this policy says (a denial it implies, an allowance it grants).
    Enforcement,
    /// What no agent gateway should be able to do, whatever the policy says.
    Baseline,
    /// A documented limit of the kernel mechanisms: shown, never counted as a failure.
    Limit,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Enforcement => "enforce",
            Kind::Baseline => "baseline",
            Kind::Limit => "limit",
        }
    }
}

/// The verdict of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "PASS")]
    Pass,
    #[serde(rename = "FAIL")]
    Fail,
    #[serde(rename = "INCONCLUSIVE")]
    Inconclusive,
    #[serde(rename = "NOT ENFORCEABLE")]
    NotEnforceable,
    #[serde(rename = "ACCEPTED")]
    Accepted,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Inconclusive => "INCONCLUSIVE",
            Status::NotEnforceable => "NOT ENFORCEABLE",
            Status::Accepted => "ACCEPTED",
        }
    }
}

/// What the policy says should happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The attempt must fail (any errno, or death by SIGSYS from a seccomp kill action).
    Denied,
    /// The attempt must succeed (the policy grants it; its target needs it).
    Allowed,
    /// A /proc/self/status line (after exec) must read exactly `want` (whitespace-normalised).
    StatusField { field: String, want: String },
    /// `env-names` (after exec) must not list `name`.
    EnvAbsent { name: String },
    /// A limit: record what happens.
    Observe,
}

impl Expect {
    pub fn describe(&self) -> String {
        match self {
            Expect::Denied => "denied".into(),
            Expect::Allowed => "allowed".into(),
            Expect::StatusField { field, want } => format!("{field} {want}"),
            Expect::EnvAbsent { name } => format!("{name} absent"),
            Expect::Observe => "(not enforceable)".into(),
        }
    }
}

/// What an attempt did. Crosses the pipe from the children as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Got {
    Ok {
        detail: String,
    },
    Errno {
        errno: i32,
    },
    /// The probe could not set up its attempt (bad fixture, failed re-exec).
    Broken {
        why: String,
    },
    /// No probe family knows the action (`probe::run` returned None).
    Missing {
        action: String,
    },
    /// The attempt died from a signal (SIGSYS: a seccomp kill action).
    Killed {
        signal: i32,
    },
    /// The attempt was not made (no fixture, no control for this row).
    NotRun {
        why: String,
    },
    /// The confinement itself could not be prepared or applied.
    NotConfined {
        why: String,
    },
}

impl Got {
    pub fn from_outcome(o: crate::probe::Outcome) -> Got {
        match o {
            crate::probe::Outcome::Ok(detail) => Got::Ok { detail },
            crate::probe::Outcome::Errno(errno) => Got::Errno { errno },
            crate::probe::Outcome::Broken(why) => Got::Broken { why },
        }
    }

    /// Refused by the kernel: an errno, or SIGSYS from seccomp's kill action.
    pub fn is_denied(&self) -> bool {
        matches!(self, Got::Errno { .. })
            || matches!(self, Got::Killed { signal } if *signal == libc::SIGSYS)
    }

    pub fn describe(&self) -> String {
        match self {
            Got::Ok { detail } if detail.is_empty() => "ok".into(),
            Got::Ok { detail } => format!("ok {}", first_line(detail)),
            Got::Errno { errno } => format!("errno {}", crate::sys::errno_name(*errno)),
            Got::Broken { why } => format!("broken: {why}"),
            Got::Missing { action } => format!("probe action missing: {action}"),
            Got::Killed { signal } => format!("killed by signal {signal}"),
            Got::NotRun { why } => format!("not run: {why}"),
            Got::NotConfined { .. } => "not confined".into(),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Why a row is INCONCLUSIVE, which decides whether another row can stand in for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gap {
    /// The control failed too (the uid cannot do it anyway): the layer was not exercised
    /// by this row; a PASS row of the same layer exercises it.
    ControlFailed,
    /// Nothing to attack (the path does not exist); a PASS row of the same layer covers it.
    FixtureAbsent,
    /// The row could not be checked at all (probe action missing, broken fixture, no
    /// control): never covered, the verify run does not pass.
    Unchecked,
}

/// A finished row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub kind: Kind,
    pub attempt: String,
    pub expect: String,
    pub got: String,
    pub control: Option<String>,
    pub status: Status,
    /// The mechanism this row exercises (landlock-fs, landlock-net, landlock-scope,
    /// seccomp, identity, caps, nnp, env, fds).
    pub layer: &'static str,
    pub note: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
}

/// Everything the verdict depends on.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    pub kind: Kind,
    pub expect: &'a Expect,
    pub layer: &'static str,
    pub confined: &'a Got,
    /// `None` when the row has no control (status fields are checked against values).
    pub control: Option<&'a Got>,
    /// For baseline rows: the policy line that allows the action.
    pub policy_allows: Option<&'a str>,
    /// The `[risk] accept` name that covers this row, if any.
    pub risk: Option<&'a str>,
    /// Whether the policy lists `risk` in `[risk] accept`.
    pub accepted: bool,
    /// A limit's explanation.
    pub limit_note: Option<&'a str>,
}

/// The verdict, a note, and the gap for INCONCLUSIVE rows.
pub fn decide(ev: &Evidence<'_>) -> (Status, String, Option<Gap>) {
    if ev.kind == Kind::Limit {
        let note = ev.limit_note.unwrap_or("documented limit").to_string();
        return (Status::NotEnforceable, note, None);
    }
    if let Some(line) = ev.policy_allows {
        return match ev.accepted_as() {
            Some(risk) => (
                Status::Accepted,
                format!("the policy allows it ({line}) and accepts the risk in risk.accept = [\"{risk}\"]"),
                None,
            ),
            None => (
                Status::Fail,
                format!("the policy allows it: {line}{}", ev.risk_hint()),
                None,
            ),
        };
    }
    match ev.confined {
        Got::NotConfined { .. } => {
            return (
                Status::Fail,
                "not confined: the plan could not be prepared or applied (see above)".into(),
                None,
            )
        }
        Got::Missing { action } => {
            return (
                Status::Inconclusive,
                format!("probe action missing: {action} (this build cannot attempt it)"),
                Some(Gap::Unchecked),
            )
        }
        Got::Broken { why } => {
            return (
                Status::Inconclusive,
                format!("the attempt could not be set up: {why}"),
                Some(Gap::Unchecked),
            )
        }
        Got::NotRun { why } => {
            let gap = if why.contains("does not exist") {
                Gap::FixtureAbsent
            } else {
                Gap::Unchecked
            };
            return (
                Status::Inconclusive,
                format!("not attempted: {why}"),
                Some(gap),
            );
        }
        Got::Killed { signal } if *signal != libc::SIGSYS => {
            return (
                Status::Inconclusive,
                format!("the attempt died from signal {signal} (timeout or crash)"),
                Some(Gap::Unchecked),
            )
        }
        _ => {}
    }
    match ev.expect {
        Expect::Denied => decide_denied(ev),
        Expect::Allowed => decide_allowed(ev),
        Expect::StatusField { field, want } => decide_status_field(ev.confined, field, want),
        Expect::EnvAbsent { name } => decide_env_absent(ev, name),
        Expect::Observe => (Status::NotEnforceable, String::new(), None),
    }
}

impl Evidence<'_> {
    fn accepted_as(&self) -> Option<&str> {
        self.risk.filter(|_| self.accepted)
    }

    fn risk_hint(&self) -> String {
        self.risk
            .map(|r| format!(" (to accept it knowingly: [risk] accept = [\"{r}\"])"))
            .unwrap_or_default()
    }
}

fn control_gap(ev: &Evidence<'_>, what: &str) -> Option<(Status, String, Option<Gap>)> {
    match ev.control {
        None | Some(Got::Ok { .. }) => None,
        Some(c) if c.is_denied() => Some((
            Status::Inconclusive,
            format!(
                "control {} too: {what}, so {} was not exercised by this row",
                c.describe(),
                ev.layer
            ),
            Some(Gap::ControlFailed),
        )),
        Some(c) => Some((
            Status::Inconclusive,
            format!("no valid control ({})", c.describe()),
            Some(Gap::Unchecked),
        )),
    }
}

fn decide_denied(ev: &Evidence<'_>) -> (Status, String, Option<Gap>) {
    if !ev.confined.is_denied() {
        return match ev.accepted_as() {
            Some(risk) => (
                Status::Accepted,
                format!("succeeded; accepted in risk.accept = [\"{risk}\"]"),
                None,
            ),
            None => (
                Status::Fail,
                "succeeded under confinement: the policy says it must be denied".into(),
                None,
            ),
        };
    }
    if let Some(gap) = control_gap(ev, "the same uid is refused without confinement") {
        return gap;
    }
    (Status::Pass, String::new(), None)
}

fn decide_allowed(ev: &Evidence<'_>) -> (Status, String, Option<Gap>) {
    if matches!(ev.confined, Got::Ok { .. }) {
        return (Status::Pass, String::new(), None);
    }
    if let Some(gap) = control_gap(ev, "the uid cannot do it even unconfined") {
        return gap;
    }
    (
        Status::Fail,
        "denied under confinement although the policy allows it: the policy breaks its own target"
            .into(),
        None,
    )
}

/// The value of `Field:` in /proc/self/status text, whitespace-normalised.
pub fn status_field(text: &str, field: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == field).then(|| v.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

fn decide_status_field(confined: &Got, field: &str, want: &str) -> (Status, String, Option<Gap>) {
    let Got::Ok { detail } = confined else {
        return (
            Status::Inconclusive,
            format!("no status read: {}", confined.describe()),
            Some(Gap::Unchecked),
        );
    };
    match status_field(detail, field) {
        Some(v) if v == want => (Status::Pass, String::new(), None),
        Some(v) => (
            Status::Fail,
            format!("{field} is {v:?}, want {want:?}"),
            None,
        ),
        None => (
            Status::Inconclusive,
            format!("no {field} line in /proc/self/status"),
            Some(Gap::Unchecked),
        ),
    }
}

fn decide_env_absent(ev: &Evidence<'_>, name: &str) -> (Status, String, Option<Gap>) {
    let listed =
        |g: &Got| matches!(g, Got::Ok { detail } if detail.split(',').any(|n| n.trim() == name));
    if listed(ev.confined) {
        return (
            Status::Fail,
            format!("{name} reached the target's environment"),
            None,
        );
    }
    match ev.control {
        Some(c) if listed(c) => (Status::Pass, String::new(), None),
        Some(c) => (
            Status::Inconclusive,
            format!(
                "the control did not see the planted {name} either ({})",
                c.describe()
            ),
            Some(Gap::ControlFailed),
        ),
        None => (Status::Pass, String::new(), None),
    }
}

/// Mark INCONCLUSIVE rows that a PASS row of the same layer covers, and say whether the
/// whole run passes: no FAIL, and every INCONCLUSIVE row covered.
pub fn settle(rows: &mut [Row]) -> bool {
    let passing: Vec<(&'static str, String)> = rows
        .iter()
        .filter(|r| r.status == Status::Pass)
        .map(|r| (r.layer, r.id.clone()))
        .collect();
    let mut ok = true;
    for r in rows.iter_mut() {
        match r.status {
            Status::Fail => ok = false,
            Status::Inconclusive => {
                let coverable = matches!(r.gap, Some(Gap::ControlFailed | Gap::FixtureAbsent));
                match passing.iter().find(|(l, _)| *l == r.layer) {
                    Some((_, id)) if coverable => r
                        .note
                        .push_str(&format!("; {} is exercised by row {id}", r.layer)),
                    _ => {
                        ok = false;
                        if coverable {
                            r.note.push_str(&format!(
                                "; no PASS row exercises {} for this policy",
                                r.layer
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(expect: &'a Expect, confined: &'a Got, control: Option<&'a Got>) -> Evidence<'a> {
        Evidence {
            kind: Kind::Enforcement,
            expect,
            layer: "landlock-fs",
            confined,
            control,
            policy_allows: None,
            risk: None,
            accepted: false,
            limit_note: None,
        }
    }
    const EACCES: Got = Got::Errno {
        errno: libc::EACCES,
    };
    fn ok() -> Got {
        Got::Ok {
            detail: "3 bytes".into(),
        }
    }

    #[test]
    fn denied_with_successful_control_passes() {
        let (s, _, g) = decide(&ev(&Expect::Denied, &EACCES, Some(&ok())));
        assert_eq!((s, g), (Status::Pass, None));
    }

    #[test]
    fn seccomp_kill_counts_as_denied() {
        let k = Got::Killed {
            signal: libc::SIGSYS,
        };
        assert_eq!(
            decide(&ev(&Expect::Denied, &k, Some(&ok()))).0,
            Status::Pass
        );
        let alarm = Got::Killed {
            signal: libc::SIGALRM,
        };
        assert_eq!(
            decide(&ev(&Expect::Denied, &alarm, Some(&ok()))).0,
            Status::Inconclusive
        );
    }

    #[test]
    fn denied_with_failing_control_is_inconclusive_and_names_the_layer() {
        let (s, note, g) = decide(&ev(&Expect::Denied, &EACCES, Some(&EACCES)));
        assert_eq!((s, g), (Status::Inconclusive, Some(Gap::ControlFailed)));
        assert!(note.contains("landlock-fs was not exercised"), "{note}");
    }

    #[test]
    fn success_under_confinement_fails_unless_accepted() {
        assert_eq!(
            decide(&ev(&Expect::Denied, &ok(), Some(&ok()))).0,
            Status::Fail
        );
        let good = ok();
        let mut e = ev(&Expect::Denied, &EACCES, Some(&good));
        let o = ok();
        e.confined = &o;
        e.risk = Some("io-uring");
        e.accepted = true;
        assert_eq!(decide(&e).0, Status::Accepted);
    }

    #[test]
    fn missing_probe_action_is_never_a_pass() {
        let m = Got::Missing {
            action: "io-uring-setup".into(),
        };
        let (s, note, g) = decide(&ev(&Expect::Denied, &m, Some(&m)));
        assert_eq!((s, g), (Status::Inconclusive, Some(Gap::Unchecked)));
        assert!(note.contains("probe action missing"));
    }

    #[test]
    fn policy_allowing_a_baseline_action_fails_naming_the_line_or_is_accepted() {
        let good = ok();
        let mut e = ev(&Expect::Denied, &EACCES, Some(&good));
        e.kind = Kind::Baseline;
        e.policy_allows = Some("network.unix = true (p.toml:9:8)");
        let (s, note, _) = decide(&e);
        assert_eq!(s, Status::Fail);
        assert!(note.contains("p.toml:9:8"));
        e.risk = Some("unix-sockets");
        assert!(decide(&e).1.contains("accept = [\"unix-sockets\"]"));
        e.accepted = true;
        assert_eq!(decide(&e).0, Status::Accepted);
    }

    #[test]
    fn allowed_rows_catch_a_policy_that_breaks_its_target() {
        assert_eq!(
            decide(&ev(&Expect::Allowed, &ok(), Some(&ok()))).0,
            Status::Pass
        );
        assert_eq!(
            decide(&ev(&Expect::Allowed, &EACCES, Some(&ok()))).0,
            Status::Fail
        );
        assert_eq!(
            decide(&ev(&Expect::Allowed, &EACCES, Some(&EACCES))).0,
            Status::Inconclusive
        );
    }

    #[test]
    fn limits_are_not_enforceable_whatever_happens() {
        let good = ok();
        let mut e = ev(&Expect::Observe, &good, None);
        e.kind = Kind::Limit;
        assert_eq!(decide(&e).0, Status::NotEnforceable);
    }

    #[test]
    fn not_confined_fails() {
        let n = Got::NotConfined {
            why: "landlock: not implemented".into(),
        };
        assert_eq!(
            decide(&ev(&Expect::Denied, &n, Some(&ok()))).0,
            Status::Fail
        );
    }

    #[test]
    fn status_fields_compare_normalised() {
        let g = Got::Ok {
            detail: "Uid:\t5\t5\t5\t5\nNoNewPrivs:\t1\n".into(),
        };
        let want = Expect::StatusField {
            field: "Uid".into(),
            want: "5 5 5 5".into(),
        };
        assert_eq!(decide(&ev(&want, &g, None)).0, Status::Pass);
        let want = Expect::StatusField {
            field: "NoNewPrivs".into(),
            want: "0".into(),
        };
        assert_eq!(decide(&ev(&want, &g, None)).0, Status::Fail);
    }

    #[test]
    fn env_absent_needs_the_control_to_see_the_plant() {
        let want = Expect::EnvAbsent {
            name: "X_TOKEN".into(),
        };
        let confined = Got::Ok {
            detail: "HOME,PATH".into(),
        };
        let control = Got::Ok {
            detail: "HOME,PATH,X_TOKEN".into(),
        };
        assert_eq!(
            decide(&ev(&want, &confined, Some(&control))).0,
            Status::Pass
        );
        assert_eq!(decide(&ev(&want, &control, Some(&control))).0, Status::Fail);
        assert_eq!(
            decide(&ev(&want, &confined, Some(&confined))).0,
            Status::Inconclusive
        );
    }

    fn row(id: &str, layer: &'static str, status: Status, gap: Option<Gap>) -> Row {
        Row {
            id: id.into(),
            kind: Kind::Enforcement,
            attempt: String::new(),
            expect: String::new(),
            got: String::new(),
            control: None,
            status,
            layer,
            note: String::new(),
            gap,
        }
    }

    #[test]
    fn settle_covers_control_failures_by_a_pass_of_the_same_layer_only() {
        let mut rows = vec![
            row(
                "shadow",
                "landlock-fs",
                Status::Inconclusive,
                Some(Gap::ControlFailed),
            ),
            row("outside", "landlock-fs", Status::Pass, None),
            row("limit", "landlock-net", Status::NotEnforceable, None),
        ];
        assert!(settle(&mut rows));
        assert!(rows[0].note.contains("row outside"));
        let mut rows = vec![
            row(
                "mount",
                "seccomp",
                Status::Inconclusive,
                Some(Gap::ControlFailed),
            ),
            row("outside", "landlock-fs", Status::Pass, None),
        ];
        assert!(!settle(&mut rows), "no seccomp PASS row");
        let mut rows = vec![
            row(
                "uring",
                "seccomp",
                Status::Inconclusive,
                Some(Gap::Unchecked),
            ),
            row("x", "seccomp", Status::Pass, None),
        ];
        assert!(!settle(&mut rows), "unchecked rows are never covered");
        let mut rows = vec![row("a", "seccomp", Status::Accepted, None)];
        assert!(settle(&mut rows));
    }
}
