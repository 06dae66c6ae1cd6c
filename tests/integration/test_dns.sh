#!/usr/bin/env bash
# The resolver against a real authoritative server: Knot serves a signed "test." zone with
# secure (sec.test), insecure (insec.test) and bogus (bogus.test) children (see
# dns/knot.sh). tests/unit/test_dns_live.c runs once per backend against it, plus once
# against a UDP socket that never answers (the timeout outcome).
set -euo pipefail

SRCDIR=${S2S_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BINDIR=${S2S_BINDIR:-$SRCDIR/build}
LIVE=$BINDIR/test_dns_live

if ! command -v knotd >/dev/null || ! command -v keymgr >/dev/null; then
    echo "knotd/keymgr not installed (run scripts/deps)" >&2
    exit 1
fi
[ -x "$LIVE" ] || { echo "missing $LIVE (build first)" >&2; exit 1; }

# shellcheck source=dns/knot.sh
. "$SRCDIR/tests/integration/dns/knot.sh"

TMP=$(mktemp -d /tmp/s2s-dns-test.XXXXXX)
SILENT_PID=
cleanup() {
    knot_stop
    if [ -n "$SILENT_PID" ]; then
        kill "$SILENT_PID" 2>/dev/null || true
        wait "$SILENT_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

knot_setup "$TMP/knot"
knot_start

# A UDP socket that is bound but never read: queries to it time out (no ICMP refusal).
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
time.sleep(600)
' >"$TMP/silent.port" &
SILENT_PID=$!
for _ in $(seq 1 50); do
    [ -s "$TMP/silent.port" ] && break
    sleep 0.1
done
SILENT_PORT=$(cat "$TMP/silent.port")

# shellcheck source=lib/check.sh
. "$SRCDIR/tests/integration/lib/check.sh"

# The zones themselves, as a validating third party sees them (delv), so a broken
# fixture is told apart from a broken resolver.
# ta.ds holds "test. DS keytag alg digesttype digest".
awk '{ printf "trust-anchors { %s static-ds %s %s %s \"%s\"; };\n", $1, $3, $4, $5, $6 }' \
    "$KNOT_TA" >"$TMP/ta.bind"
check "fixture: sec.test validates" bash -c "delv -a '$TMP/ta.bind' +root=test -p $KNOT_PORT @127.0.0.1 _xmpp-server._tcp.sec.test SRV 2>&1 | grep -q 'fully validated'"
check "fixture: insec.test is unsigned" bash -c "delv -a '$TMP/ta.bind' +root=test -p $KNOT_PORT @127.0.0.1 _xmpp-server._tcp.insec.test SRV 2>&1 | grep -q 'unsigned answer'"
check "fixture: bogus.test fails validation" bash -c "delv -a '$TMP/ta.bind' +root=test -p $KNOT_PORT @127.0.0.1 _xmpp-server._tcp.bogus.test SRV 2>&1 | grep -q 'broken trust chain'"

run_live() { # backend
    local out rc ok
    out=$(S2S_DNS_BACKEND=$1 S2S_DNS_SERVER=127.0.0.1:$KNOT_PORT S2S_DNS_TA=$KNOT_TA \
        S2S_DNS_SILENT=127.0.0.1:$SILENT_PORT "$LIVE" 2>&1) && rc=0 || rc=$?
    echo "$out" | sed "s/^/  [$1] /"
    ok=$(echo "$out" | grep -c '^\[       OK \]' || true)
    passed=$((passed + ok))
    # cmocka exits with the number of failed tests.
    failed=$((failed + rc))
    if [ "$ok" -eq 0 ] && [ "$rc" -eq 0 ]; then
        echo "FAILED: $1 ran no test"
        failed=$((failed + 1))
    fi
}
run_live cares
run_live unbound

check_summary
