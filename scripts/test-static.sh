#!/usr/bin/env bash
# test-static.sh: build the static clawjail that can be copied into any image (distroless
# included) and run the launch tests against it.
#
#   bash scripts/test-static.sh        (as root for the root-only launch tests)
#
# Target: x86_64-unknown-linux-musl (`rustup target add` it when missing); if the target
# cannot be installed the script fails. Not static-pie glibc: a static glibc still dlopens
# NSS modules for a uid /etc/passwd does not name (`passwd: files systemd`) and crashed with
# SIGSEGV before any launch step (docs/performance.md). Release profile, separate target
# dir (target/static), explicit --target. Checks that the result has no program interpreter, then runs
#   CLAWJAIL_TEST_BIN=target/static/clawjail cargo test --test it launch::
# (tests/it/util.rs clawjail_bin() reads CLAWJAIL_TEST_BIN). The binary stays at
# target/static/clawjail (scripts/test.sh hands it to scripts/test-containers.sh).
#
# NSS: musl reads /etc/passwd and /etc/group only (and an nscd socket when one exists);
# no sssd/LDAP/systemd modules. Name users in the policy that those files define, or use
# numeric ids.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'test-static: %s\n' "$*"; }

target=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    if ! command -v rustup >/dev/null || ! rustup target add "$target" >/tmp/clawjail-rustup-$$.log 2>&1; then
        say "FAIL: cannot install the $target target ($(tail -n1 /tmp/clawjail-rustup-$$.log 2>/dev/null || echo 'no rustup'))"
        rm -f /tmp/clawjail-rustup-$$.log
        exit 1
    fi
    rm -f /tmp/clawjail-rustup-$$.log
fi

t=$(date +%s)
CARGO_TARGET_DIR=target/static cargo build --release --locked --quiet --bin clawjail --target "$target"
install -m 0755 "target/static/$target/release/clawjail" target/static/clawjail
bin="$PWD/target/static/clawjail"

# Static: no PT_INTERP (ld.so), no DT_NEEDED; ldd says so for static and static-pie alike.
ldd_out="$(ldd "$bin" 2>&1 || true)"
grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out" \
    || { say "FAIL: $bin is not static: $ldd_out"; exit 1; }
say "built $bin ($target, $(($(stat -c %s "$bin") / 1024)) KiB, $(($(date +%s) - t)) s): ldd: $(tr -d '\t' <<<"$ldd_out")"
"$bin" --version

# launch:: (the launch module), not "launch", which also matches
# planted::stale_run_records_are_pruned_at_launch: that test needs no other clawjail to start
# (and prune /run/clawjail) while it counts its planted records, and in a run of launch tests
# every other test starts one (it failed so here: 141 of 500 records left).
CLAWJAIL_TEST_BIN="$bin" cargo test --test it launch::
