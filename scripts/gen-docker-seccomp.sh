#!/bin/sh
# gen-docker-seccomp.sh: examples/docker/seccomp-clawjail.json = Docker's (moby's) default
# seccomp profile plus exactly what clawjail's [egress] needs on an UNPRIVILEGED container
# start (compose's `user:` alternative), where the default profile refuses unshare and setns
# without CAP_SYS_ADMIN:
#   - unshare(CLONE_NEWUSER|CLONE_NEWNET), nothing else: the egress namespace (and the
#     throwaway probe `check` and `run` make first) -- src/egress/netns.rs;
#   - setns(fd, CLONE_NEWUSER) and setns(fd, CLONE_NEWNET): the inbound socket factory
#     entering that namespace -- src/egress/wire.rs.
# Every other rule is moby's, unchanged. A root start (compose's default) needs none of it:
# it adds CAP_SYS_ADMIN for CLONE_NEWNET, and the default profile allows unshare with it.
#
# Source: Debian's golang-github-docker-docker-dev (apt-get install golang-github-docker-docker-dev),
# never downloaded from elsewhere:
#   sh scripts/gen-docker-seccomp.sh [DEFAULT_JSON] > examples/docker/seccomp-clawjail.json
set -eu
src="${1:-/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json}"
[ -r "$src" ] || { echo "no $src: apt-get install golang-github-docker-docker-dev" >&2; exit 1; }
python3 - "$src" <<'PY'
import json, sys
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
p = json.load(open(sys.argv[1]))
def rule(name, index, value, comment):
    return {"names": [name], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": index, "value": value, "op": "SCMP_CMP_EQ"}],
            "comment": comment, "includes": {}, "excludes": {}}
p["syscalls"] += [
    rule("unshare", 0, CLONE_NEWUSER | CLONE_NEWNET,
         "clawjail [egress]: the target's user+network namespace (unprivileged start)"),
    rule("setns", 1, CLONE_NEWUSER, "clawjail [egress]: the inbound socket factory enters the user namespace"),
    rule("setns", 1, CLONE_NEWNET, "clawjail [egress]: then its network namespace"),
]
json.dump(p, sys.stdout, indent="\t")
sys.stdout.write("\n")
PY
