//! Egress by destination (issue 13), as far as this build goes: the policy section, `check`'s
//! egress plan, and `run`/`verify` refusing a policy with `[egress]` until the namespace and
//! broker are wired in (fail closed). The pure parts (address ranges, DNS responder, relay
//! decisions) are unit-tested beside their code in src/egress/.

use std::process::Command;

use crate::util::*;

const EGRESS: &str = "\n[egress]\ndomains = [\"api.example.com\", \"*.discord.gg\"]\nports = [443]\nhost_services = [\"127.0.0.1:11434\"]\n";

/// The target must never run without the control the policy asks for; the control run
/// (same policy, no [egress]) shows the probe does run.
#[test]
fn run_refuses_a_policy_with_egress_and_the_target_never_runs() {
    let s = Scratch::new("egress-refuse");
    s.dir("out", 0o777, None);
    let marker = s.join("out/ran");
    let m = marker.to_str().unwrap();
    let base = base_policy(&[], &[s.join("out").to_str().unwrap()]);

    let control = s.file("control.toml", &base, 0o644);
    let o = run_probe(&control, "touch", &[m]);
    assert_eq!(o.status.code(), Some(0), "control: {}", stderr(&o));
    assert!(marker.exists(), "control: the probe did not run");
    std::fs::remove_file(&marker).unwrap();

    let pol = s.file("egress.toml", &format!("{base}{EGRESS}"), 0o644);
    let o = run_probe(&pol, "touch", &[m]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("egress is not implemented yet in this build"),
        "{}",
        stderr(&o)
    );
    assert!(
        !marker.exists(),
        "the target ran without the egress control"
    );

    // --dry-run says the same: run would refuse.
    let o = Command::new(clawjail_bin())
        .args(["run", "--dry-run", "--policy"])
        .arg(&pol)
        .arg("--")
        .arg(probe())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
}

#[test]
fn verify_refuses_a_policy_with_egress() {
    let s = Scratch::new("egress-verify");
    let pol = s.policy(&format!("{}{EGRESS}", base_policy(&[], &[])));
    let o = Command::new(clawjail_bin())
        .args(["verify", "--policy"])
        .arg(&pol)
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("egress is not implemented yet in this build"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_prints_the_egress_plan_or_says_destinations_are_not_controlled() {
    let s = Scratch::new("egress-check");
    let base = base_policy(&[], &[]);
    let without = s.file("without.toml", &base, 0o644);
    let o = Command::new(clawjail_bin())
        .args(["check", "--json", "--policy"])
        .arg(&without)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["egress"]["controlled"], false);
    assert!(v["egress"]["status"]
        .as_str()
        .unwrap()
        .contains("destinations are not controlled"));

    let with = s.file(
        "with.toml",
        &format!("{base}{EGRESS}inbound = [\"127.0.0.1:${{PORT}}\"]\n[vars]\nPORT = \"18789\"\n"),
        0o644,
    );
    let o = Command::new(clawjail_bin())
        .args(["check", "--json", "--policy"])
        .arg(&with)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = &v["egress"];
    assert_eq!(e["controlled"], true);
    assert_eq!(
        e["domains"],
        serde_json::json!(["api.example.com", "*.discord.gg"])
    );
    assert_eq!(e["ports"], serde_json::json!([443]));
    assert_eq!(e["host_services"], serde_json::json!(["127.0.0.1:11434"]));
    assert_eq!(e["inbound"][0], "127.0.0.1:18789 -> 127.0.0.1:18789 inside");
    assert!(e["status"].as_str().unwrap().contains("refuses"));
    // The text form has the section too.
    let o = Command::new(clawjail_bin())
        .args(["check", "--policy"])
        .arg(&with)
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("[egress]\n  controlled: true"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_egress_entries_are_located() {
    let s = Scratch::new("egress-bad");
    let pol = s.policy("version = 1\n[egress]\nports = [443]\nips = [\"10.0.0.0/8\"]\n");
    let o = Command::new(clawjail_bin())
        .args(["check", "--policy"])
        .arg(&pol)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let want = format!("{}:4:8: error[ip-not-global]: egress.ips:", pol.display());
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
}
