#!/usr/bin/env bash
# The test command for a fresh Debian 12 machine, run as root (README, .ci/run):
# formatting and lints, then every unit and integration test, the real OpenClaw gateway
# under the shipped policies, `clawjail verify` of every shipped policy, and the
# deployment examples' linters. Installs what it needs (apt, npm, PyPI) idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

say() { printf '\n== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "note: not root: root-only tests will print 'skipped: needs root'" >&2
fi

say "system packages"
missing=()
# openssl: the egress name-binding tests (tests/it/egress_names.rs) run a TLS upstream and s_client.
# strace: the export test traces clawjail's own syscalls; podman + runc: the shipped systemd
# unit runs under systemd as PID 1 in a container, the exported OCI seccomp profile is tried
# in a real runtime, and the Docker example runs in a container.
for tool in setpriv:util-linux gcc:gcc python3:python3 curl:curl openssl:openssl systemd-analyze:systemd npm:npm strace:strace podman:podman runc:runc; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
# python3-yaml: scripts/test-containers.sh translates examples/docker/compose.yaml for podman.
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
# moby's default seccomp profile (Docker's): scripts/test-containers-egress.sh shows clawjail
# refusing [egress] under it, and examples/docker/seccomp-clawjail.json is generated from it.
[ -f /usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json ] || missing+=(golang-github-docker-docker-dev)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# kubernetes-validate (PyPI) for the `clawjail export k8s` test, in a private venv.
K8S_VALIDATE_VENV="${CLAWJAIL_K8S_VALIDATE_VENV:-/var/cache/clawjail-ci/k8s-validate}"
if [ ! -x "$K8S_VALIDATE_VENV/bin/kubernetes-validate" ] && [ "$(id -u)" = 0 ]; then
  python3 -m venv "$K8S_VALIDATE_VENV"
  "$K8S_VALIDATE_VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==1.37.0"
fi
export CLAWJAIL_K8S_VALIDATE_VENV="$K8S_VALIDATE_VENV"

say "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

say "Node 24 and openclaw (cached)"
if [ "${CLAWJAIL_SKIP_OPENCLAW:-0}" != 1 ]; then
  bash scripts/install-openclaw.sh
  # shellcheck disable=SC1091
  . "${OPENCLAW_CACHE:-/var/cache/clawjail-ci/openclaw}/paths.env"
  export CLAWJAIL_NODE24="$NODE" CLAWJAIL_OPENCLAW_PREFIX="${OPENCLAW_CACHE:-/var/cache/clawjail-ci/openclaw}"
  # The shipped policies run the gateway as a dedicated system user, as an operator would.
  # The same line as scripts/demo.sh and examples/systemd/install.sh (lint-examples.sh checks).
  if [ "$(id -u)" = 0 ]; then
    id openclaw >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/openclaw --create-home --shell /usr/sbin/nologin openclaw
  fi
  # In CI the gateway tests must run, not skip.
  if [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ]; then export CLAWJAIL_REQUIRE_OPENCLAW=1; fi
fi

say "unit and integration tests"
cargo build --all-targets
cargo test --all-targets 2>&1 | tee /tmp/clawjail-test.log
# Any skipped root-only test must say why; show them so a silent skip is visible.
grep -h "skipped:" /tmp/clawjail-test.log | sort | uniq -c || true

say "static binary (musl) and the launch tests against it"
# target/static/clawjail: the binary the Dockerfile ships; the container test below runs it.
bash scripts/test-static.sh

say "cargo install (README): only clawjail is installed"
# --debug and the existing target dir reuse this build instead of a second fat-LTO one.
install_root=$(mktemp -d)
cargo install --locked --quiet --debug --path . --root "$install_root" --target-dir target
installed=$(ls "$install_root/bin")
rm -rf "$install_root"
if [ "$installed" != clawjail ]; then
  echo "cargo install put these on PATH: $installed (expected clawjail only)" >&2
  exit 1
fi
echo "installed: $installed"

say "deployment examples"
bash scripts/lint-examples.sh "$PWD/target/debug/clawjail"

say "systemd unit under systemd as PID 1 (podman)"
# Runs the README's systemd section (examples/systemd/install.sh) and the shipped unit under a
# real systemd; in CI it must run, elsewhere it says why it skips. Needs the openclaw cache.
if [ "${CLAWJAIL_SKIP_OPENCLAW:-0}" != 1 ]; then
  bash scripts/test-systemd.sh "$PWD/target/debug/clawjail"
else
  echo "test-systemd: skipped: CLAWJAIL_SKIP_OPENCLAW=1"
fi

say "Docker example in podman + runc (compose.yaml's options, clawjail --init as PID 1)"
# The static binary in a container whose root is this machine's; in CI it must run.
if [ "${CLAWJAIL_SKIP_OPENCLAW:-0}" != 1 ]; then
  bash scripts/test-containers.sh "$PWD/target/static/clawjail"
else
  echo "test-containers: skipped: CLAWJAIL_SKIP_OPENCLAW=1"
fi

say "[egress] in podman + runc: podman's, moby's and the shipped seccomp profile"
# No gateway: python and curl clients in a network namespace this script makes (~20 s).
bash scripts/test-containers-egress.sh "$PWD/target/static/clawjail"

say "all checks passed"
