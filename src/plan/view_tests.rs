//! Snapshot tests of the plan's one view (`PlanView`, what `check --json` prints apart
//! from its static `steps` and `cannot_enforce`): a representative policy is prepared as
//! `check` prepares it (nothing created, no command), rendered to pretty JSON with the
//! machine's values replaced by placeholders, and compared with a checked-in file under
//! tests/snapshots/plan-view/. A root start and an unprivileged start plan differently
//! (identity, capabilities, namespaces, private /tmp, egress namespace), so each policy
//! has one snapshot per start: `NAME.root.json` and `NAME.user.json`; a run checks the
//! one for how it was started.
//!
//! On a mismatch the test prints a line diff. After an intended change, rewrite them:
//!   UPDATE_SNAPSHOTS=1 cargo test --lib plan::view::tests
//! (as root for `.root.json`, as an unprivileged user for `.user.json`; as root,
//! `scripts/update-snapshots.sh` does both), and review the diff in git like any other
//! change.
//!
//! Placeholders (each replaces something that differs between machines or runs, never
//! something the policy decides): `<SCRATCH>` the test's temporary directory, `<HOME>`
//! the target user's home, `<uid>`/`<gid>`/`<groups>`/`<user>` the target's ids (also
//! inside paths such as `/tmp/clawjail-<uid>`), `/proc/<pid>`, `<kernel abi>` (the
//! snapshots are taken at the highest Landlock ABI this build uses; an older kernel skips
//! the test), `<fds 0-2>` (the terminal step depends on whether the test's fds are a
//! terminal), `<probed>` (whether this machine can make the egress namespace), `<sha256>`
//! (the shipped policy's hash changes with every comment), `<exists or would create>` for
//! directories created under the host's /tmp (other runs leave them; the rules are then
//! compared sorted by path), and `env.pass` names (present or missing depending on the
//! test's environment: listed once, sorted, under `pass (normalised)`). System paths
//! (`/etc/ssl`, git's libraries) are those of the CI image (Debian/Ubuntu, x86_64).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::PlanView;
use crate::plan::{prepare, Plan, PrepareOptions};
use crate::policy::{self, Origin, Source};

/// A temporary directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("cj-view-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&p).ok();
        std::fs::create_dir_all(&p).unwrap();
        // Unprivileged starts refuse paths reached through a world-writable /tmp only when
        // another user owns them; this directory is ours and 0755 like a home directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(p)
    }

    fn dir(&self, rel: &str) -> String {
        let p = self.0.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p.display().to_string()
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn privileged() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Prepare `text` as `check --policy NAME [--var ...]` does (no command, nothing created).
fn plan(name: &str, text: &str, vars: &[(&str, String)]) -> Result<Plan, String> {
    prepared(name, text, vars, None).map(|(_, p)| p)
}

/// The same with an optional command, keeping the loaded policy.
fn prepared(
    name: &str,
    text: &str,
    vars: &[(&str, String)],
    command: Option<&[&str]>,
) -> Result<(policy::Loaded, Plan), String> {
    let loaded = policy::load(Source::new(Origin::Flag(name.into()), text.to_string()))
        .map_err(|e| e.to_string())?;
    let opts = PrepareOptions {
        cli_vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        command: command.map(|c| c.iter().map(OsString::from).collect()),
        init: false,
        apply: false,
        ..Default::default()
    };
    let plan = prepare(&loaded, &opts).map_err(|e| e.to_string())?;
    Ok((loaded, plan))
}

/// The view as pretty JSON with this machine's values replaced (see the module header).
fn normalised(plan: &Plan, scratch: &Scratch) -> String {
    let mut v = serde_json::to_value(PlanView::of(plan)).unwrap();
    let ids = plan.identity.ids();
    for (key, placeholder) in [
        ("uid", "<uid>"),
        ("gid", "<gid>"),
        ("groups", "<groups>"),
        ("user", "<user>"),
    ] {
        v["identity"][key] = placeholder.into();
    }
    for (key, placeholder) in [("UID", "<uid>"), ("GID", "<gid>"), ("USER", "<user>")] {
        if v["variables"].get(key).is_some() {
            v["variables"][key] = placeholder.into();
        }
    }
    v["policy"]["sha256"] = "<sha256>".into();
    v["terminal"] = "<fds 0-2>".into();
    v["landlock"]["kernel_abi"] = "<kernel abi>".into();
    normalise_pass(&mut v);
    normalise_host_tmp(&mut v, &scratch.path());
    if let Some(ns) = v["egress"].get_mut("namespace") {
        let kind = ns["kind"].clone();
        *ns = serde_json::json!({"kind": kind, "available": "<probed>"});
        v["egress"]["status"] = "<probed>".into();
    }
    let mut text = serde_json::to_string_pretty(&v).unwrap();
    text = text.replace(&scratch.path(), "<SCRATCH>");
    if let Some(home) = plan.vars.get("HOME").filter(|h| h.len() > 1) {
        text = text.replace(home, "<HOME>");
    }
    text = replace_proc_pids(&text);
    text = replace_id_suffix(&text, ids.uid, "<uid>");
    text.push('\n');
    text
}

/// `env.pass` names: set or missing depending on the test's own environment.
fn normalise_pass(v: &mut Value) {
    let env = &mut v["env"];
    let mut pass: Vec<Value> = env["missing_pass"].as_array().cloned().unwrap_or_default();
    if let Some(names) = env["names"].as_array_mut() {
        names.retain(|n| {
            let is_pass = n["from"] == "pass";
            if is_pass {
                pass.push(n["name"].clone());
            }
            !is_pass
        });
    }
    pass.sort_by_key(|n| n.to_string());
    env["missing_pass"] = "<pass (normalised)>".into();
    env["pass (normalised)"] = Value::Array(pass);
}

/// Directories the policy creates under the host's /tmp (`${TMP}`, the lock directory):
/// `check` resolves them on the host's /tmp, where other runs may have left them, so
/// whether each exists yet is not the policy's doing. The rules are compared sorted by
/// path for the same reason.
fn normalise_host_tmp(v: &mut Value, scratch: &str) {
    let host_tmp = |p: &str| p.starts_with("/tmp/") && !p.starts_with(scratch);
    let l = &mut v["landlock"];
    if let Some(dirs) = l["created_dirs"].as_array_mut() {
        for d in dirs.iter_mut() {
            let line = d.as_str().unwrap_or_default();
            if let Some((path, _)) = line.split_once(": ").filter(|(p, _)| host_tmp(p)) {
                *d = format!("{path}: <exists or would create>").into();
            }
        }
    }
    if let Some(rules) = l["rules"].as_array_mut() {
        // Rules on directories still to be created come after the opened ones, so which
        // exist also decides the order: compare by path.
        rules.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        for r in rules.iter_mut() {
            if r["path"].as_str().is_some_and(host_tmp) {
                r["opened"] = "<exists or at launch>".into();
            }
        }
    }
}

/// `/proc/1234` -> `/proc/<pid>` (`/proc/self` is resolved to the preparing process).
fn replace_proc_pids(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("/proc/") {
        out.push_str(&rest[..i + "/proc/".len()]);
        rest = &rest[i + "/proc/".len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("<pid>");
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// `-65534` at the end of a path component (`/tmp/clawjail-65534`) -> `-<uid>`.
fn replace_id_suffix(text: &str, id: u32, placeholder: &str) -> String {
    let needle = format!("-{id}");
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(&needle) {
        let after = &rest[i + needle.len()..];
        out.push_str(&rest[..i]);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(&needle);
        } else {
            out.push('-');
            out.push_str(placeholder);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Compare with (or, with UPDATE_SNAPSHOTS=1, write) tests/snapshots/plan-view/NAME.START.json.
fn assert_snapshot(name: &str, actual: &str) {
    let start = if privileged() { "root" } else { "user" };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots/plan-view")
        .join(format!("{name}.{start}.json"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        // UPDATE_SNAPSHOTS_DIR: somewhere an unprivileged run may write
        // (scripts/update-snapshots.sh copies its files back).
        let out = match std::env::var_os("UPDATE_SNAPSHOTS_DIR") {
            Some(dir) => Path::new(&dir).join(path.file_name().unwrap()),
            None => path.clone(),
        };
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, actual).unwrap();
        eprintln!("updated {}", out.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nto create it: UPDATE_SNAPSHOTS=1 cargo test --lib plan::view::tests ({} start)",
            path.display(),
            start
        )
    });
    if expected != actual {
        panic!(
            "the plan view of {name} ({start} start) differs from {}:\n{}\nIf the change is intended: bash scripts/update-snapshots.sh (as root: both starts) or UPDATE_SNAPSHOTS=1 cargo test --lib plan::view::tests (this start), then review the diff in git.",
            path.display(),
            line_diff(&expected, actual)
        );
    }
}

/// A small line diff: `-` expected, `+` actual, with the line number (longest common
/// subsequence; the snapshots are a few hundred lines).
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("{:>5} - {}\n", i + 1, a[i]));
            i += 1;
        } else {
            out.push_str(&format!("{:>5} + {}\n", j + 1, b[j]));
            j += 1;
        }
    }
    out
}

/// The snapshots hold the Landlock rights of the highest ABI this build uses; on an
/// older kernel the rights and features differ, so say so and skip.
fn landlock_abi_is_current(plan: &Plan) -> bool {
    let v = plan.landlock.view();
    if v.effective_abi < crate::landlock::rights::MAX_ABI {
        eprintln!(
            "skipped: the snapshots are taken at Landlock ABI {}; this kernel gives {}",
            crate::landlock::rights::MAX_ABI,
            v.effective_abi
        );
        return false;
    }
    true
}

/// The smallest policy: one read rule, everything else defaulted.
#[test]
fn one_rule_policy() {
    let s = Scratch::new("one");
    let data = s.dir("data");
    let text =
        format!("version = 1\n[identity]\nuser = \"nobody\"\n[filesystem]\nread = [{data:?}]\n");
    let p = plan("one-rule.toml", &text, &[]).unwrap();
    if landlock_abi_is_current(&p) {
        assert_snapshot("one-rule", &normalised(&p, &s));
    }
}

/// `[egress]` (names, a port, a host service, an inbound listener) with a TCP rule.
#[test]
fn egress_policy() {
    let s = Scratch::new("egress");
    let data = s.dir("data");
    let text = format!(
        r#"version = 1
[identity]
user = "nobody"
[filesystem]
read = [{data:?}]
[network]
connect = [443]
[egress]
domains = ["api.example.com", "*.discord.gg"]
ports = [443, 8080]
protocols = {{ "8080" = "http" }}
host_services = ["127.0.0.1:11434"]
inbound = ["127.0.0.1:${{PORT}}"]
proxy_port = 3128
[vars]
PORT = "18789"
"#
    );
    let p = plan("egress.toml", &text, &[]).unwrap();
    if landlock_abi_is_current(&p) {
        assert_snapshot("egress", &normalised(&p, &s));
    }
}

/// The shipped gateway policy, its install, config and state paths fixed to a scratch
/// tree, run as `nobody` instead of `openclaw`: the target user's home decides the
/// `~/.ssh`-style deny rules and the `~/.cache` directories, and only a home that does
/// not exist (Debian's and Ubuntu's `/nonexistent`) is the same on every machine and
/// after every test run. Where the home exists (an unprivileged start by a user with a
/// home, Fedora's `/`), the test says so and skips.
#[test]
fn shipped_gateway_policy() {
    let s = Scratch::new("gateway");
    let shipped = include_str!("../../policies/openclaw-gateway.toml");
    let text = shipped.replace("user = \"openclaw\"", "user = \"nobody\"");
    assert_ne!(
        text, shipped,
        "the shipped policy no longer names user openclaw"
    );
    let prefix = s.path() + "/opt";
    s.dir("opt/node_modules");
    s.dir("npm/lib/node_modules");
    let vars = [
        ("OPENCLAW_PREFIX", prefix),
        ("NPM_PREFIX", s.path() + "/npm"),
        ("NODE_BIN", s.dir("node/bin")),
        ("CONFIG_DIR", s.dir("config")),
        ("STATE_DIR", s.path() + "/state"),
        ("PORT", "18789".to_string()),
    ];
    let p = plan("policies/openclaw-gateway.toml", &text, &vars).unwrap();
    let home = p.vars.get("HOME").unwrap_or_default();
    if Path::new(home).exists() {
        eprintln!(
            "skipped: the snapshot is taken with a target home that does not exist; {home} does"
        );
        return;
    }
    // limits.nofile = 16384 is clamped (and says so in `degraded`) when this process's
    // hard limit is lower: the test's environment, not the policy.
    if let Some(clamp) = p.degraded.iter().find(|d| d.starts_with("limits.")) {
        eprintln!("skipped: {clamp}");
        return;
    }
    if landlock_abi_is_current(&p) {
        assert_snapshot("openclaw-gateway", &normalised(&p, &s));
    }
}

/// The launch event and the run record carry the view's values, not values of their own
/// (they are built from the same functions; this pins that they stay so).
#[test]
fn launch_event_and_run_record_report_the_views_values() {
    use crate::launch::Applied;
    use crate::session::SessionOutcome;
    let s = Scratch::new("event");
    let data = s.dir("data");
    let text = format!(
        "version = 1\n[identity]\nuser = \"nobody\"\n[filesystem]\nread = [{data:?}]\n[limits]\nnofile = 1024\n[env]\nset = {{ A = \"1\" }}\n"
    );
    let (loaded, p) = prepared("event.toml", &text, &[], Some(&["/bin/true"])).unwrap();
    let v = serde_json::to_value(PlanView::of(&p)).unwrap();

    let buf = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buf.clone())
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .finish();
    let applied = Applied {
        session: SessionOutcome::NewSession,
        bounding_dropped: None,
        landlock: None,
        forked_envp: None,
    };
    tracing::subscriber::with_default(subscriber, || {
        crate::launch::launch_event(&p, &applied);
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = out.lines().find(|l| l.contains("clawjail launch")).unwrap();
    let ev: Value = serde_json::from_str(line).unwrap();
    assert_eq!(ev["policy"], v["policy"]["file"]);
    assert_eq!(ev["policy_selected_by"], v["policy"]["selected_by"]);
    assert_eq!(ev["policy_sha256"], v["policy"]["sha256"]);
    let mode = v["identity"]["mode"].as_str().unwrap();
    assert_eq!(
        ev["identity"],
        if mode == "switch" {
            "switched"
        } else {
            "kept (unprivileged start)"
        }
    );
    assert_eq!(ev["uid"], v["identity"]["uid"]);
    assert_eq!(ev["gid"], v["identity"]["gid"]);
    let debug_list = |items: Vec<String>| format!("{items:?}");
    let strings = |x: &Value, f: &dyn Fn(&Value) -> String| -> Vec<String> {
        x.as_array().unwrap().iter().map(f).collect()
    };
    assert_eq!(
        ev["caps_kept"],
        debug_list(strings(&v["capabilities"]["keep"], &|c| c
            .as_str()
            .unwrap()
            .into()))
    );
    assert_eq!(
        ev["rlimits"],
        debug_list(strings(&v["limits"], &|l| format!(
            "{}={}",
            l["name"].as_str().unwrap(),
            l["value"].as_str().unwrap()
        )))
    );
    assert!(
        ev["rlimits"].as_str().unwrap().contains("nofile=1024"),
        "{ev}"
    );
    assert_eq!(ev["umask"], v["umask"]);
    assert_eq!(
        ev["env_names"],
        debug_list(strings(&v["env"]["names"], &|n| n["name"]
            .as_str()
            .unwrap()
            .into()))
    );
    assert_eq!(ev["fds_cloexec_from"], v["fds"]["cloexec_from"]);
    assert_eq!(ev["terminal"], v["terminal"]);
    let sc = &v["seccomp"];
    assert_eq!(
        ev["seccomp"],
        format!(
            "{} profile, action {}, {} syscalls allowed ({} with argument rules), {} BPF instructions",
            sc["profile"].as_str().unwrap(),
            sc["action"].as_str().unwrap(),
            sc["allowed"],
            sc["with_argument_rules"],
            sc["bpf_instructions"]
        )
    );
    assert_eq!(ev["target"], v["target"]["exec"]);
    assert_eq!(ev["degraded"], format!("{:?}", p.degraded));

    let rec = crate::runrecord::for_this_process(&p, &loaded.policy).unwrap();
    assert_eq!(rec.policy, v["policy"]["file"]);
    assert_eq!(rec.policy_sha256, v["policy"]["sha256"]);
    assert_eq!(rec.target, v["target"]["exec"]);
    assert_eq!(rec.uid, v["identity"]["uid"]);
}

/// A log writer the test reads back.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn normalisers_replace_only_what_they_name() {
    assert_eq!(
        replace_proc_pids("/proc/123/x /proc/self /proc/"),
        "/proc/<pid>/x /proc/self /proc/"
    );
    assert_eq!(
        replace_id_suffix("/tmp/a-999\" a-9990 b-999/c", 999, "<uid>"),
        "/tmp/a-<uid>\" a-9990 b-<uid>/c"
    );
    let d = line_diff("a\nb\nc\n", "a\nx\nc\nd\n");
    assert_eq!(d, "    2 - b\n    2 + x\n    4 + d\n");
}
