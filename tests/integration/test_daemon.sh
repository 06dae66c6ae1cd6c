#!/usr/bin/env bash
# The daemon as a black box: -t, start-up, SIGHUP reload (refused and accepted), SIGTERM.
# Every daemon this script starts is killed by PID on exit.
set -euo pipefail

BIN=${S2S_BINDIR:?S2S_BINDIR must point at the build directory}/s2sproxy
SRC=${S2S_SRCDIR:-$(pwd)}
tmp=$(mktemp -d /tmp/test_daemon.XXXXXX)
pid=""

cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=lib/check.sh
. "$(dirname "$0")/lib/check.sh"
check_on_failure() { [ -f "${log:-/nonexistent}" ] && sed 's/^/    log: /' "$log" || true; }

count() { grep -cE -- "$1" "$log" || true; }

# Awaits the n-th log line matching pattern: polls the log file, at most ~10 s.
wait_log() { # pattern [n]
    local pattern=$1 n=${2:-1} i
    for ((i = 0; i < 100; i++)); do
        [ "$(count "$pattern")" -ge "$n" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ "$(count "$pattern")" -ge "$n" ]
}

# Awaits the daemon's exit (at most ~10 s) and stores its status in $status.
wait_exit() {
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    status=0
    wait "$pid" || status=$?
    pid=""
}

alive() { kill -0 "$pid" 2>/dev/null; }

# A private copy of the example configuration and its demo certificate.
make_conf() { # dir
    mkdir -p "$1"
    # Listen on an ephemeral loopback port: 5269 may be taken by other tests.
    sed -e 's|starttls = \[ "0.0.0.0:5269", "\[::\]:5269" \];|starttls = [ "127.0.0.1:0" ];|' \
        "$SRC/conf/s2sproxy.conf" >"$1/s2sproxy.conf"
    grep -q 'starttls = \[ "127.0.0.1:0" \];' "$1/s2sproxy.conf" || { echo "make_conf: sed failed" >&2; exit 1; }
    cp -r "$SRC/conf/certs" "$1/certs"
}

# --- -t -------------------------------------------------------------------------------
out=$("$BIN" -t -c "$SRC/conf/s2sproxy.conf" 2>&1) && rc=0 || rc=$?
check "-t accepts the example configuration" \
    test "$rc" = 0 -a "$out" = "configuration $SRC/conf/s2sproxy.conf ok"

make_conf "$tmp/bad"
cfg=$tmp/bad/s2sproxy.conf
sed -i 's/min_version = "1.2";/min_version = "1.1";/' "$cfg"
line=$(grep -n 'min_version = "1.1"' "$cfg" | cut -d: -f1)
err=$("$BIN" -t -c "$cfg" 2>&1 >/dev/null) && rc=0 || rc=$?
check "-t refuses a bad value with exit 1 and file:line:key" \
    test "$rc" = 1 -a "$err" = "$cfg:$line: tls.min_version: expected \"1.2\" or \"1.3\", got \"1.1\""

make_conf "$tmp/badkey"
echo "not a key" >"$tmp/badkey/certs/example.org.key"
err=$("$BIN" -t -c "$tmp/badkey/s2sproxy.conf" 2>&1 >/dev/null) && rc=0 || rc=$?
check "-t builds the TLS context: an unusable key fails" \
    test "$rc" = 1 -a -n "$(echo "$err" | grep -F "$tmp/badkey/s2sproxy.conf: tls:")"

err=$("$BIN" -t -c "$tmp/none.conf" 2>&1 >/dev/null) && rc=0 || rc=$?
check "-t on a missing file exits 1" \
    test "$rc" = 1 -a "$err" = "$tmp/none.conf: cannot read: No such file or directory"

"$BIN" frobnicate >/dev/null 2>&1 && rc=0 || rc=$?
check "an unknown subcommand is a usage error (exit 2)" test "$rc" = 2
"$BIN" -q >/dev/null 2>&1 && rc=0 || rc=$?
check "an unknown option is a usage error (exit 2)" test "$rc" = 2
out=$("$BIN" --version)
check "--version prints the version" test "$out" = "s2sproxy 0.1.0"

# --- run, reload, stop -----------------------------------------------------------------
make_conf "$tmp/run"
cfg=$tmp/run/s2sproxy.conf
good=$tmp/run/good.conf
cp "$cfg" "$good"
log=$tmp/run/daemon.log
"$BIN" -c "$cfg" 2>"$log" &
pid=$!
check "the daemon starts" wait_log "\[info\] started pid=$pid .*config=$cfg hosts=1"

# A broken file that would also turn on debug logging if any of it were applied.
sed -e 's/level = "info";/level = "debug";/' "$good" >"$cfg"
echo "bogus = 1;" >>"$cfg"
line=$(wc -l <"$cfg")
kill -HUP "$pid"
check "a bad configuration is refused on SIGHUP, naming file:line:key" \
    wait_log "\[error\] reload refused, keeping the running configuration: $cfg:$line: bogus: unknown option"
check "the daemon survives a refused reload" alive
kill -HUP "$pid"
check "a second SIGHUP is refused as well" wait_log "reload refused" 2
# The daemon logs each signal at debug level: none may appear while info is in force.
check "the old configuration stays in force (no debug lines)" test "$(count '\[debug\]')" = 0

# A valid file whose certificate is broken: the TLS context fails, nothing is swapped.
cp "$good" "$cfg"
cp "$tmp/run/certs/example.org.crt" "$tmp/run/cert.save"
echo "garbage" >"$tmp/run/certs/example.org.crt"
kill -HUP "$pid"
check "certificates are re-read on SIGHUP and a bad one is refused" \
    wait_log "reload refused, keeping the running configuration: $cfg: tls: "
check "no reload was logged as done" test "$(count 'reloaded configuration')" = 0
cp "$tmp/run/cert.save" "$tmp/run/certs/example.org.crt"

# Fixed, with level debug: accepted, and the new level is in force afterwards.
sed -e 's/level = "info";/level = "debug";/' "$good" >"$cfg"
kill -HUP "$pid"
check "a good configuration is swapped in on SIGHUP" \
    wait_log "\[info\] reloaded configuration $cfg \(1 hosts\)"
kill -HUP "$pid"
check "the new log level is in force" wait_log "\[debug\] received SIGHUP"
check "the second reload succeeds too" wait_log "reloaded configuration $cfg" 2

kill -TERM "$pid"
wait_exit
check "SIGTERM exits 0" test "$status" = 0
check "SIGTERM logs a graceful shutdown" \
    test "$(count '\[info\] shutting down \(signal SIGTERM\)')" = 1 -a "$(count '\[info\] stopped')" = 1

# -d forces debug on stderr even though the file says info; SIGINT stops too.
log=$tmp/run/debug.log
cp "$good" "$cfg"
"$BIN" -d -c "$cfg" 2>"$log" &
pid=$!
wait_log "started pid=$pid" || true
kill -HUP "$pid"
check "-d logs at debug level whatever the file says" wait_log "\[debug\] received SIGHUP"
kill -INT "$pid"
wait_exit
check "SIGINT exits 0 after a graceful shutdown" \
    test "$status" = 0 -a "$(count 'shutting down \(signal SIGINT\)')" = 1

check_summary
