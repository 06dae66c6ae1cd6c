#!/usr/bin/env bash
# `s2sproxy resolve` against a real authoritative server (Knot, signed zones from
# dns/knot.sh): the order, TLS modes, DNSSEC status and TLSA the proxy would use, as
# text and JSON, with both backends configured through the configuration file.
set -euo pipefail

SRCDIR=${S2S_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BINDIR=${S2S_BINDIR:-$SRCDIR/build}
PROXY=$BINDIR/s2sproxy
PY=/usr/bin/python3

command -v knotd >/dev/null || { echo "knotd not installed" >&2; exit 1; }
[ -x "$PROXY" ] || { echo "missing $PROXY (build first)" >&2; exit 1; }

# shellcheck source=dns/knot.sh
. "$SRCDIR/tests/integration/dns/knot.sh"
TMP=$(mktemp -d /tmp/s2s-resolve-test.XXXXXX)
cleanup() { knot_stop; rm -rf "$TMP"; }
trap cleanup EXIT
knot_setup "$TMP/knot"
knot_start

write_conf() { # file, backend
    local extra=""
    if [ "$2" = unbound ]; then
        extra="trust_anchor_file = \"$KNOT_TA\";
    unbound_options = ( (\"local-zone:\", \"test. transparent\") );"
    fi
    cat >"$1" <<CONF
hosts = ( { domain = "example.org";
            certificate = "$SRCDIR/conf/certs/example.org.crt";
            key = "$SRCDIR/conf/certs/example.org.key"; } );
dns = { backend = "$2"; servers = [ "127.0.0.1:$KNOT_PORT" ]; timeout = 2;
    $extra };
CONF
}
write_conf "$TMP/unbound.conf" unbound
write_conf "$TMP/cares.conf" c-ares

# shellcheck source=lib/check.sh
. "$SRCDIR/tests/integration/lib/check.sh"
# json_check FILE PYTHON-EXPR: the expression over the parsed document `d` must be true.
json_check() {
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"
}
resolve() { # conf, domain, outfile, expected-exit, [--json]
    local rc=0
    "$PROXY" resolve -c "$1" ${5:-} "$2" >"$3" 2>"$3.err" || rc=$?
    [ "$rc" -eq "$4" ] || { echo "  exit $rc, expected $4"; cat "$3" "$3.err"; return 1; }
}

# Secure zone through the validating backend: XEP-0368 order (direct TLS at priority 5
# first), DNSSEC secure, TLSA fetched for the secure target.
check "unbound: sec.test resolves (exit 0)" resolve "$TMP/unbound.conf" sec.test "$TMP/sec.json" 0 --json
check "unbound: first target is xmpp1.sec.test:5270 direct TLS" \
    json_check "$TMP/sec.json" 'd["targets"][0]["host"]=="xmpp1.sec.test" and d["targets"][0]["port"]==5270 and d["targets"][0]["tls"]=="direct"'
check "unbound: SRV answers are DNSSEC secure" \
    json_check "$TMP/sec.json" 'd["srv_xmpp"]["dnssec"]=="secure" and d["srv_xmpps"]["dnssec"]=="secure"'
check "unbound: TLSA 3 1 1 for _5270._tcp.xmpp1" \
    json_check "$TMP/sec.json" '[(r["usage"],r["selector"],r["mtype"]) for r in d["targets"][0]["tlsa"]["records"]]==[(3,1,1)] and d["targets"][0]["tlsa"]["dnssec"]=="secure"'
check "unbound: IPv6 address listed before IPv4" \
    json_check "$TMP/sec.json" '[(a["family"],a["address"]) for a in d["targets"][0]["addresses"]]==[("ipv6","2001:db8::1"),("ipv4","192.0.2.1")]'
check "unbound: text output names the order and DNSSEC status" \
    bash -c "'$PROXY' resolve -c '$TMP/unbound.conf' sec.test | grep -q '1\\. xmpp1.sec.test port 5270' && '$PROXY' resolve -c '$TMP/unbound.conf' sec.test | grep -q secure"
check "unbound: insec.test is insecure, no TLSA" resolve "$TMP/unbound.conf" insec.test "$TMP/insec.json" 0 --json
check "unbound: insec.test dnssec insecure, TLSA not asked" \
    json_check "$TMP/insec.json" 'd["srv_xmpp"]["dnssec"]=="insecure" and all("tlsa" not in t or t["tlsa"].get("records",[])==[] for t in d["targets"])'
check "unbound: bogus.test fails (exit 1)" resolve "$TMP/unbound.conf" bogus.test "$TMP/bogus.json" 1 --json
check "unbound: bogus.test reported as bogus" json_check "$TMP/bogus.json" 'd["status"]=="bogus"'
check "unbound: '.' target means no service (exit 1)" resolve "$TMP/unbound.conf" dot.sec.test "$TMP/dot.json" 1 --json
check "unbound: '.' status" json_check "$TMP/dot.json" 'd["status"]=="no-service"'
check "unbound: no SRV falls back to the domain on 5269" resolve "$TMP/unbound.conf" nosrv.sec.test "$TMP/nosrv.json" 0 --json
check "unbound: fallback target" \
    json_check "$TMP/nosrv.json" 'd["fallback"] and d["targets"][0]["host"]=="nosrv.sec.test" and d["targets"][0]["port"]==5269 and d["targets"][0]["tls"]=="starttls"'

# The stub backend sees the same data and never calls it secure.
check "c-ares: sec.test resolves" resolve "$TMP/cares.conf" sec.test "$TMP/csec.json" 0 --json
check "c-ares: same first target" \
    json_check "$TMP/csec.json" 'd["targets"][0]["host"]=="xmpp1.sec.test" and d["targets"][0]["port"]==5270'
check "c-ares: never secure, so no TLSA" \
    json_check "$TMP/csec.json" 'd["srv_xmpp"]["dnssec"]=="indeterminate" and all(t["a"]["dnssec"]!="secure" and "records" not in t.get("tlsa",{}) for t in d["targets"])'
check "c-ares: nxdomain is exit 1" resolve "$TMP/cares.conf" nothing-here.sec.test "$TMP/nx.json" 1 --json
check "c-ares: nxdomain status" json_check "$TMP/nx.json" 'd["status"]=="nxdomain"'

# Usage and configuration errors are exit 2.
check "usage: no domain is exit 2" resolve "$TMP/cares.conf" "" "$TMP/u.txt" 2
check "usage: bad config is exit 2 with file:line" bash -c "
    sed 's/backend = \"c-ares\"/backend = \"bind\"/' '$TMP/cares.conf' >'$TMP/bad.conf'
    rc=0; '$PROXY' resolve -c '$TMP/bad.conf' sec.test 2>'$TMP/bad.err' || rc=\$?
    [ \$rc -eq 2 ] && grep -q 'bad.conf:4: dns.backend' '$TMP/bad.err'"

check_summary
