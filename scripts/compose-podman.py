#!/usr/bin/python3
"""compose-podman.py: examples/docker/compose.yaml's gateway service as podman run options.

    compose-podman.py COMPOSE_FILE root|user

Prints one option per line: `root` is the service as shipped, `user` its commented
unprivileged alternative (the `# user: "UID:GID"` line, without cap_add). Every key of the
service is either translated or named below as not applying to scripts/test-containers.sh
(with why); any other key, or a value the translation does not know, exits 1 naming it, so
compose.yaml and the container test cannot drift apart silently. scripts/lint-examples.sh
runs it too (no root or podman needed). Needs PyYAML (Debian: python3-yaml).
"""
import os, re, sys, yaml
path, variant = sys.argv[1], sys.argv[2]
text = open(path).read()
svc = yaml.safe_load(text)["services"]["gateway"]
def die(msg):
    sys.exit(f"{path}: services.gateway: {msg} (scripts/compose-podman.py translates compose for podman)")
out = []
# Keys that do not apply to this test, and why.
ignored = {
    "build": "no image is built; the Dockerfile's COPY targets are bind-mounted",
    "restart": "the test stops the container itself",
    "healthcheck": "its command is run by the test through podman exec",
    "logging": "Docker's log driver; podman logs are read instead",
    "volumes": "the named volume is a host directory owned as Docker copies the image's",
    "secrets": "the secret is a host file bind-mounted at /run/secrets/<target>",
    "ports": "published on 127.0.0.1 with a host port podman picks (checked below)",
}
for key, val in svc.items():
    if key in ignored:
        continue
    if key == "cap_drop":
        out += [f"--cap-drop={c}" for c in val]
    elif key == "cap_add":
        # The unprivileged alternative deletes the cap_add list (see compose's header).
        if variant == "root":
            out += [f"--cap-add={c}" for c in val]
    elif key == "init":
        if val:
            out.append("--init")
    elif key == "mem_limit":
        out.append(f"--memory={val}")
    elif key == "memswap_limit":
        out.append(f"--memory-swap={val}")
    elif key == "pids_limit":
        out.append(f"--pids-limit={val}")
    elif key == "read_only":
        if val:
            # An overlay root needs its own /tmp tmpfs (below), not podman's automatic ones.
            out += ["--read-only", "--read-only-tmpfs=false"]
    elif key == "security_opt":
        for o in val:
            k, _, v = o.partition(":")
            if k == "no-new-privileges" and v == "true":
                out.append("--security-opt=no-new-privileges")
            elif o == "seccomp=./seccomp-clawjail.json":
                # Relative to compose.yaml's directory, as compose resolves it.
                prof = os.path.join(os.path.dirname(os.path.abspath(path)), "seccomp-clawjail.json")
                os.path.isfile(prof) or die(f"security_opt {o!r}: no {prof}")
                out.append(f"--security-opt=seccomp={prof}")
            else:
                die(f"security_opt {o!r} has no translation")
    elif key == "stop_grace_period":
        m = re.fullmatch(r"(\d+)s", str(val)) or die(f"stop_grace_period {val!r}: want <N>s")
        out.append(f"--stop-timeout={m.group(1)}")
    elif key == "tmpfs":
        # notmpcopyup: runc cannot copy the overlay's content up ("too many levels of
        # symbolic links"); the image's /tmp is empty anyway.
        out += [f"--tmpfs={t},notmpcopyup" for t in val]
    elif key == "user":
        out.append(f"--user={val}")
    else:
        die(f"key {key!r} has no podman translation")
ports = svc.get("ports", [])
if ports != ["127.0.0.1:18789:18789"]:
    die(f"ports {ports!r}: the test publishes 127.0.0.1::18789, update it")
if [v for v in svc.get("volumes", []) if v != "openclaw-data:/var/lib/openclaw"]:
    die(f"volumes {svc['volumes']!r}: the test mounts the state at /var/lib/openclaw only")
if [s for s in svc.get("secrets", []) if s != {"source": "gateway_token", "target": "gateway-token.env"}]:
    die(f"secrets {svc['secrets']!r}: the test mounts /run/secrets/gateway-token.env only")
if variant == "user":
    if "user" in svc:
        die("user: is set; the test's root variant expects compose's default (root start)")
    m = re.search(r'^\s*#\s*user:\s*"(\d+:\d+)"', text, re.M) or die("no commented `# user: \"UID:GID\"` alternative")
    out.append(f"--user={m.group(1)}")
print("\n".join(out))
