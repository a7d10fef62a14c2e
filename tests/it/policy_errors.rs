//! Integration tests: bad policies give `file:line:col: error[code]` and the target never runs.

use std::process::Command;

use crate::util::*;

/// Run `touch MARKER` under `policy_text`; assert refusal with `needles` in stderr.
fn refused(name: &str, policy_text: &str, needles: &[&str]) {
    let s = Scratch::new(name);
    let marker = s.join("ran");
    let pol = s.policy(policy_text);
    let mut c = Command::new(clawjail_bin());
    c.args(["run", "--policy"])
        .arg(&pol)
        .arg("--")
        .arg(probe())
        .args(["touch", marker.to_str().unwrap()]);
    let o = c.output().unwrap();
    let err = stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{err}");
    for n in needles {
        let n = n.replace("{policy}", pol.to_str().unwrap());
        assert!(err.contains(&n), "expected {n:?} in:\n{err}");
    }
    assert!(!marker.exists(), "the target ran despite a bad policy");
    // `check` refuses the same policy.
    let o = Command::new(clawjail_bin())
        .args(["check", "--policy"])
        .arg(&pol)
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn unknown_key_names_place_key_and_valid_keys() {
    refused(
        "unknown-key",
        "version = 1\n[identity]\nusr = \"nobody\"\n",
        &["{policy}:3:1: error[unknown-key]: identity.usr: unknown key \"usr\" in [identity]; expected one of: user, group, supplementary_groups, allow_root"],
    );
}

#[test]
fn wrong_type_is_located() {
    refused(
        "wrong-type",
        "version = 1\n\n[process]\nnew_session = \"yes\"\n",
        &["{policy}:4:15: error[wrong-type]"],
    );
}

#[test]
fn bad_terminal_mode_is_located_with_the_valid_values() {
    refused(
        "bad-terminal",
        "version = 1\n\n[process]\nterminal = \"tty\"\n",
        &[
            "{policy}:4:12: error[",
            "process.terminal",
            "pty",
            "null-stdin",
        ],
    );
}

#[test]
fn unknown_user_is_located() {
    require_root!();
    refused(
        "unknown-user",
        "version = 1\n[identity]\nuser = \"no-such-user-cj\"\n",
        &["{policy}:3:8: error[unknown-user]: identity.user: unknown user \"no-such-user-cj\""],
    );
}

#[test]
fn relative_path_after_expansion_is_refused() {
    require_root!();
    refused(
        "relative",
        "version = 1\n[identity]\nuser = 65534\ngroup = 65534\n[process]\nworkdir = \"work/dir\"\n",
        &["{policy}:6:11: error[relative-path]: process.workdir"],
    );
}

#[test]
fn undefined_variable_is_refused() {
    require_root!();
    refused(
        "undefined-var",
        "version = 1\n[identity]\nuser = 65534\ngroup = 65534\n[process]\nworkdir = \"${NOPE}/x\"\n",
        &["error[undefined-variable]", "${NOPE}"],
    );
}

#[test]
fn group_readable_env_file_is_refused_with_its_mode() {
    require_root!();
    let s = Scratch::new("envfile-src");
    let f = s.file("token.env", "TOKEN=x\n", 0o644);
    refused(
        "envfile",
        &format!(
            "version = 1\n[identity]\nuser = 65534\ngroup = 65534\n[env]\nfiles = [{:?}]\n",
            f.display().to_string()
        ),
        &[
            &format!("env file {}: mode 0644", f.display()),
            "expected 0600 or stricter",
        ],
    );
}

#[test]
fn code_loading_variables_are_refused() {
    require_root!();
    refused(
        "ld-preload",
        "version = 1\n[identity]\nuser = 65534\ngroup = 65534\n[env]\nset = { LD_PRELOAD = \"/tmp/x.so\" }\n",
        &["error[code-loading-env]", "LD_PRELOAD"],
    );
}

#[test]
fn out_of_range_limit_is_refused() {
    refused(
        "limit",
        "version = 1\n[identity]\nuser = 65534\ngroup = 65534\n[limits]\nnofile = 99999999999\n",
        &["error[bad-value]: limits.nofile"],
    );
}

#[test]
fn unsupported_version_is_refused() {
    refused(
        "version",
        "version = 2\n",
        &["{policy}:1:11: error[unsupported-version]"],
    );
}

#[test]
fn env_file_through_a_symlink_the_target_planted_is_refused() {
    require_root!();
    // A root-owned 0600 KEY=VALUE file the target must never see...
    let s = Scratch::new("envfile-planted");
    let other = s.file("root-only/other.env", "ROOT_SECRET=x\n", 0o600);
    // ...and the target's own credentials dir, where it planted token.env -> other.env.
    let creds = s.dir("creds", 0o700, Some((NOBODY, NOBODY)));
    std::os::unix::fs::symlink(&other, creds.join("token.env")).unwrap();
    refused(
        "envfile-planted-run",
        &format!(
            "version = 1\n[identity]\nuser = 65534\ngroup = 65534\n[env]\nfiles = [{:?}]\n",
            creds.join("token.env").display().to_string()
        ),
        &["will not follow", "token.env"],
    );
    // Control: the same file named directly is accepted (root-owned, 0600).
    let pol = s.policy(&format!(
        "{}\n[env]\nfiles = [{:?}]\n",
        base_policy(&[], &[]),
        other.display().to_string()
    ));
    assert_answer(&run_probe(&pol, "env-get", &["ROOT_SECRET"]), "ok x");
}

/// Every error of the file in one run, in file order, each located; then a count.
#[test]
fn all_errors_of_a_file_are_reported_at_once() {
    refused(
        "many-errors",
        "version = 1\n[identity]\nusr = \"nobody\"\n[process]\nnew_session = \"yes\"\numask = \"9\"\n[limitz]\nnofile = 1\n",
        &[
            "{policy}:3:1: error[unknown-key]: identity.usr",
            "{policy}:5:15: error[wrong-type]",
            "{policy}:6:9: error[bad-mode]: process.umask",
            "{policy}:7:2: error[unknown-key]: limitz: unknown key \"limitz\" at the top level",
            "4 errors in {policy}",
        ],
    );
}

/// The isolation keys (issue 9): wrong types and misspellings are located; a guarded
/// call named in seccomp.allow points at the key that lifts it.
#[test]
fn isolation_keys_are_checked_and_located() {
    refused(
        "iso-type",
        "version = 1\n[identity]\nuser = 65534\n[process]\npid_namespace = \"yes\"\n",
        &["{policy}:5:17: error[wrong-type]"],
    );
    refused(
        "iso-unknown",
        "version = 1\n[identity]\nuser = 65534\n[filesystem]\nallow_chwon = true\n",
        &[
            "{policy}:5:1: error[unknown-key]: filesystem.allow_chwon",
            "allow_chown, allow_xattr",
        ],
    );
    refused(
        "iso-unknown-process",
        "version = 1\n[identity]\nuser = 65534\n[process]\nshared_ipc = true\n",
        &["error[unknown-key]", "allow_shared_ipc"],
    );
    refused(
        "iso-guarded",
        "version = 1\n[identity]\nuser = 65534\n[seccomp]\nallow = [\"fchown\"]\n",
        &[
            "{policy}:5:10: error[seccomp-guarded]",
            "set filesystem.allow_chown = true",
        ],
    );
}
