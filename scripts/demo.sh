#!/usr/bin/env bash
# Build clawjail and run it on its embedded default policy (the OpenClaw gateway tier)
# on a fresh Debian 12 machine, as root: install Node 24 + openclaw into a cache, create
# the `openclaw` system user, print the plan (`check`), prove the policy (`verify`), then
# start the real gateway confined, wait for /healthz, show its /proc status and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (clawjail drops to the openclaw user)" >&2; exit 1; }
cache=${OPENCLAW_CACHE:-/var/cache/clawjail-ci/openclaw}
port=${PORT:-18789}

cargo build --release
bash scripts/install-openclaw.sh
id openclaw >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/openclaw --create-home --shell /usr/sbin/nologin openclaw
creds=$(mktemp -d /tmp/clawjail-demo.XXXXXX)
chmod 755 "$creds"
trap 'rm -rf "$creds"' EXIT
printf 'OPENCLAW_GATEWAY_TOKEN=%s\n' "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" > "$creds/gateway-token.env"
chmod 600 "$creds/gateway-token.env"

cj=target/release/clawjail
vars=(--var "PORT=$port" --var "OPENCLAW_PREFIX=$cache" --var "CREDENTIALS_DIRECTORY=$creds")
echo "== clawjail check (embedded default policy)"
"$cj" check "${vars[@]}" -- openclaw gateway run
echo "== clawjail verify"
"$cj" verify "${vars[@]}" || echo "(verify reported failures above)"
echo "== clawjail run -- openclaw gateway run (confined)"
env -i PATH=/usr/bin:/bin "$cj" run "${vars[@]}" -- openclaw gateway run --allow-unconfigured --bind loopback --port "$port" --auth token &
pid=$!
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null; then echo; break; fi
  sleep 1
done
grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' "/proc/$pid/status" || true
kill -TERM "$pid"
wait "$pid" || true
echo "== done"
