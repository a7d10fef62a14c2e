#!/usr/bin/env bash
# Launch overhead: median wall time of a tiny static program run bare, under
# `setpriv` (uid drop, caps, nnp: what operators copy by hand) and under `clawjail run`
# (all of that plus Landlock, seccomp, env, fds, rlimits). Measured side by side in one
# run, interleaved, so machine noise hits all three alike. A benchmark, not a test:
# it prints numbers and asserts nothing. Needs root (uid switch).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-300}

cargo build --release --quiet
# Also a static-pie build (glibc static, its built-in files NSS): no ld.so relocation or
# shared-library page faults at every launch. Separate target dir: crt-static must not
# reach proc-macros, hence the explicit --target.
CARGO_TARGET_DIR=target/static RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --quiet --target x86_64-unknown-linux-gnu
work=$(mktemp -d /tmp/cj-bench-launch.XXXXXX)
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
# supervisor and a namespace init before the target, which is most of the difference.
{ cat "$work/policy.toml"; printf '[process]\npid_namespace = false\n'; } > "$work/policy-nopidns.toml"
cp target/release/clawjail "$work/clawjail"
cp target/static/x86_64-unknown-linux-gnu/release/clawjail "$work/clawjail-static"

python3 - "$work" "$runs" <<'PY'
import os, statistics, subprocess, sys, time
work, runs = sys.argv[1], int(sys.argv[2])
tiny = f"{work}/tiny"
cmds = {
    "bare": [tiny],
    "setpriv": ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", tiny],
    "clawjail": [f"{work}/clawjail", "run", "--policy", f"{work}/policy.toml", "--", tiny],
    "static": [f"{work}/clawjail-static", "run", "--policy", f"{work}/policy.toml", "--", tiny],
    "no-pidns": [f"{work}/clawjail", "run", "--policy", f"{work}/policy-nopidns.toml", "--", tiny],
}
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
print(f"launch overhead, median of {runs} interleaved runs (ms):")
for k in cmds:
    print(f"  {k:9s} {med[k]:7.3f}")
added = {k: med[k] - med["bare"] for k in cmds}
print(f"  added over bare: setpriv {added['setpriv']:.3f} ms, clawjail {added['clawjail']:.3f} ms, "
      f"clawjail static-pie {added['static']:.3f} ms, clawjail without the PID namespace "
      f"{added['no-pidns']:.3f} ms")
for k in ("clawjail", "static", "no-pidns"):
    print(f"  ratio {k}/setpriv added time = {added[k] / max(added['setpriv'], 1e-9):.2f}")
PY
