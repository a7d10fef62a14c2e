#!/usr/bin/env bash
# Launch overhead: median wall time of a tiny static program run bare, under `setpriv`
# (uid drop, caps, nnp: what operators copy by hand) and under `clawjail run` (all of that
# plus Landlock, seccomp, env, fds, rlimits, and on a root start the PID and IPC
# namespaces), for two policies:
#   one-rule  a one-exec-rule policy (uid/gid 65534)
#   gateway   the shipped policies/openclaw-gateway.toml (its vars; the target is the tiny
#             program, which the plan adds to the exec rules as the target's chain)
# and three builds of clawjail:
#   release   `cargo build --release` (dynamic glibc: what `cargo install` gives)
#   static    static-pie glibc (-C target-feature=+crt-static)
#   musl      x86_64-unknown-linux-musl (static)
# Measured side by side in one run, interleaved, so machine noise hits every column alike;
# "added" is the median minus bare's, and each ratio is clawjail's added time over
# setpriv's. A benchmark, not a test: it prints numbers and asserts nothing. Needs root
# (uid switch). Where the time goes: docs/performance.md.
#   RUNS=300 bash scripts/bench-launch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-300}

cargo build --release --quiet --bin clawjail
# Static builds in a separate target dir: crt-static must not reach proc-macros, hence the
# explicit --target.
CARGO_TARGET_DIR=target/static RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --quiet --bin clawjail --target x86_64-unknown-linux-gnu
musl=x86_64-unknown-linux-musl
have_musl=0
if rustup target list --installed 2>/dev/null | grep -qx "$musl" \
  && CARGO_TARGET_DIR=target/static cargo build --release --quiet --bin clawjail --target "$musl"; then
  have_musl=1
else
  echo "bench-launch: no $musl target (rustup target add $musl); musl column skipped" >&2
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
cp target/static/x86_64-unknown-linux-gnu/release/clawjail "$work/clawjail-static"
[ "$have_musl" = 1 ] && cp "target/static/$musl/release/clawjail" "$work/clawjail-musl"

# The gateway policy's vars: the installed gateway's npm prefix when there is one (its
# read-only rule must exist), else an empty stand-in; a state dir owned by `openclaw`.
prefix=/var/cache/clawjail-ci/openclaw
[ -d "$prefix/node_modules" ] || { prefix="$work/prefix"; mkdir -p "$prefix/node_modules"; }
mkdir -p "$work/state" "$work/creds"
id openclaw >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/openclaw --create-home --shell /usr/sbin/nologin openclaw
chown openclaw: "$work/state"

python3 - "$work" "$runs" "$have_musl" "$prefix" "$PWD/policies/openclaw-gateway.toml" <<'PY'
import statistics, subprocess, sys, time
work, runs, have_musl, prefix, gw = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
tiny = f"{work}/tiny"
builds = ["release", "static"] + (["musl"] if have_musl else [])
policies = {
    "one-rule": ["--policy", f"{work}/policy.toml"],
    "gateway": ["--policy", gw, "--var", f"OPENCLAW_PREFIX={prefix}", "--var",
                f"STATE_DIR={work}/state", "--var", f"CREDENTIALS_DIRECTORY={work}/creds"],
}
cmds = {
    "bare": [tiny],
    "setpriv": ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", tiny],
}
for pol, args in policies.items():
    for b in builds:
        cmds[f"{pol} {b}"] = [f"{work}/clawjail-{b}", "run", *args, "--", tiny]
cmds["one-rule release no-pidns"] = [f"{work}/clawjail-release", "run", "--policy",
                                     f"{work}/policy-nopidns.toml", "--", tiny]
env = {"PATH": "/usr/bin:/bin", "CLAWJAIL_LOG": "off"}
times = {k: [] for k in cmds}
for name, cmd in cmds.items():  # warm-up, and fail loudly if a command is broken
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
for _ in range(runs):
    for name, cmd in cmds.items():
        t = time.perf_counter_ns()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[name].append(time.perf_counter_ns() - t)
med = {k: statistics.median(v) / 1e6 for k, v in times.items()}
added = {k: med[k] - med["bare"] for k in cmds}
sp = max(added["setpriv"], 1e-9)
print(f"launch overhead, median of {runs} interleaved runs (ms); ratio = added / setpriv's added")
print(f"  {'command':28s} {'median':>7s} {'added':>7s} {'ratio':>6s}")
for k in cmds:
    ratio = "" if k == "bare" else f"{added[k] / sp:6.2f}"
    print(f"  {k:28s} {med[k]:7.3f} {added[k]:7.3f} {ratio:>6s}")
PY
