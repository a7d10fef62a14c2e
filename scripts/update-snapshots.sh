#!/usr/bin/env bash
# Rewrite the plan-view snapshots (tests/snapshots/plan-view/*.json, src/plan/view_tests.rs)
# after an intended change to what `check --json` prints, for both starts: the root start
# (`NAME.root.json`) and, as uid 65534, the unprivileged start (`NAME.user.json`). Run as
# root; review the result with `git diff tests/snapshots`. As another user it rewrites only
# the `.user.json` files of that user's start.
set -euo pipefail
cd "$(dirname "$0")/.."
UPDATE_SNAPSHOTS=1 cargo test --quiet --lib plan::view::tests
if [ "$(id -u)" != 0 ]; then
  exit 0
fi
bin=$(cargo test --lib --no-run 2>&1 | grep -o 'target/debug/deps/clawjail-[0-9a-f]*' | head -1)
out=$(mktemp -d /tmp/clawjail-snapshots.XXXXXX)
trap 'rm -rf "$out"' EXIT
chmod 0777 "$out"
# From /tmp: nobody may not be able to enter the checkout's directory as its cwd.
(cd /tmp && setpriv --reuid 65534 --regid 65534 --clear-groups \
  env -i PATH=/usr/bin:/bin HOME=/nonexistent UPDATE_SNAPSHOTS=1 UPDATE_SNAPSHOTS_DIR="$out" \
  "$OLDPWD/$bin" --quiet plan::view::tests)
cp "$out"/*.user.json tests/snapshots/plan-view/
git status --short tests/snapshots
