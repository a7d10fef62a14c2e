#!/usr/bin/env bash
# test-static.sh: build the static clawjail that can be copied into any image (distroless
# included) and run the launch tests against it.
#
#   bash scripts/test-static.sh        (as root for the root-only launch tests)
#
# Target: x86_64-unknown-linux-musl (`rustup target add` it when missing); when the target
# cannot be installed (no rustup, offline), a static-pie glibc build instead
# (-C target-feature=+crt-static, as scripts/bench-launch.sh). Release profile, separate
# target dir (target/static: crt-static must not reach proc-macros, hence the explicit
# --target). Checks that the result has no program interpreter, then runs
#   CLAWJAIL_TEST_BIN=target/static/clawjail cargo test --test it launch::
# (tests/it/util.rs clawjail_bin() reads CLAWJAIL_TEST_BIN). The binary stays at
# target/static/clawjail (scripts/test.sh hands it to scripts/test-containers.sh).
#
# NSS: musl reads /etc/passwd and /etc/group only (and an nscd socket when one exists);
# a static glibc build has the built-in files backend only, no sssd/LDAP/systemd modules. Name
# users in the policy that those files define, or use numeric ids.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'test-static: %s\n' "$*"; }

musl=x86_64-unknown-linux-musl gnu=x86_64-unknown-linux-gnu
target="$musl"
if ! rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
    if ! command -v rustup >/dev/null || ! rustup target add "$musl" >/tmp/clawjail-rustup-$$.log 2>&1; then
        say "cannot install the $musl target ($(tail -n1 /tmp/clawjail-rustup-$$.log 2>/dev/null || echo 'no rustup')); building static-pie glibc instead"
        target="$gnu"
    fi
    rm -f /tmp/clawjail-rustup-$$.log
fi

t=$(date +%s)
if [ "$target" = "$musl" ]; then
    CARGO_TARGET_DIR=target/static cargo build --release --locked --quiet --bin clawjail --target "$target"
else
    CARGO_TARGET_DIR=target/static RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --locked --quiet --bin clawjail --target "$target"
fi
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
