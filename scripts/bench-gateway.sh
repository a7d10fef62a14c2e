#!/usr/bin/env bash
# Time from launch to a healthy /healthz of the real OpenClaw gateway, bare (setpriv to
# uid 65534) and under `clawjail run --policy policies/openclaw-gateway.toml`, measured
# side by side in one run, alternating, ROUNDS times each. A benchmark, not a test: it
# prints numbers and asserts nothing. Needs root and the `openclaw` user.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
cache=${OPENCLAW_CACHE:-/var/cache/clawjail-ci/openclaw}

bash scripts/install-openclaw.sh >/dev/null
cargo build --release --quiet
id openclaw >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/openclaw --create-home --shell /usr/sbin/nologin openclaw
owner="$(id -u openclaw):$(id -g openclaw)"
creds=$(mktemp -d /tmp/cj-bench-gw.XXXXXX)
trap 'rm -rf "$creds"' EXIT
chmod 755 "$creds"
printf 'OPENCLAW_GATEWAY_TOKEN=%s\n' "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" > "$creds/gateway-token.env"
chmod 600 "$creds/gateway-token.env"

wrap="$PWD/target/release/clawjail run --policy $PWD/policies/openclaw-gateway.toml --var PORT=@PORT@ --var STATE_DIR=@STATE@ --var OPENCLAW_PREFIX=$cache --var CREDENTIALS_DIRECTORY=$creds --"
bare=() jail=()
for ((i = 1; i <= rounds; i++)); do
  t=$(OPENCLAW_CACHE=$cache bash scripts/gateway-smoke.sh 2>&1 | sed -n 's/.*gateway up in \([0-9]*\) ms.*/\1/p')
  bare+=("$t")
  t=$(OPENCLAW_CACHE=$cache GATEWAY_OWNER=$owner WRAP="$wrap" bash scripts/gateway-smoke.sh 2>&1 | sed -n 's/.*gateway up in \([0-9]*\) ms.*/\1/p')
  jail+=("$t")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "time to healthy /healthz (ms), $rounds alternating rounds:"
echo "  bare (setpriv 65534):        ${bare[*]}   median $(median "${bare[@]}")"
echo "  clawjail (gateway policy):   ${jail[*]}   median $(median "${jail[@]}")"
awk -v b="$(median "${bare[@]}")" -v j="$(median "${jail[@]}")" 'BEGIN { printf "  ratio clawjail/bare = %.2f\n", j / b }'
