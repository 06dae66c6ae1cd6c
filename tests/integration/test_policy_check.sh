#!/usr/bin/env bash
# `s2sproxy policy-check` with the example policies of conf/policy/: the decision, the
# rule that made it (file and line), exit status 0 pass / 1 refuse-bounce-drop / 2 usage
# or configuration error, and the same answer as JSON.
set -euo pipefail

SRCDIR=${S2S_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BINDIR=${S2S_BINDIR:-$SRCDIR/build}
PROXY=$BINDIR/s2sproxy
PY=/usr/bin/python3
POL=$SRCDIR/conf/policy

[ -x "$PROXY" ] || { echo "missing $PROXY (build first)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/s2s-policy-check.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# shellcheck source=lib/check.sh
. "$SRCDIR/tests/integration/lib/check.sh"

# pc EXPECTED-EXIT PATTERN CONF ARGS...: exit status as expected and the "decision:"
# line matches the extended regular expression PATTERN.
pc() {
    local want=$1 pattern=$2 conf=$3 rc=0
    shift 3
    "$PROXY" policy-check -c "$POL/$conf" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "  exit $rc, expected $want"; cat "$TMP/out" "$TMP/err"; return 1
    fi
    grep -Eq "^decision: $pattern" "$TMP/out" || { echo "  no match for: $pattern"; cat "$TMP/out"; return 1; }
}
IN="--to me@example.org"

# 1. Open federation with a block list.
C=spam-blocklist.conf
check "blocklist: listed domain refused" pc 1 "refuse stream-error=policy-violation .*term=federate rule=spam-list \(.*spam-blocklist.conf:21\)" $C --from user@spam.example $IN
check "blocklist: subdomain of a listed domain refused" pc 1 "refuse .*rule=spam-list" $C --from user@muc.spam.example $IN
check "blocklist: outbound to a listed domain bounces not-allowed/cancel" pc 1 "bounce condition=not-allowed type=cancel term=federate rule=spam-list" $C --from me@example.org --to user@botfarm.example
check "blocklist: *.throwaway.example from the list file" pc 1 "refuse .*rule=spam-list" $C --from u@x.throwaway.example $IN
check "blocklist: inline entry" pc 1 "refuse .*rule=abuse" $C --from u@abuse.example $IN
check "blocklist: anyone else passes" pc 0 "pass rule=default" $C --from user@friends.example $IN --auth dialback

# 2. Closed federation.
C=closed-federation.conf
check "closed: partner passes" pc 0 "pass" $C --from user@partner-a.example $IN
check "closed: partner over TLS 1.2 refused (min_tls)" pc 1 "refuse .*term=min_tls rule=partners" $C --from user@partner-b.example $IN --tls 1.2
check "closed: partner with dialback only refused not-authorized" pc 1 "refuse stream-error=not-authorized dialback-error=not-authorized term=auth rule=partners" $C --from user@partner-b.example $IN --auth dialback
check "closed: *.partner-c.example" pc 0 "pass" $C --from user@lab.partner-c.example $IN
check "closed: stranger refused by the default" pc 1 "refuse .*term=federate rule=default \(.*closed-federation.conf:[0-9]+\)" $C --from user@stranger.example $IN
check "closed: outbound to a stranger bounces" pc 1 "bounce condition=not-allowed" $C --from me@example.org --to user@stranger.example
check "closed: outbound without DNSSEC refused" pc 1 "refuse .*term=dnssec rule=partner-a-dnssec" $C --from me@example.org --to user@partner-a.example --no-dnssec

# 3. Certificates required for some domains.
C=require-certificates.conf
check "certs: bank with certificate passes" pc 0 "pass" $C --from teller@bank.example $IN
check "certs: bank with dialback refused" pc 1 "refuse .*term=auth rule=bank" $C --from teller@bank.example $IN --auth dialback
check "certs: outbound to bank without DANE refused" pc 1 "refuse .*term=dane rule=bank" $C --from me@example.org --to teller@bank.example --no-dane
check "certs: *.gov.example with dialback refused" pc 1 "refuse .*rule=government" $C --from clerk@tax.gov.example $IN --auth dialback
check "certs: gov.example itself is not *.gov.example" pc 0 "pass rule=default" $C --from u@gov.example $IN --auth dialback

# 4. File transfer from outside.
C=no-file-transfer.conf
check "ft: SI offer from outside bounces not-acceptable" pc 1 "bounce condition=not-acceptable type=modify rule=no-ft-in .*: file transfer from outside example.org is not allowed" $C --from a@stranger.example $IN --kind iq --type set --ns http://jabber.org/protocol/si
check "ft: second namespace of the stanza matches" pc 1 "bounce .*rule=no-ft-in" $C --from a@stranger.example $IN --ns urn:xmpp:receipts --ns jabber:x:oob
check "ft: partners may" pc 0 "pass rule=partners-may" $C --from a@partner-a.example $IN --kind iq --type set --ns http://jabber.org/protocol/si
check "ft: outbound offers are logged and pass" pc 0 "log rule=log-ft-out" $C --from me@example.org --to a@stranger.example --kind iq --type set --ns urn:xmpp:jingle:1
check "ft: big stanza bounces policy-violation" pc 1 "bounce condition=policy-violation .*rule=big" $C --from a@stranger.example $IN --size 100000
check "ft: plain chat passes" pc 0 "pass rule=default" $C --from a@stranger.example $IN --type chat

# 5. Subscription requests (one run sees one request: within the limit).
C=subscription-limit.conf
check "subscribe: from unknown within the limit passes" pc 0 "pass rule=default" $C --from a@unknown.example $IN --kind presence --type subscribe
check "subscribe: from a known domain" pc 0 "pass rule=known-subscribe" $C --from a@friends.example $IN --kind presence --type subscribe

# JSON: the same decision, machine-readable.
json_check() {
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"
}
pcjson() { # exit, conf, args...
    local want=$1 conf=$2 rc=0
    shift 2
    "$PROXY" policy-check --json -c "$POL/$conf" "$@" >"$TMP/json" 2>"$TMP/err" || rc=$?
    [ "$rc" -eq "$want" ] || { echo "  exit $rc, expected $want"; cat "$TMP/json" "$TMP/err"; return 1; }
}
check "json: bounce exits 1" pcjson 1 no-file-transfer.conf --from a@stranger.example $IN --kind iq --type set --ns http://jabber.org/protocol/si
check "json: decision, rule, file and line" json_check "$TMP/json" \
    'd["direction"]=="in" and d["decision"]["verdict"]=="bounce" and d["decision"]["rule"]=="no-ft-in" and d["decision"]["file"].endswith("no-file-transfer.conf") and d["decision"]["line"]>0 and d["decision"]["condition"]=="not-acceptable" and d["stream"]["verdict"]=="pass"'
check "json: refusal" pcjson 1 closed-federation.conf --from u@stranger.example $IN
check "json: refusal fields" json_check "$TMP/json" \
    'd["decision"]["verdict"]=="refuse" and d["decision"]["term"]=="federate" and d["decision"]["stream_error"]=="policy-violation" and d["terms"]["federate"]==False'
check "json: outbound route" pcjson 0 spam-blocklist.conf --from me@example.org --to u@ok.example
check "json: outbound fields" json_check "$TMP/json" \
    'd["direction"]=="out" and d["route"]["verdict"]=="pass" and d["decision"]["verdict"]=="pass"'

# Usage and configuration errors: exit 2.
usage_err() { # expected stderr regex, args...
    local pattern=$1 rc=0
    shift
    "$PROXY" policy-check "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    [ "$rc" -eq 2 ] || { echo "  exit $rc, expected 2"; cat "$TMP/out" "$TMP/err"; return 1; }
    grep -Eq "$pattern" "$TMP/err" || { echo "  stderr does not match: $pattern"; cat "$TMP/err"; return 1; }
}
check "usage: missing --to" usage_err "usage: s2sproxy policy-check" -c "$POL/spam-blocklist.conf" --from a@b.example
check "usage: bad --kind" usage_err "usage:" -c "$POL/spam-blocklist.conf" --from a@b.example $IN --kind mail
check "usage: bad --tls" usage_err "usage:" -c "$POL/spam-blocklist.conf" --from a@b.example $IN --tls 1.1
check "usage: bad JID" usage_err "not a valid JID" -c "$POL/spam-blocklist.conf" --from "a@bad domain" $IN
check "usage: neither side hosted" usage_err "exactly one of a.example and b.example must be hosted" -c "$POL/spam-blocklist.conf" --from x@a.example --to y@b.example
check "config: missing file" usage_err "nothing.conf: cannot read" -c "$TMP/nothing.conf" --from a@b.example $IN
cat >"$TMP/broken.conf" <<'CONF'
hosts = ( { domain = "example.org"; } );
policy = {
    federate = "allow";
    domains = ( { match = "x.example"; federate = "block"; } );
};
CONF
check "config: bad policy value names FILE:LINE: KEY" usage_err "broken.conf:4: policy.domains\[0\].federate: expected \"allow\" or \"deny\", got \"block\"" -c "$TMP/broken.conf" --from a@b.example $IN
printf 'hosts = ( { domain = "example.org"; } );\npolicy = { domains = ( { list = "nope.txt"; } ); };\n' >"$TMP/nolist.conf"
check "config: missing list file" usage_err "nolist.conf:2: policy.domains\[0\].list: .*nope.txt: cannot read" -c "$TMP/nolist.conf" --from a@b.example $IN
printf 'hosts = ( { domain = "example.org"; } );\npolicy = { federate = ; };\n' >"$TMP/syntax.conf"
check "config: syntax error" usage_err "syntax.conf:2: syntax error" -c "$TMP/syntax.conf" --from a@b.example $IN

check_summary
