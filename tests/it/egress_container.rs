//! `[egress]` on a root start WITHOUT CAP_SYS_ADMIN, as in every container (Docker's,
//! podman's and Kubernetes' default capability sets lack it): clawjail makes the target's
//! network namespace inside a user namespace with identity maps written by a helper outside
//! (src/egress/netns.rs). Reproduced here without a container runtime: `setpriv
//! --bounding-set=-sys_admin` makes root exec clawjail without CAP_SYS_ADMIN. The podman +
//! runc runs (with moby's and the shipped seccomp profile) are scripts/test-containers-egress.sh.

use std::process::{Command, Output};

use crate::util::*;

const EGRESS: &str = "\n[egress]\ndomains = [\"api.example.com\"]\nports = [443]\n";

/// `clawjail ARGS` as root with `drop` removed from the bounding set (so from every set
/// root gets at exec).
fn without(drop: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .arg(format!("--bounding-set={drop}"))
        .arg(clawjail_bin())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

fn namespace_kind(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["egress"]["namespace"]["available"], true, "{v}");
    v["egress"]["namespace"]["kind"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `check` says which namespace this start makes (CONTROL: with CAP_SYS_ADMIN, the plain
/// CLONE_NEWNET); `run` gets the target switched to uid 65534 inside it with every
/// capability set and the bounding set empty; without CAP_SETFCAP (mapping uid 0 needs it,
/// Linux >= 5.12) `run` refuses with exit 125 naming it, and the target never runs.
#[test]
fn root_start_without_cap_sys_admin_uses_a_user_namespace_with_identity_maps() {
    require_root!();
    let s = Scratch::new("egress-no-sysadmin");
    let pol = s.policy(&format!("{}{EGRESS}", base_policy(&["/proc/self"], &[])));
    let p = pol.to_str().unwrap();

    let control = namespace_kind(
        &Command::new(clawjail_bin())
            .args(["check", "--json", "--policy", p])
            .output()
            .unwrap(),
    );
    assert!(
        control.starts_with("CLONE_NEWNET (root start)"),
        "{control}"
    );
    let kind = namespace_kind(&without("-sys_admin", &["check", "--json", "--policy", p]));
    assert!(
        kind.starts_with("CLONE_NEWUSER|CLONE_NEWNET mapping every id to itself"),
        "{kind}"
    );

    let probe = probe().to_str().unwrap();
    let o = without("-sys_admin", &["run", "--policy", p, "--", probe, "status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "Uid:\t65534\t65534\t65534\t65534",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
    ] {
        assert!(out.contains(want), "{want:?} not in\n{out}\n{}", stderr(&o));
    }

    let o = without(
        "-sys_admin,-setfcap",
        &["run", "--policy", p, "--", probe, "status"],
    );
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("CAP_SETFCAP"), "{}", stderr(&o));
    assert!(
        !stdout(&o).contains("Uid:"),
        "the target ran: {}",
        stdout(&o)
    );
}
