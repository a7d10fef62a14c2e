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
#   STOP_TIMEOUT     seconds between SIGTERM and SIGKILL (default 20)
#   KEEP_RUN=1       keep the scratch run dir even on success
#   RUN_BASE         parent of the scratch run dir (default /tmp)
#
# Prints "gateway up in N ms", the Uid/Gid/Cap*/NoNewPrivs/Seccomp lines of the running
# gateway's /proc/<pid>/status, then "gateway stopped rc=N in N ms".
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

STOP_RC=""
stop_gateway() {
    alive || return 0
    # Snapshot descendants now: once the leader dies they are reparented and unfindable.
    # (The spawn-broker worker runs in its own session but is still a descendant.)
    local kids t0 deadline p
    kids="$(descendants "$PID" | tr '\n' ' ')"
    t0="$(now_ms)"
    kill -TERM "$PID" 2>/dev/null || true
    deadline=$(( t0 + STOP_TIMEOUT * 1000 ))
    while alive && (( $(now_ms) < deadline )); do sleep 0.1; done
    if alive; then
        log "no exit ${STOP_TIMEOUT}s after SIGTERM: SIGKILL to $PID $kids"
        # shellcheck disable=SC2086  # word-splitting the pid list is intended
        kill -KILL "$PID" $kids 2>/dev/null || true
    fi
    STOP_RC=0
    wait "$PID" 2>/dev/null || STOP_RC=$?
    log "gateway stopped rc=$STOP_RC in $(( $(now_ms) - t0 )) ms"
    # Descendants still around (a wrapper that died without forwarding the signal, or a
    # worker that outlived the leader): SIGTERM, a short grace period, then SIGKILL.
    local k left
    left=""
    for k in $kids; do kill -0 "$k" 2>/dev/null && left+="$k "; done
    if [[ -n "$left" ]]; then
        log "descendants left after leader exit (SIGTERM, SIGKILL after 5 s):"
        for p in $left; do
            log "  $p $(tr -s '\0 ' '  ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-120)"
        done
        # shellcheck disable=SC2086
        kill -TERM $left 2>/dev/null || true
        deadline=$(( $(now_ms) + 5000 ))
        while (( $(now_ms) < deadline )); do
            k=""
            for p in $left; do kill -0 "$p" 2>/dev/null && k=1; done
            [[ -n "$k" ]] || break
            sleep 0.1
        done
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
    fi
    PID=""
}

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
grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters):' \
    "/proc/$gw_pid/status" | sed 's/^/  /'
# Token must not be visible in argv (it is in the environ, readable only by the same uid/root).
if tr '\0' ' ' <"/proc/$gw_pid/cmdline" | grep -qF -- "$TOKEN"; then
    log "token visible in cmdline"; exit 1
fi

stop_gateway
if [[ "$STOP_RC" != 0 && "$STOP_RC" != 143 ]]; then
    log "unexpected exit status $STOP_RC after SIGTERM"; exit 1
fi
FAILED=0
