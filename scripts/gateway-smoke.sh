#!/usr/bin/env bash
# gateway-smoke.sh: start the real OpenClaw gateway once, wait for /healthz, stop it.
#
# Default: BARE run (no clawjail) as uid 65534 via
#   setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --no-new-privs
# With WRAP set, WRAP replaces that setpriv prefix (clawjail plugs in here), e.g.
#   WRAP="/path/clawjail run --policy X --var PORT=@PORT@ --var STATE_DIR=@STATE@ --"
# WRAP is split on whitespace (no shell quoting). These placeholders are substituted in
# each WRAP word: @PORT@ @RUN@ @HOME@ @STATE@ @TMP@ (the per-run values below).
#
# Environment knobs:
#   OPENCLAW_CACHE   install cache (default /var/cache/clawjail-ci/openclaw); installed
#                    on demand by install-openclaw.sh if paths.env is missing
#   PORT             gateway port (default: a free loopback port picked by node)
#   GATEWAY_OWNER    uid:gid that owns the run dirs (default 65534:65534); set it to the
#                    policy's user when WRAP drops to another uid
#   HEALTH_TIMEOUT   seconds to wait for /healthz (default 90)
#   READY_TIMEOUT    seconds to wait for /readyz after that (default 30; not fatal)
#   STOP_TIMEOUT     seconds between SIGTERM and SIGKILL (default 20)
#   KEEP_RUN=1       keep the scratch run dir even on success
#   ALLOW_LEFTOVERS=1  do not fail when descendants still run 5 s after the gateway exited
#   RUN_BASE         parent of the scratch run dir (default /tmp)
#
# Prints "gateway up in N ms" (/healthz), "gateway ready in N ms" (/readyz), the
# Uid/Gid/Cap*/NoNewPrivs/Seccomp lines of the running gateway's /proc/<pid>/status, the
# tree's RSS, then "gateway stopped rc=N in N ms" (on stderr).
# Exit 0 on success; on failure prints the log tail, keeps the run dir, exits 1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OPENCLAW_CACHE="${OPENCLAW_CACHE:-/var/cache/clawjail-ci/openclaw}"
GATEWAY_OWNER="${GATEWAY_OWNER:-65534:65534}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-90}"
STOP_TIMEOUT="${STOP_TIMEOUT:-20}"
RUN_BASE="${RUN_BASE:-/tmp}"

log() { printf 'gateway-smoke: %s\n' "$*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# --- install / locate node + openclaw ---------------------------------------------------
if [[ ! -r "$OPENCLAW_CACHE/paths.env" ]]; then
    OPENCLAW_CACHE="$OPENCLAW_CACHE" "$here/install-openclaw.sh" >/dev/null
fi
# shellcheck source=/dev/null
. "$OPENCLAW_CACHE/paths.env"    # NODE, NODE_BIN_DIR, OPENCLAW, ...
[[ -x "$NODE" && -f "$OPENCLAW" ]] || { log "bad paths.env in $OPENCLAW_CACHE"; exit 1; }

# --- per-run values ---------------------------------------------------------------------
if [[ -z "${PORT:-}" ]]; then
    # Ask the kernel for a free port on loopback (a tiny race before the gateway binds is
    # acceptable for a smoke test; pass PORT to pin it).
    PORT="$("$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
fi
# 32 random bytes as hex; the token only lives in this process's env and the child's.
TOKEN="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"

# The run dir itself stays root-owned 0755 (only traversal needed); the three subdirs are
# 0700 and owned by the gateway uid: the gateway's own audit flags a readable state dir,
# and a root-owned TMPDIR would disable Node's compile cache (research §5).
RUN="$(mktemp -d "$RUN_BASE/clawjail-smoke.XXXXXX")"
chmod 0755 "$RUN"
HOME_DIR="$RUN/home" STATE_DIR="$RUN/state" TMP_DIR="$RUN/tmp"
install -d -m 0700 -o "${GATEWAY_OWNER%%:*}" -g "${GATEWAY_OWNER##*:}" "$HOME_DIR" "$STATE_DIR" "$TMP_DIR"
LOG="$RUN/gateway.log"

if [[ -n "${WRAP:-}" ]]; then
    read -r -a wrap <<<"$WRAP"
    for i in "${!wrap[@]}"; do
        w="${wrap[$i]}"
        w="${w//@PORT@/$PORT}"; w="${w//@RUN@/$RUN}"; w="${w//@HOME@/$HOME_DIR}"
        w="${w//@STATE@/$STATE_DIR}"; w="${w//@TMP@/$TMP_DIR}"
        wrap[i]="$w"
    done
else
    wrap=(setpriv "--reuid=${GATEWAY_OWNER%%:*}" "--regid=${GATEWAY_OWNER##*:}" --clear-groups
          --inh-caps=-all --no-new-privs)
fi

# --- process helpers ----------------------------------------------------------------------
PID=""
# All descendants of $1 (children first-level, then theirs), from /proc via ps.
descendants() {
    local kid
    for kid in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$kid"
        descendants "$kid"
    done
}
alive() { [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; }

# "pid:starttime" identifies a process across pid reuse (field 22 of /proc/PID/stat, after
# the parenthesised comm, which may itself contain spaces).
proc_id() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"                      # fields 3.. : state ppid ...
    # shellcheck disable=SC2086  # split the stat fields on purpose
    set -- $stat
    echo "${20}"                              # field 22 = starttime
}
# Still running (not gone, not a zombie) and still the process we recorded?
still_ours() {
    local pid="${1%%:*}" start="${1##*:}" stat
    [[ "$(proc_id "$pid" 2>/dev/null)" == "$start" ]] || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat%% *}" != Z ]]
}
# Of the recorded "pid:start" ids, print those still running.
running_of() {
    local id
    for id in "$@"; do still_ours "$id" && echo "$id"; done
}
wait_gone() {   # wait_gone MS ID... ; returns 0 when none of them runs any more
    local deadline=$(( $(now_ms) + $1 )); shift
    while (( $(now_ms) < deadline )); do
        [[ -z "$(running_of "$@")" ]] && return 0
        sleep 0.1
    done
    [[ -z "$(running_of "$@")" ]]
}
signal_ids() {  # signal_ids SIG ID... ; only processes that are still the recorded ones
    local sig="$1" id; shift
    for id in "$@"; do still_ours "$id" && kill "-$sig" "${id%%:*}" 2>/dev/null; done
    return 0
}

STOP_RC=""
stop_gateway() {
    alive || return 0
    # Snapshot descendants now: once the leader dies they are reparented and unfindable.
    # (The spawn-broker worker runs in its own session but is still a descendant.)
    local kids=() k s t0 left
    for k in $(descendants "$PID"); do
        s="$(proc_id "$k")" && kids+=("$k:$s")
    done
    t0="$(now_ms)"
    kill -TERM "$PID" 2>/dev/null || true
    local deadline=$(( t0 + STOP_TIMEOUT * 1000 ))
    while alive && (( $(now_ms) < deadline )); do sleep 0.1; done
    if alive; then
        log "no exit ${STOP_TIMEOUT}s after SIGTERM: SIGKILL to $PID and its descendants"
        kill -KILL "$PID" 2>/dev/null || true
        signal_ids KILL "${kids[@]}"
    fi
    STOP_RC=0
    wait "$PID" 2>/dev/null || STOP_RC=$?
    log "gateway stopped rc=$STOP_RC in $(( $(now_ms) - t0 )) ms"
    PID=""
    (( ${#kids[@]} )) || return 0
    # Workers normally finish within a moment of the leader (they may still be exiting, or
    # be zombies waiting for init). Only those still running after 5 s are reported (a
    # wrapper that died without forwarding SIGTERM, or a leaked worker): SIGTERM, then
    # SIGKILL after 5 more seconds.
    wait_gone 5000 "${kids[@]}" && return 0
    mapfile -t left < <(running_of "${kids[@]}")
    log "descendants still running 5 s after the leader exited (SIGTERM, SIGKILL after 5 s):"
    for k in "${left[@]}"; do
        log "  ${k%%:*} $(tr -s '\0 ' '  ' <"/proc/${k%%:*}/cmdline" 2>/dev/null | cut -c1-120)"
    done
    signal_ids TERM "${left[@]}"
    wait_gone 5000 "${left[@]}" || signal_ids KILL "${left[@]}"
    LEAKED=1
}
LEAKED=0

FAILED=1
cleanup() {
    stop_gateway
    if (( FAILED )); then
        log "FAILED; last 30 log lines of $LOG:"
        tail -n 30 "$LOG" >&2 2>/dev/null || true
        log "run dir kept: $RUN"
    elif [[ "${KEEP_RUN:-0}" == 1 ]]; then
        log "run dir kept: $RUN"
    else
        rm -rf -- "$RUN"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- start --------------------------------------------------------------------------------
# env -i: nothing from this shell leaks in (no proxy vars, no NODE_OPTIONS). The wrapper sees
# exactly this env; clawjail then filters it again by policy. cwd = state dir so the
# gateway's "`.env` in cwd" lookup only sees our own dir. The token goes by env var
# (OPENCLAW_GATEWAY_TOKEN), not --token, so it never appears in /proc/<pid>/cmdline.
# PATH puts Node 24 first: the gateway spawns `node` workers and `npm root -g`
# (/usr/bin/npm is `#!/usr/bin/env node`), which must not pick the system Node 20.
gw_env=(
    "PATH=$NODE_BIN_DIR:/usr/bin:/bin"
    "HOME=$HOME_DIR"
    "OPENCLAW_STATE_DIR=$STATE_DIR"
    "TMPDIR=$TMP_DIR"
    "OPENCLAW_GATEWAY_TOKEN=$TOKEN"
)
gw_cmd=("$NODE" "$OPENCLAW" gateway run --allow-unconfigured --bind loopback
        --port "$PORT" --auth token)

log "port $PORT, run dir $RUN, wrapper: ${wrap[*]}"
t_start="$(now_ms)"
# The subshell execs all the way down (env -> wrapper -> node), so $! is the gateway (or the
# wrapper's supervisor when it forks, e.g. clawjail --init).
( cd "$STATE_DIR" && exec env -i "${gw_env[@]}" "${wrap[@]}" "${gw_cmd[@]}" ) >"$LOG" 2>&1 </dev/null &
PID=$!

# --- wait for /healthz ----------------------------------------------------------------------
URL="http://127.0.0.1:$PORT/healthz"
probe() {
    if command -v curl >/dev/null; then
        # --noproxy: never route loopback through a proxy from the caller's env.
        curl -fsS --noproxy '*' --max-time 2 -o /dev/null "$URL" 2>/dev/null
    else
        # Node's fetch ignores *_proxy env vars unless NODE_USE_ENV_PROXY is set.
        "$NODE" -e 'fetch(process.argv[1],{signal:AbortSignal.timeout(2000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$URL"
    fi
}
deadline=$(( t_start + HEALTH_TIMEOUT * 1000 ))
until probe; do
    if ! alive; then
        rc=0; wait "$PID" 2>/dev/null || rc=$?; PID=""
        log "gateway exited rc=$rc before becoming healthy"
        exit 1
    fi
    if (( $(now_ms) >= deadline )); then
        log "no healthy /healthz after ${HEALTH_TIMEOUT}s"
        exit 1
    fi
    sleep 0.2
done
echo "gateway up in $(( $(now_ms) - t_start )) ms"

# /readyz (agents + channels settled) is informational: stopping a gateway whose startup
# sidecars still run takes 2-7 s instead of <1 s, and the time is worth recording.
URL="http://127.0.0.1:$PORT/readyz"
deadline=$(( $(now_ms) + ${READY_TIMEOUT:-30} * 1000 ))
until probe; do
    if (( $(now_ms) >= deadline )) || ! alive; then
        log "/readyz not ready after ${READY_TIMEOUT:-30}s (not fatal)"; break
    fi
    sleep 0.2
done
probe && echo "gateway ready in $(( $(now_ms) - t_start )) ms"

# --- report the confinement state of the process that serves the port ---------------------
# $PID is the listener when nothing forks in between; with a forking wrapper (clawjail
# --init) the gateway is a descendant whose title is "openclaw-gateway".
gw_pid="$PID"
for p in $PID $(descendants "$PID"); do
    if [[ "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" == openclaw-gateway* ]]; then
        gw_pid="$p"; break
    fi
done
# Process titles are space-padded; squeeze for printing.
echo "gateway pid $gw_pid (started pid $PID): $(tr -s '\0 ' '  ' <"/proc/$gw_pid/cmdline" | sed 's/ *$//' | cut -c1-100)"
grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters|VmRSS|Threads):' \
    "/proc/$gw_pid/status" | sed 's/^/  /'
# Memory of the whole tree (gateway + workers), for sizing MemoryMax= / mem_limit.
rss_kb=0 nprocs=0
for p in $PID $(descendants "$PID"); do
    kb="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)"
    [[ -n "$kb" ]] && rss_kb=$(( rss_kb + kb )) && nprocs=$(( nprocs + 1 ))
done
echo "  tree: $nprocs processes, RSS $(( rss_kb / 1024 )) MiB"
# Token must not be visible in argv (it is in the environ, readable only by the same uid/root).
if tr '\0' ' ' <"/proc/$gw_pid/cmdline" | grep -qF -- "$TOKEN"; then
    log "token visible in cmdline"; exit 1
fi

stop_gateway
if [[ "$STOP_RC" != 0 && "$STOP_RC" != 143 ]]; then
    log "unexpected exit status $STOP_RC after SIGTERM"; exit 1
fi
# A process that outlives the gateway by seconds means a wrapper did not forward SIGTERM or
# a worker leaked: a real failure for a launcher, so it fails the smoke test by default.
if (( LEAKED )) && [[ "${ALLOW_LEFTOVERS:-0}" != 1 ]]; then
    log "processes outlived the gateway (set ALLOW_LEFTOVERS=1 to tolerate)"; exit 1
fi
FAILED=0
