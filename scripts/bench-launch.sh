#!/usr/bin/env bash
# Launch overhead: a tiny static program run bare, under `setpriv` (uid drop, caps, nnp:
# what operators copy by hand) and under `clawjail run` (all of that plus Landlock,
# seccomp, env, fds, rlimits, and on a root start the PID and IPC namespaces), for:
#   one-rule       a one-exec-rule policy (uid/gid 65534)
#   gateway        the shipped policies/openclaw-gateway.toml WITHOUT its [egress] section
#                  (a copy made here; its vars; the target is the tiny program, which the
#                  plan adds to the exec rules as the target's chain). Issue 18's target is
#                  the launch of policies without [egress]: creating the network namespace
#                  alone costs more than setpriv's whole launch (scripts/bench-egress.sh).
#   gateway+egress the shipped policy as it is, [egress] included (for information)
#   one-rule no-pidns  the one-rule policy with process.pid_namespace = false (information)
# Each is run with the default release build (`cargo build --release`: what `cargo
# install` gives). BUILDS="release static musl" adds a static-pie glibc build
# (-C target-feature=+crt-static) and a musl build for the one-rule and gateway policies.
# Measured side by side in one run, interleaved, so machine noise hits every column alike;
# "added" is the median minus bare's, and each ratio is clawjail's added time over
# setpriv's. CPU is user + system time of the launch's whole process tree (wait4's rusage):
# far less sensitive to other load on the machine than wall time. A benchmark, not a
# test: it prints numbers and asserts nothing. Needs root (uid switch). Where the time
# goes: docs/performance.md.
#   RUNS=300 bash scripts/bench-launch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-300}

builds=${BUILDS:-release}
cargo build --release --quiet --bin clawjail
# Static builds in a separate target dir: crt-static must not reach proc-macros, hence the
# explicit --target.
have_static=0
if [[ " $builds " == *" static "* ]]; then
  CARGO_TARGET_DIR=target/static RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --quiet --bin clawjail --target x86_64-unknown-linux-gnu
  have_static=1
fi
musl=x86_64-unknown-linux-musl
have_musl=0
if [[ " $builds " == *" musl "* ]]; then
  if rustup target list --installed 2>/dev/null | grep -qx "$musl" \
    && CARGO_TARGET_DIR=target/static cargo build --release --quiet --bin clawjail --target "$musl"; then
    have_musl=1
  else
    echo "bench-launch: no $musl target (rustup target add $musl); musl column skipped" >&2
  fi
fi

# Not under /tmp: the gateway policy gives the target a private /tmp, where a target under
# /tmp would not exist.
work=$(mktemp -d /var/tmp/cj-bench-launch.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
printf 'int main(void){return 0;}\n' > "$work/tiny.c"
gcc -O2 -static -o "$work/tiny" "$work/tiny.c"
cat > "$work/policy.toml" <<POL
version = 1
[identity]
user = 65534
group = 65534
[filesystem]
exec = ["$work/tiny"]
POL
# The same policy without the root start's PID namespace (issue 9): that default forks a
# supervisor and a namespace init before the target.
{ cat "$work/policy.toml"; printf '[process]\npid_namespace = false\n'; } > "$work/policy-nopidns.toml"
cp target/release/clawjail "$work/clawjail-release"
[ "$have_static" = 1 ] && cp target/static/x86_64-unknown-linux-gnu/release/clawjail "$work/clawjail-static"
[ "$have_musl" = 1 ] && cp "target/static/$musl/release/clawjail" "$work/clawjail-musl"
# The shipped gateway policy without its [egress] section (the section runs to the end of
# the file; the check below fails loudly if that ever changes).
sed '/^\[egress\]/,$d' policies/openclaw-gateway.toml > "$work/gateway-no-egress.toml"
if grep -q '^\[egress' "$work/gateway-no-egress.toml" || ! grep -q '^\[egress\]' policies/openclaw-gateway.toml; then
  echo "bench-launch: cannot cut [egress] out of policies/openclaw-gateway.toml" >&2
  exit 1
fi

# The gateway policy's vars: the installed gateway's npm prefix when there is one (its
# read-only rule must exist), else an empty stand-in; a state dir owned by `openclaw`.
prefix=/var/cache/clawjail-ci/openclaw
[ -d "$prefix/node_modules" ] || { prefix="$work/prefix"; mkdir -p "$prefix/node_modules"; }
mkdir -p "$work/state" "$work/creds"
id openclaw >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/openclaw --create-home --shell /usr/sbin/nologin openclaw
chown openclaw: "$work/state"

python3 - "$work" "$runs" "$have_static" "$have_musl" "$prefix" "$PWD/policies/openclaw-gateway.toml" <<'PY'
import os, shutil, statistics, sys, time
work, runs, prefix, shipped = sys.argv[1], int(sys.argv[2]), sys.argv[5], sys.argv[6]
tiny = f"{work}/tiny"
builds = ["release"] + (["static"] if sys.argv[3] == "1" else []) + (["musl"] if sys.argv[4] == "1" else [])
gw_vars = ["--var", f"OPENCLAW_PREFIX={prefix}", "--var", f"STATE_DIR={work}/state",
           "--var", f"CREDENTIALS_DIRECTORY={work}/creds"]
policies = {
    "one-rule": ["--policy", f"{work}/policy.toml"],
    "gateway": ["--policy", f"{work}/gateway-no-egress.toml", *gw_vars],
}
cmds = {
    "bare": [tiny],
    "setpriv": ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", tiny],
}
for pol, args in policies.items():
    for b in builds:
        cmds[f"{pol} {b}"] = [f"{work}/clawjail-{b}", "run", *args, "--", tiny]
# For information: the shipped policy as it is ([egress]: a network namespace, the broker)
# and the one-rule policy without the root start's PID namespace.
cmds["gateway+egress release"] = [f"{work}/clawjail-release", "run", "--policy", shipped,
                                  *gw_vars, "--", tiny]
cmds["one-rule release no-pidns"] = [f"{work}/clawjail-release", "run", "--policy",
                                     f"{work}/policy-nopidns.toml", "--", tiny]
env = {"PATH": "/usr/bin:/bin", "CLAWJAIL_LOG": "off"}
devnull = os.open("/dev/null", os.O_RDWR)

def launch(cmd):
    """Wall time and CPU time (user + system of the launch's whole process tree: wait4's
    rusage includes every descendant its parent waited for) of one run."""
    t = time.perf_counter_ns()
    pid = os.posix_spawn(cmd[0], cmd, env, file_actions=[
        (os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter_ns() - t
    return wall, (ru.ru_utime + ru.ru_stime) * 1e9, os.waitstatus_to_exitcode(status)

for name, cmd in cmds.items():  # warm-up, and fail loudly if a command is broken
    cmd[0] = shutil.which(cmd[0]) or cmd[0]
    code = launch(cmd)[2]
    if code != 0:
        sys.exit(f"{name}: exit {code}: {' '.join(cmd)}")
wall = {k: [] for k in cmds}
cpu = {k: [] for k in cmds}
for _ in range(runs):
    for name, cmd in cmds.items():
        w, c, _ = launch(cmd)
        wall[name].append(w)
        cpu[name].append(c)
med = {k: statistics.median(v) / 1e6 for k, v in wall.items()}
cmed = {k: statistics.median(v) / 1e6 for k, v in cpu.items()}
added = {k: med[k] - med["bare"] for k in cmds}
cadded = {k: cmed[k] - cmed["bare"] for k in cmds}
sp = max(added["setpriv"], 1e-9)
csp = max(cadded["setpriv"], 1e-9)
print(f"launch overhead, median of {runs} interleaved runs (ms); added = minus bare; "
      "ratio = added / setpriv's added")
print("  gateway = policies/openclaw-gateway.toml without its [egress] section; "
      "gateway+egress = as shipped")
print(f"  {'':28s} {'wall':>7s} {'added':>7s} {'ratio':>6s}   {'cpu':>6s} {'added':>6s} {'ratio':>6s}")
for k in cmds:
    r = "" if k == "bare" else f"{added[k] / sp:6.2f}"
    cr = "" if k == "bare" else f"{cadded[k] / csp:6.2f}"
    print(f"  {k:28s} {med[k]:7.3f} {added[k]:7.3f} {r:>6s}   {cmed[k]:6.3f} {cadded[k]:6.3f} {cr:>6s}")
print("  (cpu: user + system time of the launch's whole process tree, from wait4's rusage)")
PY
