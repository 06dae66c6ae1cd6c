#!/usr/bin/env bash
# scripts/demo as a user runs it: `start` (deps and build skipped: S2S_BINDIR, --no-deps)
# with its state in a temp dir must print a summary with messages delivered both ways
# over TLS with an authentication method, leave its daemons running after it returns,
# and `stop` must end every process of its pid file and remove the state dir.
set -uo pipefail

SRC=${S2S_SRCDIR:-$(pwd)}
export S2S_BINDIR=${S2S_BINDIR:?S2S_BINDIR must point at the build directory}
tmp=$(mktemp -d /tmp/test_demo.XXXXXX)
chmod 755 "$tmp" # Prosody (user prosody) reads its config in the state dir below
export S2S_DEMO_STATE=$tmp/state
out=$tmp/start.out
pids=$tmp/pids

cleanup() {
    # The demo's own stop kills by PID from its pid file; a copy covers a demo that
    # already removed its state dir.
    [ -d "$S2S_DEMO_STATE" ] && "$SRC/scripts/demo" stop >/dev/null 2>&1
    if [ -f "$pids" ]; then
        while read -r pid _; do kill -KILL "$pid" 2>/dev/null; done <"$pids"
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=lib/check.sh
. "$(dirname "$0")/lib/check.sh"
check_on_failure() { sed 's/^/    out: /' "$out" 2>/dev/null | tail -40; }

# A process counts as running if it exists and is not a zombie (the demo's daemons are
# reparented when `scripts/demo start` exits; their reaper may take a moment).
running() { # pid
    local st
    st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

started() { "$SRC/scripts/demo" start --no-deps >"$out" 2>&1; }
check "start exits 0" started
cp "$S2S_DEMO_STATE/pids" "$pids" 2>/dev/null || : >"$pids"
[ "$failed" -eq 0 ] || check_summary || exit 1 # the rest needs a started demo

check "a message delivered a.test -> b.test" \
    grep -qE 'message alice@a\.test -> bob@b\.test: delivered in [0-9.]+ ms' "$out"
check "a message delivered b.test -> a.test" \
    grep -qE 'message bob@b\.test -> alice@a\.test: delivered in [0-9.]+ ms' "$out"
check "the proxy's stream to b.test: TLS and an authentication method" \
    grep -qE 'out a\.test -> b\.test .* tls=TLSv1\.[23] auth=(sasl-external|dialback)' "$out"
check "the component link to site A is up" grep -q 'component link: local: link up domain=a.test' "$out"
check "Prosody B lists a TLS stream with a.test" grep -qE 'b\.test (<->|-->|<--) a\.test +tls=TLSv1\.[23]' "$out"
check "login instructions (JID, server, CA)" \
    grep -qE 'alice@a\.test +password \S+ +server 127\.0\.0\.2 port [0-9]+' "$out"
check "the CA file printed exists" \
    bash -c "f=\$(sed -n 's/^ *CA certificate: //p' '$out'); [ -s \"\$f\" ]"

all_running() {
    local n=0 pid
    while read -r pid _; do running "$pid" || return 1; n=$((n + 1)); done <"$pids"
    [ "$n" -ge 4 ] # knotd, two Prosody, s2sproxy
}
check "its daemons run after start returned" all_running

again() { ! "$SRC/scripts/demo" start --no-deps >"$tmp/again.out" 2>&1 && grep -q 'already running' "$tmp/again.out"; }
check "a second start refuses while it runs" again

check "stop exits 0" "$SRC/scripts/demo" stop
none_running() {
    local pid
    while read -r pid _; do
        if running "$pid"; then
            echo "    still running: $(grep "^$pid " "$pids") $(tr '\0' ' ' </proc/"$pid"/cmdline)"
            return 1
        fi
    done <"$pids"
}
check "no process of the pid file runs after stop" none_running
check "the state dir is gone" test ! -e "$S2S_DEMO_STATE"

check_summary
