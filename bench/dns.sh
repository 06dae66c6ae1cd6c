#!/usr/bin/env bash
# DNS benchmark: starts Knot (tests/integration/dns/knot.sh) with 10,000 A records in an
# unsigned zone (bench.insec.test) and 10,000 in a signed one (bench.sec.test), runs
# bench_dns against it with both backends, stops Knot. See bench/README-dns.md.
#   bench/dns.sh [BUILD_DIR]      (default build/release, configured RelWithDebInfo)
# Environment: S2S_BENCH_NAMES (10000), S2S_BENCH_WINDOWS ("100 1000 10000": lookups the
# bench keeps outstanding), S2S_BENCH_MAX_IN_FLIGHT (0).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/release}
NAMES=${S2S_BENCH_NAMES:-10000}
WINDOWS=${S2S_BENCH_WINDOWS:-"100 1000 10000"}
MAXF=${S2S_BENCH_MAX_IN_FLIGHT:-0} # the resolver's bound on backend queries (0: its default)

if [ ! -x "$BUILD/bench_dns" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j2 --target bench_dns >/dev/null
fi

. tests/integration/dns/knot.sh
TMP=$(mktemp -d /tmp/s2s-dns-bench.XXXXXX)
trap 'knot_stop; rm -rf "$TMP"' EXIT
knot_setup "$TMP/knot"
for z in sec insec; do
    awk -v n="$NAMES" 'BEGIN { for (i = 0; i < n; i++)
        printf "h%d.bench A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256 }' \
        >>"$TMP/knot/zones/$z.test.zone"
done
knot_start
echo "knot ready on 127.0.0.1:$KNOT_PORT ($NAMES names per zone)"

for backend in cares unbound; do
    for zone in bench.insec.test bench.sec.test; do
        for w in $WINDOWS; do
            "$BUILD/bench_dns" -s "127.0.0.1:$KNOT_PORT" -b "$backend" -t "$KNOT_TA" \
                -z "$zone" -n "$NAMES" -w "$w" -m "$MAXF" -c 1000000 | sed "s/^/zone=$zone /" || true
        done
    done
done
