# Shared by tests/integration/test_dns.sh and bench/dns.sh: builds and runs a Knot DNS
# server on 127.0.0.1 that serves a signed "test." zone delegating to sec.test (signed, DS
# in the parent: secure), insec.test (unsigned, no DS: insecure) and bogus.test (signed,
# the parent publishes a wrong DS: bogus). Source it, then call knot_setup DIR and
# knot_start; knot_stop stops the server by PID.
#
# Sets: KNOT_PORT, KNOT_PID, KNOT_TA (trust anchor file: the DS of "test.").

knot_free_port() {
    # A UDP and TCP port nothing listens on, from a range unlikely to be used.
    local p
    for p in $(shuf -i 20000-29999 -n 50); do
        if ! ss -Hlnu "sport = :$p" | grep -q . && ! ss -Hlnt "sport = :$p" | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# knot_setup DIR [EXTRA_ZONE_FILE_FOR_test.]
knot_setup() {
    KNOT_DIR=$1
    local extra=${2:-}
    mkdir -p "$KNOT_DIR/zones" "$KNOT_DIR/db" "$KNOT_DIR/run"
    KNOT_PORT=$(knot_free_port) || { echo "no free port" >&2; return 1; }
    cat >"$KNOT_DIR/knot.conf" <<CONF
server:
    rundir: "$KNOT_DIR/run"
    listen: 127.0.0.1@$KNOT_PORT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: "$KNOT_DIR/knot.log"
    any: info
database:
    storage: "$KNOT_DIR/db"
policy:
  - id: manual
    algorithm: ecdsap256sha256
    manual: on
    nsec3: off
template:
  - id: default
    storage: "$KNOT_DIR/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
zone:
  - domain: test.
    dnssec-signing: on
    dnssec-policy: manual
  - domain: sec.test.
    dnssec-signing: on
    dnssec-policy: manual
  - domain: bogus.test.
    dnssec-signing: on
    dnssec-policy: manual
  - domain: insec.test.
CONF
    local z
    for z in test. sec.test. bogus.test.; do
        keymgr -c "$KNOT_DIR/knot.conf" "$z" generate algorithm=ecdsap256sha256 ksk=yes zsk=yes \
            >/dev/null || return 1
    done
    keymgr -c "$KNOT_DIR/knot.conf" test. ds | grep ' 2 ' >"$KNOT_DIR/ta.ds"
    KNOT_TA="$KNOT_DIR/ta.ds"
    local secds bogusds
    secds=$(keymgr -c "$KNOT_DIR/knot.conf" sec.test. ds | grep ' 2 ')
    # A DS of the right shape whose digest matches no key: the child is bogus.
    bogusds=$(keymgr -c "$KNOT_DIR/knot.conf" bogus.test. ds | grep ' 2 ' |
        awk '{ $NF = "0000000000000000000000000000000000000000000000000000000000000000"; print }')
    cat >"$KNOT_DIR/zones/test.zone" <<ZONE
\$ORIGIN test.
\$TTL 300
@ SOA ns.test. hostmaster.test. 1 3600 600 86400 30
@ NS ns.test.
ns A 127.0.0.1
sec NS ns.test.
$secds
insec NS ns.test.
bogus NS ns.test.
$bogusds
ZONE
    [ -n "$extra" ] && cat "$extra" >>"$KNOT_DIR/zones/test.zone"
    local child
    for child in sec insec bogus; do
        cat >"$KNOT_DIR/zones/$child.test.zone" <<ZONE
\$ORIGIN $child.test.
\$TTL 300
@ SOA ns.test. hostmaster.test. 1 3600 600 86400 30
@ NS ns.test.
_xmpp-server._tcp SRV 10 60 5269 xmpp1.$child.test.
_xmpp-server._tcp SRV 10 40 5269 xmpp2.$child.test.
_xmpp-server._tcp SRV 20 0 5269 backup.$child.test.
_xmpps-server._tcp SRV 5 0 5270 xmpp1.$child.test.
xmpp1 AAAA 2001:db8::1
xmpp1 A 192.0.2.1
xmpp2 A 192.0.2.2
backup AAAA 2001:db8::3
_5270._tcp.xmpp1 TLSA 3 1 1 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20
_5269._tcp.xmpp1 TLSA 2 0 1 a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0
; a domain with no SRV records at all: RFC 6120 3.2.2 fallback to its own A/AAAA
nosrv A 192.0.2.10
nosrv AAAA 2001:db8::10
; service decidedly not available (RFC 2782 "."), both protocols
dot._xmpp-server._tcp SRV 0 0 0 .
dot._xmpps-server._tcp SRV 0 0 0 .
; direct TLS not offered, STARTTLS is
half._xmpps-server._tcp SRV 0 0 0 .
half._xmpp-server._tcp SRV 0 0 5269 xmpp2.$child.test.
; an SRV target that is an alias, which RFC 2782 forbids: it must still resolve, and say so
_xmpp-server._tcp.alias SRV 0 0 5269 cn.$child.test.
cn CNAME xmpp1.$child.test.
; a name with data of another type only: NODATA for A
txtonly TXT "nothing else"
ZONE
    done
    # "dot" and "half" are subdomains: their SRV names are _xmpp-server._tcp.dot.<child>...
    local f
    for f in sec insec bogus; do
        sed -i -e "s/^dot\._xmpp-server\._tcp/_xmpp-server._tcp.dot/" \
            -e "s/^dot\._xmpps-server\._tcp/_xmpps-server._tcp.dot/" \
            -e "s/^half\._xmpps-server\._tcp/_xmpps-server._tcp.half/" \
            -e "s/^half\._xmpp-server\._tcp/_xmpp-server._tcp.half/" "$KNOT_DIR/zones/$f.test.zone"
    done
}

knot_start() {
    knotd -c "$KNOT_DIR/knot.conf" >"$KNOT_DIR/knotd.out" 2>&1 &
    KNOT_PID=$!
    local i
    for i in $(seq 1 300); do
        if dig +short +time=1 +tries=1 -p "$KNOT_PORT" @127.0.0.1 SOA sec.test. 2>/dev/null | grep -q hostmaster &&
            dig +short +time=1 +tries=1 -p "$KNOT_PORT" @127.0.0.1 SOA test. 2>/dev/null | grep -q hostmaster &&
            dig +short +time=1 +tries=1 -p "$KNOT_PORT" @127.0.0.1 SOA bogus.test. 2>/dev/null | grep -q hostmaster &&
            dig +short +time=1 +tries=1 -p "$KNOT_PORT" @127.0.0.1 SOA insec.test. 2>/dev/null | grep -q hostmaster; then
            return 0
        fi
        kill -0 "$KNOT_PID" 2>/dev/null || { cat "$KNOT_DIR/knotd.out" "$KNOT_DIR/knot.log" >&2; return 1; }
        sleep 0.1
    done
    echo "knotd did not become ready" >&2
    return 1
}

knot_stop() {
    if [ -n "${KNOT_PID:-}" ]; then
        kill "$KNOT_PID" 2>/dev/null || true
        wait "$KNOT_PID" 2>/dev/null || true
        KNOT_PID=
    fi
}
