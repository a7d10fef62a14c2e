//! The `export` subcommand's arguments and its entry point (kept here so cli.rs only
//! names it).

use std::path::PathBuf;

use clap::Args;

use super::{Engine, ExportOptions, Start};
use crate::cli::{Failure, PolicyArgs};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// systemd (a unit), oci-seccomp (a linux.seccomp profile) or k8s (Deployment,
    /// SeccompProfile, NetworkPolicy, ConfigMap).
    #[arg(value_enum)]
    pub engine: Engine,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// How the engine starts clawjail: root (it switches to [identity] itself) or user
    /// (started as [identity]). Default: root for systemd and oci-seccomp, user for k8s.
    #[arg(long, value_enum)]
    pub start: Option<Start>,
    /// Print JSON (the rendered objects plus where each line comes from).
    #[arg(long)]
    pub json: bool,
    /// systemd: a drop-in for an existing unit instead of a whole unit.
    #[arg(long)]
    pub drop_in: bool,
    /// Where the policy will be on the machine that runs it (default: --policy, absolute).
    #[arg(long, value_name = "PATH")]
    pub policy_at: Option<String>,
    /// Where the clawjail binary will be.
    #[arg(long, value_name = "PATH", default_value = "/usr/local/bin/clawjail")]
    pub clawjail_bin: String,
    /// Unit / object name.
    #[arg(long, default_value = "openclaw-gateway")]
    pub name: String,
    /// k8s: the container image (must contain clawjail, the target and the policy's paths).
    #[arg(long, default_value = "registry.example/openclaw-gateway:latest")]
    pub image: String,
    /// k8s: the namespace.
    #[arg(long, default_value = "openclaw")]
    pub namespace: String,
    /// The target command the unit or container runs.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(a: ExportArgs) -> Result<i32, Failure> {
    let fail = |e: &dyn std::fmt::Display| Failure {
        code: 1,
        message: e.to_string(),
    };
    let loaded = crate::cli::load_policy(a.policy.policy.as_ref()).map_err(|e| fail(&e))?;
    let start = a.start.unwrap_or(match a.engine {
        Engine::K8s => Start::User,
        Engine::Systemd | Engine::OciSeccomp => Start::Root,
    });
    let policy_at = a
        .policy_at
        .clone()
        .unwrap_or_else(|| match &a.policy.policy {
            Some(p) => super::absolute(p),
            None => PathBuf::from("/etc/clawjail/policy.toml")
                .display()
                .to_string(),
        });
    let opts = ExportOptions {
        start,
        cli_vars: a.policy.vars,
        command: a.command,
        policy_at,
        clawjail_bin: a.clawjail_bin,
        name: a.name,
        drop_in: a.drop_in,
        image: a.image,
        namespace: a.namespace,
    };
    let out = super::export(&loaded, a.engine, &opts).map_err(|e| fail(&e))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out.json).map_err(|e| fail(&e))?
        );
    } else {
        print!("{}", out.text);
    }
    Ok(0)
}
