#!/usr/bin/python3
"""gen-seccomp-profile.py: examples/docker/seccomp-clawjail.json from moby's default profile.

    gen-seccomp-profile.py [--check] [MOBY_DEFAULT_JSON]

Docker's default seccomp profile (moby profiles/seccomp/default.json; containerd's and
Kubernetes' RuntimeDefault derive from it) allows unshare and setns only with CAP_SYS_ADMIN,
which no sane container grants. clawjail's [egress] puts the target in its own network
namespace; without CAP_SYS_ADMIN (root or not) that is one call,
unshare(CLONE_NEWUSER|CLONE_NEWNET) (src/egress/netns.rs). The shipped profile is moby's,
unchanged, plus one rule allowing exactly that call with exactly that flag word (arg 0 ==
0x50000000): no other namespace type, no setns, no clone with namespace flags, no mount.
Measured by scripts/test-containers-egress.sh: under moby's profile clawjail refuses (exit
125, naming this file); under this one the egress tests pass, root and --user 10001.

The input is Debian's golang-github-docker-docker-dev (no download):
/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json. The output
names the moby version it was made from. --check: exit 1 if the committed file differs from
what this script makes now (scripts/lint-examples.sh runs it when the input is installed).
"""
import json
import os
import subprocess
import sys

MOBY = "/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json"
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "examples", "docker", "seccomp-clawjail.json")

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

RULE = {
    "names": ["unshare"],
    "action": "SCMP_ACT_ALLOW",
    "args": [{"index": 0, "value": CLONE_NEWUSER | CLONE_NEWNET, "op": "SCMP_CMP_EQ"}],
    "comment": "clawjail [egress]: unshare(CLONE_NEWUSER|CLONE_NEWNET) exactly, for the "
    "target's own network namespace (scripts/gen-seccomp-profile.py)",
    "includes": {},
    "excludes": {},
}


def moby_version():
    try:
        return subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "golang-github-docker-docker-dev"],
            capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def generate(src):
    with open(src) as f:
        profile = json.load(f)
    rules = profile["syscalls"]
    # The one rule moby gates on CAP_SYS_ADMIN must still be there, and nothing may already
    # allow unshare unconditionally (then this profile would be pointless).
    gated = [r for r in rules if "unshare" in r["names"]]
    if not gated or any(r.get("includes", {}).get("caps") != ["CAP_SYS_ADMIN"] for r in gated):
        sys.exit(f"{src}: unshare is not (only) allowed with CAP_SYS_ADMIN: review the profile")
    rule = dict(RULE)
    rule["comment"] += f"; base: moby default.json from golang-github-docker-docker-dev {moby_version()}"
    profile["syscalls"] = rules + [rule]
    return json.dumps(profile, indent="\t") + "\n"


def main():
    args = sys.argv[1:]
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    text = generate(args[0] if args else MOBY)
    if check:
        with open(OUT) as f:
            if f.read() != text:
                sys.exit(f"{OUT} is not what scripts/gen-seccomp-profile.py makes: regenerate it")
        print(f"{OUT}: up to date")
        return
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT}")


main()
