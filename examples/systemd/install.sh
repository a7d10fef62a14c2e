#!/usr/bin/env bash
# install.sh: install the OpenClaw gateway as a systemd service confined by clawjail.
#
#   cargo build --release && bash examples/systemd/install.sh     (as root)
#   systemctl start openclaw-gateway
#   curl -fsS http://127.0.0.1:18789/healthz
#
# Run as root (from a user account: sudo); it works from any directory. Idempotent: a second run changes nothing it already did;
# it never replaces an existing token or openclaw.json (delete them to regenerate) and
# never touches an existing `openclaw` user. CLAWJAIL_BIN picks another clawjail binary
# (default: the release build of this checkout).
#
# The steps between the two "steps" markers are the README's systemd section, verbatim
# (scripts/lint-examples.sh checks that), and scripts/test-systemd.sh runs this script
# under a real systemd as PID 1 in CI.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
cd "$(dirname "$0")/../.."

# --- steps ---
# 1. clawjail, and Node 24 + openclaw in /opt/openclaw (the unit's and the policy's prefix)
install -m 0755 "${CLAWJAIL_BIN:-target/release/clawjail}" /usr/local/bin/clawjail
OPENCLAW_CACHE=/opt/openclaw bash scripts/install-openclaw.sh >/dev/null
# 2. The user the gateway runs as (the quick start creates the same one): home and state
#    in /var/lib/openclaw, owned by openclaw; the state dir is ~/.openclaw, created 0700
#    by clawjail at the first start.
id openclaw >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/openclaw --create-home --shell /usr/sbin/nologin openclaw
# 3. The policy, and the gateway token: root-only, handed to clawjail by LoadCredential=
install -d -m 0755 /etc/clawjail
install -m 0644 policies/openclaw-gateway.toml /etc/clawjail/openclaw-gateway.toml
[ -e /etc/clawjail/openclaw-gateway.token.env ] || (umask 077 && printf 'OPENCLAW_GATEWAY_TOKEN=%s\n' "$(openssl rand -hex 32)" > /etc/clawjail/openclaw-gateway.token.env)
# 4. The gateway's config: readable by openclaw, writable only by root (a tricked agent
#    cannot rewrite its own auth or bind for the next start). gateway.mode=local is required.
install -d -m 0750 -g openclaw /etc/openclaw
[ -e /etc/openclaw/openclaw.json ] || (umask 027 && printf '%s\n' '{"gateway":{"mode":"local","bind":"loopback","auth":{"mode":"token"}},"update":{"checkOnStart":false}}' > /etc/openclaw/openclaw.json && chgrp openclaw /etc/openclaw/openclaw.json)
# 5. The unit
install -m 0644 examples/systemd/openclaw-gateway.service /etc/systemd/system/openclaw-gateway.service
systemctl daemon-reload
systemctl enable openclaw-gateway
# --- end of steps ---
