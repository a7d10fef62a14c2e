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
cp target/release/clawjail "$work/clawjail"

python3 - "$work" "$runs" <<'PY'
import os, statistics, subprocess, sys, time
work, runs = sys.argv[1], int(sys.argv[2])
tiny = f"{work}/tiny"
cmds = {
    "bare": [tiny],
    "setpriv": ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", tiny],
    "clawjail": [f"{work}/clawjail", "run", "--policy", f"{work}/policy.toml", "--", tiny],
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
print(f"  clawjail adds {med['clawjail'] - med['bare']:.3f} ms over bare, "
      f"{med['clawjail'] - med['setpriv']:+.3f} ms vs setpriv "
      f"(setpriv adds {med['setpriv'] - med['bare']:.3f} ms); "
      f"ratio clawjail/setpriv added time = {(med['clawjail']-med['bare'])/max(med['setpriv']-med['bare'],1e-9):.2f}")
PY
