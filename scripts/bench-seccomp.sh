#!/bin/sh
# Print, side by side, the per-call cost of a syscall with argument rules (sendto) and of
# one without (getppid), bare / under clawjail's default filter (balanced tree) / under the
# same allowlist as a plain seccompiler linear chain, plus each filter's install time.
# Not a test: numbers depend on the machine. Linux x86_64; any user (no_new_privs is set).
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --quiet --bench seccomp "$@"
