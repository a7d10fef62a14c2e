#!/bin/sh
# Egress broker cost in one run: 1 GiB throughput direct / through the broker's relay /
# through a minimal C splice(2) relay (the floor, scripts/splice-relay.c), added latency of
# a new connection, DNS answer latency, 1,000 concurrent relayed connections, and (as root)
# the namespace setup cost. Loopback only. Not a test: numbers depend on the machine.
set -eu
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/clawjail-splice-relay-$$"
trap 'rm -f "$out"' EXIT
cc -O2 -o "$out" scripts/splice-relay.c
cargo bench --quiet --bench egress -- "$out"
