# Shared start of the podman tests (test-containers.sh, test-containers-egress.sh,
# test-systemd.sh); sourced, not run. `podman_test_start NAME REQUIRE_VAR` defines `say`
# and `skip` for the script NAME, and checks what all three need: root (rootful podman),
# podman and runc (crun refuses this kind of machine's hybrid cgroups). A missing piece
# skips with the reason, or fails when the test is required: REQUIRE_VAR=1, or CI=true as
# root (CI must not go green on a test that did not run).
podman_test_start() {
    PODMAN_TEST_NAME=$1
    required=0
    if [ "${!2:-0}" = 1 ] || { [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ]; }; then
        required=1
    fi
    runc="${RUNC:-/usr/sbin/runc}"
    [ "$(id -u)" = 0 ] || skip "needs root (rootful podman)"
    command -v podman >/dev/null || skip "podman not installed (apt-get install podman)"
    [ -x "$runc" ] || skip "$runc not installed (apt-get install runc)"
}
say() { printf '%s: %s\n' "$PODMAN_TEST_NAME" "$*"; }
skip() {
    if [ "$required" = 1 ]; then say "FAIL: cannot run: $*"; exit 1; fi
    say "skipped: $*"
    exit 0
}
